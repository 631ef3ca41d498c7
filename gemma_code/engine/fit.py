"""Fitting the card: choose n_ctx, the KV cache type and where MoE experts live.

Pure functions over the model's facts (from its GGUF header) and the free memory. The
estimates are calibrated on Gemma 4 26B A4B Q4_K_M on an H200 (gemma4-facts.md): 22.1 GiB
for n_ctx 262,144 with an f16 KV cache, 20.4 GiB with q8_0, weights included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gemma_code.config import CHOICES
from gemma_code.errors import ConfigError

GiB = 1024**3
MiB = 1024**2

KV_BYTES = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}  # bytes per cached element
KV_TYPES = tuple(KV_BYTES)
CPU_DEFAULT_CTX = 32768  # no GPU: prefill is slow, so a modest window
MIN_GPU_CTX = 32768  # below this, moving experts to the CPU beats shrinking the window
OVERHEAD = 1229 * MiB  # CUDA context + compute buffers (measured: 22.1 GiB - weights - KV)
MARGIN = 512 * MiB  # free memory left untouched for the desktop and fragmentation
SWA_PATTERNS = {"gemma2": 2, "gemma3": 6}  # every Nth layer is global when no key says so


@dataclass(frozen=True)
class ModelFacts:
    """What the planner needs to know about a model, read from its GGUF header."""

    arch: str
    n_layers: int
    context_length: int
    sliding: tuple[bool, ...]  # per layer: True = sliding-window attention
    n_kv_heads: tuple[int, ...]  # per layer
    k_len: int
    v_len: int
    k_len_swa: int
    v_len_swa: int
    window: int  # sliding window in tokens (0: none)
    file_size: int
    expert_bytes: int = 0  # bytes of the MoE expert tensors (*_exps)

    @property
    def is_moe(self) -> bool:
        return self.expert_bytes > 0


@dataclass(frozen=True)
class Memory:
    """Free memory to plan against; gpu_free None means no usable GPU."""

    gpu_free: int | None = None
    gpu_name: str = ""
    ram_free: int | None = None


@dataclass(frozen=True)
class Plan:
    """The chosen settings and a sentence saying why."""

    n_ctx: int
    kv_type: str
    cpu_moe: bool
    n_gpu_layers: int  # -1: all
    estimate: int  # bytes of GPU (or RAM) memory expected
    reason: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_ctx": self.n_ctx, "kv_type": self.kv_type, "cpu_moe": self.cpu_moe,
            "n_gpu_layers": self.n_gpu_layers, "estimate_gib": round(self.estimate / GiB, 2),
            "reason": self.reason, "notes": list(self.notes),
        }


def _per_layer(value: Any, n_layers: int, default: int) -> tuple[int, ...]:
    if isinstance(value, list):
        return tuple(int(v) for v in value[:n_layers])
    return (int(value) if value is not None else default,) * n_layers


def facts_from_metadata(
    meta: Mapping[str, Any], file_size: int, expert_bytes: int = 0
) -> ModelFacts:
    """ModelFacts from a GGUF's metadata (gemma_code.models.gguf_header.read_metadata)."""
    arch = str(meta.get("general.architecture", "unknown"))

    def get(key: str, default: Any = None) -> Any:
        return meta.get(f"{arch}.{key}", default)

    n_layers = int(get("block_count", 0))
    heads = get("attention.head_count", 1)
    n_head = int(heads[0] if isinstance(heads, list) else heads) or 1
    embd = int(get("embedding_length", 0))
    k_len = int(get("attention.key_length", embd // n_head))
    v_len = int(get("attention.value_length", k_len))
    window = int(get("attention.sliding_window", 0) or 0)
    pattern = get("attention.sliding_window_pattern")
    if isinstance(pattern, list):
        sliding = tuple(bool(p) for p in pattern[:n_layers])
    elif window and arch in SWA_PATTERNS:
        every = SWA_PATTERNS[arch]
        sliding = tuple((i + 1) % every != 0 for i in range(n_layers))
    else:
        sliding = (False,) * n_layers
    return ModelFacts(
        arch=arch, n_layers=n_layers, context_length=int(get("context_length", 4096)),
        sliding=sliding, n_kv_heads=_per_layer(get("attention.head_count_kv"), n_layers, n_head),
        k_len=k_len, v_len=v_len, k_len_swa=int(get("attention.key_length_swa", k_len)),
        v_len_swa=int(get("attention.value_length_swa", v_len)), window=window,
        file_size=file_size, expert_bytes=expert_bytes,
    )


def kv_bytes(facts: ModelFacts, n_ctx: int, kv_type: str, *, n_ubatch: int = 512) -> int:
    """KV cache size: full layers hold n_ctx cells; sliding layers (swa_full=False) window + ubatch."""
    per = KV_BYTES[kv_type]
    swa_cells = min(n_ctx, _round_up(facts.window + n_ubatch, 256)) if facts.window else n_ctx
    total = 0.0
    for sliding, heads in zip(facts.sliding, facts.n_kv_heads, strict=False):
        if sliding:
            total += swa_cells * heads * (facts.k_len_swa + facts.v_len_swa) * per
        else:
            total += n_ctx * heads * (facts.k_len + facts.v_len) * per
    return int(total)


def _round_up(value: int, step: int) -> int:
    return (value + step - 1) // step * step


def gpu_bytes(facts: ModelFacts, n_ctx: int, kv_type: str, *, cpu_moe: bool) -> int:
    """Expected GPU memory for all layers offloaded: weights + KV + buffers."""
    weights = facts.file_size - (facts.expert_bytes if cpu_moe else 0)
    total = weights + kv_bytes(facts, n_ctx, kv_type) + int(OVERHEAD)
    if kv_type != "f16":
        # flash attention converts a quantized cache to f16 one layer at a time
        full = [h for s, h in zip(facts.sliding, facts.n_kv_heads, strict=False) if not s] or [0]
        total += n_ctx * max(full) * (facts.k_len + facts.v_len) * 2
    return total


def check_choices(kv_type: str, cpu_moe: str) -> None:
    """ConfigError for a kv_type or cpu_moe the settings do not allow (set in code, not loaded)."""
    for key, value in (("kv_type", kv_type), ("cpu_moe", cpu_moe)):
        if value not in CHOICES[key]:
            raise ConfigError(
                f"{key} {value!r} is not one of {', '.join(CHOICES[key])}",
                f"fix `{key}` (gemma-code config show says where it is set)",
            )


def plan(
    facts: ModelFacts,
    memory: Memory,
    *,
    n_ctx: int = 0,
    kv_type: str = "auto",
    cpu_moe: str = "auto",
) -> Plan:
    """Choose n_ctx, KV type and expert placement; user settings (non-zero/non-auto) win."""
    check_choices(kv_type, cpu_moe)
    want = min(n_ctx, facts.context_length) if n_ctx else facts.context_length
    notes: list[str] = []
    if n_ctx > facts.context_length:
        notes.append(f"n_ctx {n_ctx:,} is above the model's {facts.context_length:,}; capped")
    kv_choices = [kv_type] if kv_type != "auto" else ["f16", "q8_0"]
    if memory.gpu_free is None:
        return _plan_cpu(facts, memory, n_ctx, want, kv_choices, notes)
    budget = memory.gpu_free - MARGIN
    moe_choices = {"on": [True], "off": [False]}.get(cpu_moe, [False, True])
    if not facts.is_moe:
        moe_choices = [False]
    floor = min(MIN_GPU_CTX, want)
    for moe in moe_choices:
        for kv in kv_choices:
            need = gpu_bytes(facts, want, kv, cpu_moe=moe)
            if need <= budget:
                return Plan(want, kv, moe, -1, need, _why(facts, memory, want, kv, moe), tuple(notes))
        if n_ctx:
            continue  # the user fixed n_ctx: try the next placement rather than shrinking it
        kv = kv_choices[-1]
        fit = _largest_ctx(facts, kv, moe, budget, floor, want)
        if fit:
            reason = _why(facts, memory, fit, kv, moe) + (
                f"; {want:,} tokens would need {gpu_bytes(facts, want, kv, cpu_moe=moe) / GiB:.1f} GiB"
            )
            return Plan(fit, kv, moe, -1, gpu_bytes(facts, fit, kv, cpu_moe=moe), reason, tuple(notes))
    return _plan_partial(facts, memory, n_ctx or min(want, CPU_DEFAULT_CTX), kv_choices[-1], notes)


def _largest_ctx(
    facts: ModelFacts, kv: str, moe: bool, budget: int, floor: int, want: int
) -> int | None:
    """The largest n_ctx (a multiple of 4,096) in [floor, want] that fits `budget`."""
    if gpu_bytes(facts, floor, kv, cpu_moe=moe) > budget:
        return None
    low, high = floor, want
    while high - low > 4096:
        mid = (low + high) // 2 // 4096 * 4096
        if mid <= low:
            break
        if gpu_bytes(facts, mid, kv, cpu_moe=moe) <= budget:
            low = mid
        else:
            high = mid
    return low


def _plan_cpu(
    facts: ModelFacts, memory: Memory, n_ctx: int, want: int, kv_choices: list[str],
    notes: list[str],
) -> Plan:
    ctx = want if n_ctx else min(want, CPU_DEFAULT_CTX)
    kv = kv_choices[0]
    if memory.ram_free is not None and len(kv_choices) > 1:
        room = memory.ram_free - facts.file_size - MARGIN
        if kv_bytes(facts, ctx, kv) > room:
            kv = kv_choices[-1]
    need = facts.file_size + kv_bytes(facts, ctx, kv)
    reason = f"no GPU: running on the CPU with n_ctx {ctx:,} and KV cache {kv}"
    if not n_ctx and ctx < facts.context_length:
        reason += f" (the model allows {facts.context_length:,}; raise it with --n-ctx)"
    if memory.ram_free is not None and need > memory.ram_free:
        notes.append(
            f"needs about {need / GiB:.1f} GiB of RAM but {memory.ram_free / GiB:.1f} GiB is free"
        )
    return Plan(ctx, kv, False, 0, need, reason, tuple(notes))


def _plan_partial(
    facts: ModelFacts, memory: Memory, ctx: int, kv: str, notes: list[str]
) -> Plan:
    """Even with experts on the CPU nothing fits: offload as many layers as fit."""
    assert memory.gpu_free is not None
    budget = memory.gpu_free - MARGIN - OVERHEAD - kv_bytes(facts, ctx, kv)
    per_layer = facts.file_size / max(facts.n_layers + 1, 1)
    layers = max(0, min(facts.n_layers, int(budget // per_layer)))
    reason = (
        f"{memory.gpu_name or 'the GPU'} has {memory.gpu_free / GiB:.1f} GiB free, too little for "
        f"the whole model: {layers} of {facts.n_layers} layers on the GPU, n_ctx {ctx:,}, {kv} KV"
    )
    notes.append("expect slow decoding; a smaller quant of the model would fit better")
    return Plan(ctx, kv, False, layers, memory.gpu_free, reason, tuple(notes))


def _why(facts: ModelFacts, memory: Memory, ctx: int, kv: str, moe: bool) -> str:
    assert memory.gpu_free is not None
    where = "MoE experts on the CPU, the rest" if moe else "all layers"
    return (
        f"{memory.gpu_name or 'GPU'}: {memory.gpu_free / GiB:.1f} GiB free; {where} on the GPU "
        f"with n_ctx {ctx:,} and KV cache {kv} "
        f"(about {gpu_bytes(facts, ctx, kv, cpu_moe=moe) / GiB:.1f} GiB)"
    )
