"""Write a random-weights Gemma 4 26B A4B GGUF: real shapes, tokenizer and Q4_K_M mix (~16.8 GB).

Speed depends on shapes and tensor types, not on weight values, so this file measures the
real model's speed on any GPU without downloading it. The shapes are the 658 tensors of
`gemma4_26b_a4b_tensors.tsv`; the tokenizer and chat template come from llama.cpp's
`ggml-vocab-gemma-4.gguf`; the tensor types follow llama.cpp's Q4_K_M rules. Quantized
tensors are random bytes with small fp16 scales (no quantization pass: seconds, not hours),
and the file is streamed to disk one tensor at a time, so RAM use stays near 2 GB.

    python bench/synthetic_gemma4.py /tmp/gemma4-26b-a4b-synthetic-Q4_K_M.gguf
    python bench/synthetic_gemma4.py --small /tmp/small.gguf     # 6 narrow layers, for CPUs

Builds on tests/synthetic_gguf.py (shapes, metadata, writer); adds the quant mix and the bytes.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

# the writer is test tooling (tests/synthetic_gguf.py), kept out of the installed package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from synthetic_gguf import GEMMA4_26B_A4B, TINY, Gemma4Shape, TensorSpec, write_gemma4

QK_K = 256  # K-quant super-block width: a row must be a multiple of it
FALLBACK = {"Q4_K": "Q5_0", "Q6_K": "Q8_0"}  # llama.cpp's choice when a row is not
# fp16 fields per block type: (byte offset, value). Sized so a weight's spread is about 0.02,
# and never NaN or Inf, which random bytes in a scale field could be.
SCALES: dict[str, tuple[tuple[int, float], ...]] = {
    "Q4_K": ((0, 1e-4), (2, 5e-4)),  # d, dmin
    "Q6_K": ((208, 2e-5),),  # d after ql, qh and the int8 scales
    "Q5_0": ((0, 2e-3),),
    "Q8_0": ((0, 3e-4),),
}
# GGML type id, elements per block, bytes per block (ggml.h / ggml-common.h)
QUANT_TYPES = {"Q4_K": (12, 256, 144), "Q6_K": (14, 256, 210), "Q5_0": (6, 32, 22), "Q8_0": (8, 32, 34)}
MOSTLY_Q4_K_M = 15  # llama_ftype
POOL_BYTES = 64 * 1024 * 1024  # random bytes generated once, then tiled


def _more_bits(i: int, n: int) -> bool:
    """llama.cpp's use_more_bits(): the first and last eighth of layers, and every third."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def q4_k_m_types(n_layers: int) -> Any:
    """A TypePicker following llama.cpp's Q4_K_M rules for Gemma 4 (tied embeddings)."""

    def pick(spec: TensorSpec) -> str:
        if len(spec.shape) == 1 or spec.kind in {"norm", "scale", "rope", "router"}:
            return "F32"  # llama.cpp never quantizes 1-D tensors or the MoE router
        if spec.kind == "embed":
            chosen = "Q6_K"  # no output.weight: the embeddings double as the output matrix
        elif ".attn_v." in spec.name or ".ffn_down" in spec.name:
            match = re.match(r"blk\.(\d+)\.", spec.name)
            layer = int(match.group(1)) if match else 0
            chosen = "Q6_K" if _more_bits(layer, n_layers) else "Q4_K"
        else:
            chosen = "Q4_K"
        if spec.shape[0] % QK_K:
            chosen = FALLBACK.get(chosen, chosen)
        return chosen

    return pick


class RandomBlocks:
    """Tensor bytes for write_gemma4: tiled random bytes with fixed small fp16 scales."""

    def __init__(self, seed: int = 0) -> None:
        import numpy as np

        rng = np.random.default_rng(seed)
        self._np = np
        self._rng = rng
        self.pool = rng.integers(0, 2**63, size=POOL_BYTES // 8, dtype=np.uint64).view(np.uint8)

    def __call__(self, spec: TensorSpec, ggml_type: str, rng: Any) -> Any:
        np = self._np
        numpy_shape = tuple(reversed(spec.shape))
        if ggml_type in {"F32", "F16"}:
            dtype = np.float32 if ggml_type == "F32" else np.float16
            if spec.kind in {"norm", "scale", "rope"}:
                return np.ones(numpy_shape, dtype=dtype)
            return (self._rng.standard_normal(numpy_shape, dtype=np.float32) * 0.02).astype(dtype)
        _, block, type_size = QUANT_TYPES[ggml_type]
        n_blocks = spec.n_elements // block
        start = int(self._rng.integers(0, POOL_BYTES // 2))  # tensors differ, cheaply
        data = np.resize(self.pool[start:], n_blocks * type_size)
        blocks = data.reshape(n_blocks, type_size)
        for offset, value in SCALES[ggml_type]:
            blocks[:, offset : offset + 2] = np.frombuffer(np.float16(value).tobytes(), dtype=np.uint8)
        return data


def set_file_type(path: Path, file_type: int) -> None:
    """Rewrite general.file_type (a u32 near the start) in place; the base writer records F16."""
    import struct

    key = b"general.file_type"
    with path.open("r+b") as handle:
        head = handle.read(4096)
        at = head.find(struct.pack("<Q", len(key)) + key)
        if at < 0:
            raise ValueError(f"{path}: no general.file_type key in the header")
        at += 8 + len(key)
        if struct.unpack_from("<I", head, at)[0] != 4:  # GGUF value type 4: uint32
            raise ValueError(f"{path}: general.file_type is not a uint32")
        handle.seek(at + 4)
        handle.write(struct.pack("<I", file_type))


def write(path: Path, shape: Gemma4Shape, *, vocab: Path | None = None, seed: int = 0) -> int:
    """Write the model; return its size in bytes."""
    model = write_gemma4(path, shape, vocab=vocab, types=q4_k_m_types(shape.n_layers),
                         name="gemma-4-26b-a4b-synthetic", data=RandomBlocks(seed),
                         type_sizes=QUANT_TYPES)
    set_file_type(path, MOSTLY_Q4_K_M)
    return model.size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the .gguf file to write")
    parser.add_argument("--small", action="store_true", help="6 narrow layers (~150 MB) for CPU checks")
    parser.add_argument("--vocab", type=Path, help="ggml-vocab-gemma-4.gguf (default: found or fetched)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    shape = TINY if args.small else GEMMA4_26B_A4B
    began = time.perf_counter()
    size = write(args.out, shape, vocab=args.vocab, seed=args.seed)
    took = time.perf_counter() - began
    print(f"wrote {args.out} ({size / 1e9:.2f} GB, {size / 2**30:.2f} GiB) in {took:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
