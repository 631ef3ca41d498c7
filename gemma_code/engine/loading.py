"""Loading a GGUF and creating its context through llama.cpp, with one-line errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import llama_cpp as lc

from gemma_code.config import Settings
from gemma_code.engine import lowlevel as ll
from gemma_code.engine.fit import Plan
from gemma_code.engine.hardware import default_threads
from gemma_code.errors import EngineError, GemmaCodeError, UnsupportedModelError

NEEDED = "llama-cpp-python 0.3.36 or later (it runs gemma4)"


def load_model(path: Path, arch: str, n_gpu_layers: int, cpu_moe: bool) -> tuple[Any, list[str]]:
    """(llama_model, llama.cpp's tensor-override confirmations); errors name the fix."""
    params = lc.llama_model_default_params()
    params.n_gpu_layers = n_gpu_layers  # negative: every layer
    overrides = ll.ExpertOverrides() if cpu_moe else None  # alive until the load returns
    if overrides is not None:
        params.tensor_buft_overrides = overrides.pointer
    ll.clear_log()
    model = lc.llama_model_load_from_file(str(path).encode(), params)
    if model:
        # e.g. "tensor blk.0.ffn_down_exps.weight (...) buffer type overridden to CPU"
        return model, ll.log_tail(10_000, contains="buffer type overridden")
    if ll.log_tail(1, contains="unknown model architecture"):
        raise UnsupportedModelError(
            f"this llama.cpp build cannot run {path.name} (architecture {arch!r})",
            f"install {NEEDED}: pip install -U 'llama-cpp-python>=0.3.36'",
        )
    detail = "; ".join(ll.log_tail(2, contains="error")) or "see GEMMA_CODE_LLAMA_LOG=1"
    raise EngineError(
        f"llama.cpp could not load {path.name}: {detail}",
        "the file may be truncated or made for another llama.cpp; download it again "
        "or run with GEMMA_CODE_LLAMA_LOG=1 for llama.cpp's log",
    )


def create_context(model: Any, plan: Plan, settings: Settings, n_outputs_max: int) -> tuple[Any, int]:
    """(llama_context, n_batch) for `plan`: flash attention, swa_full, KV type, threads."""
    s = settings
    if plan.kv_type not in ll.KV_GGML_TYPES:
        raise EngineError(f"unknown KV cache type {plan.kv_type!r}", "use f16, q8_0 or q4_0")
    if plan.kv_type != "f16" and not s.flash_attn:
        raise EngineError(f"a {plan.kv_type} KV cache needs flash attention", "set flash_attn = true")
    params = lc.llama_context_default_params()
    params.n_ctx = plan.n_ctx
    params.n_batch = params.n_ubatch = max(32, min(s.n_batch, plan.n_ctx))
    params.n_outputs_max = n_outputs_max
    params.n_threads = params.n_threads_batch = s.n_threads if s.n_threads > 0 else default_threads()
    params.flash_attn_type = (
        lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if s.flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )
    params.swa_full = s.swa_full
    params.type_k = params.type_v = ll.KV_GGML_TYPES[plan.kv_type]
    params.no_perf = True
    ll.clear_log()
    ctx = lc.llama_init_from_model(model, params)
    if not ctx:
        detail = "; ".join(ll.log_tail(2)) or "no detail"
        raise EngineError(
            f"llama.cpp could not create a {plan.n_ctx:,}-token context ({detail})",
            "lower --n-ctx or set kv_type = \"q8_0\" (out of memory is the usual cause)",
        )
    return ctx, int(params.n_batch)


def model_name(spec: str, path: Path) -> str:
    """The registry name when `spec` is a registry name or alias that gave `path`, else the file's stem."""
    from gemma_code.models import entry_path, find_entry

    try:
        entry = find_entry(spec) if spec.strip() else None
    except GemmaCodeError:  # a broken user registry: the model was loaded by path anyway
        return path.stem
    if entry is not None:
        target, real = entry_path(entry).resolve(), path.resolve()
        if real == target or target in real.parents:
            return entry.name
    return path.stem


def with_actual_n_ctx(plan: Plan, n_ctx: int) -> Plan:
    """`plan` telling the context llama.cpp really made (it rounds small ones up, 64 to 256)."""
    if n_ctx == plan.n_ctx:
        return plan
    reason = plan.reason.replace(f"n_ctx {plan.n_ctx:,}", f"n_ctx {n_ctx:,}")
    note = f"llama.cpp made a {n_ctx:,}-token context for the {plan.n_ctx:,} asked"
    return replace(plan, n_ctx=n_ctx, reason=reason, notes=(*plan.notes, note))
