"""Tune the ranking's fusion weights on the tuning half of the real-commit cases (never the held-out half).

    python bench/context/tune.py --mirrors /work/.mirror --work /tmp/ctxeval [--per-repo N]

For each tuning case (checked out as realcommits.py does) the ranking's views are captured once;
then every weight setting of the grid fuses them, by the builder's normalized-score sum and, for
comparison, by weighted reciprocal-rank fusion; it prints rank recall@1/3/10 and mean
reciprocal rank of the best settings. --dump/--load keep the captured views.
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

RRF_KS = (3, 10, 60)
GRID = {
    "graph": (0.0, 0.15, 0.3, 0.6),
    "mention": (0.0, 0.15, 0.3, 0.6),
    "cochange": (0.0, 0.1, 0.2),
    "recent": (0.0, 0.05, 0.1),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", default=str(Path(__file__).resolve().parent / "commits.jsonl"))
    parser.add_argument("--mirrors", default="/work/.mirror")
    parser.add_argument("--work", default="/tmp/ctxeval")
    parser.add_argument("--per-repo", type=int, default=0)
    parser.add_argument("--repos", default="", help="comma-separated OWNER/NAME (default: all)")
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
    print(f"{len(samples)} tuning cases", flush=True)
    results = []
    for values in itertools.product(*GRID.values()):
        weights = {"lexical": 1.0, **dict(zip(GRID, values, strict=True))}
        results.append((evaluate(samples, lambda views, w=weights: real_fuse(views, w)), "score", weights))
        for k in RRF_KS:
            results.append((evaluate(samples, lambda views, w=weights, k=k: rrf(views, w, k)), f"rrf K={k}",
                            weights))
    results.append((evaluate(samples, lambda views: real_fuse(views, {"lexical": 1.0})), "lexical only", {}))
    results.sort(key=lambda r: -sum(r[0]))
    for scores, method, weights in results[:15] + [r for r in results if r[1] == "lexical only"]:
        print(f"{method:<12} {weights} r@1 {scores[0]:.3f} r@3 {scores[1]:.3f} r@10 {scores[2]:.3f} "
              f"mrr {scores[3]:.3f}")
    for method in ("score", *(f"rrf K={k}" for k in RRF_KS)):
        best = next(r for r in results if r[1] == method)
        print(f"best {method:<10} {best[2]} r@1 {best[0][0]:.3f} r@3 {best[0][1]:.3f} r@10 {best[0][2]:.3f}")
    # then the weight of test files' fused scores, with the builder's view weights
    from gemma_code.context.fuse import WEIGHTS, is_test_path

    for factor in (1.0, 0.8, 0.6, 0.5, 0.4, 0.2):
        def demoted(views, factor=factor):  # type: ignore[no-untyped-def]
            return {p: v * factor if is_test_path(p) else v for p, v in real_fuse(views, WEIGHTS).items()}
        r1, r3, r10, mrr = evaluate(samples, demoted)
        print(f"tests x{factor:<4} r@1 {r1:.3f} r@3 {r3:.3f} r@10 {r10:.3f} mrr {mrr:.3f}")
    return 0


def rrf(views: dict, weights: dict, k: int) -> dict[str, float]:
    """Weighted reciprocal-rank fusion, for comparison: sum of weight / (k + rank)."""
    fused: dict[str, float] = {}
    for name, scores in views.items():
        weight = weights.get(name, 0.0)
        if weight <= 0:
            continue
        ordered = sorted((p for p, v in scores.items() if v > 0), key=lambda p: (-scores[p], p))
        for rank, path in enumerate(ordered[:200]):
            fused[path] = fused.get(path, 0.0) + weight / (k + rank + 1)
    return fused


def evaluate(samples: list, fused) -> tuple[float, float, float, float]:  # type: ignore[no-untyped-def]
    """Rank recall @1, @3, @10 and mean reciprocal rank of the gold files."""
    totals = [0.0, 0.0, 0.0, 0.0]
    for views, gold in samples:
        scores = fused(views)
        order = {p: i for i, p in enumerate(sorted(scores, key=lambda p: (-scores[p], p)))}
        ranks = [order[g] for g in gold if g in order]
        for j, cut in enumerate((1, 3, 10)):
            totals[j] += sum(r < cut for r in ranks) / len(gold)
        totals[3] += sum(1 / (r + 1) for r in ranks) / len(gold)
    n = max(len(samples), 1)
    return totals[0] / n, totals[1] / n, totals[2] / n, totals[3] / n


if __name__ == "__main__":
    raise SystemExit(main())
