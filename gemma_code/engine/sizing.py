"""Defaults sized to the machine: on a CPU, a repository budget and answer length that keep
the first token within ~15 s and the whole answer within about a minute.

The built-in defaults (32,768 tokens of context, 2,048-token answers) suit a GPU, which reads
thousands of prompt tokens a second. A CPU reads ~100-1,000, so the same defaults leave a
newcomer staring at nothing for minutes. Only values no layer set are changed (flags,
environment and config files always win), and only lowered. Speeds come from earlier runs
of the same model on this machine (measured, kept in the cache folder) or, before the first,
from an estimate over the bytes of weights each token touches.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemma_code import paths
from gemma_code.atomic import write_text_atomic
from gemma_code.config import SIZABLE
from gemma_code.engine.base import GenerationStats

FIRST_TOKEN_S = 15.0  # target: time to read the prompt on a CPU
ANSWER_S = 40.0  # target: time to write the answer on a CPU
PROMPT_OVERHEAD = 300  # system rules, turn markers and a question, beside the repository context
MIN_BUDGET = 256  # the repository map, at least
MIN_MAX_TOKENS = 128
# Calibrated on 2 shared cores, load average ~12 (gemma3-270m Q4_K_M, 1 thread: 41 tok/s
# prompt reading, 9.5 tok/s writing; with two more busy processes 15 and 4): tokens a second
# a thread reaches per GB of weights a token touches, for prompt reading (a batch shares
# each weight read) and for writing (one token per pass). Kept on the slow side; the first
# real run replaces them with measured speeds.
PREFILL_TOK_GB_S = 8.0
DECODE_TOK_GB_S = 1.2
MIN_MEASURED_PROMPT = 128  # a shorter prefill says little about the speed
MIN_MEASURED_ANSWER = 16


@dataclass(frozen=True)
class Speeds:
    """Prompt reading and writing speed (tokens a second) and where they came from."""

    prefill: float
    decode: float
    measured: bool


def active_bytes(meta: Mapping[str, Any], sizes: Mapping[str, int]) -> int:
    """Bytes of weights one token's forward pass reads: MoE experts count by the share used."""
    arch = str(meta.get("general.architecture", ""))
    n_expert = int(meta.get(f"{arch}.expert_count", 0) or 0)
    n_used = int(meta.get(f"{arch}.expert_used_count", 0) or 0)
    share = n_used / n_expert if n_expert and n_used else 1.0
    total = 0.0
    for name, size in sizes.items():
        if name.startswith("token_embd.") and "output.weight" in sizes:
            continue  # a lookup table, not a matrix product, when the output has its own
        total += size * share if "_exps." in name else size
    return int(total)


def estimate(meta: Mapping[str, Any], sizes: Mapping[str, int], threads: int) -> Speeds:
    """Speeds estimated from the weights a token touches and the threads used."""
    gb = max(active_bytes(meta, sizes), 1) / 1e9
    threads = max(threads, 1)
    return Speeds(PREFILL_TOK_GB_S * threads / gb, DECODE_TOK_GB_S * threads / gb, False)


def speed_file() -> Path:
    return paths.cache_dir() / "speeds.json"


def speed_key(model_path: str, size: int, backend: str, threads: int) -> str:
    return f"{model_path}|{size}|{backend}|{threads}"


def _read() -> dict[str, Any]:
    try:
        data = json.loads(speed_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def measured(key: str) -> Speeds | None:
    """Speeds recorded by earlier runs with this key, or None."""
    entry = _read().get(key)
    if not isinstance(entry, dict):
        return None
    try:
        prefill, decode = float(entry["prefill"]), float(entry["decode"])
    except (KeyError, TypeError, ValueError):
        return None
    if prefill <= 0 or decode <= 0:
        return None
    return Speeds(prefill, decode, True)


def record(key: str, *, prefill: float | None, decode: float | None, fallback: Speeds) -> None:
    """Blend a run's speeds into the record (half old, half new); never fails the caller."""
    if prefill is None and decode is None:
        return
    data = _read()
    found = data.get(key)
    entry: dict[str, Any] = dict(found) if isinstance(found, dict) else {}
    for name, value, default in (("prefill", prefill, fallback.prefill),
                                 ("decode", decode, fallback.decode)):
        known = isinstance(entry.get(name), (int, float))
        if value is not None and value > 0:
            entry[name] = (float(entry[name]) + value) / 2 if known else value
        elif not known:
            entry[name] = default
    data[key] = entry
    with contextlib.suppress(OSError):
        write_text_atomic(speed_file(), json.dumps(data, indent=1, sort_keys=True))


def cpu_defaults(speeds: Speeds, *, budget: int, max_tokens: int) -> tuple[int, int]:
    """(budget, max_tokens) no larger than given, sized to the targets at these speeds."""
    fits = int(speeds.prefill * FIRST_TOKEN_S) - PROMPT_OVERHEAD
    sized_budget = min(budget, max(MIN_BUDGET, fits // 256 * 256))
    writes = int(speeds.decode * ANSWER_S) // 64 * 64
    sized_max = min(max_tokens, max(MIN_MAX_TOKENS, writes))
    return sized_budget, sized_max


def stable_budget(key: str, computed: int) -> int:
    """The budget chosen last time for this model and machine while `computed` is within 2x of
    it: the packed context, and with it the prompt cache's saved prefix, then stays the same
    from run to run although the measured speeds move a little every time."""
    data = _read()
    found = data.get(key)
    entry: dict[str, Any] = found if isinstance(found, dict) else {}
    old = entry.get("budget")
    if isinstance(old, int) and computed / 2 <= old <= computed * 2:
        return old
    data[key] = {**entry, "budget": computed}
    with contextlib.suppress(OSError):
        write_text_atomic(speed_file(), json.dumps(data, indent=1, sort_keys=True))
    return computed


def size_settings(settings: Any, speeds: Speeds, *, key: str | None = None) -> str | None:
    """Lower the sizable settings left at their defaults; a note saying so (None: unchanged).

    With `key` (engine_key), the budget sticks to the last one chosen (stable_budget).
    """
    keys = [k for k in getattr(settings, "sizable", ()) if k in SIZABLE]
    if not keys:
        return None
    budget, max_tokens = cpu_defaults(speeds, budget=settings.budget, max_tokens=settings.max_tokens)
    if key is not None and "budget" in keys and budget < settings.budget:
        budget = min(settings.budget, stable_budget(key, budget))
    changed: list[str] = []
    if "budget" in keys and budget < settings.budget:
        settings.budget = budget
        changed.append(f"--budget {budget:,}")
    if "max_tokens" in keys and max_tokens < settings.max_tokens:
        settings.max_tokens = max_tokens
        changed.append(f"--max-tokens {max_tokens:,}")
    if not changed:
        return None
    how = "measured" if speeds.measured else "estimated"
    return (
        f"CPU: sized for a first token in ~{FIRST_TOKEN_S:.0f} s at the {how} "
        f"{speeds.prefill:,.0f} tok/s prompt reading ({' and '.join(changed)}); "
        "raise them with those flags or `budget`/`max_tokens` in the config file"
    )


def engine_key(model: Path, backend: str, threads: int) -> str:
    """The record's key: the model file, the backend and the threads."""
    return speed_key(str(model), model.stat().st_size, backend, threads)


def engine_speeds(model: Path, meta: Mapping[str, Any], backend: str, threads: int) -> Speeds:
    """Speeds of `model` here: measured by earlier runs, else estimated from its tensors."""
    from gemma_code.models.gguf_header import tensor_sizes

    key = engine_key(model, backend, threads)
    return measured(key) or estimate(meta, tensor_sizes(model), threads)


def record_run(
    model: Path, meta: Mapping[str, Any], backend: str, threads: int, stats: GenerationStats
) -> None:
    """Remember a run's speeds (when it was long enough to tell) for the next run's defaults."""
    prefill = stats.prefill_tok_s if stats.prompt_tokens_evaluated >= MIN_MEASURED_PROMPT else None
    decode = stats.decode_tok_s if stats.completion_tokens >= MIN_MEASURED_ANSWER else None
    if prefill is None and decode is None:
        return
    with contextlib.suppress(OSError):
        key = engine_key(model, backend, threads)
        record(key, prefill=prefill, decode=decode,
               fallback=engine_speeds(model, meta, backend, threads))
