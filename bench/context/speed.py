"""Speed benchmark: cold and warm `gemma-code context` on a real repository, and growth with size.

Usage (Django's sdist as a git repository, outside this checkout):

    cd /tmp/ctxbench && cp -r django-5.1.15 django-git && cd django-git \
        && git init -q && git add -A && git commit -qm import
    python bench/context/speed.py --repo /tmp/ctxbench/django-git [--growth 2500,5000,10000,20000]

Each measurement runs the real command line (`gemma-code context QUESTION --json`) in a fresh
process, with its own GEMMA_CODE_HOME: "cold" starts from an empty cache, "warm" is the median
of four runs that each ask a new question, "edit" touches one file first. Growth copies the
repository's Python files into synthetic repositories of N files (under /tmp) and times cold and
warm runs on each.
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

QUESTION = "Password reset emails are still sent to users whose account has been deactivated"
# "warm" asks a different question each time: a new question on an unchanged repository is the
# common case (a chat's next turn), and it cannot be answered from a cached ranking
WARM_QUESTIONS = (
    "Image renditions are regenerated on every request instead of being reused",
    "The page chooser crashes when a locale is missing",
    "Validation error messages of form fields are not translated",
    "Retry the request when the connection is reset by the server",
)


def run(
    repo: Path, home: Path, budget: int, tokenizer: str, question: str = QUESTION
) -> tuple[tuple[float, float], dict[str, object]]:
    """(wall seconds, CPU seconds) of one `gemma-code context` process, and its JSON."""
    env = dict(os.environ, GEMMA_CODE_HOME=str(home))
    if tokenizer:
        env["GEMMA_CODE_TOKENIZER"] = tokenizer
    exe = Path(sys.executable).with_name("gemma-code")
    # the installed command, else this checkout's package (PYTHONPATH) run as a module
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "gemma_code"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run([*command, "context", question, "--json", "--budget", str(budget)],
                         cwd=repo, env=env, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return (wall, cpu), json.loads(out)


def measure(repo: Path, budget: int, tokenizer: str, warm_runs: int = 4) -> dict[str, tuple[float, float]]:
    """Cold, median-of-N warm (each a new question), and after-one-edit timings, each (wall, CPU)."""
    home = Path(tempfile.mkdtemp(prefix="gc-speed-home-"))
    try:
        cold, payload = run(repo, home, budget, tokenizer)
        runs = [run(repo, home, budget, tokenizer, WARM_QUESTIONS[i % len(WARM_QUESTIONS)])
                for i in range(warm_runs)]
        warms = sorted((r[0] for r in runs), key=lambda t: t[0])
        warm = warms[len(warms) // 2]  # the median (the upper one of an even count), not the best
        # the builder's own time (its JSON's elapsed_s), without Python's start and the CLI's
        builds = sorted(float(r[1]["elapsed_s"]) for r in runs)  # type: ignore[arg-type]
        build = (builds[len(builds) // 2], float(payload["elapsed_s"]))  # type: ignore[arg-type]
        files = payload["files"]
        assert isinstance(files, list)
        edit = (float("nan"), float("nan"))
        if files:
            target = repo / str(files[0]["path"])
            with target.open("a", encoding="utf-8") as handle:
                handle.write("\n")
            edit = run(repo, home, budget, tokenizer)[0]
            subprocess.run(["git", "checkout", "-q", "--", str(target)], cwd=repo, check=False)
        return {"files": (float(payload["ranked"]), 0.0), "cold": cold, "warm": warm, "edit": edit,  # type: ignore[arg-type]
                "build": build}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def line(name: str, r: dict[str, tuple[float, float]]) -> str:
    cells = " ".join(f"{r[k][0]:>7.2f} {r[k][1]:>6.2f}" for k in ("cold", "warm", "edit"))
    return (f"{name:<14} {int(r['files'][0]):>7} {cells}  builder alone: warm {r['build'][0]:.2f} "
            f"cold {r['build'][1]:.2f}  (load {os.getloadavg()[0]:.1f})")


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
    # as after install.sh: the package byte-compiled (else every run here would compile the
    # changed modules again when PYTHONDONTWRITEBYTECODE is set)
    import gemma_code

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(gemma_code.__file__).parent)],
                   check=False, capture_output=True)
    print("wall and CPU (user+sys) seconds of one `gemma-code context` process; load = 1-min load average")
    heads = " ".join(f"{k:>7} {'cpu':>6}" for k in ("cold", "warm", "edit"))
    print(f"{'repository':<14} {'files':>7} {heads}")
    print(line(repo.name, measure(repo, args.budget, args.tokenizer)), flush=True)
    for count in [int(c) for c in args.growth.split(",") if c]:
        root = synthetic(repo, count)
        try:
            result = measure(root, args.budget, args.tokenizer, warm_runs=2)
            print(line(f"synthetic-{count}", result), flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
