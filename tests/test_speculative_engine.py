"""Speculative decoding inside the llama.cpp engine, on the small real model (CPU)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gemma_code.config import Settings
from gemma_code.engine.base import Chunk, GenerationStats
from gemma_code.engine.llamacpp import LlamaCppEngine, load_llamacpp_engine

pytestmark = pytest.mark.llama

CODE = '''def add(a, b):
    """Return the sum of a and b."""
    return a + b


def scale(values, factor):
    """Multiply every value by factor."""
    return [value * factor for value in values]
'''
# a base model copies a file it has seen copied once already
COPY = (
    "<bos>File a.py:\n```python\n" + CODE + "```\n\nFile b.py, a copy of a.py:\n```python\n"
    + CODE + "```\n\nFile c.py, another copy of a.py:\n```python\n"
)
MAX_TOKENS = 32


@pytest.fixture(scope="module")
def engine(tiny_model_path: Path) -> Iterator[LlamaCppEngine]:
    eng = load_llamacpp_engine(Settings(model=str(tiny_model_path), n_ctx=1024, n_threads=1))
    yield eng
    eng.close()


def run(chunks: Iterator[Chunk]) -> tuple[str, GenerationStats]:
    text = ""
    stats = None
    for chunk in chunks:
        if chunk.stats is not None:
            stats = chunk.stats
        else:
            text += chunk.text
    assert stats is not None
    return text, stats


def test_speculative_reply_is_the_plain_greedy_reply(engine: LlamaCppEngine) -> None:
    prompt = engine.tokenize(COPY)
    plain, plain_stats = run(engine.generate_tokens(prompt, max_tokens=MAX_TOKENS, temperature=0,
                                                     speculative=False))
    fast, stats = run(engine.generate_tokens(prompt, max_tokens=MAX_TOKENS, temperature=0,
                                             speculative=True))
    assert fast == plain
    assert stats.completion_tokens == plain_stats.completion_tokens == MAX_TOKENS
    assert plain_stats.draft_tokens == 0
    assert 0 < stats.draft_accepted <= stats.draft_tokens


def test_kv_cache_after_speculation_holds_the_prompt_and_the_reply(engine: LlamaCppEngine) -> None:
    import llama_cpp

    prompt = engine.tokenize(COPY)
    _, stats = run(engine.generate_tokens(prompt, max_tokens=12, temperature=0, speculative=True))
    cached = engine.kv_tokens()
    assert cached[: len(prompt)] == prompt
    assert len(cached) == len(prompt) + stats.completion_tokens - 1  # the last is not decoded
    assert llama_cpp.llama_memory_seq_pos_max(engine.memory, 0) + 1 == len(cached)
    # a follow-up over exactly the cached tokens reuses them and goes on copying the file as
    # plain decoding does (only its last token is evaluated again)
    again, again_stats = run(engine.generate_tokens(cached, max_tokens=16, temperature=0,
                                                    speculative=True))
    assert again_stats.prompt_tokens_reused == len(cached) - 1
    plain, _ = run(engine.generate_tokens(cached, max_tokens=16, temperature=0, speculative=False))
    assert again == plain


def test_a_stop_string_inside_a_verified_draft_trims_the_cache(engine: LlamaCppEngine) -> None:
    import llama_cpp

    prompt = engine.tokenize(COPY)
    text, stats = run(engine.generate_tokens(prompt, max_tokens=MAX_TOKENS, temperature=0,
                                             stop=("factor",), speculative=True))
    assert stats.stop_reason == "stop" and "factor" not in text
    assert stats.draft_accepted > 0
    cached = engine.kv_tokens()
    assert llama_cpp.llama_memory_seq_pos_max(engine.memory, 0) + 1 == len(cached)


def test_stream_speculates_on_request_with_the_same_text(engine: LlamaCppEngine) -> None:
    from gemma_code.engine.base import Message

    messages = [Message("user", "Repeat this code exactly:\n" + CODE)]
    plain, plain_stats = run(engine.stream(messages, max_tokens=16, temperature=0))
    fast, stats = run(engine.stream(messages, max_tokens=16, temperature=0, speculative=True))
    assert fast == plain
    assert plain_stats.draft_tokens == 0 and stats.draft_tokens > 0
