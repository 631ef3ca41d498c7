"""Speed benchmark: cold and warm `gemma-code context` on a real repository, and growth with size.

Usage (Django's sdist as a git repository, outside this checkout):

    cd /tmp/ctxbench && cp -r django-5.1.15 django-git && cd django-git \
        && git init -q && git add -A && git commit -qm import
    python bench/context/speed.py --repo /tmp/ctxbench/django-git [--growth 2500,5000,10000,20000]

Each measurement runs the real command line (`gemma-code context QUESTION --json`) in a fresh
process, with its own GEMMA_CODE_HOME: "cold" starts from an empty cache, "warm" repeats the
command, "edit" touches one file first. Growth copies the repository's Python files into
synthetic repositories of N files (under /tmp) and times cold and warm runs on each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUESTION = "Password reset emails are still sent to users whose account has been deactivated"


def run(repo: Path, home: Path, budget: int, tokenizer: str) -> tuple[float, dict[str, object]]:
    env = dict(os.environ, GEMMA_CODE_HOME=str(home))
    if tokenizer:
        env["GEMMA_CODE_TOKENIZER"] = tokenizer
    exe = Path(sys.executable).with_name("gemma-code")
    start = time.perf_counter()
    out = subprocess.run([str(exe), "context", QUESTION, "--json", "--budget", str(budget)],
                         cwd=repo, env=env, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - start, json.loads(out)


def measure(repo: Path, budget: int, tokenizer: str, warm_runs: int = 3) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="gc-speed-home-"))
    try:
        cold, payload = run(repo, home, budget, tokenizer)
        warm = min(run(repo, home, budget, tokenizer)[0] for _ in range(warm_runs))
        target = repo / str(payload["files"][0]["path"]) if payload["files"] else None
        edit = float("nan")
        if target is not None:
            os.utime(target, None)
            with target.open("a", encoding="utf-8") as handle:
                handle.write("\n")
            edit = run(repo, home, budget, tokenizer)[0]
            subprocess.run(["git", "checkout", "-q", "--", str(target)], cwd=repo, check=False)
        return {"files": int(payload["ranked"]), "cold_s": cold, "warm_s": warm, "edit_s": edit}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def synthetic(source: Path, count: int) -> Path:
    """A git repository of `count` Python files copied (and renamed) from `source`."""
    files = sorted(p for p in source.rglob("*.py") if ".git" not in p.parts)
    root = Path(tempfile.mkdtemp(prefix=f"gc-speed-{count}-"))
    for i in range(count):
        src = files[i % len(files)]
        rel = src.relative_to(source)
        dest = root / f"copy{i // len(files)}" / rel if i >= len(files) else root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "x"],
                   cwd=root, check=True)
    return root


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", required=True)
    parser.add_argument("--budget", type=int, default=32768)
    parser.add_argument("--tokenizer", default="", help="GGUF for exact counts (else estimates)")
    parser.add_argument("--growth", default="", help="file counts, e.g. 2500,5000,10000,20000")
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    print(f"{'repository':<28} {'files':>7} {'cold s':>8} {'warm s':>8} {'1 edit s':>9}")
    result = measure(repo, args.budget, args.tokenizer)
    print(f"{repo.name:<28} {result['files']:>7} {result['cold_s']:>8.2f} {result['warm_s']:>8.2f} "
          f"{result['edit_s']:>9.2f}")
    for count in [int(c) for c in args.growth.split(",") if c]:
        root = synthetic(repo, count)
        try:
            r = measure(root, args.budget, args.tokenizer, warm_runs=2)
            print(f"{'synthetic':<28} {r['files']:>7} {r['cold_s']:>8.2f} {r['warm_s']:>8.2f} "
                  f"{r['edit_s']:>9.2f}")
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
