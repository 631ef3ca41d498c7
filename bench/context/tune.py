"""Tune the ranking's fusion weights on the tuning half of the real-commit cases (never the held-out half).

    python bench/context/tune.py --mirrors /work/.mirror --work /tmp/ctxeval [--per-repo N]

For each tuning case (checked out as realcommits.py does) every weight setting of the grid
ranks the files; it prints rank recall@1/3/10 and mean reciprocal rank per setting.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pickle
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from realcommits import checkout, git, prepare, split_of

GRID = {
    "graph": (0.0, 0.5, 1.0),
    "mention": (0.3, 0.6, 1.2),
    "cochange": (0.0, 0.3, 0.6),
    "recent": (0.0, 0.15, 0.4),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", default=str(Path(__file__).resolve().parent / "commits.jsonl"))
    parser.add_argument("--mirrors", default="/work/.mirror")
    parser.add_argument("--work", default="/tmp/ctxeval")
    parser.add_argument("--per-repo", type=int, default=0)
    parser.add_argument("--repos", default="", help="comma-separated OWNER/NAME (default: all)")
    parser.add_argument("--k", default="10", help="RRF K values, comma-separated")
    parser.add_argument("--dump", default="", help="save the captured views here (pickle)")
    parser.add_argument("--load", default="", help="tune on views saved by --dump instead")
    args = parser.parse_args()

    from gemma_code.context import build_context, fuse

    cases = [json.loads(x) for x in Path(args.cases).read_text(encoding="utf-8").splitlines() if x.strip()]
    wanted = [r for r in args.repos.split(",") if r]
    cases = [c for c in cases if split_of(c) == "tune" and (not wanted or c["repo"] in wanted)]
    by_repo: dict[str, list[dict]] = {}
    for case in cases:
        by_repo.setdefault(case["repo"], []).append(case)
    settings = []
    for ks in [int(k) for k in args.k.split(",")]:
        for values in itertools.product(*GRID.values()):
            settings.append((ks, dict(zip(GRID, values, strict=True))))
    captured: list[dict] = []
    real_fuse = fuse.fuse

    def capture(views, weights):  # type: ignore[no-untyped-def]
        captured.append({name: dict(scores) for name, scores in views.items()})
        return real_fuse(views, weights)

    fuse.fuse = capture
    samples = []  # (views, gold) per case
    work = Path(args.work).resolve()
    if args.load:
        with open(args.load, "rb") as handle:
            samples = pickle.load(handle)
        by_repo = {}
    for repo, group in by_repo.items():
        group = group[: args.per_repo] if args.per_repo else group
        root = prepare(repo, Path(args.mirrors), work)
        os.environ["GEMMA_CODE_HOME"] = str(work / "tune-home" / repo.replace("/", "+"))
        dates = {c["parent"]: int(git(root, "show", "-s", "--format=%ct", c["parent"]).strip() or 0)
                 for c in group}
        group.sort(key=lambda c: (dates[c["parent"]], c["commit"]))
        for case in group:
            checkout(root, case["parent"])
            captured.clear()
            build_context(root, case["question"], budget=2000)
            views = {name: dict(sorted(scores.items(), key=lambda kv: -kv[1])[:400])
                     for name, scores in captured[-1].items()}
            samples.append((views, case["gold"]))
        print(f"{repo}: {len(samples)} cases so far", file=sys.stderr, flush=True)
    fuse.fuse = real_fuse
    if args.dump:
        with open(args.dump, "wb") as handle:
            pickle.dump(samples, handle)
    totals = {i: [0.0, 0.0, 0.0, 0.0] for i in range(len(settings))}
    n = len(samples)
    for i, (k, weights) in enumerate(settings):
        fuse.RRF_K = k
        for views, gold in samples:
            scores = real_fuse(views, {"lexical": 1.0, **weights})
            order = sorted(scores, key=lambda p: (-scores[p], p))
            ranks = [order.index(g) for g in gold if g in order]
            t = totals[i]
            for j, cut in enumerate((1, 3, 10)):
                t[j] += sum(r < cut for r in ranks) / len(gold)
            t[3] += sum(1 / (r + 1) for r in ranks) / len(gold)
    best = sorted(totals, key=lambda i: -(totals[i][1] + totals[i][2] + totals[i][0]))
    for i in best[:25]:
        k, weights = settings[i]
        t = totals[i]
        print(f"K={k} {weights} r@1 {t[0] / n:.3f} r@3 {t[1] / n:.3f} r@10 {t[2] / n:.3f} mrr {t[3] / n:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
