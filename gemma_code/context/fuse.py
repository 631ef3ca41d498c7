"""The final ranking: several views of relevance fused by a weighted sum of normalized scores.

Views (each a score per file, divided by the view's best score):
- `lexical`: BM25 of the question's words against each file's words, whole code names and path,
  times the file-kind prior (code over prose over data, tests a little lower);
- `graph`: personalized PageRank over the reference graph, seeded by what the question names,
  by the lexical hits and by the files that change with them;
- `mention`: files the question points at directly (a path, a name they define, a test whose
  subject they are, an error message they contain);
- `cochange`: files that changed in the same commits as the top lexical and mentioned files;
- `recent`: files changed recently and often (a weak prior: work continues where it was).
A file that several views put near the top wins over one that a single view loves. Weighted
reciprocal-rank fusion (sum of weight / (K + rank)) was tried too: on the tuning half of the
real-commit cases it put the changed file first less often (see BENCHMARKS.md).

Below the first few places, a file in the folder of a top-ranked file gains (`folder_scores`): a
change lands beside the code it is about (the helper module, the exceptions, the loaders of the
same package), which words and references often miss.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from gemma_code.context.history import History
from gemma_code.context.rank import (
    MAX_DEFINERS,
    STOPWORDS,
    Graph,
    Postings,
    Question,
    analyze_question,
    bm25_scores,
    file_prior,
    pagerank,
    reference_graph,
)
from gemma_code.context.tags import FileTags, stem

# Weights of the views (tuned on the tuning half of bench/context/commits.jsonl; see BENCHMARKS.md).
WEIGHTS: dict[str, float] = {"lexical": 1.0, "graph": 0.3, "mention": 0.6, "cochange": 0.1, "recent": 0.05}
COCHANGE_SEEDS = 5  # top lexical files whose co-changing files are looked up
TEST_WEIGHT = 0.5  # fused score of a test file (tuned like WEIGHTS: 0.2-0.6 ranked alike)
HISTORY_WEIGHT = 0.5  # fused score of a changelog or release note (chosen on the tuning half)
# The folder view (chosen on the tuning half: rank recall@10 0.893 -> 0.938, the first three
# places unchanged): the top FOLDER_TOP code files lend FOLDER_WEIGHT to the files beside them,
# below the first KEEP_HEAD places, which stay as the fused scores put them.
FOLDER_TOP = 3
FOLDER_WEIGHT = 0.2
KEEP_HEAD = 3
# changelogs and release notes: a file's name without its extension, or a folder on its path
_HISTORY_NAMES = frozenset({"changes", "changelog", "history", "news", "release_notes", "release-notes",
                            "releasenotes", "whatsnew", "whats_new"})
_HISTORY_ASKED = re.compile(r"change\s?log|release\s?notes?|what'?s\s?new|\bnews\.(?:md|rst|txt)\b"
                            r"|\bchanges\.(?:md|rst|txt)\b", re.IGNORECASE)
_PROSE_EXTENSIONS = frozenset({"md", "rst", "txt", "adoc", "asciidoc", "markdown", "org", "textile"})
_HISTORY_DIRS = frozenset({"releases", "changelog", "changelog.d", "changes", "newsfragments", "whatsnew",
                           "release-notes", "release_notes"})
_ERROR_LINE = re.compile(r"\b\w*(?:Error|Exception|Warning)\b:\s*([^\n]{8,120})")
_QUOTED_PHRASE = re.compile(r"\"([^\"\n]{8,120})\"|'([^'\n]{8,120})'|`([^`\n]{8,120})`")


@dataclass
class Ranking:
    """Files most relevant first, with the score parts that put them there."""

    order: list[str]
    scores: dict[str, float]
    seeds: dict[str, float]


def message_phrases(question: str, limit: int = 3) -> list[str]:
    """Error messages and quoted phrases of several words: text to look for verbatim."""
    found: list[str] = []
    for match in _ERROR_LINE.finditer(question):
        found.append(match.group(1))
    for match in _QUOTED_PHRASE.finditer(question):
        found.append(next(g for g in match.groups() if g))
    out: list[str] = []
    for raw in found:
        phrase = raw.strip().strip("\"'`").strip()
        head = re.match(r"\w*(?:Error|Exception|Warning):\s*", phrase)
        phrase = phrase[head.end():] if head else phrase
        # a message's fixed part: up to the first interpolated-looking value
        phrase = re.split(r"[{}<>%\"'`]|\b0x[0-9a-f]+|\d{3,}", phrase.strip(" .:"))[0].strip()
        if len(phrase.split()) >= 3 and phrase not in out:
            out.append(phrase)
    return out[:limit]


def is_test_path(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return ("/tests/" in f"/{path}" or "/test/" in f"/{path}" or name.startswith("test_")
            or name.endswith(("_test.py", "_tests.py")) or ".test." in name or ".spec." in name)


def is_history_path(path: str) -> bool:
    """A changelog, release note or news fragment: the record of past changes, not the code.
    Only prose files (`history.py` or `releases/release.go` is code)."""
    parts = path.lower().split("/")
    stem_name, dot, ext = parts[-1].partition(".")
    if dot and ext.rsplit(".", 1)[-1] not in _PROSE_EXTENSIONS:
        return False
    return stem_name in _HISTORY_NAMES or any(part in _HISTORY_DIRS for part in parts[:-1])


def _test_subjects(question: Question) -> tuple[set[str], set[str]]:
    """Names and module stems that the tests a question names are about (`test_parse_url` ->
    `parse_url`; `tests/test_client.py` -> `client`)."""
    names: set[str] = set()
    modules: set[str] = set()
    for ident in question.identifiers:
        low = ident.lower()
        if low.startswith("test_") and len(low) > 7:
            # `test_parse_url_keeps_query` tests one of parse_url_keeps_query, ..., parse_url, parse
            parts = ident[5:].split("_")
            prefixes = ("_".join(parts[:n]) for n in range(1, len(parts) + 1))
            names.update(p for p in prefixes if len(p) >= 4)
        elif ident.startswith("Test") and len(ident) > 6 and ident[4].isupper():
            names.add(ident[4:])
    for frag in question.paths:
        name = frag.rsplit("/", 1)[-1].split(".", 1)[0]
        if name.startswith("test_") and len(name) > 6:
            modules.add(name[5:])
        elif name.endswith("_test") and len(name) > 6:
            modules.add(name[:-5])
    return names, modules


def mention_seeds(
    question: Question, docs: Mapping[str, FileTags], phrase_sites: Mapping[str, list[str]] | None = None
) -> dict[str, float]:
    """Files the question points at: by path fragment, by defining a named identifier, by being
    the subject of a named test, or by containing a quoted error message."""
    seeds: dict[str, float] = {}
    paths = sorted(docs)

    def add(path: str, value: float) -> None:
        seeds[path] = seeds.get(path, 0.0) + value

    for frag in question.paths:
        for path in paths:
            if path == frag or path.endswith("/" + frag):
                add(path, 3.0)
    subjects, subject_modules = _test_subjects(question)
    code = set(question.code_names) | subjects
    plain = {i for i in question.identifiers
             if i not in code and len(i) >= 3 and i.lower() not in STOPWORDS}
    definers: dict[str, list[str]] = {}
    by_stem: dict[str, list[str]] = {}
    lowered = {stem(i) for i in code | plain}
    for path in paths:
        for name, *_ in docs[path].rows:
            if name in code or name in plain:
                owners = definers.setdefault(name, [])
                if not owners or owners[-1] != path:
                    owners.append(path)
        name = path.rsplit("/", 1)[-1]
        module = name.split(".", 1)[0]
        stem_name = stem(module)
        if len(stem_name) >= 4 and stem_name in lowered:
            by_stem.setdefault(stem_name, []).append(path)
        if module in subject_modules and not is_test_path(path):
            add(path, 2.0)  # the module a named test file tests
    for name, owners in sorted(definers.items()):
        # a code-looking name is meant literally; a plain word only counts when it is rare
        limit, weight = (MAX_DEFINERS, 2.0) if name in code else (3, 0.7)
        if name.lower().startswith("test") and all(is_test_path(p) for p in owners):
            weight = 0.5  # a named test points at the code under test more than at itself
        owners = [p for p in owners if not (name in subjects and is_test_path(p))]
        if len(owners) <= limit:
            for path in owners:
                add(path, weight / len(owners))
    for owners in by_stem.values():
        if len(owners) <= 3:
            for path in owners:
                add(path, 1.5 / len(owners))
    for sites in (phrase_sites or {}).values():
        # the raising site of a quoted message: code that contains it, not the tests that check it
        code_sites = [p for p in sites if p in docs and not is_test_path(p)]
        if 0 < len(code_sites) <= 5:
            for path in code_sites:
                add(path, 2.5 / len(code_sites))
    return seeds


def folder_scores(
    scores: Mapping[str, float], paths: Iterable[str], top: int = FOLDER_TOP,
    lends: Callable[[str], bool] | None = None,
) -> dict[str, float]:
    """Each file's share of the relevance of the top `top` files that `lends` (default: the
    non-test files) in its folder (the best folder 1.0). The repository's root folder lends
    nothing: it holds a bit of everything."""
    lender = lends or (lambda p: not is_test_path(p))
    leaders = heapq.nsmallest(top, (p for p in scores if lender(p)), key=lambda p: (-scores[p], p))
    best = scores[leaders[0]] if leaders else 0.0
    if best <= 0:
        return {}
    folders: dict[str, float] = {}
    for path in leaders:
        folder = path.rpartition("/")[0]
        if folder:
            folders[folder] = folders.get(folder, 0.0) + scores[path] / best
    if not folders:
        return {}
    most = max(folders.values())
    return {p: folders[f] / most for p in paths if (f := p.rpartition("/")[0]) in folders}


def fuse(views: Mapping[str, Mapping[str, float]], weights: Mapping[str, float]) -> dict[str, float]:
    """Weighted sum of each view's scores divided by that view's best score."""
    fused: dict[str, float] = {}
    for name, scores in views.items():
        weight = weights.get(name, 0.0)
        top = max(scores.values(), default=0.0)
        if weight <= 0 or top <= 0:
            continue
        for path, value in scores.items():
            if value > 0:
                fused[path] = fused.get(path, 0.0) + weight * value / top
    return fused


def rank_files(
    question: str,
    docs: Mapping[str, FileTags],
    *,
    named: Iterable[str] = (),
    seeds: Iterable[str] = (),
    dirty: Iterable[str] = (),
    recent: Iterable[str] = (),
    graph: Graph | None = None,
    postings: Postings | None = None,
    history: History | None = None,
    phrase_sites: Mapping[str, list[str]] | None = None,
) -> Ranking:
    """Order `docs` by relevance to the question (named files first, then by fused score)."""
    q = analyze_question(question)
    nodes = sorted(docs)
    named_tests = any(_test_subjects(q))
    if named_tests:
        q.words = [w for w in q.words if w != "test"]
    lexical = {p: v * file_prior(p, docs[p]) for p, v in bm25_scores(q, docs, postings).items()}
    if named_tests:
        # a question naming a test is about the code under test, whose words the test echoes:
        # tests rank there through the mention and the graph views only
        lexical = {p: v for p, v in lexical.items() if not is_test_path(p)}
    top_lex = max(lexical.values(), default=0.0)
    lex_norm = {p: s / top_lex for p, s in lexical.items()} if top_lex else {}
    mention = mention_seeds(q, docs, phrase_sites)
    personal = dict(mention)
    for path in seeds:
        if path in docs:
            mention[path] = mention.get(path, 0.0) + 2.0
            personal[path] = personal.get(path, 0.0) + 2.0
    for path in dirty:
        if path in docs:
            personal[path] = personal.get(path, 0.0) + 0.5
    named_list = [p for p in dict.fromkeys(named) if p in docs]
    for path in named_list:
        personal[path] = personal.get(path, 0.0) + 3.0
    # lexical hits seed the walk too, so relevance flows to what the matching files use
    for path, s in lex_norm.items():
        if s >= 0.2:
            personal[path] = personal.get(path, 0.0) + s
    views: dict[str, Mapping[str, float]] = {"lexical": lexical, "mention": mention}
    recency: dict[str, float] = {}
    if history is not None and history.commits:
        top = sorted(lex_norm, key=lambda p: (-lex_norm[p], p))[:COCHANGE_SEEDS]
        anchor = {p: lex_norm[p] for p in top}
        for path, value in mention.items():
            anchor[path] = anchor.get(path, 0.0) + value
        cochange = {p: v for p, v in history.cochange(anchor).items() if p in docs}
        views["cochange"] = cochange
        top_co = max(cochange.values(), default=0.0)
        for path, value in cochange.items():
            personal[path] = personal.get(path, 0.0) + 0.5 * value / top_co
        recency = {p: v for p, v in history.recency().items() if p in docs}
    else:
        recency = {p: 1.0 for p in recent if p in docs}
    # recency only breaks near-ties among files with some other evidence
    views["recent"] = {p: v for p, v in recency.items() if p in lexical or p in mention}
    pr = pagerank(graph if graph is not None else reference_graph(docs), personal)
    views["graph"] = pr
    scores = fuse(views, WEIGHTS)
    # tests echo the words of a change but the change lands in the code they test: they come
    # after the code, unless the question points at them by path; changelogs and release notes
    # echo the words of every change (they describe them) and come after the code too, unless
    # the question asks about them
    wants_history = _HISTORY_ASKED.search(question) is not None

    def factor(path: str) -> float:
        if any(path.endswith(frag) for frag in q.paths):
            return 1.0
        if is_test_path(path):
            return TEST_WEIGHT
        return HISTORY_WEIGHT if not wants_history and is_history_path(path) else 1.0

    for path, value in scores.items():
        scores[path] = value * factor(path)
    named_set = set(named_list)

    def key(path: str) -> tuple[float, str]:
        return -scores.get(path, 0.0), path

    head = heapq.nsmallest(KEEP_HEAD, (p for p in nodes if p not in named_set), key=key)
    def lends(path: str) -> bool:  # tests and (unless asked for) changelogs lend no folder weight
        return not is_test_path(path) and (wants_history or not is_history_path(path))

    for path, value in folder_scores(scores, nodes, lends=lends).items():
        scores[path] = scores.get(path, 0.0) + FOLDER_WEIGHT * value * factor(path)
    fixed = named_set | set(head)
    rest = head + sorted((p for p in nodes if p not in fixed), key=key)
    return Ranking(named_list + rest, scores, personal)
