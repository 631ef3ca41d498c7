"""Smoke test only (48 questions written for it): recall of the files that answer them, ours vs BM25.

The measure of retrieval is bench/context/realcommits.py (real commits, held-out half).

Usage (the code bases are PyPI sdists unpacked outside the repository):

    mkdir -p /tmp/ctxbench && cd /tmp/ctxbench
    pip download --no-deps --no-binary :all: "django==5.1.*" "sympy==1.14.*" -d .
    tar xzf django-5.1.*.tar.gz && tar xzf sympy-1.14.*.tar.gz
    python bench/context/retrieval.py --repo django=/tmp/ctxbench/django-5.1.15 \
        --repo sympy=/tmp/ctxbench/sympy-1.14.0 --tokenizer /path/to/gemma-4.gguf

For each question and budget it ranks once and packs at every budget with the same code
`build_context` runs; the baseline ranks whole files by BM25 over their words and packs them
whole, in order, with the same token counts. Caches go to GEMMA_CODE_HOME (default under /tmp).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent


class BM25Baseline:
    """Whole-file BM25 over lower-case alphanumeric words (stemmed, stopwords removed)."""

    def __init__(self, texts: dict[str, str], stem, stop) -> None:  # type: ignore[no-untyped-def]
        self.stem, self.stop = stem, stop
        memo: dict[str, str] = {}
        self.tfs: dict[str, Counter[str]] = {}
        self.df: Counter[str] = Counter()
        for path, text in texts.items():
            counts = Counter(re.findall(r"[a-z0-9]+", text.lower()))
            tf: Counter[str] = Counter()
            for word, c in counts.items():
                s = memo.get(word)
                if s is None:
                    s = memo[word] = stem(word)
                tf[s] += c
            self.tfs[path] = tf
            self.df.update(tf.keys())
        self.lengths = {p: sum(tf.values()) for p, tf in self.tfs.items()}
        self.avg = sum(self.lengths.values()) / max(len(self.lengths), 1)

    def rank(self, question: str) -> list[str]:
        words = re.findall(r"[a-z0-9]+", question.lower())
        q = list(dict.fromkeys(self.stem(w) for w in words if w not in self.stop and len(w) > 2))
        n = len(self.tfs)
        scores: dict[str, float] = {}
        for path, tf in self.tfs.items():
            norm = 1.2 * (0.25 + 0.75 * self.lengths[path] / self.avg)
            total = 0.0
            for t in q:
                f = tf.get(t, 0)
                if f:
                    idf = math.log(1 + (n - self.df[t] + 0.5) / (self.df[t] + 0.5))
                    total += idf * f * 2.2 / (f + norm)
            if total:
                scores[path] = total
        return sorted(scores, key=lambda p: (-scores[p], p))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", action="append", required=True, help="NAME=PATH (repeatable)")
    parser.add_argument("--questions", default=str(HERE / "questions.jsonl"))
    parser.add_argument("--budgets", default="8000,32000,128000")
    parser.add_argument("--tokenizer", default="", help="GGUF whose vocabulary counts tokens")
    parser.add_argument("--out", default="", help="write per-question results as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("GEMMA_CODE_HOME", "/tmp/gemma-code-bench-home")

    from gemma_code.context import _fingerprint
    from gemma_code.context.cache import ContextCache
    from gemma_code.context.files import scan_files
    from gemma_code.context.fuse import rank_files
    from gemma_code.context.history import load_history
    from gemma_code.context.pack import full_block, pack
    from gemma_code.context.rank import STOPWORDS, Graph, reference_graph
    from gemma_code.context.tags import decode, stem
    from gemma_code.context.tagscan import scan_tags
    from gemma_code.context.tokens import TokenCounter
    from gemma_code.engine.vocab import gguf_counter

    budgets = [int(b) for b in args.budgets.split(",")]
    repos = dict(item.split("=", 1) for item in args.repo)
    questions = [json.loads(line) for line in Path(args.questions).read_text().splitlines() if line.strip()]
    count = gguf_counter(Path(args.tokenizer)) if args.tokenizer else None
    tokenizer_id = f"bench:{args.tokenizer}" if args.tokenizer else ""
    rows = []
    with ContextCache() as cache:
        counter = TokenCounter(count, tokenizer_id, cache)
        for name, path in repos.items():
            root = Path(path).resolve()
            scan = scan_files(root)
            tags = scan_tags(root, scan.files, cache=cache)
            docs = tags.tags
            key = _fingerprint(scan.files, [])
            blob = cache.load_blob(str(root), "graph", key)
            graph = Graph.load(blob) if blob else reference_graph(docs)
            texts = {p: decode((root / p).read_bytes()) for p in docs}
            baseline = BM25Baseline(texts, stem, STOPWORDS)
            history = load_history(root, cache) if scan.in_git else None
            for q in (q for q in questions if q["repo"] == name):
                t0 = time.perf_counter()
                ranking = rank_files(q["question"], docs, dirty=scan.dirty, recent=scan.recent, graph=graph,
                                     history=history)
                rank_s = time.perf_counter() - t0
                base_order = baseline.rank(q["question"])
                row = {"repo": name, "question": q["question"], "answers": q["answers"],
                       "rank_s": round(rank_s, 3),
                       "ours_rank": {a: ranking.order.index(a) + 1 if a in ranking.order else None
                                     for a in q["answers"]},
                       "bm25_rank": {a: base_order.index(a) + 1 if a in base_order else None
                                     for a in q["answers"]}}
                for budget in budgets:
                    packed = pack(root, ranking.order, docs, budget=budget, counter=counter,
                                  all_paths=[f.path for f in scan.files], question=q["question"])
                    modes = {f.path: f.mode for f in packed.files}
                    left, base_files = budget, []
                    for start in range(0, min(len(base_order), 3000), 64):
                        chunk = base_order[start : start + 64]
                        blocks = [full_block(p, texts[p], docs[p].lang) for p in chunk]
                        for p, tokens in zip(chunk, counter.count_many(blocks), strict=True):
                            if tokens <= left:
                                base_files.append(p)
                                left -= tokens
                        if left < 50:
                            break
                    answers = q["answers"]
                    row[f"full@{budget}"] = sum(modes.get(a) == "full" for a in answers) / len(answers)
                    row[f"any@{budget}"] = sum(a in modes for a in answers) / len(answers)
                    row[f"bm25@{budget}"] = sum(a in base_files for a in answers) / len(answers)
                rows.append(row)
                print(json.dumps({k: row[k] for k in row if k not in ("answers",)}), file=sys.stderr)
    print(f"{len(rows)} questions over {', '.join(repos)}; tokens: {'exact' if count else 'estimated'}")
    header = f"{'set':<8} {'budget':>7} {'ours full':>10} {'ours full+outline':>18} {'BM25 whole-file':>16}"
    print(header)
    for name in [*repos, "all"]:
        subset = [r for r in rows if name == "all" or r["repo"] == name]
        for budget in budgets:
            full, both, base = (
                sum(r[f"{k}@{budget}"] for r in subset) / max(len(subset), 1) for k in ("full", "any", "bm25")
            )
            print(f"{name:<8} {budget:>7} {full:>10.3f} {both:>18.3f} {base:>16.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
