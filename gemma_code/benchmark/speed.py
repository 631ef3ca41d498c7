"""The measurements behind `gemma-code bench`: our engine against llama.cpp's own loop.

Both sides run in the same process, one after the other, on the same model and context
size: load time, prefill speed at several prompt sizes, decode speed at depth 0 and deep
into the context, time to first token cold and with the prefix reused, and the speculative
speed-up on a copy-heavy edit. The reference is `llama-bench` when it is on PATH (prefill
and decode) and otherwise `engine.raw.RawLlama`, a minimal loop over the C API.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemma_code.benchmark.prompts import K, corpus_tokens, edit_prompt
from gemma_code.config import Settings
from gemma_code.engine.base import GenerationStats, KVCacheEngine
from gemma_code.errors import EngineError

if TYPE_CHECKING:
    from gemma_code.engine.raw import RawLlama

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchPlan:
    """What to measure; sizes are prompt tokens."""

    prefill_sizes: tuple[int, ...]
    decode_tokens: int
    deep: int  # the depth of the second decode figure
    followup_tokens: int = 64
    edit_tokens: int = 128
    max_draft: int = 8
    edit_chars: int = 6 * K  # of source in the edit prompt: about 1.7K tokens
    repeats: int = 1  # each figure is the best of this many runs

    @property
    def n_ctx(self) -> int:
        """Context needed by the largest prompt plus generation, rounded up to 256."""
        need = max(*self.prefill_sizes, self.deep) + self.followup_tokens + self.decode_tokens + 64
        need = max(need, self.edit_chars // 3 + 64 + self.edit_tokens)
        return (need + 255) // 256 * 256

    @property
    def ttft_size(self) -> int:
        """The prompt size whose first-token time is reported (8K, or the nearest below)."""
        below = [s for s in self.prefill_sizes if s <= 8 * K]
        return max(below) if below else min(self.prefill_sizes)


def make_plan(*, quick: bool, gpu: bool, n_ctx_limit: int = 0) -> BenchPlan:
    """Full sizes on a GPU (1K, 8K, 32K and on to n_ctx when it fits); small ones otherwise."""
    if quick or not gpu:
        # a CPU prefills a few hundred tokens a second: keep a run within a few minutes
        sizes: tuple[int, ...] = (256, 1 * K) if quick else (1 * K, 4 * K)
        # a shared CPU is noisy: each figure is the best of 3 runs
        return BenchPlan(sizes, decode_tokens=32 if quick else 64, deep=sizes[-1],
                         edit_tokens=64 if quick else 128, repeats=3)
    sizes = (1 * K, 8 * K, 32 * K)
    limit = n_ctx_limit or 128 * K
    size = 64 * K
    while size + 2 * K <= limit:
        sizes += (size,)
        size *= 2
    return BenchPlan(sizes, decode_tokens=128, deep=32 * K, edit_tokens=256)


@dataclass
class Figure:
    """One measured quantity for our engine and for llama.cpp's own loop."""

    key: str
    label: str
    unit: str  # tok/s | s | x
    ours: float | None = None
    reference: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """How fast we are relative to llama.cpp (>1: faster), for rates and for times."""
        if not self.ours or not self.reference:
            return None
        return self.ours / self.reference if self.unit != "s" else self.reference / self.ours

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = None if self.ratio is None else round(self.ratio, 4)
        return data


@dataclass
class BenchReport:
    """Everything `gemma-code bench` prints."""

    model: str
    backend: str
    device: str
    reference: str  # llama-bench | low-level loop
    plan: BenchPlan
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    date: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def figure(self, key: str, label: str, unit: str) -> Figure:
        for fig in self.figures:
            if fig.key == key:
                return fig
        fig = Figure(key, label, unit)
        self.figures.append(fig)
        return fig

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "backend": self.backend, "device": self.device,
            "reference": self.reference, "date": self.date, "plan": asdict(self.plan),
            "figures": [f.to_dict() for f in self.figures], "notes": list(self.notes),
        }


def size_label(n: int) -> str:
    return f"{n // K}K" if n % K == 0 else str(n)


# -- our engine --------------------------------------------------------------------------------


def _generate(engine: KVCacheEngine, prompt: Sequence[int], max_tokens: int, *,
              speculative: bool = False) -> GenerationStats:
    """Run the engine's token-level decode loop greedily; return its GenerationStats."""
    stats = None
    for chunk in engine.generate_tokens(prompt, max_tokens=max_tokens, temperature=0.0,
                                        speculative=speculative):
        if chunk.stats is not None:
            stats = chunk.stats
    if stats is None:
        raise EngineError("the engine returned no stats")
    return stats


def measure_ours(path: Path, settings: Settings, plan: BenchPlan, report: BenchReport,
                 progress: Progress) -> None:
    """Load our engine and fill in the `ours` column (best of plan.repeats for each figure)."""
    import gemma_code.engine.lowlevel  # noqa: F401  # loads llama_cpp untimed, as on the reference side
    from gemma_code.engine.llamacpp import LlamaCppEngine

    progress("ours: load")
    began = time.perf_counter()
    engine = LlamaCppEngine(path, settings)
    report.figure("load", "load time", "s").ours = time.perf_counter() - began
    report.backend, report.device = engine.info.backend, _device_name(engine.info.backend)
    reps = range(plan.repeats)
    try:
        tok = engine.tokenize
        bos = tok("<bos>")[:1]
        for index, size in enumerate(plan.prefill_sizes):
            progress(f"ours: prefill {size_label(size)}")
            prompts = [bos + corpus_tokens(tok, size - len(bos), salt=index * 100 + r) for r in reps]
            runs = [_generate(engine, prompt, 1) for prompt in prompts]
            report.figure(f"prefill_{size}", f"prefill {size_label(size)}", "tok/s").ours = max(
                r.prefill_tok_s for r in runs)
            if size == plan.ttft_size:
                report.figure("ttft", f"first token, {size_label(size)} prompt", "s").ours = min(
                    r.time_to_first_token_s for r in runs)
                progress("ours: follow-up")
                follows = [_generate(engine, prompts[-1] + corpus_tokens(
                    tok, plan.followup_tokens, salt=999 + r), 1) for r in reps]
                fig = report.figure("followup_ttft", f"first token, follow-up (+{plan.followup_tokens})", "s")
                fig.ours = min(f.time_to_first_token_s for f in follows)
                fig.note = f"{follows[-1].prompt_tokens_reused:,} tokens reused"
        for depth in (0, plan.deep):
            progress(f"ours: decode at depth {size_label(depth)}")
            runs = [_generate(engine, bos + corpus_tokens(tok, max(depth, 16), salt=depth + 7 + r),
                              plan.decode_tokens) for r in reps]
            fig = report.figure(f"decode_{depth}", f"decode at depth {size_label(depth)}", "tok/s")
            fig.ours = max(r.decode_tok_s for r in runs)
            if min(r.completion_tokens for r in runs) < plan.decode_tokens:
                fig.note = f"stopped after {min(r.completion_tokens for r in runs)} tokens"
        progress("ours: edit task")
        edit = tok(edit_prompt(engine.info.chat_format, plan.edit_chars))
        plain = max((_generate(engine, edit, plan.edit_tokens) for _ in reps),
                    key=lambda st: st.decode_tok_s)
        spec = max((_generate(engine, edit, plan.edit_tokens, speculative=True) for _ in reps),
                   key=lambda st: st.decode_tok_s)
        report.figure("edit_plain", "edit reply, plain decode", "tok/s").ours = plain.decode_tok_s
        fig = report.figure("edit_spec", "edit reply, speculative", "tok/s")
        fig.ours = spec.decode_tok_s
        fig.note = f"{spec.draft_accepted}/{spec.draft_tokens} draft tokens accepted"
        if plain.decode_tok_s:
            report.figure("spec_speedup", "speculative speed-up (edit)", "x").ours = (
                spec.decode_tok_s / plain.decode_tok_s)
    finally:
        engine.close()


def _device_name(backend: str) -> str:
    if backend == "cpu":
        import os
        import platform

        return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    from gemma_code.engine.hardware import nvidia_gpus

    gpus = nvidia_gpus()
    return gpus[0].name if gpus else backend


# -- llama.cpp's own loop ----------------------------------------------------------------------


def measure_reference(path: Path, settings: Settings, plan: BenchPlan, report: BenchReport,
                      progress: Progress, *, n_ctx: int) -> None:
    """Fill in the `reference` column with RawLlama (best of plan.repeats for each figure)."""
    from gemma_code.engine.raw import RawLlama

    progress("llama.cpp: load")
    raw = RawLlama(path, n_ctx=n_ctx, n_batch=settings.n_batch, n_threads=settings.n_threads,
                   n_gpu_layers=settings.n_gpu_layers, flash_attn=settings.flash_attn,
                   swa_full=settings.swa_full)
    reps = range(plan.repeats)
    try:
        report.figure("load", "load time", "s").reference = raw.load_s

        def tok(text: str) -> list[int]:
            return raw.tokenize(text, add_special=False)

        bos = tok("<bos>")[:1]
        for index, size in enumerate(plan.prefill_sizes):
            progress(f"llama.cpp: prefill {size_label(size)}")
            prompt: list[int] = []
            times = []
            for r in reps:
                prompt = bos + corpus_tokens(tok, size - 1, salt=index * 100 + r)
                raw.clear()
                times.append(_timed_prefill(raw, prompt, 0))
            report.figure(f"prefill_{size}", f"prefill {size_label(size)}", "tok/s").reference = (
                len(prompt) / min(times))
            if size == plan.ttft_size:
                report.figure("ttft", "", "s").reference = min(times)
                follow = []
                for r in reps:  # each follow-up replaces the last one after the cached prompt
                    raw.trim(len(prompt))
                    more = corpus_tokens(tok, plan.followup_tokens, salt=999 + r)
                    follow.append(_timed_prefill(raw, more, len(prompt)))
                report.figure("followup_ttft", "", "s").reference = min(follow)
        for depth in (0, plan.deep):
            progress(f"llama.cpp: decode at depth {size_label(depth)}")
            rates = [_raw_decode(raw, bos + corpus_tokens(tok, max(depth, 16), salt=depth + 7 + r),
                                 plan.decode_tokens, stop_at_eog=False)[0] for r in reps]
            report.figure(f"decode_{depth}", "", "tok/s").reference = max(rates)
        progress("llama.cpp: edit task")
        edit = tok(edit_prompt(_raw_format(raw), plan.edit_chars))
        plain_rate = max(_raw_decode(raw, edit, plan.edit_tokens)[0] for _ in reps)
        specs = [_raw_decode(raw, edit, plan.edit_tokens, max_draft=plan.max_draft) for _ in reps]
        spec_rate, accepted, drafted = max(specs)
        report.figure("edit_plain", "edit reply, plain decode", "tok/s").reference = plain_rate
        fig = report.figure("edit_spec", "edit reply, speculative", "tok/s")
        fig.reference = spec_rate
        if not fig.note:
            fig.note = f"{accepted}/{drafted} accepted (raw loop)"
        report.figure("spec_speedup", "speculative speed-up (edit)", "x").reference = (
            spec_rate / plain_rate)
    finally:
        raw.close()


def _timed_prefill(raw: RawLlama, tokens: Sequence[int], start: int) -> float:
    """Seconds to prefill `tokens` at `start` and sample the first token."""
    began = time.perf_counter()
    raw.prefill(tokens, start=start)
    raw.sample(-1)
    return time.perf_counter() - began


def _raw_decode(raw: RawLlama, prompt: Sequence[int], n: int, *, max_draft: int = 0,
                stop_at_eog: bool = True) -> tuple[float, int, int]:
    """Greedy decode rate after `prompt` on the C-API loop (speculative when max_draft > 0).

    Returns (tokens/s after the first token, draft tokens accepted, draft tokens proposed).
    """
    from gemma_code.engine.speculative import PromptLookupDecoder

    raw.clear()
    raw.prefill(prompt)
    first = raw.sample(-1)
    began = time.perf_counter()
    if max_draft <= 0:
        out = raw.decode(first, len(prompt), n, stop_at_eog=stop_at_eog)
        return (len(out) - 1) / (time.perf_counter() - began), 0, 0
    decoder = PromptLookupDecoder(raw.ctx, raw.sampler, raw.vocab, max_draft=max_draft)
    try:
        out = list(decoder.tokens(prompt, first, n_past=len(prompt), max_tokens=n))
    finally:
        decoder.close()
    rate = (len(out) - 1) / (time.perf_counter() - began)
    return rate, decoder.stats.draft_accepted, decoder.stats.draft_tokens


def _raw_format(raw: RawLlama) -> str:
    """The prompt format the raw model's metadata calls for."""
    import ctypes

    from gemma_code.engine.chat_templates import detect_format

    def meta(key: bytes) -> str | None:
        buf = ctypes.create_string_buffer(1 << 20)
        n = raw._lib.llama_model_meta_val_str(raw.model, key, buf, 1 << 20)
        return buf.value.decode("utf-8", "replace") if n >= 0 else None

    return detect_format(meta(b"general.architecture") or "", meta(b"tokenizer.chat_template"))


# -- llama-bench -------------------------------------------------------------------------------


def measure_llama_bench(exe: str, path: Path, plan: BenchPlan, settings: Settings,
                        report: BenchReport, progress: Progress) -> bool:
    """Overwrite prefill/decode references with llama-bench's figures; False if it failed."""
    from gemma_code.benchmark.llama_bench import llama_bench_args, parse_llama_bench

    found: dict[str, float] = {}
    for args in llama_bench_args(exe, path, plan, settings):
        progress("llama-bench " + " ".join(args[-4:]))
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            report.notes.append(f"llama-bench failed ({result.stderr.strip()[-200:]})")
            return False
        found.update(parse_llama_bench(result.stdout))
    for key, rate in found.items():
        for fig in report.figures:
            if fig.key == key:
                fig.reference = rate
    return True


# -- the whole run -----------------------------------------------------------------------------


def run_bench(path: Path, settings: Settings, *, quick: bool = False, gpu: bool | None = None,
              progress: Progress | None = None, llama_bench: str | None = None,
              plan: BenchPlan | None = None) -> BenchReport:
    """Measure our engine, then llama.cpp's own loop, on the model at `path`."""
    from gemma_code.engine.lowlevel import backend_name

    say = progress or (lambda _: None)
    on_gpu = (backend_name() != "cpu" and settings.n_gpu_layers != 0) if gpu is None else gpu
    plan = plan or make_plan(quick=quick, gpu=on_gpu, n_ctx_limit=settings.n_ctx)
    exe = llama_bench if llama_bench is not None else shutil.which("llama-bench")
    report = BenchReport(path.name, "?", "?", "llama-bench" if exe else "low-level loop", plan)
    from gemma_code.engine.hardware import default_threads

    # both sides get the same context size and thread count
    threads = settings.n_threads or default_threads()
    fixed = replace(settings, n_ctx=plan.n_ctx, engine="llamacpp", n_threads=threads)
    measure_ours(path, fixed, plan, report, say)
    measure_reference(path, fixed, plan, report, say, n_ctx=plan.n_ctx)
    if exe and not measure_llama_bench(exe, path, plan, fixed, report, say):
        report.reference = "low-level loop (llama-bench failed)"
    return report
