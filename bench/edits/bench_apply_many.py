"""Benchmark: `gemma-code apply` and `undo` of one change set touching many files.

Builds a throwaway git repository with N Python files, writes a reply that modifies 3/4 of them
and creates the rest in a new folder, and times real `gemma-code apply` and `gemma-code undo`
processes (Python start-up included), median of several runs. The cost measured is the
crash-safe write path: journal, staging outside the work tree, fsyncs, renames.

Usage:
    python bench/edits/bench_apply_many.py [--files 200] [--runs 3]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", *args], cwd=repo,
                   check=True, capture_output=True)


def build(repo: Path, files: int) -> str:
    _git(repo, "init", "-q", "-b", "main")
    modified = files * 3 // 4
    blocks = []
    (repo / "pkg").mkdir()
    for n in range(modified):
        (repo / f"pkg/mod_{n:04d}.py").write_text(f"def f_{n}(x):\n    return x + {n}\n")
        blocks.append(f"pkg/mod_{n:04d}.py\n<<<<<<< SEARCH\n    return x + {n}\n=======\n"
                      f"    return x * {n}\n>>>>>>> REPLACE\n")
    for n in range(files - modified):
        blocks.append(f"gen/new_{n:04d}.py\n<<<<<<< SEARCH\n=======\nVALUE = {n}\n>>>>>>> REPLACE\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "base")
    return "\n".join(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    applied: list[float] = []
    undone: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        repo = base / "repo"
        repo.mkdir()
        reply = base / "reply.md"
        reply.write_text(build(repo, args.files))
        env = {**os.environ, "GEMMA_CODE_HOME": str(base / "home")}
        for _ in range(args.runs):
            for command, times in ((["apply", str(reply)], applied), (["undo"], undone)):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "gemma_code", *command], cwd=repo, env=env,
                               check=True, capture_output=True)
                times.append(time.perf_counter() - start)
    print(json.dumps({
        "files": args.files, "runs": args.runs,
        "apply_s_median": round(statistics.median(applied), 3),
        "undo_s_median": round(statistics.median(undone), 3),
        "machine": platform.machine(), "cpus": os.cpu_count(),
    }, indent=1))


if __name__ == "__main__":
    main()
