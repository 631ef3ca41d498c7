"""Gemma 4 chat follow-up after a long answer: time to first token with and without the idle
re-read (gemma_code/repl/warm.py), on the synthetic Gemma 4 (real architecture, tokenizer and
template, random weights). BENCHMARKS.md.

Usage: .venv/bin/python bench/repl_idle_reread.py [--answer 600] [--context-tokens 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answer", type=int, default=600)
    parser.add_argument("--context-tokens", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gemma-bench-") as home:  # removed afterwards
        os.environ["GEMMA_CODE_HOME"] = home
        run(args)


def run(args: argparse.Namespace) -> None:
    """Time the next turn after a long answer, with and without the idle re-read; print JSON."""
    from synthetic_gguf import cached_gemma4

    from gemma_code.config import Settings
    from gemma_code.engine.base import Message
    from gemma_code.engine.llamacpp import load_llamacpp_engine
    from gemma_code.repl.warm import Warmer

    settings = Settings(model=str(cached_gemma4()), n_ctx=8192, n_threads=args.threads,
                        temperature=0.0)
    body = " ".join(f"item{i}" for i in range(args.context_tokens // 2))
    turn1 = [Message("system", "Rules.\n\n" + body), Message("user", "Summarize.")]
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "answer_tokens": args.answer}
    for idle in (False, True):
        engine = load_llamacpp_engine(settings)
        answer = ""
        for chunk in engine.stream(turn1, max_tokens=args.answer, temperature=0.0):
            answer += chunk.text if chunk.kind == "text" else ""
        history = [*turn1, Message("model", answer)]
        idle_s = 0.0
        if idle:
            warmer = Warmer()
            start = time.perf_counter()
            warmer.start(engine, history, think=False)
            done = warmer.take()
            idle_s = time.perf_counter() - start
        start = time.perf_counter()
        ttft, stats = None, None
        for chunk in engine.stream([*history, Message("user", "Shorter.")], max_tokens=1,
                                   temperature=0.0):
            ttft = ttft if ttft is not None else time.perf_counter() - start
            stats = chunk.stats or stats
        results["idle_reread" if idle else "plain"] = {
            "ttft_s": round(ttft or 0.0, 3), "evaluated": stats.prompt_tokens_evaluated,
            "reused": stats.prompt_tokens_reused, "prompt_tokens": stats.prompt_tokens,
            "full_reprocesses": engine.full_reprocesses, "idle_s": round(idle_s, 3),
            "idle_tokens": done.tokens if idle else 0,
        }
        engine.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
