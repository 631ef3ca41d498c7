"""The chat with the real small model through llama.cpp: follow-up turns evaluate only new tokens,
and a second chat restores the system prefix from the persistent cache."""

from __future__ import annotations

import pytest
from test_repl_support import drive, lines

from gemma_code.config import Settings
from gemma_code.engine.base import Message
from gemma_code.engine.gemma import render

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
