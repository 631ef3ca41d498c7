"""Run the edit benchmark: gemma-code's apply, `git apply` and GNU `patch` on the same cases.

    python bench/edits/run.py [--cases /tmp/gc-bench-edits/cases.jsonl] [--json results.json]

Positive cases: correct (exit 0 and every file as expected), wrong-apply (exit 0 with a wrong
result, or files changed on failure), refused (failure, nothing changed). Negative cases must
be refused: refused (right), wrong-apply (anything written), ignored (exit 0, nothing written).
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
from collections import defaultdict
from pathlib import Path
from typing import Any

from gemma_code.edits import apply_edits, parse_reply
from gemma_code.errors import EditRejectedError

TOOLS = ("gemma-code", "git apply", "patch")
ABS_TARGET = Path("/tmp/gc-bench-abs-evil.py")


def setup(case: dict[str, Any], base: Path) -> Path:
    repo = base / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("secret = 1\n")
    for rel, text in case["files"].items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    for link, target in case.get("symlink", {}).items():
        (repo / link).symlink_to(target)
    (base / "reply.txt").write_bytes(case["reply"].encode("utf-8"))
    return repo


def snapshot(base: Path) -> dict[str, bytes]:
    out = {}
    for path in base.rglob("*"):
        rel = path.relative_to(base).as_posix()
        if path.is_file() and not path.is_symlink() and rel != "reply.txt" and (
                not rel.startswith("repo/.git/") or rel.startswith("repo/.git/hooks/post-checkout")):
            out[rel] = path.read_bytes()
    if ABS_TARGET.exists():
        out[str(ABS_TARGET)] = ABS_TARGET.read_bytes()
    return out


def run_tool(tool: str, repo: Path, reply: str) -> bool:
    """True when the tool reports success."""
    if tool == "gemma-code":
        try:
            apply_edits(repo, parse_reply(reply), journal=False)
            return True
        except EditRejectedError:
            return False
    if tool == "git apply":
        cmd = ["git", "apply", "--whitespace=nowarn", "../reply.txt"]
    else:
        strip = "-p1" if "+++ b/" in reply or "--- a/" in reply else "-p0"
        cmd = ["patch", strip, "--batch", "--forward", "--no-backup-if-mismatch", "-r", "-",
               "-i", "../reply.txt"]
    try:
        done = subprocess.run(cmd, cwd=repo, capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def judge(case: dict[str, Any], ok: bool, before: dict[str, bytes], after: dict[str, bytes]) -> str:
    changed = before != after
    if case["positive"]:
        want = dict(before)
        for rel, text in case["expected"].items():
            if text is None:
                want.pop(f"repo/{rel}", None)
            else:
                want[f"repo/{rel}"] = text.encode("utf-8")
        if ok:
            return "correct" if after == want else "wrong-apply"
        return "wrong-apply" if changed else "refused"
    if changed:
        return "wrong-apply"
    return "ignored" if ok else "refused"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", default="/tmp/gc-bench-edits/cases.jsonl")
    parser.add_argument("--json", help="write per-case results here")
    parser.add_argument("--kind", action="append", help="only cases of this kind (repeatable)")
    parser.add_argument("--tool", action="append", choices=TOOLS, help="only this tool (repeatable)")
    args = parser.parse_args()
    with open(args.cases, encoding="utf-8") as handle:
        cases = [json.loads(line) for line in handle]
    cases = [c for c in cases if not args.kind or c["kind"] in args.kind]
    tools = tuple(args.tool or TOOLS)
    results: list[dict[str, Any]] = []
    timing: dict[str, float] = defaultdict(float)
    for case in cases:
        row = {"id": case["id"], "kind": case["kind"], "positive": case["positive"]}
        for tool in tools:
            with tempfile.TemporaryDirectory(prefix="gc-edits-") as tmp:
                base = Path(tmp)
                repo = setup(case, base)
                before = snapshot(base)
                start = time.perf_counter()
                ok = run_tool(tool, repo, case["reply"])
                timing[tool] += time.perf_counter() - start
                row[tool] = judge(case, ok, before, snapshot(base))
                if ABS_TARGET.exists():
                    ABS_TARGET.unlink()
        results.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    report(results, timing, tools)


def report(results: list[dict[str, Any]], timing: dict[str, float], tools: tuple[str, ...]) -> None:
    kinds: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in results:
        kinds[row["kind"]].append(row)
    head = "| kind | n | " + " | ".join(f"{t}: ok / wrong / refused" for t in tools) + " |"
    print(head)
    print("|" + "---|" * (2 + len(tools)))
    for positive in (True, False):
        for kind in sorted(k for k, rows in kinds.items() if rows[0]["positive"] == positive):
            rows = kinds[kind]
            cells = []
            for tool in tools:
                good = "correct" if positive else "refused"
                bad = "refused" if positive else "ignored"
                counts = [sum(r[tool] == v for r in rows) for v in (good, "wrong-apply", bad)]
                cells.append(" / ".join(map(str, counts)))
            print(f"| {kind} | {len(rows)} | " + " | ".join(cells) + " |")
    for positive in (True, False):
        rows = [r for r in results if r["positive"] == positive]
        label = "positives" if positive else "negatives"
        print(f"\n{label}: {len(rows)}")
        for tool in tools:
            good = sum(r[tool] == ("correct" if positive else "refused") for r in rows)
            wrong = sum(r[tool] == "wrong-apply" for r in rows)
            print(f"  {tool:10} {'correct' if positive else 'refused'} {good}/{len(rows)} "
                  f"({100 * good / max(len(rows), 1):.1f}%), wrong-apply {wrong}")
    print("\nseconds per tool (all cases):", ", ".join(f"{t} {s:.1f}" for t, s in timing.items()))
    ours = [r["id"] for r in results if r.get("gemma-code") == "wrong-apply"]
    missed = [r["id"] for r in results if r["positive"] and r.get("gemma-code") == "refused"]
    print("gemma-code wrong-applies:", ours or "none")
    print("gemma-code refused positives:", missed or "none")


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    shutil.which("patch") or sys.exit("GNU patch is not installed")
    main()
