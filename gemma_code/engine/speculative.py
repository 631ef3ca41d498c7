"""Prompt-lookup speculative decoding: draft from n-gram matches, verify in one batch.

Edits and refactors mostly copy code that is already in the prompt. The drafter finds the
last n tokens (n = 3, then 2, then 1) earlier in the prompt or the reply and proposes the
tokens that followed them there. One `llama_decode` call then evaluates the last sampled
token plus the whole draft, with logits at every position. The target sampler samples each
position in order and the draft is accepted while it agrees, so every emitted token is
exactly what plain decoding would have sampled given the same prefix: identical output for
greedy decoding, the target distribution when sampling. Rejected positions are removed from
the KV cache (with `swa_full=False` llama.cpp only reuses sliding-window cells that are
already outside the window of the batch's first token, so a rollback within the batch is
always possible).

The functions take llama.cpp's raw handles (`llama_context_p`, `llama_sampler_p`,
`llama_vocab_p`) so any decode loop can call them; `llama_cpp` is imported lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from gemma_code.errors import EngineError

DEFAULT_MAX_DRAFT = 8
DEFAULT_NGRAM_MAX = 3
DEFAULT_NGRAM_MIN = 1


class NgramDrafter:
    """Indexes a token sequence by its n-grams and drafts continuations of its tail.

    For every n-gram it keeps the most recent position that has a following token, so a
    lookup is a dictionary probe, not a scan of a 100K-token prompt.
    """

    def __init__(
        self,
        tokens: Sequence[int] = (),
        *,
        ngram_max: int = DEFAULT_NGRAM_MAX,
        ngram_min: int = DEFAULT_NGRAM_MIN,
    ) -> None:
        if not 1 <= ngram_min <= ngram_max:
            raise ValueError("need 1 <= ngram_min <= ngram_max")
        self.ngram_max = ngram_max
        self.ngram_min = ngram_min
        self.tokens: list[int] = []
        self._next: dict[tuple[int, ...], int] = {}
        self.extend(tokens)

    def append(self, token: int) -> None:
        """Add one token; every n-gram ending just before it now has a follower."""
        toks = self.tokens
        end = len(toks)
        for n in range(self.ngram_min, self.ngram_max + 1):
            if end >= n:
                key = (n, *toks[end - n : end])
                self._next[key] = end
        toks.append(token)

    def extend(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            self.append(token)

    def draft(self, limit: int) -> list[int]:
        """Up to `limit` tokens that followed the longest earlier match of the sequence's tail."""
        if limit <= 0:
            return []
        toks = self.tokens
        end = len(toks)
        for n in range(self.ngram_max, self.ngram_min - 1, -1):
            if end < n:
                continue
            key = (n, *toks[end - n :])
            start = self._next.get(key)
            if start is not None:
                return toks[start : start + limit]
        return []


@dataclass
class DraftStats:
    """Tokens proposed and accepted over one generation (for GenerationStats)."""

    draft_tokens: int = 0
    draft_accepted: int = 0
    verify_calls: int = 0


class VerifyBatch:
    """A reusable llama_batch for the last token plus up to `max_draft` draft tokens."""

    def __init__(self, max_draft: int) -> None:
        import llama_cpp

        self.capacity = max_draft + 1
        self._lib = llama_cpp
        self.batch: Any = llama_cpp.llama_batch_init(self.capacity, 0, 1)

    def fill(self, tokens: Sequence[int], n_past: int) -> None:
        """Tokens at positions n_past.., sequence 0, logits requested at every position."""
        if len(tokens) > self.capacity:
            raise ValueError(f"{len(tokens)} tokens do not fit a batch of {self.capacity}")
        batch = self.batch
        batch.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = n_past + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1

    def close(self) -> None:
        if self.batch is not None:
            self._lib.llama_batch_free(self.batch)
            self.batch = None

    def __enter__(self) -> VerifyBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rollback_kv(ctx: Any, keep: int) -> None:
    """Drop every KV cell of sequence 0 at position `keep` or later."""
    import llama_cpp

    mem = llama_cpp.llama_get_memory(ctx)
    if not llama_cpp.llama_memory_seq_rm(mem, 0, keep, -1):
        raise EngineError(
            f"llama.cpp could not roll the KV cache back to position {keep}",
            "turn speculative decoding off (GEMMA_CODE_SPECULATIVE=false) and report this",
        )


def verify(
    ctx: Any, sampler: Any, batch: VerifyBatch, last: int, draft: Sequence[int], n_past: int
) -> list[int]:
    """Decode `last` + `draft` at `n_past`; return the tokens the target sampler emits.

    `last` is the most recently sampled token, not yet in the KV cache. The result holds the
    accepted draft prefix followed by the sampler's own next token (at least one token).
    On return the KV cache holds exactly `last` and the accepted draft tokens.
    """
    import llama_cpp

    batch.fill([last, *draft], n_past)
    status = llama_cpp.llama_decode(ctx, batch.batch)
    if status != 0:
        raise EngineError(
            f"llama_decode failed with status {status} at position {n_past}",
            "the context may be full; lower --max-tokens or raise --n-ctx",
        )
    emitted: list[int] = []
    for i in range(len(draft) + 1):
        # llama_sampler_sample also accepts the token into the chain (penalties, grammar)
        token = int(llama_cpp.llama_sampler_sample(sampler, ctx, i))
        emitted.append(token)
        if i == len(draft) or token != draft[i]:
            break
    accepted = len(emitted) - 1
    if accepted < len(draft):
        rollback_kv(ctx, n_past + 1 + accepted)
    return emitted


class PromptLookupDecoder:
    """Generates tokens with prompt-lookup speculation; one per plain decode loop's step.

    Usage from a decode loop, once the prompt is in the KV cache::

        decoder = PromptLookupDecoder(ctx, sampler, vocab)
        tokens = decoder.generate(prompt_tokens, max_tokens=256)  # samples the first token
        for token in tokens:
            ...  # detokenize, check stop strings; `break` is fine
        tokens.close()  # frees the verify batch now rather than at garbage collection

    After the loop, `decoder.n_past` cells are in the KV cache: the prompt, then the emitted
    tokens in order (the last emitted token is not decoded yet, as in a plain loop; after a
    `break` some already-verified tokens may follow those the caller consumed).
    """

    def __init__(
        self,
        ctx: Any,
        sampler: Any,
        vocab: Any,
        *,
        max_draft: int = DEFAULT_MAX_DRAFT,
        ngram_max: int = DEFAULT_NGRAM_MAX,
        ngram_min: int = DEFAULT_NGRAM_MIN,
        is_eog: Callable[[int], bool] | None = None,
    ) -> None:
        import llama_cpp

        self.ctx = ctx
        self.sampler = sampler
        self.max_draft = max_draft
        self.ngram_max = ngram_max
        self.ngram_min = ngram_min
        self.n_ctx = int(llama_cpp.llama_n_ctx(ctx))
        self._is_eog = is_eog or (lambda t: bool(llama_cpp.llama_vocab_is_eog(vocab, t)))
        self.stats = DraftStats()
        self.n_past = 0

    def generate(self, history: Sequence[int], *, max_tokens: int) -> Iterator[int]:
        """Sample the first token from the prompt's logits, then continue as `tokens`."""
        import llama_cpp

        if max_tokens <= 0:
            return
        first = int(llama_cpp.llama_sampler_sample(self.sampler, self.ctx, -1))
        yield from self.tokens(history, first, n_past=len(history), max_tokens=max_tokens)

    def tokens(
        self, history: Sequence[int], first: int, *, n_past: int, max_tokens: int
    ) -> Iterator[int]:
        """Yield `first` and then up to `max_tokens - 1` more tokens, stopping after an EOG."""
        self.n_past = n_past
        drafter = NgramDrafter(history, ngram_max=self.ngram_max, ngram_min=self.ngram_min)
        drafter.append(first)
        yield first
        # the batch lives as long as this generator: closing it (or running out) frees it
        with VerifyBatch(self.max_draft) as batch:
            yield from self._speculate(drafter, batch, first, max_tokens)

    def _speculate(
        self, drafter: NgramDrafter, batch: VerifyBatch, last: int, max_tokens: int
    ) -> Iterator[int]:
        produced = 1
        want = self.max_draft
        while produced < max_tokens and not self._is_eog(last):
            room = min(
                want,
                max_tokens - produced - 1,  # the sampler's own token comes on top
                self.n_ctx - self.n_past - 1,
            )
            if room < 0:
                return
            draft = drafter.draft(room)
            emitted = verify(self.ctx, self.sampler, batch, last, draft, self.n_past)
            self.stats.verify_calls += 1
            self.stats.draft_tokens += len(draft)
            self.stats.draft_accepted += len(emitted) - 1
            if draft:
                # a fully accepted draft suggests a long copy: draft more next time; a
                # rejection suggests the copy ended: verify fewer tokens until it resumes
                full = len(emitted) - 1 == len(draft)
                want = min(self.max_draft, want * 2) if full else max(1, len(emitted))
            self.n_past += len(emitted)
            for token in emitted:
                drafter.append(token)
                produced += 1
                last = token
                yield token
                if self._is_eog(token):
                    return

    def close(self) -> None:
        """Nothing to free: each generation's batch is freed when its generator ends."""
