"""The in-process llama.cpp engine, driven through llama-cpp-python's low-level C API.

Decoding is our own loop: llama_decode one token at a time, llama.cpp's C sampler chain,
incremental UTF-8 detokenization, no logits copied into Python. The KV cache lives as long
as the engine: a new prompt reuses the longest common token prefix of the last one.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import dataclasses
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemma_code.config import Settings
from gemma_code.engine.base import Chunk, GenerationStats, KVCacheEngine, Message, ModelInfo
from gemma_code.engine.chat_templates import STOP_STRINGS, ThoughtSplitter, detect_format
from gemma_code.engine.fit import Plan, facts_from_metadata, plan
from gemma_code.engine.hardware import memory_for
from gemma_code.engine.stops import StopScanner
from gemma_code.engine.vision import VisionMixin
from gemma_code.errors import EngineError, PromptTooLongError
from gemma_code.models.gguf_header import read_metadata, tensor_sizes

if TYPE_CHECKING:
    from gemma_code.engine.kvstate import SwaCheckpoint
    from gemma_code.engine.sizing import Speeds
    from gemma_code.engine.vision import Vision

SEQ = 0  # the one sequence we use
N_OUTPUTS_MAX = 16  # logits rows llama.cpp reserves per ubatch (512 would cost 512 MiB at 262K vocab)


def resolve_model_path(spec: str) -> Path:
    """A registry name or a path -> the GGUF file (ModelNotFoundError with the fix)."""
    from gemma_code.models import resolve_model

    return resolve_model(spec)


def load_llamacpp_engine(settings: Settings) -> LlamaCppEngine:
    """Resolve the model (registry name or path), plan the memory, load it.

    On a CPU, the budget and max_tokens no layer set are lowered to suit its speed
    (engine/sizing.py); `info.sizing` says so.
    """
    engine = LlamaCppEngine(resolve_model_path(settings.model), settings)
    if engine.info.backend == "cpu":
        from gemma_code.engine.sizing import engine_key, size_settings

        key = engine_key(engine.path, engine.info.backend, engine._threads)
        note = size_settings(settings, engine.speeds(), key=key)
        if note:
            engine.info = dataclasses.replace(
                engine.info, notes=(*engine.info.notes, note), sizing=note
            )
    return engine


class LlamaCppEngine(VisionMixin):
    """One model and one context; `stream` reuses the KV cache across calls."""

    def __init__(self, path: Path, settings: Settings, *, n_outputs_max: int = N_OUTPUTS_MAX):
        import llama_cpp as lc

        from gemma_code.engine import lowlevel
        from gemma_code.engine.kvstate import SwaCheckpoint
        from gemma_code.engine.loading import create_context, load_model, model_name, with_actual_n_ctx

        self._lc = lc
        self._ll = lowlevel
        self.settings = settings
        self.path = Path(path)
        self.model: Any = None
        self.ctx: Any = None
        self._tokens: list[int] = []
        self.overridden: list[str] = []  # tensors placed by the expert override
        self.full_reprocesses = 0  # prefix reuse refused (sliding window), prompt re-evaluated
        self.checkpoint_restores = 0  # ... made possible by a sliding-window checkpoint
        meta = read_metadata(self.path)
        arch = str(meta.get("general.architecture", "unknown"))
        lowlevel.init_backend()
        gpu = bool(lc.llama_supports_gpu_offload()) and settings.n_gpu_layers != 0
        # expert bytes matter only when deciding what stays off the GPU
        experts = (
            sum(size for name, size in tensor_sizes(self.path).items() if "_exps." in name)
            if gpu else 0
        )
        facts = facts_from_metadata(meta, self.path.stat().st_size, experts)
        self.plan: Plan = plan(
            facts, memory_for(gpu), n_ctx=settings.n_ctx, kv_type=settings.kv_type,
            cpu_moe=settings.cpu_moe,
        )
        n_gpu_layers = settings.n_gpu_layers if self.plan.n_gpu_layers < 0 else self.plan.n_gpu_layers
        # "on" forces the override even without a GPU (a no-op there, but it proves the path)
        self.cpu_moe = (self.plan.cpu_moe and gpu) or settings.cpu_moe == "on"
        self.model, self.overridden = load_model(
            self.path, arch, n_gpu_layers if gpu else 0, self.cpu_moe
        )
        try:
            self.ctx, self.n_batch = create_context(self.model, self.plan, settings, n_outputs_max)
        except EngineError:
            lc.llama_model_free(self.model)
            self.model = None
            raise
        self.plan = with_actual_n_ctx(self.plan, int(lc.llama_n_ctx(self.ctx)))
        self.memory = lc.llama_get_memory(self.ctx)
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.n_swa = int(lc.llama_model_n_swa(self.model))
        self._window_limited = self.n_swa > 0 and not settings.swa_full
        self._checkpoint: SwaCheckpoint = SwaCheckpoint()
        template = lowlevel.meta_str(self.model, "tokenizer.chat_template")
        fmt = detect_format(arch, template)
        ftype = lc.llama_ftype_name(lc.llama_model_ftype(self.model))
        quant = (ftype or b"unknown").decode().replace("MOSTLY_", "")
        notes = [self.plan.reason, *self.plan.notes]
        if fmt != "gemma4" and not template:
            notes.append(f"no chat template in the GGUF: using the documented {fmt} format")
        self.info = ModelInfo(
            name=model_name(settings.model, self.path), n_ctx=self.plan.n_ctx, arch=arch, quant=quant,
            backend=lowlevel.backend_name() if gpu else "cpu", chat_format=fmt,
            path=str(self.path), kv_type=self.plan.kv_type,
            n_gpu_layers=n_gpu_layers if gpu else 0, notes=tuple(notes),
        )
        self._meta, self._threads = meta, int(lc.llama_n_threads_batch(self.ctx))
        self._piece = ctypes.create_string_buffer(256)
        self._one = (lc.llama_token * 1)()
        from gemma_code.engine.vision import find_mmproj

        self.mmproj = find_mmproj(settings, self.path)
        self._vision: Vision | None = None  # loaded on the first image
        self._gpu = gpu
        # called with (tokens evaluated, tokens to evaluate) while a long prompt is read
        self.progress: Callable[[int, int], None] | None = None

    # -- speed -------------------------------------------------------------------------------

    def speeds(self) -> Speeds:
        """Prompt reading and writing speed here: measured by earlier runs, else estimated."""
        from gemma_code.engine.sizing import engine_speeds

        return engine_speeds(self.path, self._meta, self.info.backend, self._threads)

    # -- tokens ------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """Tokens of template text (rendered prompts): special tokens parsed, no BOS added."""
        return self._ll.tokenize(self.vocab, text)

    def prompt_tokens(self, messages: Sequence[Message], *, think: bool = False) -> list[int]:
        """The rendered prompt's tokens: template strings as control tokens, content as text.

        Content is always text, whatever bytes it holds: no message can open or close a turn.
        """
        from gemma_code.engine.segments import content_safe_tokens

        vocab, tokenize = self.vocab, self._ll.tokenize
        # Gemma tokenizers add no space prefix, so tokenizing piece by piece changes nothing
        # but the meaning of control strings quoted inside the content
        if any(m.images for m in messages):
            return self._image_prompt_tokens(messages, think=think)
        return content_safe_tokens(
            lambda text, special: tokenize(vocab, text, special=special),
            messages, self.info.chat_format, think=think,
        )

    def count_tokens(self, text: str) -> int:
        """Exact token count of `text` as content (no BOS, control strings counted as text)."""
        return len(self._ll.tokenize(self.vocab, text, special=False))

    def kv_tokens(self) -> list[int]:
        """The tokens whose keys and values are in the KV cache now."""
        return list(self._tokens)

    def _piece_bytes(self, token: int) -> bytes:
        n = self._lc.llama_token_to_piece(self.vocab, token, self._piece, 256, 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lc.llama_token_to_piece(self.vocab, token, buf, -n, 0, True)
            return buf.raw[:n]
        return self._piece.raw[:n]

    # -- KV cache ----------------------------------------------------------------------------

    def _reuse_prefix(self, tokens: Sequence[int]) -> int:
        """Keep the longest common prefix of the cache and `tokens` (at least one token left)."""
        lc = self._lc
        cached = self._tokens
        limit = min(len(cached), len(tokens) - 1)
        keep = 0
        while keep < limit and cached[keep] == tokens[keep]:
            keep += 1
        while 0 < keep < len(tokens) and tokens[keep] < 0 and tokens[keep - 1] < 0:
            keep -= 1  # never inside an image: it is evaluated whole
        if keep < len(cached):
            if keep and not self._can_truncate(keep) and not self._restore_checkpoint(keep):
                self.full_reprocesses += 1
                keep = 0
            if keep < self._checkpoint.n_tokens:
                self._checkpoint.invalidate()  # it holds cells beyond what stays
            if keep == 0 or not lc.llama_memory_seq_rm(self.memory, SEQ, keep, -1):
                lc.llama_memory_clear(self.memory, True)
                keep = 0
            del self._tokens[keep:]
        return keep

    def _restore_checkpoint(self, keep: int) -> bool:
        """Bring back the sliding window saved after the last prompt, if it covers `keep`."""
        if self._checkpoint.n_tokens < keep or not self._checkpoint.restore(self.ctx, SEQ):
            return False
        if self._can_truncate(keep):
            self.checkpoint_restores += 1
            return True
        return False

    def _can_truncate(self, keep: int) -> bool:
        """With swa_full=False the sliding layers hold only the last window: can we go back?"""
        if self.n_swa <= 0 or self.settings.swa_full:
            return True
        pos_min = self._lc.llama_memory_seq_pos_min(self.memory, SEQ)
        return bool(pos_min < 0 or pos_min <= max(0, keep - self.n_swa))

    def _resync(self) -> None:
        """Make `_tokens` match the cache after an error or interruption."""
        lc = self._lc
        n_cached = int(lc.llama_memory_seq_pos_max(self.memory, SEQ)) + 1
        if n_cached < len(self._tokens):
            del self._tokens[max(n_cached, 0):]
        elif n_cached > len(self._tokens):
            lc.llama_memory_seq_rm(self.memory, SEQ, len(self._tokens), -1)

    def _decode(self, tokens: Sequence[int]) -> None:
        """Evaluate `tokens` after the cache, in n_batch slices; Ctrl-C stops it mid-slice.

        Reports (done, total) to `self.progress` before the first slice and after each one.
        """
        from gemma_code.engine.interrupt import abortable

        lc = self._lc
        total = len(tokens)
        report = self.progress
        with abortable(lc, self.ctx) as flag:
            if report is not None:
                report(0, total)
            for start in range(0, total, self.n_batch):
                part = tokens[start : start + self.n_batch]
                arr = (lc.llama_token * len(part))(*part)
                rc = lc.llama_decode(self.ctx, lc.llama_batch_get_one(arr, len(part)))
                if rc != 0:
                    self._resync()
                    if rc == 2 and flag is not None and flag.requested:
                        break  # Ctrl-C: leaving `abortable` raises KeyboardInterrupt
                    raise EngineError(
                        f"llama_decode failed (code {rc}) at position {len(self._tokens):,}",
                        "the context may be full: lower --max-tokens or raise --n-ctx",
                    )
                self._tokens.extend(part)
                if report is not None:
                    report(start + len(part), total)
                if flag is not None and flag.requested:
                    break

    def save_kv(self, path: str | Path) -> int:
        """Write the KV cache and its tokens with llama.cpp's file format; bytes written."""
        from gemma_code.engine.kvstate import save_seq_file

        written = save_seq_file(self.ctx, SEQ, Path(path), self._tokens)
        if written == 0:
            raise EngineError(f"could not save the KV cache to {path}")
        return written

    def load_kv(self, path: str | Path, tokens: Sequence[int]) -> bool:
        """Restore a cache saved by save_kv if it holds exactly `tokens`; False otherwise."""
        from gemma_code.engine.kvstate import load_seq_file

        file = Path(path)
        if not file.is_file() or len(tokens) > self.info.n_ctx:
            return False
        self._lc.llama_memory_clear(self.memory, True)
        self._tokens = []
        self._checkpoint.invalidate()
        loaded = load_seq_file(self.ctx, SEQ, file, self.info.n_ctx)
        if loaded is None or loaded != list(tokens):
            self._lc.llama_memory_clear(self.memory, True)
            return False
        self._tokens = loaded
        return True

    def kv_snapshot(self) -> tuple[list[int], bytes]:
        """The KV cache's tokens and a host-memory copy of it (serve keeps one per client)."""
        from gemma_code.engine.kvstate import seq_state

        return list(self._tokens), seq_state(self.ctx, SEQ)

    def kv_restore(self, tokens: Sequence[int], data: bytes) -> bool:
        """Replace the KV cache with a `kv_snapshot`; False (and an empty cache) if it fails."""
        from gemma_code.engine.kvstate import set_seq_state

        self._lc.llama_memory_clear(self.memory, True)
        self._tokens = []
        self._checkpoint.invalidate()
        if not set_seq_state(self.ctx, SEQ, data):
            self._lc.llama_memory_clear(self.memory, True)
            return False
        self._tokens = list(tokens)
        self._resync()
        return True

    # -- generation --------------------------------------------------------------------------

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        think: bool = False,
        grammar: str | None = None,
        stop: Sequence[str] = (),
        temperature: float | None = None,
        speculative: bool = False,
    ) -> Iterator[Chunk]:
        """Render, tokenize and generate; the last chunk is the stats.

        `speculative`: prompt-lookup decoding for edit replies.
        """
        fmt = self.info.chat_format
        prompt = self.prompt_tokens(messages, think=think)
        if len(prompt) + max_tokens > self.info.n_ctx:
            raise PromptTooLongError(len(prompt), self.info.n_ctx, max_tokens)
        speculative = speculative and min(prompt) >= 0  # drafts copy prompt ids: not an image's
        stops = tuple(s for s in (*STOP_STRINGS.get(fmt, ()), *stop) if s)
        temp = self.settings.temperature if temperature is None else temperature
        yield from self.generate_tokens(prompt, max_tokens=max_tokens, temperature=temp,
                                        grammar=grammar, stop=stops, speculative=speculative)

    def generate_tokens(
        self,
        prompt: Sequence[int],
        *,
        max_tokens: int,
        temperature: float,
        grammar: str | None = None,
        stop: Sequence[str] = (),
        speculative: bool = False,
    ) -> Iterator[Chunk]:
        """The decode loop over an already tokenized prompt (benchmarks call it directly).

        `speculative`: prompt-lookup drafts verified in batches (engine/speculative.py),
        for replies that copy from the prompt (edits); same tokens as plain decoding.
        """
        if not prompt:
            raise EngineError("empty prompt")
        s = self.settings
        sampler = self._ll.sampler_chain(
            self.vocab, temperature=temperature, top_k=s.top_k, top_p=s.top_p, seed=s.seed,
            grammar=grammar,
        )
        stats = GenerationStats(prompt_tokens=len(prompt), image_tokens=sum(1 for t in prompt if t < 0))
        splitter = ThoughtSplitter()
        scanner = StopScanner(stop)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        start = time.perf_counter()
        first_at = start
        stats.stop_reason = "length"
        spec: Any = None
        tokens: Generator[int, None, None] | None = None
        consumed: list[int] = []
        stopped = False
        try:
            keep = self._reuse_prefix(prompt)
            stats.prompt_tokens_reused = keep
            stats.prompt_tokens_evaluated = len(prompt) - keep
            self._evaluate(prompt[keep:])  # text, and images (engine/vision.py)
            if self._window_limited and stats.prompt_tokens_evaluated:
                self._checkpoint.take(self.ctx, SEQ, len(self._tokens))
            stats.prefill_s = time.perf_counter() - start
            if speculative:
                from gemma_code.engine.speculative import PromptLookupDecoder

                spec = PromptLookupDecoder(self.ctx, sampler, self.vocab)
                tokens = spec.generate(list(prompt), max_tokens=max_tokens)
            else:
                tokens = self._plain_tokens(sampler, max_tokens)
            is_eog, piece, vocab = self._lc.llama_vocab_is_eog, self._piece_bytes, self.vocab
            for token in tokens:
                if not consumed:
                    first_at = time.perf_counter()
                    stats.time_to_first_token_s = first_at - start
                consumed.append(token)
                if is_eog(vocab, token):
                    stats.stop_reason = "stop"
                    break
                stats.completion_tokens += 1
                text, stopped = scanner.feed(decoder.decode(piece(token)))
                if text:
                    yield from splitter.feed(text)
                if stopped:
                    stats.stop_reason = "stop"
                    break
            if not stopped:
                tail = scanner.feed(decoder.decode(b"", final=True))[0] + scanner.flush()
                if tail:
                    yield from splitter.feed(tail)
            yield from splitter.finish()
        except GeneratorExit:
            stats.stop_reason = "interrupted"
            raise
        finally:
            if tokens is not None:
                tokens.close()
            self._lc.llama_sampler_free(sampler)
            if spec is not None:
                # the cache holds the prompt, then the emitted tokens (maybe a few verified
                # ones past what was consumed); keep exactly what we know
                self._tokens = ([*prompt, *consumed])[: spec.n_past]
                stats.draft_tokens = spec.stats.draft_tokens
                stats.draft_accepted = spec.stats.draft_accepted
            self._resync()
        stats.decode_s = time.perf_counter() - first_at if stats.completion_tokens else 0.0
        if stats.stop_reason != "interrupted":
            from gemma_code.engine.sizing import record_run

            record_run(self.path, self._meta, self.info.backend, self._threads, stats)
        yield Chunk("stats", stats=stats)

    def _plain_tokens(self, sampler: Any, max_tokens: int) -> Generator[int, None, None]:
        """Sample, and decode each token before handing it out (see the comment below)."""
        sample, is_eog, decode_one = (
            self._lc.llama_sampler_sample, self._lc.llama_vocab_is_eog, self._decode_one
        )
        ctx, vocab = self.ctx, self.vocab
        for count in range(1, max_tokens + 1):
            token = sample(sampler, ctx, -1)
            if count < max_tokens and not is_eog(vocab, token):
                # on a GPU llama_decode may return before the graph finishes: the caller's
                # text work (and the consumer's rendering) overlaps it until the next sample
                decode_one(token)
            yield token

    def _decode_one(self, token: int) -> None:
        self._one[0] = token
        rc = self._lc.llama_decode(self.ctx, self._lc.llama_batch_get_one(self._one, 1))
        if rc != 0:
            self._resync()
            raise EngineError(f"llama_decode failed (code {rc}) while generating")
        self._tokens.append(token)

    def close(self) -> None:
        """Free the images, the context and the model (idempotent)."""
        vision, self._vision = getattr(self, "_vision", None), None
        if vision is not None:
            vision.close()
        if self.ctx:
            self._lc.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            self._lc.llama_model_free(self.model)
            self.model = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _implements_kv_cache_engine(engine: LlamaCppEngine) -> KVCacheEngine:
    """mypy checks here that the llama.cpp engine keeps the KVCacheEngine contract."""
    return engine
