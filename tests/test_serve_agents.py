"""`gemma-code serve` for coding agents: the real openai and anthropic clients against a running
server with the scripted engine, whose replies are Gemma 4's native tool-call text."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gemma_code.engine.scripted import ScriptedEngine

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")

READ_CALL = (
    "<|channel>thought\nI should read it.<channel|>"
    '<|tool_call>call:read_file{path:<|"|>main.py<|"|>}<tool_call|>'
)
READ_RESULT = '<|tool_response>response:read_file{value:<|"|>print("hi")<|"|>}<tool_response|>'
KEY_ENV = "GEMMA_CODE_TEST_AGENT_KEY"
KEY = "k" * 24
OPENAI_TOOL = {"type": "function", "function": {
    "name": "read_file", "description": "Read a file.",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
}}
ANTHROPIC_TOOL = {"name": "read_file", "description": "Read a file.", "input_schema": {
    "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}
RESPONSES_TOOL = {"type": "function", "name": "read_file", "description": "Read a file.",
                  "parameters": OPENAI_TOOL["function"]["parameters"]}  # type: ignore[index]


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    log: Path

    def prompts(self) -> list[str]:
        if not self.log.exists():
            return []
        return [json.loads(line)["prompt"] for line in self.log.read_text().splitlines()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def scripted_server(tmp_path: Path, replies: list[Any], *args: str,
                    env: dict[str, str] | None = None, script: dict[str, Any] | None = None
                    ) -> Iterator[Server]:
    """`gemma-code serve` on the scripted engine; stopped (and checked) when the block ends."""
    log = tmp_path / "seen.jsonl"
    script_file = tmp_path / "script.json"
    script_file.write_text(json.dumps({"replies": replies, "log": str(log), "n_ctx": 16384,
                                       **(script or {})}))
    port = _free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GEMMA_CODE_")}
    full_env.update({"GEMMA_CODE_HOME": str(tmp_path / "home"), "GEMMA_CODE_ENGINE": "scripted",
                     "GEMMA_CODE_SCRIPT": str(script_file), **(env or {})})
    proc = subprocess.Popen(
        [sys.executable, "-m", "gemma_code", "serve", "--port", str(port), *args],
        env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"serve did not start: {proc.communicate()[1][-2000:]}")
            time.sleep(0.2)
    try:
        yield Server(url, log)
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
        assert "Traceback" not in err, err[-3000:]


def oai(server: Server, key: str = "unused") -> Any:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=60)


def claude(server: Server, key: str = "unused") -> Any:
    return anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0, timeout=60)


# -- Chat Completions ----------------------------------------------------------------------------


def test_chat_completions_tool_call_and_result_round_trip(tmp_path: Path) -> None:
    with scripted_server(tmp_path, [READ_CALL, "It prints hi."]) as server:
        client = oai(server)
        question = [{"role": "user", "content": "What does main.py do?"}]
        first = client.chat.completions.create(model="scripted", messages=question,
                                               tools=[OPENAI_TOOL])
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        call = choice.message.tool_calls[0]
        assert call.function.name == "read_file"
        assert json.loads(call.function.arguments) == {"path": "main.py"}
        reasoning = choice.message.model_extra["reasoning_content"]
        assert reasoning == "I should read it."
        followup = [*question,
                    {"role": "assistant", "content": None, "reasoning_content": reasoning,
                     "tool_calls": [call.model_dump()]},
                    {"role": "tool", "tool_call_id": call.id, "content": 'print("hi")'}]
        second = client.chat.completions.create(model="scripted", messages=followup,
                                                tools=[OPENAI_TOOL])
        assert second.choices[0].message.content == "It prints hi."
        assert second.choices[0].finish_reason == "stop"
        prompt = server.prompts()[1]
    assert "<|tool>declaration:read_file{" in prompt
    # the reasoning of the call turn goes back to the model, then the call and its result
    assert ("<|turn>model\n<|channel>thought\nI should read it.\n<channel|>"
            '<|tool_call>call:read_file{path:<|"|>main.py<|"|>}<tool_call|>' + READ_RESULT) in prompt


def test_chat_completions_streams_tool_call_deltas(tmp_path: Path) -> None:
    reply = 'Let me look.<|tool_call>call:read_file{path:<|"|>a b.py<|"|>}<tool_call|>'
    with scripted_server(tmp_path, [reply]) as server:
        stream = oai(server).chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "read a b.py"}],
            tools=[OPENAI_TOOL], stream=True, stream_options={"include_usage": True})
        content, calls, finish, usage = "", {}, None, None
        for chunk in stream:
            usage = chunk.usage or usage
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            content += delta.content or ""
            for part in delta.tool_calls or []:
                entry = calls.setdefault(part.index, {"name": "", "arguments": "", "id": ""})
                entry["id"] = part.id or entry["id"]
                entry["name"] += part.function.name or ""
                entry["arguments"] += part.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
    assert content == "Let me look."  # the call's own text never leaks into the content
    assert finish == "tool_calls"
    assert [c["name"] for c in calls.values()] == ["read_file"]
    assert json.loads(calls[0]["arguments"]) == {"path": "a b.py"}
    assert calls[0]["id"].startswith("call_")
    assert usage is not None and usage.completion_tokens > 0


def test_a_malformed_call_comes_back_as_text_not_an_error(tmp_path: Path) -> None:
    with scripted_server(tmp_path, ["<|tool_call>call:read_file{path main.py}<tool_call|>"]) as server:
        answer = oai(server).chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "x"}], tools=[OPENAI_TOOL])
    assert answer.choices[0].finish_reason == "stop"
    assert "call:read_file" in answer.choices[0].message.content


# -- Responses API -------------------------------------------------------------------------------


def test_responses_function_call_and_output_round_trip(tmp_path: Path) -> None:
    with scripted_server(tmp_path, [READ_CALL, "It prints hi."]) as server:
        client = oai(server)
        first = client.responses.create(model="scripted", instructions="Be brief.",
                                        input="What does main.py do?", tools=[RESPONSES_TOOL])
        kinds = [item.type for item in first.output]
        assert kinds == ["reasoning", "function_call"]
        call = first.output[1]
        assert call.name == "read_file" and json.loads(call.arguments) == {"path": "main.py"}
        second = client.responses.create(
            model="scripted", instructions="Be brief.", tools=[RESPONSES_TOOL],
            input=[{"role": "user", "content": "What does main.py do?"},
                   first.output[0].model_dump(exclude_none=True),
                   {"type": "function_call", "call_id": call.call_id, "name": call.name,
                    "arguments": call.arguments},
                   {"type": "function_call_output", "call_id": call.call_id, "output": 'print("hi")'}])
        assert second.output_text == "It prints hi."
        assert second.status == "completed"
        prompt = server.prompts()[1]
    assert prompt.startswith("<bos><|turn>system\nBe brief.<|tool>declaration:read_file{")
    assert "<|channel>thought\nI should read it.\n<channel|><|tool_call>call:read_file" in prompt
    assert READ_RESULT in prompt


def test_responses_stream_has_the_event_sequence_the_client_expects(tmp_path: Path) -> None:
    with scripted_server(tmp_path, [READ_CALL, "It prints hi."]) as server:
        client = oai(server)
        with client.responses.stream(model="scripted", input="What does main.py do?",
                                     tools=[RESPONSES_TOOL]) as stream:
            events = [event.type for event in stream]
            final = stream.get_final_response()
        assert events[:2] == ["response.created", "response.in_progress"]
        assert events[-1] == "response.completed"
        assert "response.reasoning_text.delta" in events
        assert events.index("response.function_call_arguments.delta") < events.index(
            "response.function_call_arguments.done")
        call = next(item for item in final.output if item.type == "function_call")
        assert json.loads(call.arguments) == {"path": "main.py"}
        with client.responses.stream(
            model="scripted", previous_response_id=final.id, tools=[RESPONSES_TOOL],
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": 'print("hi")'}],
        ) as stream:
            texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
            answer = stream.get_final_response()
        prompt = server.prompts()[1]
    assert "".join(texts) == answer.output_text == "It prints hi."
    assert READ_RESULT in prompt  # previous_response_id brought back the call it answers


# -- Anthropic Messages --------------------------------------------------------------------------


def test_messages_tool_use_and_tool_result_round_trip(tmp_path: Path) -> None:
    with scripted_server(tmp_path, [READ_CALL, "It prints hi."]) as server:
        client = claude(server)
        question = {"role": "user", "content": "What does main.py do?"}
        first = client.messages.create(model="scripted", max_tokens=64, system="Be brief.",
                                       messages=[question], tools=[ANTHROPIC_TOOL])
        assert first.stop_reason == "tool_use"
        assert [b.type for b in first.content] == ["thinking", "tool_use"]
        use = first.content[1]
        assert use.name == "read_file" and use.input == {"path": "main.py"}
        second = client.messages.create(
            model="scripted", max_tokens=64, system="Be brief.", tools=[ANTHROPIC_TOOL],
            messages=[question, {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                    "content": 'print("hi")'}]}])
        assert second.stop_reason == "end_turn"
        assert second.content[0].text == "It prints hi."
        prompt = server.prompts()[1]
    assert "<|channel>thought\nI should read it.\n<channel|><|tool_call>call:read_file" in prompt
    assert READ_RESULT in prompt


def test_messages_stream_builds_the_tool_use_block(tmp_path: Path) -> None:
    question = [{"role": "user", "content": "What does main.py do?"}]
    with scripted_server(tmp_path, [READ_CALL]) as server:
        with claude(server).messages.stream(model="scripted", max_tokens=64,
                                            tools=[ANTHROPIC_TOOL], messages=question) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_message()
        counted = claude(server).messages.count_tokens(model="scripted", tools=[ANTHROPIC_TOOL],
                                                       messages=question)
        prompt = server.prompts()[0]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.stop_reason == "tool_use"
    use = next(b for b in final.content if b.type == "tool_use")
    assert use.input == {"path": "main.py"}
    thinking = next(b for b in final.content if b.type == "thinking")
    assert thinking.thinking == "I should read it."
    # counted with the engine's tokenizer over exactly the prompt the model is shown
    assert counted.input_tokens == ScriptedEngine().count_tokens(prompt)


# -- bad requests, keys and the browser --------------------------------------------------------


def raw(server: Server, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(server.url + path, body, {"Content-Type": "application/json",
                                                                **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            status, head, data = answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        status, head, data = exc.code, dict(exc.headers), exc.read()
    is_json = "json" in {k.lower(): v for k, v in head.items()}.get("content-type", "")
    return status, head, json.loads(data) if is_json else data.decode()


BAD_BODIES = [
    (b"{not json", 400),
    (b"[1, 2]", 400),
    (json.dumps({"messages": "hi"}).encode(), 400),
    (json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}).encode(), 400),
    (json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": -5}).encode(), 400),
    (json.dumps({"messages": [{"role": "user", "content": "x"}], "model": "gpt-4o"}).encode(), 404),
    (json.dumps({"messages": [{"role": "tool", "content": "x"}]}).encode(), 400),
    (json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}).encode(), 400),
    (json.dumps({"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}]}).encode(), 400),
]


def test_bad_bodies_get_each_apis_own_error_shape(tmp_path: Path) -> None:
    with scripted_server(tmp_path, []) as server:
        for body, status in BAD_BODIES:
            code, _headers, answer = raw(server, "/v1/chat/completions", body)
            assert code == status, (body, answer)
            assert answer["error"]["message"], body
            code, _headers, answer = raw(server, "/v1/messages", body)
            assert 400 <= code < 500 and answer["type"] == "error", (body, answer)
            code, _headers, answer = raw(server, "/v1/responses", body)
            assert 400 <= code < 500 and answer["error"]["message"], (body, answer)
        code, _h, answer = raw(server, "/v1/messages", json.dumps(
            {"messages": [{"role": "user", "content": "x"}]}).encode())
        assert (code, answer["error"]["type"]) == (400, "invalid_request_error")  # no max_tokens
        with pytest.raises(openai.NotFoundError):
            oai(server).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(anthropic.NotFoundError):
            claude(server).messages.create(model="claude-x", max_tokens=5,
                                           messages=[{"role": "user", "content": "x"}])


def test_a_body_over_the_limit_is_refused_with_413(tmp_path: Path) -> None:
    with scripted_server(tmp_path, [], env={"GEMMA_CODE_SERVE_MAX_BODY_MB": "1"}) as server:
        big = json.dumps({"messages": [{"role": "user", "content": "x" * (2 << 20)}]}).encode()
        code, _h, answer = raw(server, "/v1/chat/completions", big)
        assert code == 413
        assert answer["error"]["message"] == "request body over 1 MiB"


def test_with_a_key_every_endpoint_checks_it(tmp_path: Path) -> None:
    with scripted_server(tmp_path, ["hello"], "--api-key-env", KEY_ENV, env={KEY_ENV: KEY}) as server:
        for path in ("/props", "/docs", "/openapi.json", "/v1/models"):
            assert raw(server, path)[0] == 401, path
            assert raw(server, path, headers={"Authorization": f"Bearer {KEY}x"})[0] == 401, path
            assert raw(server, path, headers={"Authorization": f"Bearer {KEY}"})[0] == 200, path
            assert raw(server, path, headers={"x-api-key": KEY})[0] == 200, path
        code, _h, answer = raw(server, "/v1/messages", b"{}")
        assert code == 401 and answer["error"]["type"] == "authentication_error"
        with pytest.raises(openai.AuthenticationError):
            oai(server, "wrong").models.list()
        reply = claude(server, KEY).messages.create(model="scripted", max_tokens=5,
                                                    messages=[{"role": "user", "content": "hi"}])
        assert reply.content[0].text == "hello"


def test_a_short_key_is_refused_at_start(tmp_path: Path) -> None:
    env = {**os.environ, "GEMMA_CODE_HOME": str(tmp_path), KEY_ENV: "abc",
           "GEMMA_CODE_ENGINE": "scripted"}
    done = subprocess.run([sys.executable, "-m", "gemma_code", "serve", "--api-key-env", KEY_ENV,
                           "--port", str(_free_port())], env=env, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert f"the API key in ${KEY_ENV} is 3 characters; at least 16 are needed" in done.stderr


def test_no_cors_unless_configured_and_foreign_hosts_refused(tmp_path: Path) -> None:
    site = "http://localhost:5173"
    with scripted_server(tmp_path, [], env={"GEMMA_CODE_SERVE_CORS_ORIGINS": site}) as server:
        _code, headers, _body = raw(server, "/v1/models", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in {k.lower() for k in headers}
        _code, headers, _body = raw(server, "/v1/models", headers={"Origin": site})
        assert {k.lower(): v for k, v in headers.items()}["access-control-allow-origin"] == site
        # DNS rebinding: a page on attacker.example resolving to 127.0.0.1 sends its own Host
        code, _h, answer = raw(server, "/props", headers={"Host": "attacker.example:8080"})
        assert code == 403 and "loopback name" in answer["error"]["message"]
        assert raw(server, "/props", headers={"Host": "localhost:1"})[0] == 200


def test_a_client_that_disconnects_stops_its_generation(tmp_path: Path) -> None:
    endless = {"text": "word " * 20000, "delay": 0.05}  # 1,000 s unless it is stopped
    with scripted_server(tmp_path, [endless, "next"]) as server:
        impatient = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=2)
        with pytest.raises(openai.APITimeoutError):
            impatient.chat.completions.create(model="scripted", max_tokens=12000,
                                              messages=[{"role": "user", "content": "go on"}])
        # answered only if the first generation stopped when its client left
        answer = oai(server).chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "next"


def test_the_openai_engine_carries_native_tool_turns_through_serve(tmp_path: Path) -> None:
    from gemma_code.config import Settings
    from gemma_code.engine.base import Message
    from gemma_code.engine.gemma_tools import ToolSpec, parse_reply
    from gemma_code.engine.openai import load_openai_engine

    read = ToolSpec("read_file", "Read a file.", ANTHROPIC_TOOL["input_schema"])  # type: ignore[arg-type]
    with scripted_server(tmp_path, [READ_CALL, "It prints hi."]) as server:
        engine = load_openai_engine(Settings(engine="openai", base_url=server.url + "/v1",
                                             openai_model="scripted", n_ctx=16384))
        messages = [Message("system", "Be brief.", tools=(read,)), Message("user", "main.py?")]
        chunks = list(engine.stream(messages, max_tokens=64))
        raw = "".join(c.text for c in chunks if c.kind == "text")
        parsed = parse_reply(raw, {"read_file"})
        assert [(c.name, c.arguments) for c in parsed.calls] == [("read_file", {"path": "main.py"})]
        thought = "".join(c.text for c in chunks if c.kind == "thought")
        follow = [*messages, Message("model", "", tool_calls=tuple(parsed.calls), reasoning=thought),
                  Message("tool", 'print("hi")', name="read_file")]
        answer = "".join(c.text for c in engine.stream(follow, max_tokens=64) if c.kind == "text")
        assert answer == "It prints hi."
        prompt = server.prompts()[1]
    assert "<|channel>thought\nI should read it.\n<channel|><|tool_call>call:read_file" in prompt
    assert READ_RESULT in prompt


_JUNK = [None, True, 3, -1, 1.5, "", "x", "user", "assistant", "tool", [], {}, ["a"], {"name": 3},
         [{"type": "text", "text": 5}], [{"type": "input_text", "text": "a"}],
         [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
         [{"type": "tool_result", "tool_use_id": "t", "content": "r"}],
         [{"type": "function_call", "name": "f", "arguments": "{}", "call_id": "c"}],
         [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 5}}]}]]
_KEYS = ["model", "messages", "input", "tools", "tool_choice", "max_tokens", "max_output_tokens",
         "stream", "system", "temperature", "stop", "stop_sequences", "instructions", "thinking",
         "reasoning", "n", "grammar", "chat_template_kwargs", "previous_response_id", "role",
         "content", "tool_calls", "type", "summary", "output", "call_id"]


def test_no_body_gets_a_server_error(tmp_path: Path) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    junk = st.sampled_from(_JUNK)
    item = st.dictionaries(st.sampled_from(_KEYS), junk, max_size=5)
    body = st.dictionaries(st.sampled_from(_KEYS), junk | st.lists(item, max_size=3), max_size=8)
    with scripted_server(tmp_path, ["ok"] * 2000) as server:

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body, st.sampled_from(["/v1/chat/completions", "/v1/responses", "/v1/messages",
                                      "/v1/messages/count_tokens"]))
        def check(payload: dict[str, Any], path: str) -> None:
            payload.pop("stream", None)  # a stream's status comes before its reply
            status, _headers, answer = raw(server, path, json.dumps(payload).encode())
            assert status < 500, (path, payload, answer)

        check()


def test_a_streaming_client_that_leaves_stops_its_generation(tmp_path: Path) -> None:
    endless = {"text": "word " * 20000, "delay": 0.05}
    with scripted_server(tmp_path, [endless, "next"]) as server:
        stream = oai(server).chat.completions.create(
            model="scripted", max_tokens=12000, stream=True,
            messages=[{"role": "user", "content": "go on"}])
        first = next(chunk for chunk in stream if chunk.choices and chunk.choices[0].delta.content)
        assert first.choices[0].delta.content.strip() == "word"
        stream.close()
        # answered only if the first generation stopped when its client left
        answer = oai(server).chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "next"
