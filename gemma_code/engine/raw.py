"""llama.cpp's own loop: a minimal decode loop over the C API.

The reference `gemma-code bench` compares the engine against when no `llama-bench` binary is
on PATH (llama_bench.py runs that binary): model load, batched prefill with logits only at
the end, then one `llama_decode` and one C-sampler call per token, with no detokenization and
no Python work in between.
It also serves as a minimal host for the speculative decoder's tests.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gemma_code.engine.hardware import default_threads
from gemma_code.errors import EngineError, ModelError


class RawLlama:
    """A model, one context and a greedy C sampler chain, driven like llama.cpp's examples."""

    def __init__(
        self,
        path: Path | str,
        *,
        n_ctx: int = 4096,
        n_batch: int = 512,
        n_threads: int = 0,
        n_gpu_layers: int = -1,
        flash_attn: bool = True,
        swa_full: bool = False,
    ) -> None:
        import llama_cpp
        from llama_cpp import _logger

        _logger.set_verbose(False)  # llama.cpp prints every metadata key otherwise
        self._lib = llama_cpp
        llama_cpp.llama_backend_init()
        started = time.perf_counter()
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = n_gpu_layers if n_gpu_layers >= 0 else 999
        self.model: Any = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        if not self.model:
            raise ModelError(f"llama.cpp could not load {path}", "check the file with `gemma-code doctor`")
        self.vocab: Any = llama_cpp.llama_model_get_vocab(self.model)
        threads = n_threads or default_threads()
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn
            else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        cparams.swa_full = swa_full
        cparams.no_perf = True
        self.ctx: Any = llama_cpp.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            llama_cpp.llama_model_free(self.model)
            raise EngineError(f"llama.cpp could not create a {n_ctx}-token context", "lower n_ctx")
        self.load_s = time.perf_counter() - started
        self.n_ctx = int(llama_cpp.llama_n_ctx(self.ctx))
        self.n_batch = n_batch
        self.sampler: Any = self.greedy_sampler()
        self._batch: Any = llama_cpp.llama_batch_init(n_batch, 0, 1)

    def greedy_sampler(self) -> Any:
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        return chain

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        """Exact tokens of `text` (with BOS when `add_special`), special tokens parsed."""
        lib = self._lib
        data = text.encode()
        size = len(data) + 16
        out = (lib.llama_token * size)()
        n = lib.llama_tokenize(self.vocab, data, len(data), out, size, add_special, True)
        if n < 0:
            size = -n
            out = (lib.llama_token * size)()
            n = lib.llama_tokenize(self.vocab, data, len(data), out, size, add_special, True)
        return list(out[:n])

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of `tokens`, special tokens rendered as text."""
        import ctypes

        lib = self._lib
        pieces = bytearray()
        buf = ctypes.create_string_buffer(256)
        for token in tokens:
            n = lib.llama_token_to_piece(self.vocab, token, buf, 256, 0, True)
            pieces += buf.raw[: max(n, 0)]
        return pieces.decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self.vocab, token))

    def clear(self) -> None:
        """Empty the KV cache and reset the sampler."""
        lib = self._lib
        lib.llama_memory_clear(lib.llama_get_memory(self.ctx), True)
        lib.llama_sampler_reset(self.sampler)

    def trim(self, keep: int) -> None:
        """Drop every KV cell at position `keep` or later."""
        lib = self._lib
        lib.llama_memory_seq_rm(lib.llama_get_memory(self.ctx), 0, keep, -1)

    def prefill(self, tokens: Sequence[int], start: int = 0) -> float:
        """Decode `tokens` at positions start.. in n_batch chunks; return the seconds taken."""
        lib = self._lib
        batch = self._batch
        began = time.perf_counter()
        for at in range(0, len(tokens), self.n_batch):
            part = tokens[at : at + self.n_batch]
            batch.n_tokens = len(part)
            for i, token in enumerate(part):
                batch.token[i] = token
                batch.pos[i] = start + at + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 0
            batch.logits[len(part) - 1] = 1
            status = lib.llama_decode(self.ctx, batch)
            if status != 0:
                raise EngineError(f"llama_decode failed with status {status}", "lower the prompt size")
        lib.llama_synchronize(self.ctx)
        return time.perf_counter() - began

    def sample(self, idx: int = -1) -> int:
        return int(self._lib.llama_sampler_sample(self.sampler, self.ctx, idx))

    def decode(self, first: int, n_past: int, max_tokens: int, *, stop_at_eog: bool = True) -> list[int]:
        """Plain decoding: one token per llama_decode, sampled by the C chain."""
        lib = self._lib
        batch = self._batch
        out = [first]
        token = first
        while len(out) < max_tokens and not (stop_at_eog and self.is_eog(token)):
            batch.n_tokens = 1
            batch.token[0] = token
            batch.pos[0] = n_past
            batch.n_seq_id[0] = 1
            batch.seq_id[0][0] = 0
            batch.logits[0] = 1
            if lib.llama_decode(self.ctx, batch) != 0:
                raise EngineError("llama_decode failed while decoding", "the context may be full")
            n_past += 1
            token = self.sample(0)
            out.append(token)
        return out

    def close(self) -> None:
        lib = self._lib
        if self._batch is not None:
            lib.llama_batch_free(self._batch)
            self._batch = None
        if self.sampler is not None:
            lib.llama_sampler_free(self.sampler)
            self.sampler = None
        if self.ctx is not None:
            lib.llama_free(self.ctx)
            self.ctx = None
        if self.model is not None:
            lib.llama_model_free(self.model)
            self.model = None

    def __enter__(self) -> RawLlama:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
