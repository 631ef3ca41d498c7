"""Images and PDFs on the CPU: tokens and encode time per image, PDF pages per second packed.

Images go through the synthetic Gemma 4 model (6 narrow layers) and the synthetic gemma4v
projector (2 narrow layers): the token counts are llama.cpp's real ones for each image size;
the times are those of the shrunk tower, a lower bound for the real 550M-parameter encoder.
Beside each image, the same number of text tokens is prefilled (what the image costs against
text of the same length).

PDFs: each file's pages extracted by pdfium (ours) and by pypdf (the pure-Python library a
user would otherwise pick), then packed with page markers and exact Gemma 4 token counts.

    PYTHONPATH=tests python bench/vision.py --pdf /usr/share/doc/libtasn1-doc/libtasn1.pdf \\
        --image tools/mtmd/test-1.jpeg --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _median_time(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _empty_cache(engine: Any) -> None:
    engine._lc.llama_memory_clear(engine.memory, True)
    engine._tokens = []
    engine._checkpoint.invalidate()


def bench_images(engine: Any, paths: list[Path], repeat: int) -> list[str]:
    from gemma_code.documents.images import load_image
    from gemma_code.engine.base import Message

    rows = ["| image | pixels | image tokens | encode + decode (median) | same tokens as text, prefill |",
            "|---|---|---|---|---|"]
    for path in paths:
        image = load_image(path)
        run = engine.vision.run_for(image)

        def evaluate(image: Any = image) -> None:
            _empty_cache(engine)  # the image is encoded and decoded each time
            list(engine.stream([Message("user", "", images=(image,))], max_tokens=1, temperature=0.0))

        image_s = _median_time(evaluate, repeat)
        text = " ".join(["word"] * run.n_image_tokens)

        def prefill(text: str = text) -> None:
            _empty_cache(engine)
            list(engine.stream([Message("user", text)], max_tokens=1, temperature=0.0))

        text_s = _median_time(prefill, repeat)
        rows.append(f"| {path.name} | {image.width}x{image.height} | {run.n_image_tokens:,} "
                    f"| {image_s * 1000:,.0f} ms | {text_s * 1000:,.0f} ms |")
    return rows


def bench_pdfs(engine: Any, paths: list[Path], repeat: int) -> list[str]:
    from pypdf import PdfReader

    from gemma_code.documents.pdf import pack_pdf, read_pdf

    rows = ["| PDF | pages | pdfium text | pypdf text (baseline) | pdfium + pack, exact tokens | tokens |",
            "|---|---|---|---|---|---|"]
    for path in paths:
        doc = read_pdf(path)
        n = doc.n_pages
        ours = _median_time(lambda path=path: read_pdf(path), repeat)
        base = _median_time(
            lambda path=path: [p.extract_text() for p in PdfReader(path).pages], repeat)
        full = _median_time(
            lambda path=path: pack_pdf(read_pdf(path), engine.count_tokens, 10_000_000), repeat)
        packed = [pack_pdf(read_pdf(path), engine.count_tokens, 10_000_000)]
        rows.append(f"| {path.name} | {n} | {n / ours:,.0f} pages/s | {n / base:,.1f} pages/s "
                    f"| {n / full:,.0f} pages/s | {packed[0].tokens:,} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, action="append", default=[],
                        help="an image to measure (repeatable); default: generated screenshots")
    parser.add_argument("--pdf", type=Path, action="append", default=[], help="a PDF (repeatable)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import numpy as np
    from PIL import Image
    from synthetic_gguf import cached_gemma4
    from synthetic_mmproj import cached_mmproj

    from gemma_code.config import Settings
    from gemma_code.engine.llamacpp import load_llamacpp_engine

    with tempfile.TemporaryDirectory() as tmp:
        images = list(args.image)
        if not images:
            rng = np.random.default_rng(0)
            for width, height in ((640, 480), (1280, 800), (1920, 1080)):
                path = Path(tmp) / f"generated-{width}x{height}.png"
                Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
                images.append(path)
        settings = Settings(model=str(cached_gemma4()), mmproj=str(cached_mmproj()), n_ctx=4096,
                            n_batch=1120, n_threads=args.threads)
        engine = load_llamacpp_engine(settings)
        try:
            print("\n".join(bench_images(engine, images, args.repeat)))
            if args.pdf:
                print()
                print("\n".join(bench_pdfs(engine, args.pdf, args.repeat)))
        finally:
            engine.close()


if __name__ == "__main__":
    main()
