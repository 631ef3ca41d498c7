"""Benchmark: the pre-commit hook on a commit that stages a 4 MB file, under `--timeout`.

Builds a throwaway repository, stages a generated 4 MB Python file and a one-line bug, installs
the hook, and times one real `git commit` with `review_timeout` set. Reports the wall time,
whether the review ran or failed open, and the hook's notices about the big file.

Usage:
    python bench/review/bench_big_staged.py                       # scripted engine (no model)
    python bench/review/bench_big_staged.py --model PATH_OR_NAME  # a real model through llama.cpp
    python bench/review/bench_big_staged.py --size-mb 4 --timeout 10

Prints one JSON object.
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

CLEAN = '{"findings": []}'


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env)


def build(repo: Path, size: int) -> int:
    _git(repo, "init", "-q", "-b", "main")
    (repo / "util.py").write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "base")
    rows, total, n = [], 0, 0
    while total < size:
        row = f"def handler_{n}(request, retries={n % 7}):\n    return dispatch(request, {n}, retries)\n\n"
        rows.append(row)
        total += len(row)
        n += 1
    (repo / "big.py").write_text("".join(rows), encoding="utf-8")
    (repo / "util.py").write_text("def add(a, b):\n    return a - b\n", encoding="utf-8")
    _git(repo, "add", ".")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model name or GGUF path (default: the scripted engine)")
    parser.add_argument("--size-mb", type=float, default=4.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        repo = base / "repo"
        repo.mkdir()
        size = build(repo, int(args.size_mb * 2**20))
        env = {**os.environ, "GEMMA_CODE_HOME": str(base / "home"), "GEMMA_CODE_REVIEW_TIMEOUT":
               str(args.timeout), "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
               "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b",
               "GEMMA_CODE_N_CTX": str(args.n_ctx), "GEMMA_CODE_MAX_TOKENS": str(args.max_tokens)}
        if args.model:
            env |= {"GEMMA_CODE_ENGINE": "llamacpp", "GEMMA_CODE_MODEL": args.model}
        else:
            script = base / "replies.json"
            script.write_text(json.dumps({"replies": [CLEAN] * 100}), encoding="utf-8")
            env |= {"GEMMA_CODE_ENGINE": "scripted", "GEMMA_CODE_SCRIPT": str(script)}
        subprocess.run([sys.executable, "-m", "gemma_code", "hook", "install"], cwd=repo, env=env,
                       check=True, capture_output=True)
        start = time.perf_counter()
        proc = subprocess.run(["git", "commit", "-q", "-m", "big"], cwd=repo, env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    print(json.dumps({
        "engine": args.model or "scripted", "staged_bytes": size, "timeout_s": args.timeout,
        "commit_wall_s": round(wall, 2), "exit_code": proc.returncode,
        "reviewed": "did NOT run" not in output,
        "notes": [line.strip() for line in output.splitlines()
                  if "only part" in line or "did NOT run" in line],
        "machine": platform.machine(), "cpus": os.cpu_count(),
    }, indent=1))


if __name__ == "__main__":
    main()
