"""Random-weights GGUF files with Gemma 4's real architecture, tokenizer and chat template.

They prove the Gemma 4 path (loading, prompt format, tokenizer, speed) without the real
weights. The tokenizer and template come from llama.cpp's ``ggml-vocab-gemma-4.gguf``
(converted from the real 26B A4B). Shapes follow the 26B A4B tensor list, scaled by a
`Gemma4Shape`; the tensor types are chosen per tensor by a `TypePicker`, so a full-size
quantized writer (the GPU benchmark) can build on this module.

Needs the `gguf` package (a test extra) and numpy, imported inside functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gemma_code.errors import GemmaCodeError

ARCH = "gemma4"
VOCAB_FILE = "ggml-vocab-gemma-4.gguf"
LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"  # its sdist carries llama.cpp's vocab files
WRITER_VERSION = 1  # bump when the written bytes change, to invalidate caches


@dataclass(frozen=True)
class Gemma4Shape:
    """Depth and widths of a Gemma 4 MoE model; the defaults are the 6-layer test fixture."""

    n_layers: int = 6
    hidden: int = 256
    n_head: int = 4
    head_dim_swa: int = 64
    head_dim_full: int = 128
    n_kv_swa: int = 2
    n_kv_full: int = 1
    ffn: int = 512  # dense GeGLU width
    n_experts: int = 8
    n_experts_used: int = 2
    expert_ffn: int = 64
    window: int = 1024
    full_every: int = 6  # every 6th layer is full attention (5, 11, ...)
    context_length: int = 262144
    seed: int = 0

    def is_sliding(self, layer: int) -> bool:
        return (layer + 1) % self.full_every != 0

    def __post_init__(self) -> None:
        if all(self.is_sliding(i) for i in range(self.n_layers)):
            # without a full-attention layer rope_freqs.weight is unused and llama.cpp refuses
            raise ValueError("a Gemma 4 model needs at least one full-attention layer")


# Gemma 4 26B A4B (gemma4-facts.md): the shapes the GPU benchmark writes.
GEMMA4_26B_A4B = Gemma4Shape(
    n_layers=30, hidden=2816, n_head=16, head_dim_swa=256, head_dim_full=512, n_kv_swa=8,
    n_kv_full=2, ffn=2112, n_experts=128, n_experts_used=8, expert_ffn=704,
)
TINY = Gemma4Shape()


@dataclass(frozen=True)
class TensorSpec:
    """One tensor: name, shape in ggml order (ne0 first), and its role for type choice."""

    name: str
    shape: tuple[int, ...]
    kind: str  # norm | scale | rope | embed | matrix | experts | router

    @property
    def n_elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


TypePicker = Callable[[TensorSpec], str]  # -> a GGML type name: "F32", "F16", "Q8_0"...


def f16_types(spec: TensorSpec) -> str:
    """F32 for norms and scales, F16 for every matrix (loads and runs on any backend)."""
    return "F32" if spec.kind in {"norm", "scale", "rope"} else "F16"


@dataclass
class SyntheticModel:
    """What `write_gemma4` wrote."""

    path: Path
    shape: Gemma4Shape
    n_tensors: int
    size: int
    metadata: dict[str, Any] = field(default_factory=dict)


def tensor_specs(shape: Gemma4Shape, n_vocab: int) -> list[TensorSpec]:
    """Every tensor of a Gemma 4 MoE model, named as in gemma4_26b_a4b_tensors.tsv."""
    h = shape.hidden
    specs = [
        TensorSpec("token_embd.weight", (h, n_vocab), "embed"),
        TensorSpec("output_norm.weight", (h,), "norm"),
        TensorSpec("rope_freqs.weight", (shape.head_dim_full // 2,), "rope"),
    ]
    for i in range(shape.n_layers):
        sliding = shape.is_sliding(i)
        hd = shape.head_dim_swa if sliding else shape.head_dim_full
        kv = shape.n_kv_swa if sliding else shape.n_kv_full
        p = f"blk.{i}."
        specs += [
            TensorSpec(p + "attn_norm.weight", (h,), "norm"),
            TensorSpec(p + "attn_q.weight", (h, shape.n_head * hd), "matrix"),
            TensorSpec(p + "attn_k.weight", (h, kv * hd), "matrix"),
        ]
        if sliding:  # full-attention layers use K as V
            specs.append(TensorSpec(p + "attn_v.weight", (h, kv * hd), "matrix"))
        specs += [
            TensorSpec(p + "attn_output.weight", (shape.n_head * hd, h), "matrix"),
            TensorSpec(p + "attn_q_norm.weight", (hd,), "norm"),
            TensorSpec(p + "attn_k_norm.weight", (hd,), "norm"),
            TensorSpec(p + "post_attention_norm.weight", (h,), "norm"),
            TensorSpec(p + "layer_output_scale.weight", (1,), "scale"),
            TensorSpec(p + "ffn_norm.weight", (h,), "norm"),
            TensorSpec(p + "ffn_gate.weight", (h, shape.ffn), "matrix"),
            TensorSpec(p + "ffn_up.weight", (h, shape.ffn), "matrix"),
            TensorSpec(p + "ffn_down.weight", (shape.ffn, h), "matrix"),
            TensorSpec(p + "post_ffw_norm.weight", (h,), "norm"),
            TensorSpec(p + "ffn_gate_inp.weight", (h, shape.n_experts), "router"),
            TensorSpec(p + "ffn_gate_inp.scale", (h,), "scale"),
            TensorSpec(p + "pre_ffw_norm_2.weight", (h,), "norm"),
            TensorSpec(p + "post_ffw_norm_1.weight", (h,), "norm"),
            TensorSpec(p + "post_ffw_norm_2.weight", (h,), "norm"),
            TensorSpec(
                p + "ffn_gate_up_exps.weight", (h, 2 * shape.expert_ffn, shape.n_experts), "experts"
            ),
            TensorSpec(
                p + "ffn_down_exps.weight", (shape.expert_ffn, h, shape.n_experts), "experts"
            ),
            TensorSpec(p + "ffn_down_exps.scale", (shape.n_experts,), "scale"),
        ]
    return specs


def arch_metadata(shape: Gemma4Shape) -> dict[str, Any]:
    """The gemma4.* keys llama.cpp's loader requires, for `shape`."""
    pattern = [shape.is_sliding(i) for i in range(shape.n_layers)]
    return {
        "context_length": shape.context_length,
        "embedding_length": shape.hidden,
        "block_count": shape.n_layers,
        "feed_forward_length": shape.ffn,
        "attention.head_count": shape.n_head,
        "attention.head_count_kv": [shape.n_kv_swa if s else shape.n_kv_full for s in pattern],
        "rope.freq_base": 1_000_000.0,
        "rope.freq_base_swa": 10_000.0,
        "attention.layer_norm_rms_epsilon": 1e-6,
        "expert_count": shape.n_experts,
        "expert_used_count": shape.n_experts_used,
        "attention.key_length": shape.head_dim_full,
        "attention.value_length": shape.head_dim_full,
        "final_logit_softcapping": 30.0,
        "attention.sliding_window": shape.window,
        "attention.shared_kv_layers": 0,
        "embedding_length_per_layer_input": 0,
        "attention.sliding_window_pattern": pattern,
        "attention.key_length_swa": shape.head_dim_swa,
        "attention.value_length_swa": shape.head_dim_swa,
        "expert_feed_forward_length": shape.expert_ffn,
        "rope.dimension_count": shape.head_dim_full,
        "rope.dimension_count_swa": shape.head_dim_swa,
    }


def find_gemma4_vocab(cache_dir: Path | None = None, *, download: bool = True) -> Path:
    """Locate llama.cpp's ggml-vocab-gemma-4.gguf; fetch it from the PyPI sdist if needed."""
    candidates = []
    if os.environ.get("GEMMA_CODE_GEMMA4_VOCAB"):
        candidates.append(Path(os.environ["GEMMA_CODE_GEMMA4_VOCAB"]))
    cache = cache_dir or default_cache_dir()
    candidates.append(cache / VOCAB_FILE)
    for path in candidates:
        if path.is_file():
            return path
    if not download:
        raise GemmaCodeError(
            f"{VOCAB_FILE} not found",
            "set GEMMA_CODE_GEMMA4_VOCAB to llama.cpp's models/ggml-vocab-gemma-4.gguf",
        )
    return _vocab_from_sdist(cache)


def _vocab_from_sdist(cache: Path) -> Path:
    """Download llama-cpp-python's sdist with pip and extract the vocabulary file from it."""
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             "-d", tmp, LLAMA_CPP_PYTHON],
            capture_output=True, text=True, check=False,
        )
        archives = list(Path(tmp).glob("*.tar.gz"))
        if result.returncode != 0 or not archives:
            raise GemmaCodeError(
                f"could not download the {LLAMA_CPP_PYTHON} sdist for {VOCAB_FILE}",
                "set GEMMA_CODE_GEMMA4_VOCAB to llama.cpp's models/ggml-vocab-gemma-4.gguf",
            )
        with tarfile.open(archives[0]) as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith("/models/" + VOCAB_FILE))
            source = archive.extractfile(member)
            assert source is not None
            target = cache / VOCAB_FILE
            partial = target.with_suffix(".partial")
            partial.write_bytes(source.read())
            os.replace(partial, target)
    return target


def default_cache_dir() -> Path:
    """Where test fixtures are cached between runs (outside any repository)."""
    value = os.environ.get("GEMMA_CODE_TEST_CACHE")
    return Path(value) if value else Path.home() / ".cache" / "gemma-code-test"


def _random_data(spec: TensorSpec, ggml_type: str, rng: Any) -> Any:
    """Small random weights (ones for norms and scales), encoded as `ggml_type`."""
    import gguf
    import numpy as np

    numpy_shape = tuple(reversed(spec.shape))
    if spec.kind in {"norm", "scale", "rope"}:
        values = np.ones(numpy_shape, dtype=np.float32)
    else:
        values = rng.standard_normal(numpy_shape, dtype=np.float32) * np.float32(0.02)
    if ggml_type == "F32":
        return values
    if ggml_type == "F16":
        return values.astype(np.float16)
    qtype = gguf.GGMLQuantizationType[ggml_type]
    return gguf.quants.quantize(values, qtype)


_ALIGN = 32  # GGUF's default data alignment
_GGML_TYPES = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q8_0": (8, 32, 34)}  # id, block, bytes


def _kv(key: str, value: Any) -> bytes:
    """One encoded GGUF key/value entry (strings, u32, f32, bool and i32 arrays)."""
    out = _str(key)
    if isinstance(value, str):
        return out + struct.pack("<I", 8) + _str(value)
    if isinstance(value, float):
        return out + struct.pack("<If", 6, value)
    if isinstance(value, list) and value and isinstance(value[0], bool):
        return out + struct.pack("<IIQ", 9, 7, len(value)) + bytes(value)
    if isinstance(value, list):
        return out + struct.pack("<IIQ", 9, 5, len(value)) + struct.pack(f"<{len(value)}i", *value)
    return out + struct.pack("<II", 4, value)


def _str(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _pad(size: int) -> int:
    return (size + _ALIGN - 1) // _ALIGN * _ALIGN


def write_gemma4(
    path: Path,
    shape: Gemma4Shape = TINY,
    *,
    vocab: Path | None = None,
    types: TypePicker = f16_types,
    name: str = "gemma-4-synthetic",
    data: Callable[[TensorSpec, str, Any], Any] = _random_data,
    type_sizes: dict[str, tuple[int, int, int]] | None = None,
) -> SyntheticModel:
    """Write a random-weights Gemma 4 GGUF to `path` (atomically), one tensor at a time.

    `type_sizes` adds GGML types beyond F32/F16/Q8_0 as name -> (type id, block, bytes per
    block), for writers whose `data` encodes them.
    """
    import numpy as np

    from gemma_code.models.gguf_header import raw_entries, read_metadata

    known = {**_GGML_TYPES, **(type_sizes or {})}
    vocab = vocab or find_gemma4_vocab()
    tokenizer = raw_entries(vocab, "tokenizer.")
    n_vocab = read_metadata(vocab)["tokenizer.ggml.tokens"].length
    specs = tensor_specs(shape, n_vocab)
    chosen = [types(spec) for spec in specs]
    meta = {f"{ARCH}.{key}": value for key, value in arch_metadata(shape).items()}
    header = [
        _kv("general.architecture", ARCH), _kv("general.type", "model"), _kv("general.name", name),
        _kv("general.file_type", 1), _kv("general.quantization_version", 2),
    ]
    header += [_kv(key, value) for key, value in meta.items()]
    header += tokenizer
    infos = []
    offset = 0
    sizes = []
    for spec, ggml_type in zip(specs, chosen, strict=True):
        type_id, block, type_size = known[ggml_type]
        if spec.shape[0] % block:
            raise ValueError(f"{spec.name}: {spec.shape[0]} is not a multiple of {ggml_type}'s block")
        nbytes = spec.n_elements // block * type_size
        dims = struct.pack(f"<I{len(spec.shape)}Q", len(spec.shape), *spec.shape)
        infos.append(_str(spec.name) + dims + struct.pack("<IQ", type_id, offset))
        sizes.append(nbytes)
        offset += _pad(nbytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("wb") as out:
            out.write(b"GGUF" + struct.pack("<IQQ", 3, len(specs), len(header)))
            for part in (*header, *infos):
                out.write(part)
            out.write(b"\0" * (_pad(out.tell()) - out.tell()))
            rng = np.random.default_rng(shape.seed)
            for spec, ggml_type, nbytes in zip(specs, chosen, sizes, strict=True):
                raw = np.ascontiguousarray(data(spec, ggml_type, rng)).tobytes()
                if len(raw) != nbytes:
                    raise ValueError(f"{spec.name}: {len(raw)} bytes written, {nbytes} expected")
                out.write(raw + b"\0" * (_pad(nbytes) - nbytes))
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
    return SyntheticModel(path, shape, len(specs), path.stat().st_size, meta)


def cached_gemma4(
    shape: Gemma4Shape = TINY, *, cache_dir: Path | None = None, types: TypePicker = f16_types,
    vocab: Path | None = None,
) -> Path:
    """A synthetic Gemma 4 GGUF for `shape`, written once and cached under `cache_dir`."""
    cache = cache_dir or default_cache_dir()
    vocab = vocab or find_gemma4_vocab(cache)
    probe = tensor_specs(shape, 1)
    key = json.dumps(
        {"shape": asdict(shape), "types": [types(s) for s in probe], "writer": WRITER_VERSION,
         "vocab_size": vocab.stat().st_size},
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    path = cache / f"gemma4-synthetic-{shape.n_layers}l-{shape.hidden}h-{digest}.gguf"
    if not path.is_file():
        write_gemma4(path, shape, vocab=vocab, types=types)
    return path
