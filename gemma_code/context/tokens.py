"""Token counts for packing: the model's tokenizer, cached by content digest, or a flagged estimate."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

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

    `count` may be a zero-argument loader wrapped by `lazy_counter`, so a run whose counts
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


def lazy_counter(load: Callable[[], CountFn]) -> CountFn:
    """A count function that loads its tokenizer on first use."""
    loaded: list[CountFn] = []

    def count(text: str) -> int:
        if not loaded:
            loaded.append(load())
        return loaded[0](text)

    return count


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide llama.cpp's C-level warnings (a vocab-only load warns about its unused context)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def gguf_counter(path: Path) -> CountFn:
    """Count with the vocabulary of a GGUF file (llama.cpp, vocab only: no weights are read)."""
    from llama_cpp import Llama

    from gemma_code.errors import ModelError

    try:
        with _native_stderr_silenced():
            vocab = Llama(str(path), vocab_only=True, verbose=False)
    except Exception as exc:  # llama.cpp raises ValueError or RuntimeError for unreadable files
        raise ModelError(f"cannot read the tokenizer in {path} ({exc})") from None

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=False))

    return count


def default_tokenizer(model: str, tokenizer: str = "") -> tuple[CountFn, str] | None:
    """The tokenizer `gemma-code context` counts with when no model is loaded.

    `tokenizer` (a GGUF path, setting `tokenizer`) wins; else the configured model's file when it
    is downloaded; else None, and the caller estimates.
    """
    path: Path | None = None
    if tokenizer:
        path = Path(tokenizer).expanduser()
        if not path.is_file():
            return None
    else:
        try:
            from gemma_code.models import resolve_model

            path = resolve_model(model)
        except Exception:  # not downloaded, unknown name, or no registry: estimate instead
            return None
    try:
        info = path.stat()
    except OSError:
        return None
    ident = f"gguf:{path.resolve()}:{info.st_size}:{info.st_mtime_ns}"
    chosen = path
    return lazy_counter(lambda: gguf_counter(chosen)), ident
