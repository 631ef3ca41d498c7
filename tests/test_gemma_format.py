"""Gemma 4 prompt rendering and the streamed thought splitter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemma_code.engine.base import Message
from gemma_code.engine.chat_templates import (
    ThoughtSplitter,
    detect_format,
    render,
    render_gemma4,
    split_thoughts,
    strip_thinking,
)


def test_gemma4_thinking_off_prefills_empty_thought():
    text = render_gemma4([Message("system", " rules "), Message("user", " hi ")])
    assert text == (
        "<bos><|turn>system\nrules<turn|>\n<|turn>user\nhi<turn|>\n"
        "<|turn>model\n<|channel>thought\n<channel|>"
    )


def test_gemma4_thinking_on_opens_system_turn_with_think_token():
    text = render_gemma4([Message("user", "hi")], think=True)
    assert text == "<bos><|turn>system\n<|think|><turn|>\n<|turn>user\nhi<turn|>\n<|turn>model\n"


def test_gemma4_without_system_and_thinking_has_no_system_turn():
    assert render_gemma4([Message("user", "hi")], add_generation_prompt=False) == (
        "<bos><|turn>user\nhi<turn|>\n"
    )


def test_gemma4_earlier_model_turns_lose_their_thoughts():
    messages = [
        Message("user", "a"),
        Message("model", "<|channel>thought\nsecret<channel|>visible answer"),
        Message("user", "b"),
    ]
    text = render_gemma4(messages)
    assert "secret" not in text
    assert "<|turn>model\nvisible answer<turn|>\n" in text


def test_system_message_only_first():
    with pytest.raises(ValueError):
        render_gemma4([Message("user", "a"), Message("system", "b")])


def test_gemma3_folds_system_into_first_user_turn():
    text = render([Message("system", "rules"), Message("user", "hi")], "gemma3")
    assert text == "<bos><start_of_turn>user\nrules\n\nhi<end_of_turn>\n<start_of_turn>model\n"


def test_plain_format_and_unknown_format():
    assert render([Message("user", "hi")], "plain") == "User: hi\n\nAssistant:"
    with pytest.raises(ValueError):
        render([Message("user", "hi")], "llama9")


@pytest.mark.parametrize(
    ("arch", "template", "expected"),
    [
        ("gemma4", None, "gemma4"),
        ("llama", "{{ '<|turn>user' }}", "gemma4"),
        ("gemma3", None, "gemma3"),
        ("qwen2", "<start_of_turn>", "gemma3"),
        ("llama", None, "plain"),
    ],
)
def test_detect_format(arch, template, expected):
    assert detect_format(arch, template) == expected


def test_strip_thinking_matches_template_macro():
    assert strip_thinking(" a<|channel>x<channel|>b ") == "ab"
    assert strip_thinking("plain") == "plain"


def test_splitter_separates_thought_and_answer_across_split_tags():
    pieces = ["<|chan", "nel>thou", "ght\nI think", " so<chan", "nel|>\nAnswer", " here"]
    chunks = list(split_thoughts(pieces))
    thought = "".join(c.text for c in chunks if c.kind == "thought")
    answer = "".join(c.text for c in chunks if c.kind == "text")
    assert thought == "I think so"
    assert answer == "Answer here"


def test_splitter_passes_plain_text_and_flushes_partial_tag_at_end():
    chunks = list(split_thoughts(["x < y and a <|cha"]))
    assert "".join(c.text for c in chunks if c.kind == "text") == "x < y and a <|cha"


@given(st.text(alphabet="ab<|>chnel\n", max_size=60), st.text(alphabet="xyz \n", max_size=30),
       st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=20))
def test_splitter_is_independent_of_how_the_stream_is_cut(thought, answer, cuts):
    thought = thought.replace("<channel|>", "").replace("<|channel>", "")
    full = f"<|channel>thought\n{thought}<channel|>{answer}"
    pieces, i = [], 0
    for size in cuts * 20:
        if i >= len(full):
            break
        pieces.append(full[i:i + size])
        i += size
    pieces.append(full[i:])
    splitter = ThoughtSplitter()
    out = [c for p in pieces for c in splitter.feed(p)] + list(splitter.finish())
    whole = list(split_thoughts([full]))
    assert "".join(c.text for c in out if c.kind == "thought") == "".join(
        c.text for c in whole if c.kind == "thought")
    assert "".join(c.text for c in out if c.kind == "text") == "".join(
        c.text for c in whole if c.kind == "text")
