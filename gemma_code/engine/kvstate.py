"""KV cache state outside the context: llama.cpp's state files, and sliding-window checkpoints.

State files (`save_seq_file` / `load_seq_file`) hold a sequence's cache and its tokens in
llama.cpp's own format, for the prompt cache. Checkpoints let a prompt go back behind a
sliding window that has moved on:

With ``swa_full=False`` llama.cpp keeps only about window + batch cells for the sliding
layers. A chat turn renders the previous answer differently from how it was generated (the
Gemma 4 template drops the thought channel), so the next prompt diverges right where the
answer began: after an answer longer than a few hundred tokens the window needed there is
gone and the whole prompt would be evaluated again. Like llama-server's context checkpoints,
we copy the sliding layers' cache (PARTIAL_ONLY: ~300 MiB for Gemma 4 26B A4B at f16) to host
memory after each prompt and restore it when a later prompt goes back into that window.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import llama_cpp as lc

PARTIAL_ONLY = lc.LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY


class SwaCheckpoint:
    """One checkpoint of a sequence's sliding-window cache, taken after `n_tokens` tokens."""

    def __init__(self) -> None:
        self.n_tokens = 0
        self.size = 0
        self._buffer: Any = None

    @property
    def valid(self) -> bool:
        return self.n_tokens > 0

    def take(self, ctx: Any, seq: int, n_tokens: int) -> bool:
        """Copy the sliding-window cells of `seq` (which holds `n_tokens` tokens) to host memory."""
        size = int(lc.llama_state_seq_get_size_ext(ctx, seq, PARTIAL_ONLY))
        if size <= 0:
            self.invalidate()
            return False
        if self._buffer is None or len(self._buffer) < size:
            self._buffer = (ctypes.c_uint8 * size)()  # reused: zero-filling 300 MiB is not free
        written = int(lc.llama_state_seq_get_data_ext(ctx, self._buffer, size, seq, PARTIAL_ONLY))
        self.size = written
        self.n_tokens = n_tokens if written else 0
        return bool(written)

    def restore(self, ctx: Any, seq: int) -> bool:
        """Put the saved sliding-window cells back (the full-attention layers are untouched)."""
        if not self.valid:
            return False
        read = int(lc.llama_state_seq_set_data_ext(ctx, self._buffer, self.size, seq, PARTIAL_ONLY))
        return read > 0

    def invalidate(self) -> None:
        self.n_tokens = 0


def save_seq_file(ctx: Any, seq: int, path: Path, tokens: Sequence[int]) -> int:
    """Write `seq`'s cache and `tokens` to `path` atomically; bytes written (0: failed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    arr = (lc.llama_token * max(len(tokens), 1))(*tokens)
    written = int(lc.llama_state_seq_save_file(ctx, str(partial).encode(), seq, arr, len(tokens)))
    if written == 0:
        with contextlib.suppress(OSError):
            partial.unlink()
        return 0
    os.replace(partial, path)
    return written


def load_seq_file(ctx: Any, seq: int, path: Path, capacity: int) -> list[int] | None:
    """Load a state file into `seq` (which must be empty); its tokens, or None when unreadable."""
    out = (lc.llama_token * capacity)()
    n_out = ctypes.c_size_t(0)
    read = lc.llama_state_seq_load_file(
        ctx, str(path).encode(), seq, out, capacity, ctypes.byref(n_out)
    )
    return list(out[: n_out.value]) if read else None


def seq_state(ctx: Any, seq: int) -> bytes:
    """A copy of `seq`'s whole cache in host memory (b"" when there is nothing to copy)."""
    size = int(lc.llama_state_seq_get_size(ctx, seq))
    if size <= 0:
        return b""
    buffer = (ctypes.c_uint8 * size)()
    written = int(lc.llama_state_seq_get_data(ctx, buffer, size, seq))
    return bytes(buffer)[:written]


def set_seq_state(ctx: Any, seq: int, data: bytes) -> bool:
    """Load a copy made by `seq_state` into `seq` (which must be empty)."""
    if not data:
        return False
    buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    return int(lc.llama_state_seq_set_data(ctx, buffer, len(data), seq)) > 0
