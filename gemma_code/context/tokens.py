"""Token counts for packing: the caller's counter, cached by content digest, or a flagged estimate.

The context builder never loads a tokenizer itself: the task passes `count_tokens` (the loaded
engine's, or `engine.vocab.default_tokenizer` for `gemma-code context`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

from gemma_code.context.cache import ContextCache

# Gemma 4's tokenizer averaged 4.0 characters per token on Django's Python source; the
# estimate leans low on characters per token so that an estimated pack rarely overflows.
CHARS_PER_TOKEN = 3.6

CountFn = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """A tokenizer-free guess of a text's token count."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class TokenCounter:
    """Counts many texts at once: cached counts first, the tokenizer only for the new ones.

    `count` may load its tokenizer on first use (`engine.vocab.lazy_counter`), so a run whose counts
    are all cached never loads a tokenizer at all.
    """

    def __init__(
        self,
        count: CountFn | None,
        tokenizer_id: str = "",
        cache: ContextCache | None = None,
    ) -> None:
        self.count_fn = count
        self.estimated = count is None
        # without an id, counts from different tokenizers could collide: keep them in memory only
        self.tokenizer_id = tokenizer_id
        self.cache = cache if tokenizer_id and not self.estimated else None
        self.memory: dict[str, int] = {}
        self.counted = 0  # texts that went through the tokenizer this run

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Token counts of `texts`, in order."""
        if self.count_fn is None:
            return [estimate_tokens(t) for t in texts]
        keys = [digest(t) for t in texts]
        missing = [k for k in dict.fromkeys(keys) if k not in self.memory]
        if missing and self.cache is not None:
            self.memory.update(self.cache.load_tokens(self.tokenizer_id, missing))
        new: dict[str, int] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in self.memory:
                value = self.count_fn(text)
                self.memory[key] = new[key] = value
                self.counted += 1
        if new and self.cache is not None:
            self.cache.store_tokens(self.tokenizer_id, new)
        return [self.memory[k] for k in keys]

    def count(self, text: str) -> int:
        return self.count_many([text])[0]
