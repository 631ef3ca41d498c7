"""The chat with the real small model through llama.cpp: follow-up turns evaluate only new tokens,
and a second chat restores the system prefix from the persistent cache."""

from __future__ import annotations

import pytest
from test_repl_support import drive, lines

from gemma_code.config import Settings
from gemma_code.engine.base import Message
from gemma_code.engine.chat_templates import render

pytestmark = pytest.mark.llama


def settings_for(path) -> Settings:
    return Settings(model=str(path), n_ctx=2048, n_threads=1, temperature=0.0, max_tokens=8,
                    context=False)


def test_follow_up_turn_evaluates_only_its_new_tokens(tiny_model_path, tmp_path, monkeypatch):
    from gemma_code.engine.llamacpp import load_llamacpp_engine

    settings = settings_for(tiny_model_path)
    engine = load_llamacpp_engine(settings)
    close = engine.close
    monkeypatch.setattr(engine, "close", lambda: None)  # keep the tokenizer after the chat ends
    try:
        out, repl = drive(lines("Name a fruit.", "And a vegetable?", "/stats"), engine, tmp_path,
                          settings=settings)
        new_turn = render([Message("user", "And a vegetable?")], "gemma3").removeprefix("<bos>")
        new_tokens = len(engine.tokenize(new_turn))
    finally:
        close()
    first, second = (t.stats for t in repl.conv.turns)
    assert second.prompt_tokens_reused >= first.prompt_tokens
    assert second.prompt_tokens_evaluated <= new_tokens + 4
    assert engine.full_reprocesses == 0
    assert "prompt cache: saved" in out and "evaluated" in out


def test_a_new_chat_restores_the_system_prefix_from_disk(tiny_model_path, tmp_path):
    from gemma_code.engine.llamacpp import load_llamacpp_engine

    settings = settings_for(tiny_model_path)
    drive(lines("Hello."), load_llamacpp_engine(settings), tmp_path, settings=settings)
    out, repl = drive(lines("Hello again."), load_llamacpp_engine(settings), tmp_path, settings=settings)
    stats = repl.conv.turns[0].stats
    assert "prompt cache: restored" in out
    assert stats.prompt_tokens_reused > 0
    assert stats.prompt_tokens_evaluated < stats.prompt_tokens_reused


@pytest.mark.slow  # two 300-token answers: the sliding-window cache must overflow
def test_gemma4_long_answer_is_re_read_while_idle_not_on_the_next_turn(
    tmp_path, monkeypatch, gemma4_synthetic_path
):
    """Gemma 4 renders earlier answers without their thought channel; after a long answer the
    sliding-window layers cannot roll back, so the chat re-reads the conversation in the
    background and the next turn evaluates only its own tokens."""
    from gemma_code.engine.llamacpp import load_llamacpp_engine

    # a small batch keeps the sliding-window cache's slack (n_swa + n_ubatch cells, padded to 256)
    # small, so a 300-token answer makes the cut back impossible, as ~520 tokens would by default
    settings = Settings(model=str(gemma4_synthetic_path), n_ctx=4096, n_threads=1, temperature=0.0,
                        max_tokens=300, n_batch=64, context=False)
    engine = load_llamacpp_engine(settings)
    assert engine.info.chat_format == "gemma4" and engine.n_swa > 0
    monkeypatch.setattr(engine, "close", lambda: None)  # read its counters after the chat
    long_message = "Summarize: " + " ".join(f"item{i}" for i in range(400))
    try:
        _, repl = drive(lines(long_message, "Shorter, please."), engine, tmp_path, settings=settings)
        reprocessed = engine.full_reprocesses
    finally:
        type(engine).close(engine)
    first, second = repl.conv.turns
    # prompt + answer outgrow the sliding-window cache: it cannot be cut back to before the answer
    assert first.stats.prompt_tokens + first.stats.completion_tokens > engine.n_swa + 256
    assert reprocessed >= 1  # ... so the whole conversation was evaluated again, while idle
    assert first.idle_tokens > first.stats.prompt_tokens
    assert second.stats.prompt_tokens_evaluated < 40
    assert second.stats.prompt_tokens_reused >= first.stats.prompt_tokens


def test_continue_restores_the_whole_conversation_from_disk(tiny_model_path, tmp_path):
    from gemma_code.engine.llamacpp import load_llamacpp_engine
    from gemma_code.repl.store import latest_session

    settings = settings_for(tiny_model_path)
    out, first = drive(lines("Name a fruit.", "Another one."), load_llamacpp_engine(settings), tmp_path,
                       settings=settings)
    assert "saved the conversation's" in out
    before = first.conv.turns[-1].stats
    out, again = drive(lines("And a third?"), load_llamacpp_engine(settings), tmp_path,
                       settings=settings, resume=latest_session(tmp_path))
    stats = again.conv.turns[0].stats
    assert "prompt cache: restored" in out
    assert stats.prompt_tokens_reused >= before.prompt_tokens + before.completion_tokens - 2
    assert stats.prompt_tokens_evaluated < 30
