"""Retrieval on real commits: does the context builder pack the files a real change touched?

Cases (bench/context/commits.jsonl, made by make_cases.py): the commit message with file paths
removed is the question, the non-test `.py` files it modified are the gold, the parent commit
is the repository (checked out, with its history up to the parent, in a clone under --work).

    python bench/context/realcommits.py --mirrors /work/.mirror --work /tmp/ctxeval \
        [--split tune|held|all] [--repos pallets/flask,psf/black] [--per-repo N] [--out rows.json]

In the same run, on the same checkouts and with the same token counts:
- ours: `build_context(root, question, budget=B)` at each budget (the real pipeline and cache);
- BM25: the `rank_bm25` package (BM25Okapi) over every `.py` file's words (lower-case
  alphanumeric runs, stemmed, stopwords removed), whole files packed in rank order, skipping a
  file that does not fit and going on (SWE-bench's "BM25 retrieval" setting);
- grep: the question's code-looking names (all its words when it has none) searched as whole
  words in every `.py` file; files ranked by how many distinct names they hold, then by hits,
  packed whole the same way.
Tokens are the builder's deterministic estimate (3.6 characters a token) for all three.
Whole-file recall: share of gold files packed whole; full-or-outline: packed at all (ours);
rank recall@k: share of gold files in the first k of the ranking. "fits": cases whose gold
files, whole, sum to at most the budget. Times: cold = first case of a repository with an
empty cache; incremental = the first call after checking out the next parent (re-parses the
changed files); warm = the same question again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUDGETS = (8000, 32000, 128000)
KS = (1, 3, 10)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True, errors="replace").stdout


def split_of(case: dict[str, object]) -> str:
    """A fixed half of the cases for tuning, the other half held out (by commit hash)."""
    return "tune" if zlib.crc32(str(case["commit"]).encode()) % 2 == 0 else "held"


def prepare(repo: str, mirrors: Path, work: Path) -> Path:
    root = work / "repos" / repo.replace("/", "+")
    if not (root / ".git").exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout",
                        str(mirrors / repo.replace("/", "+") / "repo"), str(root)], check=True)
    return root


def checkout(root: Path, sha: str) -> None:
    git(root, "checkout", "-q", "-f", "--detach", sha)
    git(root, "clean", "-q", "-f", "-d", "-x")


class Corpus:
    """The `.py` files of a checkout, tokenized once per content (keyed by blob id)."""

    def __init__(self) -> None:
        self.memo: dict[str, tuple[str, list[str], int]] = {}

    def load(self, root: Path, stem, stop) -> dict[str, tuple[str, list[str], int]]:  # type: ignore[no-untyped-def]
        from gemma_code.context.files import path_skip_reason
        from gemma_code.context.pack import full_block
        from gemma_code.context.tags import decode
        from gemma_code.context.tokens import estimate_tokens

        out = {}
        for line in git(root, "ls-files", "-s", "--", "*.py").splitlines():
            meta, path = line.split("\t", 1)
            blob = meta.split()[1]
            if path_skip_reason(path) is not None:
                continue
            if blob not in self.memo:
                try:
                    text = decode((root / path).read_bytes())
                except OSError:
                    continue
                words = [stem(w) for w in re.findall(r"[a-z0-9]+", text.lower())
                         if len(w) > 1 and w not in stop]
                self.memo[blob] = (text, words, estimate_tokens(full_block(path, text, "python")))
            out[path] = self.memo[blob]
        return out


def pack_whole(order: list[str], sizes: dict[str, int], budget: int) -> set[str]:
    """Whole files in rank order, skipping those that no longer fit."""
    left, chosen = budget, set()
    for path in order[:5000]:
        if sizes[path] <= left:
            chosen.add(path)
            left -= sizes[path]
        if left < 50:
            break
    return chosen


def grep_rank(question: str, texts: dict[str, str]) -> list[str]:
    from gemma_code.context.rank import STOPWORDS, analyze_question

    q = analyze_question(question)
    names = q.code_names or [i for i in q.identifiers if i.lower() not in STOPWORDS]
    names = list(dict.fromkeys(names))[:40]
    if not names:
        return []
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b", re.IGNORECASE)
    scores = {}
    for path, text in texts.items():
        hits = pattern.findall(text)
        if hits:
            scores[path] = (len({h.lower() for h in hits}), len(hits))
    return sorted(scores, key=lambda p: (-scores[p][0], -scores[p][1], p))


def recall_at(order: list[str], gold: list[str], k: int) -> float:
    top = set(order[:k])
    return sum(g in top for g in gold) / len(gold)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=str(HERE / "commits.jsonl"))
    parser.add_argument("--mirrors", default="/work/.mirror")
    parser.add_argument("--work", default="/tmp/ctxeval")
    parser.add_argument("--split", choices=("tune", "held", "all"), default="all")
    parser.add_argument("--repos", default="", help="comma-separated OWNER/NAME (default: all)")
    parser.add_argument("--per-repo", type=int, default=0, help="at most N cases per repository")
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    from rank_bm25 import BM25Okapi

    from gemma_code.context import build_context
    from gemma_code.context.rank import STOPWORDS
    from gemma_code.context.tags import stem

    work = Path(args.work).resolve()
    cases = [json.loads(x) for x in Path(args.cases).read_text(encoding="utf-8").splitlines() if x.strip()]
    wanted = [r for r in args.repos.split(",") if r]
    cases = [c for c in cases if (args.split == "all" or split_of(c) == args.split)
             and (not wanted or c["repo"] in wanted)]
    by_repo: dict[str, list[dict]] = {}
    for case in cases:
        by_repo.setdefault(case["repo"], []).append(case)
    rows = []
    for repo, group in by_repo.items():
        if args.per_repo:
            group = group[: args.per_repo]
        root = prepare(repo, Path(args.mirrors), work)
        os.environ["GEMMA_CODE_HOME"] = str(work / "home" / repo.replace("/", "+"))
        subprocess.run(["rm", "-rf", os.environ["GEMMA_CODE_HOME"]], check=True)
        # oldest parent first, so each checkout changes only what the history changed since
        dates = {c["parent"]: int(git(root, "show", "-s", "--format=%ct", c["parent"]).strip() or 0)
                 for c in group}
        group.sort(key=lambda c: (dates[c["parent"]], c["commit"]))
        corpus = Corpus()
        for number, case in enumerate(group):
            checkout(root, case["parent"])
            question, gold = case["question"], case["gold"]
            row: dict[str, object] = {"repo": repo, "commit": case["commit"], "split": split_of(case),
                                      "gold": gold}
            times = []
            for budget in BUDGETS:
                t0 = time.perf_counter()
                packed = build_context(root, question, budget=budget)
                times.append(time.perf_counter() - t0)
                modes = {f.path: f.mode for f in packed.files}
                row[f"ours_full@{budget}"] = sum(modes.get(g) == "full" for g in gold) / len(gold)
                row[f"ours_any@{budget}"] = sum(g in modes for g in gold) / len(gold)
                if budget == BUDGETS[0]:
                    order = packed.order
            t0 = time.perf_counter()
            build_context(root, question, budget=BUDGETS[0])
            row["warm_s"] = time.perf_counter() - t0
            row["first_s"] = times[0]
            row["kind"] = "cold" if number == 0 else "incremental"
            files = corpus.load(root, stem, STOPWORDS)
            paths = sorted(files)
            sizes = {p: files[p][2] for p in paths}
            row["gold_tokens"] = sum(sizes.get(g, 0) for g in gold)
            bm25 = BM25Okapi([files[p][1] for p in paths])
            qwords = [stem(w) for w in re.findall(r"[a-z0-9]+", question.lower())
                      if len(w) > 1 and w not in STOPWORDS]
            scores = bm25.get_scores(qwords) if qwords else [0.0] * len(paths)
            bm25_order = [p for s, p in sorted(zip(scores, paths, strict=True), key=lambda t: (-t[0], t[1]))
                          if s > 0]
            grep_order = grep_rank(question, {p: files[p][0] for p in paths})
            for name, ranking in (("ours", order), ("bm25", bm25_order), ("grep", grep_order)):
                for k in KS:
                    row[f"{name}_r@{k}"] = recall_at(ranking, gold, k)
            for budget in BUDGETS:
                for name, ranking in (("bm25", bm25_order), ("grep", grep_order)):
                    chosen = pack_whole(ranking, sizes, budget)
                    row[f"{name}_full@{budget}"] = sum(g in chosen for g in gold) / len(gold)
            rows.append(row)
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()
                              if k not in ("gold",)}), file=sys.stderr, flush=True)
    report(rows)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def report(rows: list[dict]) -> None:
    repos = sorted({r["repo"] for r in rows})
    print(f"{len(rows)} cases over {len(repos)} repositories; tokens: estimate (3.6 chars/token)")
    for split in ("tune", "held", "all"):
        sub = [r for r in rows if split == "all" or r["split"] == split]
        if not sub:
            continue
        print(f"\n[{split}] {len(sub)} cases")
        print(f"{'budget':>7} {'fits':>5} | {'ours whole':>10} {'ours any':>9} {'BM25':>6} {'grep':>6}"
              f" | all cases: {'ours whole':>10} {'ours any':>9} {'BM25':>6} {'grep':>6}")
        for b in BUDGETS:
            fit = [r for r in sub if r["gold_tokens"] <= b]
            keys = ("ours_full", "ours_any", "bm25_full", "grep_full")
            cells = [mean([r[f"{k}@{b}"] for r in fit]) for k in keys]
            alls = [mean([r[f"{k}@{b}"] for r in sub]) for k in keys]
            print(f"{b:>7} {len(fit):>5} | {cells[0]:>10.3f} {cells[1]:>9.3f} {cells[2]:>6.3f} "
                  f"{cells[3]:>6.3f}"
                  f" | {'':>11}{alls[0]:>10.3f} {alls[1]:>9.3f} {alls[2]:>6.3f} {alls[3]:>6.3f}")
        for name in ("ours", "bm25", "grep"):
            print(f"  rank recall {name:<5} " + "  ".join(
                f"@{k}: {mean([r[f'{name}_r@{k}'] for r in sub]):.3f}" for k in KS))
    print()
    for kind in ("cold", "incremental"):
        ts = sorted(r["first_s"] for r in rows if r["kind"] == kind)
        if ts:
            print(f"{kind:<12} n={len(ts):<4} median {statistics.median(ts):6.2f} s  "
                  f"p90 {ts[int(0.9 * (len(ts) - 1))]:6.2f} s  max {ts[-1]:6.2f} s")
    ts = sorted(r["warm_s"] for r in rows)
    print(f"{'warm':<12} n={len(ts):<4} median {statistics.median(ts):6.2f} s  "
          f"p90 {ts[int(0.9 * (len(ts) - 1))]:6.2f} s  max {ts[-1]:6.2f} s")
    for repo in repos:
        sub = [r for r in rows if r["repo"] == repo]
        print(f"  {repo:<30} n={len(sub):<3} " + " ".join(
            f"{b // 1000}K ours {mean([r[f'ours_full@{b}'] for r in sub]):.2f}/bm25 "
            f"{mean([r[f'bm25_full@{b}'] for r in sub]):.2f}" for b in BUDGETS))


if __name__ == "__main__":
    raise SystemExit(main())
