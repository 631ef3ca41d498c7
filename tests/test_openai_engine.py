"""The OpenAI-compatible engine against real HTTP servers on 127.0.0.1 (http.server in a thread)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cli_runner import CliRunner

from gemma_code.cli import app
from gemma_code.config import Settings
from gemma_code.engine.base import Chunk, Message
from gemma_code.engine.openai import OpenAIEngine, load_openai_engine, request_body
from gemma_code.engine.openai_http import HttpClient, iter_sse, retry_after_s
from gemma_code.errors import ConfigError, EngineError, ExitCode, ModelNotFoundError

MODEL = "gemma-4-26b-a4b-it"


@dataclass
class Reply:
    """One canned answer: JSON, an SSE stream, or a bare status; `delay` before the headers."""

    status: int = 200
    json: Any = None
    sse: list[Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    event_delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class StubServer:
    """A real HTTP server speaking just enough of the OpenAI protocol, one queue per route."""

    def __init__(self, key: str | None = None) -> None:
        self.routes: dict[tuple[str, str], list[Reply]] = {}
        self.seen: list[Seen] = []
        self.key = key
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                stub.handle(self, None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                stub.handle(self, json.loads(self.rfile.read(length) or b"null"))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def on(self, method: str, path: str, *replies: Reply) -> StubServer:
        self.routes[(method, path)] = list(replies)
        return self

    def requests(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def handle(self, h: BaseHTTPRequestHandler, body: Any) -> None:
        self.seen.append(Seen(h.command, h.path, dict(h.headers), body))
        if self.key and h.headers.get("Authorization") != f"Bearer {self.key}":
            reply = Reply(401, {"error": {"message": "Invalid API key"}})
        else:
            queue = self.routes.get((h.command, h.path))
            if not queue:
                reply = Reply(404, {"detail": "Not Found"})
            else:
                reply = queue.pop(0) if len(queue) > 1 else queue[0]  # the last one repeats
        time.sleep(reply.delay)
        try:
            h.send_response(reply.status)
            for name, value in reply.headers.items():
                h.send_header(name, value)
            if reply.sse is not None:
                h.send_header("Content-Type", "text/event-stream")
                h.end_headers()
                for event in reply.sse:
                    data = event if isinstance(event, str) else json.dumps(event)
                    h.wfile.write(f"data: {data}\n\n".encode())
                    h.wfile.flush()
                    time.sleep(reply.event_delay)
                return
            payload = json.dumps(reply.json).encode() if reply.json is not None else b""
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeouts)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def delta(content: str | None = None, reasoning: str | None = None, finish: str | None = None,
          key: str = "reasoning_content") -> dict[str, Any]:
    d: dict[str, Any] = {}
    if content is not None:
        d["content"] = content
    if reasoning is not None:
        d[key] = reasoning
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


def answer(*pieces: str, usage: dict[str, Any] | None = None, **extra: Any) -> Reply:
    events: list[Any] = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    events += [delta(p) for p in pieces]
    events.append(delta(finish="stop"))
    if usage is not None:
        events.append({"choices": [], "usage": usage, **extra})
    events.append("[DONE]")
    return Reply(sse=events)


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer()
    server.on("GET", "/v1/models", Reply(json={"data": [{"id": MODEL, "max_model_len": 65536}]}))
    yield server
    server.close()


def engine_for(server: StubServer | str, **settings: Any) -> OpenAIEngine:
    url = server if isinstance(server, str) else server.url
    return load_openai_engine(Settings(engine="openai", base_url=url, **settings))


def run(engine: OpenAIEngine, text: str = "hi", **kw: Any) -> list[Chunk]:
    return list(engine.stream([Message("user", text)], max_tokens=kw.pop("max_tokens", 16), **kw))


def joined(chunks: list[Chunk], kind: str) -> str:
    return "".join(c.text for c in chunks if c.kind == kind)


def short_timeout(engine: OpenAIEngine, seconds: float = 0.3) -> OpenAIEngine:
    """Shorten the timeout after the start-up probes, so a busy machine cannot trip them."""
    engine.client.timeout_s = seconds
    return engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- pure parts --------------------------------------------------------------------------------


def test_iter_sse_joins_data_lines_and_skips_comments_and_other_fields() -> None:
    lines = [b": ping\r\n", b"event: message\n", b"data: {\"a\":\n", b"data: 1}\n", b"\n",
             b"id: 7\n", b"data:[DONE]\n", b"\n"]
    assert list(iter_sse(lines)) == ['{"a":\n1}', "[DONE]"]


def test_iter_sse_yields_a_last_event_without_a_blank_line() -> None:
    assert list(iter_sse([b"data: x\n"])) == ["x"]


def test_request_body_maps_roles_strips_old_thoughts_and_asks_for_thinking() -> None:
    body = request_body(
        MODEL,
        [Message("system", "rules"), Message("user", "q"),
         Message("model", "<|channel>thought\nhmm<channel|>the answer"), Message("user", "q2")],
        max_tokens=64, think=True, grammar='root ::= "yes"', stop=["END"], temperature=0.2,
        top_p=0.9, top_k=40, seed=-1,
    )
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][2]["content"] == "the answer"
    assert body["chat_template_kwargs"] == {"enable_thinking": True}
    assert body["stream"] and body["stream_options"] == {"include_usage": True}
    assert body["grammar"] == 'root ::= "yes"' and body["stop"] == ["END"]
    assert "seed" not in body


def test_backoff_doubles_and_honours_retry_after_within_a_cap() -> None:
    assert [retry_after_s(None, n, 0.5) for n in range(3)] == [0.5, 1.0, 2.0]
    assert retry_after_s("2", 0, 0.5) == 2.0
    assert retry_after_s("99999", 0, 0.5) == 30.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", 1, 0.5) == 1.0


def test_base_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="not an http"):
        HttpClient("127.0.0.1:8080")


# --- streaming ---------------------------------------------------------------------------------


def test_stream_turns_reasoning_deltas_into_thoughts_and_reads_usage(stub: StubServer) -> None:
    stub.on("POST", "/v1/chat/completions", Reply(sse=[
        delta(reasoning="Let me "), delta(reasoning="think.", key="reasoning"),
        delta("The "), delta("answer."), delta(finish="length"),
        {"choices": [], "usage": {"prompt_tokens": 120, "completion_tokens": 9,
                                  "prompt_tokens_details": {"cached_tokens": 100}}},
        "[DONE]",
    ]))
    chunks = run(engine_for(stub), think=True)
    assert joined(chunks, "thought") == "Let me think."
    assert joined(chunks, "text") == "The answer."
    stats = chunks[-1].stats
    assert chunks[-1].kind == "stats" and stats is not None
    assert (stats.prompt_tokens, stats.completion_tokens) == (120, 9)
    assert (stats.prompt_tokens_reused, stats.prompt_tokens_evaluated) == (100, 20)
    assert stats.stop_reason == "length"
    sent = stub.requests("/v1/chat/completions")[0].body
    assert sent["model"] == MODEL and sent["chat_template_kwargs"] == {"enable_thinking": True}


def test_stream_splits_gemma4_channel_tags_sent_inside_content(stub: StubServer) -> None:
    stub.on("POST", "/v1/chat/completions",
            answer("<|chan", "nel>thought\nweigh", " options<chan", "nel|>Use a", " lock."))
    chunks = run(engine_for(stub))
    assert joined(chunks, "thought") == "weigh options"
    assert joined(chunks, "text") == "Use a lock."


def test_stream_takes_llama_server_timings_for_evaluated_and_reused(stub: StubServer) -> None:
    timings = {"prompt_n": 12, "cache_n": 300, "prompt_ms": 40.0, "predicted_n": 3,
               "predicted_ms": 90.0}
    stub.on("POST", "/v1/chat/completions",
            answer("a", "b", "c", usage={"prompt_tokens": 312, "completion_tokens": 3},
                   timings=timings))
    stats = run(engine_for(stub))[-1].stats
    assert stats is not None
    assert (stats.prompt_tokens_evaluated, stats.prompt_tokens_reused) == (12, 300)
    assert stats.prefill_s == pytest.approx(0.04) and stats.decode_s == pytest.approx(0.09)


def test_without_usage_or_tokenizer_counts_deltas_and_flags_the_estimate(stub: StubServer) -> None:
    stub.on("POST", "/v1/chat/completions", answer("one ", "two ", "three"))
    engine = engine_for(stub)
    stats = run(engine)[-1].stats
    assert stats is not None and stats.completion_tokens == 3
    assert stats.prompt_tokens > 0
    assert engine.token_counting == "estimate"
    assert any("estimate" in note for note in engine.info.notes)


def test_an_error_event_mid_stream_is_an_engine_error(stub: StubServer) -> None:
    stub.on("POST", "/v1/chat/completions",
            Reply(sse=[delta("par"), {"error": {"message": "KV cache full"}}]))
    with pytest.raises(EngineError, match="KV cache full"):
        run(engine_for(stub))


def test_grammar_goes_in_the_grammar_field(stub: StubServer) -> None:
    stub.on("POST", "/v1/chat/completions", answer("yes"))
    run(engine_for(stub), grammar='root ::= "yes"')
    assert stub.requests("/v1/chat/completions")[0].body["grammar"] == 'root ::= "yes"'


# --- discovery and token counting --------------------------------------------------------------


def test_context_size_comes_from_props_then_max_model_len(stub: StubServer) -> None:
    assert engine_for(stub).info.n_ctx == 65536  # vLLM's /v1/models
    stub.on("GET", "/props", Reply(json={"default_generation_settings": {"n_ctx": 4096},
                                         "chat_format": "gemma3"}))
    info = engine_for(stub).info
    assert (info.n_ctx, info.chat_format, info.backend) == (4096, "gemma3", "remote")
    assert engine_for(stub, n_ctx=2048).info.n_ctx == 2048  # the settings win


def test_the_only_served_model_is_used_and_a_wrong_choice_among_many_is_refused() -> None:
    server = StubServer()
    try:
        server.on("GET", "/v1/models", Reply(json={"data": [{"id": "a"}]}))
        assert engine_for(server).model == "a"
        server.on("GET", "/v1/models", Reply(json={"data": [{"id": "a"}, {"id": "b"}]}))
        assert engine_for(server, model="b").model == "b"
        assert engine_for(server, openai_model="custom").model == "custom"
        with pytest.raises(ConfigError, match="serves 2 models"):
            engine_for(server)
    finally:
        server.close()


def test_count_tokens_uses_llama_server_tokenize(stub: StubServer) -> None:
    stub.on("POST", "/tokenize", Reply(json={"tokens": []}), Reply(json={"tokens": [5, 6, 7]}))
    engine = engine_for(stub)
    assert engine.count_tokens("a b c") == 3
    assert engine.token_counting.startswith("server (llama-server")
    assert stub.requests("/tokenize")[-1].body == {"content": "a b c"}


def test_count_tokens_falls_back_to_vllm_tokenize(stub: StubServer) -> None:
    stub.on("POST", "/tokenize", Reply(400, {"error": {"message": "prompt required"}}),
            Reply(json={"count": 0, "tokens": []}), Reply(json={"count": 4, "tokens": [1, 2, 3, 4]}))
    engine = engine_for(stub)
    assert engine.count_tokens("x y z w") == 4
    assert stub.requests("/tokenize")[-1].body["prompt"] == "x y z w"


def test_count_tokens_subtracts_the_bos_llama_cpp_python_adds(stub: StubServer) -> None:
    stub.on("POST", "/extras/tokenize", Reply(json={"tokens": [2]}), Reply(json={"tokens": [2, 9, 9]}))
    engine = engine_for(stub)
    assert engine.count_tokens("hello") == 2


# --- failures ----------------------------------------------------------------------------------


def test_connection_refused_names_the_url_and_says_how_to_start_a_server() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(EngineError) as caught:
        engine_for(url)
    assert caught.value.message == f"cannot connect to {url}: connection refused"
    assert caught.value.hint is not None and "gemma-code serve" in caught.value.hint


def test_a_slow_server_times_out_with_a_hint(stub: StubServer) -> None:
    stub.on("POST", "/v1/chat/completions", Reply(sse=[delta("late")], delay=3.0))
    engine = short_timeout(engine_for(stub))
    with pytest.raises(EngineError, match=r"did not answer within 0.3 s \(timeout\)") as caught:
        run(engine)
    assert "request_timeout" in (caught.value.hint or "")


def test_a_stream_that_stalls_mid_answer_times_out(stub: StubServer) -> None:
    stub.on("POST", "/v1/chat/completions", Reply(sse=[delta("a"), delta("b")], event_delay=3.0))
    with pytest.raises(EngineError, match="timeout"):
        run(short_timeout(engine_for(stub)))


def test_a_500_then_200_is_retried_and_answers(stub: StubServer) -> None:
    stub.on("POST", "/v1/chat/completions", Reply(500, {"error": {"message": "boom"}}), answer("ok"))
    chunks = run(engine_for(stub))
    assert joined(chunks, "text") == "ok"
    assert len(stub.requests("/v1/chat/completions")) == 2


def test_a_429_waits_as_long_as_retry_after_says(stub: StubServer) -> None:
    stub.on("POST", "/v1/chat/completions",
            Reply(429, {"error": {"message": "busy"}}, headers={"Retry-After": "0.2"}), answer("ok"))
    engine = engine_for(stub)
    waits: list[float] = []
    engine.client.sleep = lambda s: (waits.append(s), time.sleep(s))  # type: ignore[func-returns-value]
    assert joined(run(engine), "text") == "ok"
    assert waits == [0.2]


def test_retries_are_bounded_and_back_off_exponentially(stub: StubServer) -> None:
    stub.on("POST", "/v1/chat/completions", Reply(503, {"error": {"message": "loading model"}}))
    engine = engine_for(stub, request_retries=2)
    waits: list[float] = []
    engine.client.sleep = waits.append
    with pytest.raises(EngineError, match=r"HTTP 503 after 3 attempt.*loading model"):
        run(engine)
    assert waits == [0.5, 1.0]
    assert len(stub.requests("/v1/chat/completions")) == 3


def test_a_wrong_key_is_a_config_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    server = StubServer(key="right")
    server.on("GET", "/v1/models", Reply(json={"data": [{"id": MODEL}]}))
    try:
        monkeypatch.setenv("TEAM_KEY", "wrong")
        with pytest.raises(ConfigError, match=r"refused the API key \(HTTP 401.*TEAM_KEY") as caught:
            engine_for(server, api_key_env="TEAM_KEY")
        assert "export TEAM_KEY=" in (caught.value.hint or "")
        monkeypatch.setenv("TEAM_KEY", "right")
        assert engine_for(server, api_key_env="TEAM_KEY").model == MODEL
        assert server.seen[-1].headers["Authorization"] == "Bearer right"
    finally:
        server.close()


def test_an_unknown_model_is_a_model_not_found_error(stub: StubServer) -> None:
    stub.on("POST", "/v1/chat/completions",
            Reply(404, {"error": {"message": "The model `nope` does not exist."}}))
    with pytest.raises(ModelNotFoundError, match="does not exist") as caught:
        run(engine_for(stub, openai_model="nope"))
    assert "--model" in (caught.value.hint or "")


# --- through the CLI ---------------------------------------------------------------------------


def test_ask_streams_from_the_server_with_engine_openai(stub: StubServer, tmp_path: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    stub.on("POST", "/v1/chat/completions",
            answer("Four", ".", usage={"prompt_tokens": 50, "completion_tokens": 2}))
    result = CliRunner().invoke(
        app, ["ask", "--engine", "openai", "--base-url", stub.url, "--json", "--no-context", "2+2?"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["answer"] == "Four." and payload["model"] == MODEL
    assert payload["stats"]["completion_tokens"] == 2
    assert stub.requests("/v1/chat/completions")[0].body["messages"][-1]["content"].endswith("2+2?")


def test_ask_against_a_dead_server_exits_4_with_one_line(tmp_path: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = CliRunner().invoke(app, ["ask", "--engine", "openai", "--base-url", url, "hi"])
    assert result.exit_code == ExitCode.MODEL
    assert f"cannot connect to {url}: connection refused" in result.output
    assert "Traceback" not in result.output


def test_a_stream_cut_before_the_end_is_an_error_not_a_short_answer(stub: StubServer) -> None:
    stub.on("POST", "/v1/chat/completions", Reply(sse=[delta("The answer is")]))
    with pytest.raises(EngineError, match="closed the stream before the answer finished"):
        run(engine_for(stub))


@pytest.mark.llama
def test_without_a_tokenize_endpoint_the_local_gguf_counts_tokens(stub: StubServer,
                                                                   tiny_model_path: Any) -> None:
    import llama_cpp

    engine = engine_for(stub, model=str(tiny_model_path), openai_model=MODEL)
    text = "class Cache:\n    pass\n"
    vocab = llama_cpp.Llama(str(tiny_model_path), vocab_only=True, verbose=False)
    assert engine.count_tokens(text) == len(vocab.tokenize(text.encode(), add_bos=False, special=True))
    assert engine.token_counting == "local tokenizer"
    assert engine.model == MODEL
