"""Thin helpers over llama-cpp-python's C API: logging, devices, tensor overrides, samplers.

Only engine modules import this, and only when a model is about to load: it imports llama_cpp.
"""

from __future__ import annotations

import ctypes
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp as lc

from gemma_code.errors import EngineError

LOG_ENV = "GEMMA_CODE_LLAMA_LOG"  # =1: let llama.cpp print its log to stderr
_log_lines: deque[str] = deque(maxlen=5000)  # a load logs a line per tensor
_log_partial = [""]
_initialized = [False]

KV_GGML_TYPES = {"f16": lc.GGML_TYPE_F16, "q8_0": lc.GGML_TYPE_Q8_0, "q4_0": lc.GGML_TYPE_Q4_0}
# llama.cpp's --cpu-moe pattern: the routed expert weights of every layer
EXPERTS_PATTERN = rb"\.ffn_(up|down|gate|gate_up)_exps"
DEVICE_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel"}


@lc.llama_log_callback  # type: ignore[untyped-decorator]
def _collect_log(level: int, text: bytes, user_data: Any) -> None:
    """Keep llama.cpp's log in memory (it is verbose); errors quote the last lines."""
    _log_partial[0] += text.decode("utf-8", errors="replace")
    *lines, _log_partial[0] = _log_partial[0].split("\n")
    _log_lines.extend(line for line in lines if line.strip())


def init_backend() -> None:
    """Initialise llama.cpp once, with its log captured unless GEMMA_CODE_LLAMA_LOG=1."""
    if _initialized[0]:
        return
    if os.environ.get(LOG_ENV) != "1":
        lc.llama_log_set(_collect_log, ctypes.c_void_p(0))
    lc.llama_backend_init()
    _initialized[0] = True


def log_tail(n: int = 5, *, contains: str | None = None) -> list[str]:
    """The last `n` captured log lines (optionally only those containing `contains`)."""
    lines = [line for line in _log_lines if contains is None or contains in line]
    return lines[-n:]


def clear_log() -> None:
    _log_lines.clear()


def _ggml() -> ctypes.CDLL:
    from llama_cpp._ggml import libggml

    lib: ctypes.CDLL = libggml
    if not getattr(lib, "_gemma_code_typed", False):
        lib.ggml_backend_dev_count.restype = ctypes.c_size_t
        lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
        lib.ggml_backend_dev_get.restype = ctypes.c_void_p
        for name in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_char_p
        lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_dev_type.restype = ctypes.c_int
        lib.ggml_backend_dev_memory.argtypes = [
            ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)
        ]
        lib.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
        lib.ggml_backend_dev_by_type.restype = ctypes.c_void_p
        lib.ggml_backend_dev_buffer_type.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_dev_buffer_type.restype = ctypes.c_void_p
        lib._gemma_code_typed = True  # type: ignore[attr-defined]
    return lib


@dataclass(frozen=True)
class Device:
    """A ggml backend device (CPU, CUDA0, Metal...) and its memory."""

    name: str
    description: str
    kind: str  # cpu | gpu | igpu | accel
    free: int
    total: int


def devices() -> list[Device]:
    """Every device the llama.cpp build can use."""
    init_backend()
    lib = _ggml()
    found = []
    for index in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(index)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        found.append(Device(
            (lib.ggml_backend_dev_name(dev) or b"").decode(),
            (lib.ggml_backend_dev_description(dev) or b"").decode(),
            DEVICE_TYPES.get(lib.ggml_backend_dev_type(dev), "other"), free.value, total.value,
        ))
    return found


def gpu_offload() -> bool:
    """Whether this llama.cpp build can offload layers to a GPU."""
    return bool(lc.llama_supports_gpu_offload())


def arch_supported(arch: str) -> bool | None:
    """Whether the loaded libllama knows `arch` (its name table is in the binary); None: unknown."""
    lib = Path(lc.__file__).parent / "lib"
    for name in ("libllama.so", "libllama.dylib", "llama.dll"):
        if (lib / name).exists():
            return b"\0" + arch.encode() + b"\0" in (lib / name).resolve().read_bytes()
    return None


def backend_name() -> str:
    """cuda | metal | vulkan | ... for a GPU build, else cpu."""
    if not lc.llama_supports_gpu_offload():
        return "cpu"
    for dev in devices():
        if dev.kind in {"gpu", "igpu"}:
            return dev.name.rstrip("0123456789").lower() or "gpu"
    return "cpu"


class ExpertOverrides:
    """A NULL-terminated llama_model_tensor_buft_override array: MoE experts in CPU memory."""

    class _Override(ctypes.Structure):
        _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]

    def __init__(self) -> None:
        lib = _ggml()
        cpu = lib.ggml_backend_dev_by_type(0)
        buft = lib.ggml_backend_dev_buffer_type(cpu) if cpu else None
        if not buft:
            raise EngineError("llama.cpp has no CPU buffer type for the MoE expert override")
        # kept as attributes: llama.cpp reads them during the load
        self.pattern = ctypes.create_string_buffer(EXPERTS_PATTERN)
        self.array = (self._Override * 2)()
        self.array[0].pattern = ctypes.cast(self.pattern, ctypes.c_char_p)
        self.array[0].buft = buft

    @property
    def pointer(self) -> int:
        return ctypes.addressof(self.array)


def sampler_chain(
    vocab: Any,
    *,
    temperature: float,
    top_k: int,
    top_p: float,
    seed: int,
    grammar: str | None = None,
) -> Any:
    """llama.cpp's C sampler chain: [grammar] then greedy, or top_k -> top_p -> temp -> dist."""
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    if grammar is not None:
        # grammar first: it must see every candidate, or a constrained token may be cut
        clear_log()
        gsampler = lc.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
        if not gsampler:
            lc.llama_sampler_free(chain)
            detail = "; ".join(log_tail(2)) or "parse error"
            raise EngineError(f"invalid GBNF grammar: {detail}", "check the grammar's `root` rule")
        lc.llama_sampler_chain_add(chain, gsampler)
    if temperature <= 0:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        return chain
    if top_k > 0:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(top_k))
    if 0 < top_p < 1:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(top_p, 1))
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(temperature))
    lc.llama_sampler_chain_add(
        chain, lc.llama_sampler_init_dist(seed if seed >= 0 else lc.LLAMA_DEFAULT_SEED)
    )
    return chain


def meta_str(model: Any, key: str, size: int = 1 << 20) -> str | None:
    """A model metadata value as text (None when absent)."""
    buf = ctypes.create_string_buffer(size)
    n = lc.llama_model_meta_val_str(model, key.encode(), buf, size)
    if n < 0:
        return None
    return buf.value.decode("utf-8", errors="replace")


def tokenize(vocab: Any, text: str, *, special: bool = True) -> list[int]:
    """Tokens of `text`, no BOS added (prompts carry <bos>); `special`: parse control tokens."""
    raw = text.encode("utf-8")
    capacity = len(raw) + 8
    while True:
        out = (lc.llama_token * capacity)()
        n = lc.llama_tokenize(vocab, raw, len(raw), out, capacity, False, special)
        if n >= 0:
            return list(out[:n])
        capacity = -n
