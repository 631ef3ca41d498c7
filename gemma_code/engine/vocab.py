"""Tokenizers without a loaded model: a GGUF file's vocabulary through llama.cpp (vocab only).

`gemma-code context` and the context benchmarks count with these; the context builder itself
only ever receives a count function.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from gemma_code.errors import GemmaCodeError, ModelError

CountFn = Callable[[str], int]


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

    try:
        with _native_stderr_silenced():
            vocab = Llama(str(path), vocab_only=True, verbose=False)
    except Exception as exc:  # llama.cpp raises ValueError or RuntimeError for unreadable files
        raise ModelError(f"cannot read the tokenizer in {path} ({exc})") from None

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=False))

    return count


def lazy_counter(load: Callable[[], CountFn]) -> CountFn:
    """A count function that loads its tokenizer on first use."""
    loaded: list[CountFn] = []

    def count(text: str) -> int:
        if not loaded:
            loaded.append(load())
        return loaded[0](text)

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
        from gemma_code.models import resolve_model

        try:
            path = resolve_model(model)
        except GemmaCodeError:  # not downloaded or an unknown name: estimate instead
            return None
    try:
        info = path.stat()
    except OSError:
        return None
    ident = f"gguf:{path.resolve()}:{info.st_size}:{info.st_mtime_ns}"
    chosen = path
    return lazy_counter(lambda: gguf_counter(chosen)), ident
