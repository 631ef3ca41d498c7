"""llama.cpp's `llama-bench`: the command lines `gemma-code bench` runs as its reference, and
the parse of their JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from gemma_code.engine.hardware import default_threads

if TYPE_CHECKING:
    from gemma_code.benchmark.speed import BenchPlan
    from gemma_code.config import Settings


def llama_bench_args(exe: str, path: Path, plan: BenchPlan, settings: Settings) -> list[list[str]]:
    """Two llama-bench runs: prefill sizes at depth 0; decode at depth 0 and deep."""
    common = [exe, "-m", str(path), "-o", "json", "-r", "2", "-b", str(settings.n_batch),
              "-ub", str(settings.n_batch), "-fa", "1" if settings.flash_attn else "0",
              "-ngl", "99" if settings.n_gpu_layers != 0 else "0"]
    common += ["-t", str(settings.n_threads or default_threads())]  # the engine's thread count
    sizes = ",".join(str(s) for s in plan.prefill_sizes)
    return [[*common, "-p", sizes, "-n", "0"],
            [*common, "-p", "0", "-n", str(plan.decode_tokens), "-d", f"0,{plan.deep}"]]


def parse_llama_bench(text: str) -> dict[str, float]:
    """llama-bench -o json -> {"prefill_N": tok/s, "decode_D": tok/s}."""
    out: dict[str, float] = {}
    for row in json.loads(text):
        n_prompt, n_gen = int(row.get("n_prompt", 0)), int(row.get("n_gen", 0))
        depth = int(row.get("n_depth", 0))
        rate = float(row["avg_ts"])
        if n_prompt and not n_gen and not depth:
            out[f"prefill_{n_prompt}"] = rate
        elif n_gen and not n_prompt:
            out[f"decode_{depth}"] = rate
    return out
