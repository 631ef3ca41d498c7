"""Gemma 4 native tool calls: byte equality with the official template, and the parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gemma_code.engine.base import Message
from gemma_code.engine.chat_templates import render_gemma4
from gemma_code.engine.gemma_tools import (
    CallWatcher,
    ToolCall,
    ToolSpec,
    parse_reply,
    render_call,
    render_declarations,
    render_response,
)

VOCAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "ggml-vocab-gemma-4.gguf"
SHARED_VOCAB = Path("/work/shared/data/ggml-vocab-gemma-4.gguf")


def _template_text() -> str:
    gguf = pytest.importorskip("gguf")
    path = VOCAB if VOCAB.exists() else SHARED_VOCAB
    if not path.exists():
        pytest.skip("the Gemma 4 vocabulary GGUF is not available")
    reader = gguf.GGUFReader(str(path))
    field = reader.fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


@pytest.fixture(scope="module")
def template() -> Any:
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # as transformers renders
    return env.from_string(_template_text())


@pytest.fixture(scope="module")
def reasoning_template() -> Any:
    """The GGUF template plus the newer official revision's rule for reasoning on tool turns."""
    jinja2 = pytest.importorskip("jinja2")
    text = _template_text()
    anchor = "            {%- if message['tool_calls'] -%}\n                {%- for tool_call"
    assert anchor in text
    rule = (
        "{%- if message.get('reasoning_content') and loop.index0 > ns_last.user"
        " and message.get('tool_calls') -%}"
        "{{- '<|channel>thought\\n' + message['reasoning_content'] + '\\n<channel|>' -}}"
        "{%- endif -%}\n"
    )
    last_user = (
        "{%- set ns_last = namespace(user=-1) -%}{%- for m in loop_messages -%}"
        "{%- if m['role'] == 'user' -%}{%- set ns_last.user = loop.index0 -%}{%- endif -%}"
        "{%- endfor -%}\n{#- Loop through messages -#}"
    )
    text = text.replace(anchor, rule + anchor).replace("{#- Loop through messages -#}", last_user)
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(text)


def _official(template: Any, messages: list[Message], *, think: bool, gen: bool = True) -> str:
    """Our Messages in the template's own data model, rendered by jinja2."""
    tools = []
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            tools = [
                {"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in m.tools
            ]
            items.append({"role": "system", "content": m.content})
        elif m.role == "tool":
            previous = items[-1]
            previous.setdefault("tool_responses", []).append(
                {"name": m.name, "response": m.response if m.response is not None else m.content}
            )
        elif (
            m.role == "model" and not m.tool_calls and items and items[-1].get("tool_responses")
            and not items[-1]["content"]
        ):
            items[-1]["content"] = m.content
        else:
            item: dict[str, Any] = {
                "role": "assistant" if m.role == "model" else m.role, "content": m.content
            }
            if m.tool_calls:
                item["tool_calls"] = [
                    {"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in m.tool_calls
                ]
            if m.reasoning:
                item["reasoning_content"] = m.reasoning
            items.append(item)
    kwargs: dict[str, Any] = {"bos_token": "<bos>", "add_generation_prompt": gen}
    if think:
        kwargs["enable_thinking"] = True
    return str(template.render(messages=items, tools=tools, **kwargs))


READ = ToolSpec(
    "read_file",
    "Read a file of the repository.",
    {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "Path from the repository root."},
            "start_line": {"type": "integer", "description": "First line, 1-based."},
            "end_line": {"type": "integer", "nullable": True},
        },
        "required": ["path"],
    },
)
SEARCH = ToolSpec(
    "search",
    "Search text and symbols.",
    {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "mode": {"type": "string", "enum": ["text", "symbol"], "description": "What to match."},
            "paths": {"type": "array", "items": {"type": "string"}, "description": "Limit to."},
            "options": {
                "type": "object",
                "description": "Extra switches.",
                "properties": {"case": {"type": "boolean"}, "Limit": {"type": "integer"}},
                "required": ["case"],
            },
            "bare": {"type": "object", "properties": {"x": {"type": "number"}}},
            "rows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"k": {"type": "string", "description": "key"}},
                    "required": ["k"],
                },
            },
        },
        "required": ["query", "mode"],
    },
)
NO_PARAMS = ToolSpec("now", "The time.", {})

CONVERSATIONS = {
    "one call, result, answer": [
        Message("system", "You are a coding agent.", tools=(READ, SEARCH)),
        Message("user", "What does main.py do?"),
        Message("model", "", tool_calls=(ToolCall("read_file", {"path": "main.py", "start_line": 1}),)),
        Message("tool", "print('hi')\n", name="read_file"),
        Message("model", "It prints hi."),
        Message("user", "Thanks"),
    ],
    "two calls in one turn, structured results": [
        Message("system", "", tools=(READ, SEARCH, NO_PARAMS)),
        Message("user", "find uses"),
        Message("model", "", tool_calls=(
            ToolCall("search", {"query": "a<|turn>b", "mode": "text", "paths": ["x", "y"],
                                "options": {"case": True, "Limit": 3}}),
            ToolCall("now", {}),
        )),
        Message("tool", "", name="search", response={"matches": ["a:1", "b:2"], "count": 2, "ok": True}),
        Message("tool", "12:00", name="now"),
    ],
    "no system message, tools only": [
        Message("system", "", tools=(READ,)),
        Message("user", "hi"),
    ],
    "call with text and a second round": [
        Message("system", "rules", tools=(READ,)),
        Message("user", "go"),
        Message("model", "Let me look.", tool_calls=(ToolCall("read_file", {"path": "a"}),)),
        Message("tool", "A", name="read_file"),
        Message("model", "", tool_calls=(ToolCall("read_file", {"path": "b", "end_line": None}),)),
        Message("tool", "B", name="read_file"),
        Message("model", "<|channel>thought\nhidden<channel|>Both read."),
    ],
    "plain chat": [Message("user", " hi "), Message("model", "hello"), Message("user", "more")],
}


@pytest.mark.parametrize("think", [False, True])
@pytest.mark.parametrize("gen", [True, False])
@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
def test_rendering_is_byte_identical_to_the_official_template(template, name, think, gen):
    messages = CONVERSATIONS[name]
    assert render_gemma4(messages, think=think, add_generation_prompt=gen) == _official(
        template, messages, think=think, gen=gen
    )


def test_reasoning_is_kept_on_tool_call_turns_after_the_last_user_turn(reasoning_template):
    messages = [
        Message("system", "", tools=(READ,)),
        Message("user", "old"),
        Message("model", "", tool_calls=(ToolCall("read_file", {"path": "old"}),), reasoning="old why"),
        Message("tool", "x", name="read_file"),
        Message("model", "done"),
        Message("user", "new"),
        Message("model", "", tool_calls=(ToolCall("read_file", {"path": "a"}),), reasoning="I need a"),
        Message("tool", "A", name="read_file"),
    ]
    ours = render_gemma4(messages, think=True)
    assert ours == _official(reasoning_template, messages, think=True)
    assert "<|channel>thought\nI need a\n<channel|><|tool_call>call:read_file" in ours
    assert "old why" not in ours


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6)
    | st.text(st.characters(blacklist_characters='<|>"'), max_size=12),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), json_values, max_size=4))
def test_any_call_and_result_render_like_the_template(template, arguments):
    messages = [
        Message("system", "", tools=(READ,)),
        Message("user", "u"),
        Message("model", "", tool_calls=(ToolCall("read_file", arguments),)),
        Message("tool", "", name="read_file", response=arguments),
    ]
    assert render_gemma4(messages) == _official(template, messages, think=False)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), json_values, max_size=4))
def test_a_rendered_call_parses_back_to_its_arguments(arguments):
    call = ToolCall("read_file", arguments)
    parsed = parse_reply(render_call(call) + "<|tool_response>", known={"read_file"})
    assert parsed.errors == []
    assert parsed.calls == [call]


def test_render_helpers_spell_the_native_notation():
    assert render_call(ToolCall("f", {"b": 5, "a": "x", "c": [True, None]})) == (
        '<|tool_call>call:f{a:<|"|>x<|"|>,b:5,c:[true,None]}<tool_call|>'
    )
    assert render_response("f", "ok") == '<|tool_response>response:f{value:<|"|>ok<|"|>}<tool_response|>'
    assert render_response("f", {"n": 1}) == "<|tool_response>response:f{n:1}<tool_response|>"
    assert render_declarations([NO_PARAMS]) == (
        '<|tool>declaration:now{description:<|"|>The time.<|"|>}<tool|>'
    )


def test_parse_splits_thought_text_and_call():
    raw = (
        "<|channel>thought\nNeed the file.<channel|>Reading it."
        '<|tool_call>call:read_file{path:<|"|>src/a b.py<|"|>,start_line:3}<tool_call|>'
    )
    parsed = parse_reply(raw, known={"read_file"})
    assert parsed.thought == "Need the file."
    assert parsed.text == "Reading it."
    assert parsed.calls == [ToolCall("read_file", {"path": "src/a b.py", "start_line": 3})]
    assert parsed.errors == []


def test_parse_keeps_two_different_calls_and_drops_a_duplicate():
    one = '<|tool_call>call:search{query:<|"|>x<|"|>}<tool_call|>'
    two = '<|tool_call>call:read_file{path:<|"|>a<|"|>}<tool_call|>'
    parsed = parse_reply(one + two + one, known={"search", "read_file"})
    assert [c.name for c in parsed.calls] == ["search", "read_file"]
    assert parsed.errors == ["the call to search repeats an earlier call in this reply; it runs once"]
    limited = parse_reply(one + two, known=None, max_calls=1)
    assert [c.name for c in limited.calls] == ["search"]
    assert "only 1 call(s) per reply" in limited.errors[0]


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ("Done, I think.", "text after the tool call was ignored: 'Done, I think.'"),
        ("<|channel>thought\nmore<channel|>", "a stray <|channel> after the tool call was ignored"),
    ],
)
def test_parse_reports_text_or_a_stray_channel_after_a_call(tail, expected):
    parsed = parse_reply('<|tool_call>call:f{a:1}<tool_call|>' + tail, known={"f"})
    assert parsed.calls == [ToolCall("f", {"a": 1})]
    assert len(parsed.errors) == 1 and parsed.errors[0].startswith(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "<|tool_call>call:f{a 1}<tool_call|>",
        '<|tool_call>call:f{a:<|"|>open}<tool_call|>',
        "<|tool_call>call:f{a:1,,}<tool_call|>",
        "<|tool_call>f{a:1}<tool_call|>",
        "<|tool_call>call:{a:1}<tool_call|>",
        "<|tool_call>call:f{a:[1,2}<tool_call|>",
    ],
)
def test_parse_reports_a_malformed_argument_list_without_raising(raw):
    parsed = parse_reply(raw, known={"f"})
    assert parsed.calls == []
    assert len(parsed.errors) == 1 and "malformed argument list" in parsed.errors[0]


def test_parse_reports_an_unknown_tool_and_a_cut_off_call():
    parsed = parse_reply('<|tool_call>call:rm_rf{path:<|"|>/<|"|>}<tool_call|>', known={"read_file"})
    assert parsed.calls == []
    assert parsed.errors == ["unknown tool 'rm_rf'; the tools are: read_file"]
    cut = parse_reply('<|tool_call>call:read_file{path:<|"|>src/', known={"read_file"})
    assert cut.calls == [] and cut.errors == ["the call to read_file was cut off before <tool_call|>"]


def test_parse_of_a_plain_answer_has_no_calls():
    parsed = parse_reply("<|channel>thought\nx<channel|>\nJust text.")
    assert (parsed.text, parsed.thought, parsed.calls, parsed.errors) == ("Just text.", "x", [], [])


@given(st.text(max_size=60), st.integers(1, 7))
def test_call_watcher_shows_text_until_a_call_starts(prefix, size):
    raw = prefix.replace("<", "") + '<|tool_call>call:f{a:1}<tool_call|>'
    watcher = CallWatcher()
    shown = "".join(watcher.feed(raw[i : i + size]) for i in range(0, len(raw), size))
    shown += watcher.finish()
    assert watcher.started
    assert shown == prefix.replace("<", "")
    assert watcher.raw == raw


def test_call_content_is_never_template_text():
    from gemma_code.engine.chat_templates import render_gemma4_segments

    messages = CONVERSATIONS["two calls in one turn, structured results"]
    segments = render_gemma4_segments(messages)
    assert ("a<|turn>b", False) in segments
    assert all("<|turn>b" not in text for text, template in segments if template)


@pytest.mark.llama
def test_native_markup_is_control_tokens_and_quoted_content_stays_text(gemma4_vocab):
    import llama_cpp

    from gemma_code.engine.chat_templates import render_gemma4_segments

    vocab = llama_cpp.Llama(str(gemma4_vocab), vocab_only=True, verbose=False)

    def tokens(text: str, special: bool) -> list[int]:
        return vocab.tokenize(text.encode(), add_bos=False, special=special)

    for marker in ('<|"|>', "<|tool_call>", "<tool_call|>", "<|tool_response>", "<|tool>"):
        assert len(tokens(marker, True)) == 1, marker
    turn = tokens("<|turn>", True)[0]
    segments = render_gemma4_segments(CONVERSATIONS["two calls in one turn, structured results"])
    ids = [t for text, template in segments for t in tokens(text, template)]
    whole = tokens("".join(text for text, _ in segments), True)
    # the argument "a<|turn>b" is text: one <|turn> fewer than tokenizing everything as template
    assert ids.count(turn) == whole.count(turn) - 1
    assert ids.count(tokens('<|"|>', True)[0]) == whole.count(tokens('<|"|>', True)[0])
