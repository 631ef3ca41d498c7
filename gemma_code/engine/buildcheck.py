"""Build llama.cpp for this CPU and prove that the build runs here.

install.sh runs this file with a bare Python, before gemma-code is installed, so it uses only the
standard library (and llama_cpp for `check`):

    python gemma_code/engine/buildcheck.py flags [--conservative]   # CMAKE_ARGS for this CPU
    python gemma_code/engine/buildcheck.py check                     # decode a few tokens

Why explicit flags instead of llama.cpp's `-march=native`: on Intel CPUs with AMX (Sapphire
Rapids and later) the native build compiles llama.cpp's AMX kernels, and the llama.cpp vendored in
llama-cpp-python 0.3.36 runs tile instructions on threads without a tile configuration: SIGILL in
`llama_decode`. So on x86 the build names every SIMD extension this CPU has, and never AMX.

`check` writes a tiny llama-architecture GGUF whose weights use the quantized types that the CPU
kernels (AMX and AVX-512 ones included) handle (Q4_0, Q8_0, Q4_K, Q6_K), then reads a 48-token
prompt and decodes a few tokens on several threads. A build that cannot run here dies in a child
process (exit 132 for an illegal instruction) instead of in the user's first question.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

# (cmake option, the /proc/cpuinfo flags it needs, llama.cpp's name for it in its system info)
X86_OPTIONS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("GGML_SSE42", ("sse4_2",), "SSE42"),
    ("GGML_AVX", ("avx",), "AVX"),
    ("GGML_AVX2", ("avx2",), "AVX2"),
    ("GGML_FMA", ("fma",), "FMA"),
    ("GGML_F16C", ("f16c",), "F16C"),
    ("GGML_BMI2", ("bmi2",), "BMI2"),
    ("GGML_AVX_VNNI", ("avx_vnni",), "AVX_VNNI"),
    ("GGML_AVX512", ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"), "AVX512"),
    ("GGML_AVX512_VBMI", ("avx512vbmi",), "AVX512_VBMI"),
    ("GGML_AVX512_VNNI", ("avx512_vnni",), "AVX512_VNNI"),
    ("GGML_AVX512_BF16", ("avx512_bf16",), "AVX512_BF16"),
)
# The conservative set: the extensions every x86 CPU of the last decade that has them runs well.
CONSERVATIVE = ("GGML_SSE42", "GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C")
# Never on, until a llama-cpp-python release carries llama.cpp's fix for the tile configuration.
ALWAYS_OFF = ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")


def is_x86(machine: str | None = None) -> bool:
    """Whether this (or the named) machine is x86-64."""
    return (machine or platform.machine()).lower() in {"x86_64", "amd64", "i686", "i386"}


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags as Linux names them (empty where they cannot be read)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def x86_options(flags: set[str], *, conservative: bool = False) -> dict[str, bool]:
    """Each llama.cpp x86 build option, on where this CPU has what it needs."""
    chosen: dict[str, bool] = {}
    for option, needs, _name in X86_OPTIONS:
        wanted = not conservative or option in CONSERVATIVE
        chosen[option] = wanted and all(flag in flags for flag in needs)
    for option in ALWAYS_OFF:
        chosen[option] = False
    return chosen


def cmake_flags(flags: set[str] | None = None, *, conservative: bool = False,
                machine: str | None = None) -> list[str]:
    """The CMAKE_ARGS that build llama.cpp for this CPU (none off x86 or outside Linux)."""
    if not is_x86(machine) or sys.platform == "darwin":
        # Apple silicon and ARM have no AMX trap; llama-cpp-python fixes Intel Mac flags itself.
        return []
    if flags is None:
        flags = cpu_flags()
    if not flags:
        conservative = True
    options = x86_options(flags, conservative=conservative)
    return ["-DGGML_NATIVE=OFF"] + [f"-D{k}={'ON' if v else 'OFF'}" for k, v in options.items()]


def feature_names(args: Iterable[str]) -> list[str]:
    """llama.cpp's names for the extensions a set of CMAKE_ARGS switches on."""
    on = {a[2:].split("=")[0] for a in args if a.startswith("-D") and a.endswith("=ON")}
    return [name for option, _needs, name in X86_OPTIONS if option in on]


# Entries of llama.cpp's system info that are build options, not instruction sets.
NOT_INSTRUCTIONS = {"LLAMAFILE", "OPENMP", "REPACK", "KLEIDIAI", "ACCELERATE", "CPU_HBM"}


def build_features(system_info: str) -> set[str]:
    """The instruction-set extensions a llama.cpp build uses, from `llama_print_system_info()`."""
    found = {m.group(1) for m in re.finditer(r"([A-Z][A-Z0-9_]*) = 1\b", system_info)}
    return found - NOT_INSTRUCTIONS


def cpu_features_for_build(flags: set[str]) -> set[str]:
    """The llama.cpp feature names this CPU can run (x86 only)."""
    return {name for _option, needs, name in X86_OPTIONS if all(f in flags for f in needs)}


def build_mismatch(system_info: str, flags: set[str]) -> tuple[list[str], list[str]]:
    """(features the build uses that this CPU lacks, features this CPU has that the build skips).

    The first list crashes (illegal instruction); the second only costs speed. AMX counts as
    unsafe whatever the CPU says, since the vendored llama.cpp crashes with it.
    """
    used = build_features(system_info)
    known = {name for _o, _n, name in X86_OPTIONS}
    runnable = cpu_features_for_build(flags)
    unsafe = sorted(name for name in used & known if name not in runnable)
    unsafe += sorted(name for name in used if name.startswith("AMX"))
    skipped = sorted(name for name in runnable if name not in used and name != "SSE42")
    return unsafe, skipped


def installed_build() -> tuple[str, set[str], list[str], list[str]]:
    """(llama.cpp's system info, this CPU's runnable features, unsafe, skipped) for doctor."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    flags = cpu_flags() if is_x86() else set()
    if not flags:
        return info, set(), [], []
    unsafe, skipped = build_mismatch(info, flags)
    return info, cpu_features_for_build(flags), unsafe, skipped


# --- a tiny quantized llama GGUF ------------------------------------------------------------

GGUF_STRING, GGUF_ARRAY, GGUF_U32, GGUF_I32, GGUF_F32 = 8, 9, 4, 5, 6
F32, Q4_0, Q8_0, Q4_K, Q6_K = 0, 2, 8, 12, 14
# type -> (elements per block, bytes per block, byte offsets of the fp16 scales in a block)
BLOCKS = {Q4_0: (32, 18, (0,)), Q8_0: (32, 34, (0,)), Q4_K: (256, 144, (0, 2)), Q6_K: (256, 210, (208,))}
N_EMBD, N_FF, N_HEAD, N_LAYER, N_CTX = 256, 512, 4, 2, 256


def _str(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _kv(key: str, kind: int, value: object) -> bytes:
    out = _str(key) + struct.pack("<I", kind)
    if kind == GGUF_STRING:
        return out + _str(str(value))
    if kind == GGUF_U32:
        return out + struct.pack("<I", value)
    if kind == GGUF_F32:
        return out + struct.pack("<f", value)
    raise ValueError(kind)


def _array(key: str, kind: int, values: Sequence[object]) -> bytes:
    out = _str(key) + struct.pack("<IIQ", GGUF_ARRAY, kind, len(values))
    if kind == GGUF_STRING:
        return out + b"".join(_str(str(v)) for v in values)
    fmt = {GGUF_F32: "<f", GGUF_I32: "<i"}[kind]
    return out + b"".join(struct.pack(fmt, v) for v in values)


def _tensor_bytes(kind: int, n: int, rng: random.Random) -> bytes:
    if kind == F32:
        return struct.pack(f"<{n}f", *(1.0 for _ in range(n)))
    per, size, scales = BLOCKS[kind]
    block = bytearray()
    small = struct.pack("<e", 0.002)
    for _ in range(n // per):
        raw = bytearray(rng.getrandbits(8) for _ in range(size))
        for at in scales:
            raw[at:at + 2] = small
        block += raw
    return bytes(block)


def write_tiny_gguf(path: Path, seed: int = 7) -> Path:
    """Write a 2-layer llama GGUF (byte-level vocabulary, quantized weights) of about 1 MB."""
    rng = random.Random(seed)
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"\u2581w{i}" for i in range(61)]
    types = [2, 3, 3] + [6] * 256 + [1] * 61
    vocab = len(tokens)
    kvs = [
        _kv("general.architecture", GGUF_STRING, "llama"),
        _kv("general.name", GGUF_STRING, "gemma-code build check"),
        _kv("llama.context_length", GGUF_U32, N_CTX),
        _kv("llama.embedding_length", GGUF_U32, N_EMBD),
        _kv("llama.block_count", GGUF_U32, N_LAYER),
        _kv("llama.feed_forward_length", GGUF_U32, N_FF),
        _kv("llama.attention.head_count", GGUF_U32, N_HEAD),
        _kv("llama.attention.head_count_kv", GGUF_U32, N_HEAD),
        _kv("llama.rope.dimension_count", GGUF_U32, N_EMBD // N_HEAD),
        _kv("llama.attention.layer_norm_rms_epsilon", GGUF_F32, 1e-5),
        _kv("tokenizer.ggml.model", GGUF_STRING, "llama"),
        _array("tokenizer.ggml.tokens", GGUF_STRING, tokens),
        _array("tokenizer.ggml.scores", GGUF_F32, [0.0] * vocab),
        _array("tokenizer.ggml.token_type", GGUF_I32, types),
        _kv("tokenizer.ggml.unknown_token_id", GGUF_U32, 0),
        _kv("tokenizer.ggml.bos_token_id", GGUF_U32, 1),
        _kv("tokenizer.ggml.eos_token_id", GGUF_U32, 2),
    ]
    tensors: list[tuple[str, tuple[int, ...], int]] = [
        ("token_embd.weight", (N_EMBD, vocab), Q8_0),
        ("output_norm.weight", (N_EMBD,), F32),
        ("output.weight", (N_EMBD, vocab), Q6_K),
    ]
    for i in range(N_LAYER):
        tensors += [
            (f"blk.{i}.attn_norm.weight", (N_EMBD,), F32),
            (f"blk.{i}.attn_q.weight", (N_EMBD, N_EMBD), Q4_0),
            (f"blk.{i}.attn_k.weight", (N_EMBD, N_EMBD), Q4_0),
            (f"blk.{i}.attn_v.weight", (N_EMBD, N_EMBD), Q8_0),
            (f"blk.{i}.attn_output.weight", (N_EMBD, N_EMBD), Q4_K),
            (f"blk.{i}.ffn_norm.weight", (N_EMBD,), F32),
            (f"blk.{i}.ffn_gate.weight", (N_EMBD, N_FF), Q4_K),
            (f"blk.{i}.ffn_up.weight", (N_EMBD, N_FF), Q4_K),
            (f"blk.{i}.ffn_down.weight", (N_FF, N_EMBD), Q6_K),
        ]
    datas: list[bytes] = []
    infos = b""
    offset = 0
    for name, shape, kind in tensors:
        count = 1
        for dim in shape:
            count *= dim
        data = _tensor_bytes(kind, count, rng)
        infos += _str(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        infos += struct.pack("<IQ", kind, offset)
        pad = (-len(data)) % 32
        datas.append(data + b"\0" * pad)
        offset += len(data) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs) + infos
    head += b"\0" * ((-len(head)) % 32)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(head + b"".join(datas))
    os.replace(tmp, path)
    return path


def run_check(threads: int | None = None) -> int:
    """Load the tiny GGUF with llama_cpp, read a prompt and decode; print the build's features."""
    import llama_cpp  # the build under test; imported here so `flags` runs without it

    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    print(f"llama.cpp build: {info}")
    threads = threads or max(2, min(4, os.cpu_count() or 2))
    with tempfile.TemporaryDirectory(prefix="gemma-code-buildcheck-") as folder:
        model = write_tiny_gguf(Path(folder) / "check.gguf")
        started = time.perf_counter()
        llm = llama_cpp.Llama(model_path=str(model), n_ctx=N_CTX, n_batch=64, n_threads=threads,
                              n_threads_batch=threads, verbose=False)
        prompt = [1] + [3 + (i * 37) % 300 for i in range(47)]
        produced = 0
        for _token in llm.generate(prompt, temp=0.0, reset=True):
            produced += 1
            if produced >= 8:
                break
        elapsed = time.perf_counter() - started
        del llm
    print(f"build check: ok ({len(prompt)} prompt tokens read, {produced} decoded on {threads} threads, "
          f"{elapsed:.2f} s)")
    return 0


def check_in_child(python: str | None = None, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    """Run `check` in a child process, so an illegal instruction kills the child only."""
    return subprocess.run([python or sys.executable, str(Path(__file__).resolve()), "check"],
                          capture_output=True, text=True, timeout=timeout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="buildcheck", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    flags_cmd = sub.add_parser("flags", help="print the CMAKE_ARGS that build llama.cpp for this CPU")
    flags_cmd.add_argument("--conservative", action="store_true",
                           help="only SSE4.2/AVX/AVX2/FMA/F16C (the fallback when a build fails its check)")
    flags_cmd.add_argument("--names", action="store_true", help="print the feature names instead")
    check_cmd = sub.add_parser("check", help="load a tiny quantized GGUF and decode a few tokens")
    check_cmd.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.command == "flags":
        chosen = cmake_flags(conservative=args.conservative)
        if args.names:
            print(" ".join(feature_names(chosen)) if chosen else "native")
        else:
            print(" ".join(chosen))
        return 0
    return run_check(args.threads)


if __name__ == "__main__":
    sys.exit(main())
