"""Bad-input check: a git repository of N small files (default 100,000) under /tmp.

    python bench/context/stress.py [--files 100000]

Times a cold and a warm `gemma-code context --json` and prints the notes, which must say how
many files were left unranked. Nothing is written outside the temporary folders.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gc-stress-"))
    home = Path(tempfile.mkdtemp(prefix="gc-stress-home-"))
    try:
        for i in range(args.files):
            folder = root / f"pkg{i // 1000:03}"
            folder.mkdir(exist_ok=True)
            (folder / f"mod{i:06}.py").write_text(
                f"def handler_{i}(request):\n    return helper_{i % 97}(request)\n", encoding="utf-8"
            )
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        subprocess.run(["git", "add", "-A"], cwd=root, check=True)
        subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "x"],
                       cwd=root, check=True)
        exe = Path(sys.executable).with_name("gemma-code")
        env = dict(os.environ, GEMMA_CODE_HOME=str(home))
        for label in ("cold", "warm"):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            out = subprocess.run(
                [str(exe), "context", "where is handler_99999 defined?", "--json", "--budget", "8000"],
                cwd=root, env=env, check=True, capture_output=True, text=True,
            ).stdout
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            payload = json.loads(out)
            print(f"{label}: {wall:.1f} s wall, {cpu:.1f} s CPU, ranked {payload['ranked']:,}, "
                  f"used {payload['used']:,}/{payload['budget']:,}, top {payload['files'][:1]}")
        for note in payload["notes"]:
            print("note:", note)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
