"""Prompt-lookup speculative decoding: the n-gram drafter, and exactness through real llama.cpp."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemma_code.engine.speculative import NgramDrafter

# --- the drafter (pure) ---------------------------------------------------------------------


def test_drafter_proposes_what_followed_the_earlier_trigram() -> None:
    drafter = NgramDrafter([1, 2, 3, 4, 5, 6, 9, 1, 2, 3])
    assert drafter.draft(3) == [4, 5, 6]


def test_drafter_prefers_the_longest_matching_ngram() -> None:
    # the 1-gram [3] last occurred before 7; the 3-gram [1, 2, 3] before 4
    drafter = NgramDrafter([1, 2, 3, 4, 8, 3, 7, 0, 1, 2, 3])
    assert drafter.draft(1) == [4]


def test_drafter_uses_the_most_recent_occurrence() -> None:
    drafter = NgramDrafter([5, 6, 1, 9, 9, 5, 6, 2, 8, 5, 6])
    assert drafter.draft(2) == [2, 8]


def test_drafter_falls_back_to_shorter_ngrams() -> None:
    drafter = NgramDrafter([4, 7, 8, 0, 3, 4])
    assert drafter.draft(2) == [7, 8]


def test_drafter_has_nothing_without_a_match_or_room() -> None:
    assert NgramDrafter([1, 2, 3, 4]).draft(4) == []
    assert NgramDrafter([1, 2, 1]).draft(0) == []
    assert NgramDrafter([]).draft(4) == []


def test_drafter_respects_ngram_min() -> None:
    assert NgramDrafter([4, 7, 8, 0, 3, 4], ngram_min=2).draft(2) == []


def test_drafter_sees_appended_tokens() -> None:
    drafter = NgramDrafter([1, 2, 3, 4])
    drafter.extend([1, 2])
    assert drafter.draft(2) == [3, 4]
    drafter.append(3)
    assert drafter.draft(8) == [4, 1, 2, 3]


def _reference_draft(tokens: list[int], limit: int, nmax: int, nmin: int) -> list[int]:
    """The slow definition: scan backwards for the longest n-gram of the tail."""
    for n in range(nmax, nmin - 1, -1):
        if len(tokens) < n:
            continue
        tail = tokens[-n:]
        for start in range(len(tokens) - n - 1, -1, -1):
            if tokens[start : start + n] == tail:
                return tokens[start + n : start + n + limit]
    return []


@given(
    st.lists(st.integers(0, 5), max_size=60),
    st.integers(0, 10),
    st.integers(1, 4),
    st.integers(1, 4),
)
def test_drafter_matches_a_backward_scan(tokens: list[int], limit: int, a: int, b: int) -> None:
    nmin, nmax = min(a, b), max(a, b)
    drafter = NgramDrafter(tokens, ngram_max=nmax, ngram_min=nmin)
    expected = _reference_draft(tokens, limit, nmax, nmin) if limit > 0 else []
    assert drafter.draft(limit) == expected


# --- through real llama.cpp -----------------------------------------------------------------

CODE = '''def add(a, b):
    """Return the sum of a and b."""
    return a + b


def scale(values, factor):
    """Multiply every value by factor."""
    return [value * factor for value in values]


class Counter:
    def __init__(self):
        self.counts = {}

    def add(self, key):
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]
'''
# a base model copies a file it has seen copied once already
COPY_PROMPT = (
    "File a.py:\n```python\n" + CODE + "```\n\nFile b.py, a copy of a.py:\n```python\n"
    + CODE + "```\n\nFile c.py, another copy of a.py:\n```python\n"
)
MAX_TOKENS = 40


@pytest.fixture(scope="module")
def raw(tiny_model_path: Path) -> Iterator[object]:
    from gemma_code.engine.raw import RawLlama

    model = RawLlama(tiny_model_path, n_ctx=1024, n_threads=1, swa_full=False)
    yield model
    model.close()


def _speculate(raw: object, prompt: list[int], *, max_draft: int, seed: int | None = None) -> tuple[
    list[int], object
]:
    import llama_cpp

    from gemma_code.engine.raw import RawLlama
    from gemma_code.engine.speculative import PromptLookupDecoder

    assert isinstance(raw, RawLlama)
    raw.clear()
    sampler = raw.sampler if seed is None else _dist_sampler(seed)
    raw.prefill(prompt)
    first = int(llama_cpp.llama_sampler_sample(sampler, raw.ctx, -1))
    decoder = PromptLookupDecoder(raw.ctx, sampler, raw.vocab, max_draft=max_draft)
    try:
        tokens = list(decoder.tokens(prompt, first, n_past=len(prompt), max_tokens=MAX_TOKENS))
    finally:
        decoder.close()
        if seed is not None:
            llama_cpp.llama_sampler_free(sampler)
    return tokens, decoder


def _dist_sampler(seed: int) -> object:
    import llama_cpp

    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(40))
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(0.8))
    llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(seed))
    return chain


@pytest.mark.llama
def test_greedy_speculation_emits_exactly_the_plain_greedy_tokens(raw: object) -> None:
    from gemma_code.engine.raw import RawLlama

    assert isinstance(raw, RawLlama)
    prompt = raw.tokenize(COPY_PROMPT)
    raw.clear()
    raw.prefill(prompt)
    plain = raw.decode(raw.sample(-1), len(prompt), MAX_TOKENS)
    speculated, decoder = _speculate(raw, prompt, max_draft=8)
    assert speculated == plain
    stats = decoder.stats  # type: ignore[attr-defined]
    assert stats.draft_accepted > 0
    assert stats.verify_calls < len(speculated) - 1  # some steps emitted several tokens


@pytest.mark.llama
def test_greedy_speculation_is_exact_past_the_sliding_window(raw: object) -> None:
    # Gemma 3 270M's sliding window is 512 tokens and swa_full=False keeps only about that
    # much: rollbacks of rejected drafts must still leave every needed cell in place
    from gemma_code.engine.raw import RawLlama

    assert isinstance(raw, RawLlama)
    filler = "".join(f"Note {i}: the build passed on machine {i * 7 % 13}.\n" for i in range(40))
    prompt = raw.tokenize(filler + COPY_PROMPT)
    assert len(prompt) > 600
    raw.clear()
    raw.prefill(prompt)
    plain = raw.decode(raw.sample(-1), len(prompt), MAX_TOKENS)
    speculated, decoder = _speculate(raw, prompt, max_draft=8)
    assert speculated == plain
    stats = decoder.stats  # type: ignore[attr-defined]
    assert 0 < stats.draft_accepted < stats.draft_tokens  # some drafts rolled back


@pytest.mark.llama
def test_speculation_leaves_the_kv_cache_as_plain_decoding_would(raw: object) -> None:
    from gemma_code.engine.raw import RawLlama

    assert isinstance(raw, RawLlama)
    # a prompt the model does not simply copy, so some drafts are rejected and rolled back
    prompt = raw.tokenize("one two three. one two four. one two five. one two")
    tokens, decoder = _speculate(raw, prompt, max_draft=4)
    stats = decoder.stats  # type: ignore[attr-defined]
    assert stats.draft_tokens > stats.draft_accepted
    assert decoder.n_past == len(prompt) + len(tokens) - 1  # type: ignore[attr-defined]
    # continuing plain decoding from that KV state matches a plain run of the same length
    more = raw.decode(tokens[-1], decoder.n_past, 6)  # type: ignore[attr-defined]
    raw.clear()
    raw.prefill(prompt)
    plain = raw.decode(raw.sample(-1), len(prompt), len(tokens) + 5)
    assert tokens + more[1:] == plain


@pytest.mark.llama
def test_sampled_speculation_draws_the_same_tokens_as_plain_sampling(raw: object) -> None:
    # each emitted token is one sampler call at the same position with the same prefix, so a
    # seeded sampler draws the same random numbers with or without speculation
    from gemma_code.engine.raw import RawLlama

    assert isinstance(raw, RawLlama)
    prompt = raw.tokenize(COPY_PROMPT)
    plain, _ = _speculate(raw, prompt, max_draft=0, seed=7)
    speculated, decoder = _speculate(raw, prompt, max_draft=8, seed=7)
    assert speculated == plain
    assert decoder.stats.draft_accepted > 0  # type: ignore[attr-defined]


@pytest.mark.llama
def test_speculation_stops_at_max_tokens(raw: object) -> None:
    from gemma_code.engine.raw import RawLlama
    from gemma_code.engine.speculative import PromptLookupDecoder

    assert isinstance(raw, RawLlama)
    prompt = raw.tokenize(COPY_PROMPT)
    raw.clear()
    raw.prefill(prompt)
    decoder = PromptLookupDecoder(raw.ctx, raw.sampler, raw.vocab, max_draft=8)
    try:
        tokens = list(decoder.tokens(prompt, raw.sample(-1), n_past=len(prompt), max_tokens=5))
    finally:
        decoder.close()
    assert len(tokens) == 5
