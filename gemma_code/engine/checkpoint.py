"""Sliding-window checkpoints: go back behind a sliding window that has moved on.

With ``swa_full=False`` llama.cpp keeps only about window + batch cells for the sliding
layers. A chat turn renders the previous answer differently from how it was generated (the
Gemma 4 template drops the thought channel), so the next prompt diverges right where the
answer began: after an answer longer than a few hundred tokens the window needed there is
gone and the whole prompt would be evaluated again. Like llama-server's context checkpoints,
we copy the sliding layers' cache (PARTIAL_ONLY: ~300 MiB for Gemma 4 26B A4B at f16) to host
memory after each prompt and restore it when a later prompt goes back into that window.
"""

from __future__ import annotations

import ctypes
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
