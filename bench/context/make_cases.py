"""Build the real-commit retrieval cases (SWE-bench style) from repositories' git histories.

Usage (bare clones, e.g. the ones the `fetch` tool brings under /work/.mirror/OWNER+NAME/repo):

    python bench/context/make_cases.py --mirrors /work/.mirror --per-repo 25 \
        --out bench/context/commits.jsonl pallets/flask psf/black saleor/saleor ...

A case is a non-merge commit whose message references an issue or PR (`#1234`) and that modifies
1 to 3 existing non-test `.py` files (no other non-test `.py` file added, deleted or renamed).
The question is the commit message with trailers, PR numbers and file paths removed; the gold is
those files; the repository is the parent commit. Chores (version bumps, typo, lint, formatting,
typing-only, CI, release commits) are left out, and the question must keep at least 5 words.
Cases are taken evenly from the newest `--window` eligible commits, so they span some history.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

REF = re.compile(r"(?<![\w/])#\d+\b|\bgh-\d+\b", re.IGNORECASE)
CHORE = re.compile(
    r"^(bump|release|prepare|version|revert|merge|\[pre-commit|pre-commit|update (the )?changelog|"
    r"changelog|ci[:\s]|docs?[:\s]|chore|build\(deps|deps|typo|fix typo|lint|format|style|reformat)"
    r"|typo|pre-commit|\bruff\b|\bmypy\b|flake8|isort|pyupgrade|type hints?|annotations?\b|"
    r"\bblack\b.*format|copyright|bump ",
    re.IGNORECASE,
)
TRAILER = re.compile(r"^\s*[\w-]+(?:-by|-authored-by|-off-by)\s*:.*$|^\s*(?:closes|fixes|fix|refs?|see)"
                     r"\s*:?\s*(?:#\d+|https?://\S+)[\s,.]*$", re.IGNORECASE | re.MULTILINE)
PATHISH = re.compile(r"`?(?:[\w.\-]+/)+[\w.\-]+`?"
                     r"|`?\b[\w\-]+\.(?:py|pyi|rst|md|txt|toml|cfg|ini|yml|yaml|json|html)\b`?")
URL = re.compile(r"https?://\S+")


def is_test(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    parts = path.split("/")
    return (name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"
            or any(p in ("tests", "test", "testing", "testproject") for p in parts[:-1]))


def question_of(message: str) -> str:
    text = TRAILER.sub("", message)
    text = URL.sub("", text)
    text = PATHISH.sub("", text)
    text = REF.sub("", text)
    text = re.sub(r"\(\s*\)", "", text)
    lines = [ln.rstrip() for ln in text.splitlines()]
    text = "\n".join(lines).strip()
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text[:2000].strip()


def commits(git_dir: Path, limit: int) -> list[tuple[str, str, str, list[tuple[str, str]]]]:
    """(sha, parent, message, [(status, path)]) of the newest non-merge commits."""
    out = subprocess.run(
        ["git", "--git-dir", str(git_dir), "log", "--no-merges", f"-n{limit}", "--no-renames",
         "--format=%x1e%H %P%x1f%B%x1f", "--name-status", "HEAD"],
        check=True, capture_output=True, text=True, errors="replace").stdout
    found = []
    for record in out.split("\x1e")[1:]:
        head, message, files = record.split("\x1f", 2)
        shas = head.split()
        if len(shas) != 2:
            continue
        changes = [tuple(line.split("\t", 1)) for line in files.strip().splitlines() if "\t" in line]
        found.append((shas[0], shas[1], message.strip(), [(s, p) for s, p in changes]))
    return found


def eligible(message: str, changes: list[tuple[str, str]]) -> list[str] | None:
    subject = message.splitlines()[0] if message else ""
    if not REF.search(message) or CHORE.search(subject):
        return None
    code = [(s, p) for s, p in changes if p.endswith(".py") and not is_test(p)]
    if not code or any(s != "M" for s, _ in code) or len(code) > 3:
        return None
    if any(p.startswith(("docs/", "doc/")) or p.rsplit("/", 1)[-1] in ("setup.py", "noxfile.py", "conf.py")
           for _, p in code):
        return None
    if len(re.findall(r"[A-Za-z]{2,}", question_of(message))) < 5:
        return None
    return sorted(p for _, p in code)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repos", nargs="+", help="OWNER/NAME")
    parser.add_argument("--mirrors", default="/work/.mirror")
    parser.add_argument("--per-repo", type=int, default=25)
    parser.add_argument("--window", type=int, default=150, help="eligible commits to sample from")
    parser.add_argument("--scan", type=int, default=6000, help="newest commits to look at")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rows = []
    for repo in args.repos:
        git_dir = Path(args.mirrors) / repo.replace("/", "+") / "repo"
        pool = []
        for sha, parent, message, changes in commits(git_dir, args.scan):
            gold = eligible(message, changes)
            if gold:
                pool.append({"repo": repo, "commit": sha, "parent": parent,
                             "question": question_of(message), "gold": gold})
            if len(pool) >= args.window:
                break
        step = max(len(pool) / args.per_repo, 1.0)
        picked = [pool[int(i * step)] for i in range(min(args.per_repo, len(pool)))]
        print(f"{repo}: {len(pool)} eligible, {len(picked)} picked", file=sys.stderr)
        rows.extend(picked)
    with open(args.out, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} cases -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
