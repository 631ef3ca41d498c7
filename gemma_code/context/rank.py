"""Rank files for a question: personalized PageRank over the definition/reference graph,
blended with BM25 relevance of the question to each file's words and path."""

from __future__ import annotations

import hashlib
import marshal
import math
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gemma_code.context.tags import FileTags, is_compound, split_words, stem

# Words too common in questions to say anything about where the answer is.
_STOP = """a an the and or but if then else when while for to of in on at by with from into onto
    is are was were be been being do does did done have has had having not no nor so than too
    very can could should would will shall may might must this that these those there here
    what which who whom whose why how where i me my we our you your it its they them their he
    she his her as about after before again all any both each few more most other some such
    only own same just also get gets got use used using uses want wants need needs make makes
    like way work works working doesn don isn aren wasn happen happens seem seems still even
    instead because since up down out over under file files code function method class line"""
STOPWORDS = frozenset(_STOP.split())
DAMPING = 0.85
ITERATIONS = 40
# A name defined in more files than this says little about which one is meant (get, save, run).
MAX_DEFINERS = 12
MAX_OUT_EDGES = 40
GRAPH_VERSION = 1  # bump when edge weights change: stored graphs are then rebuilt
BM25_K1 = 1.2
BM25_B = 0.75
PATH_WEIGHT = 3  # each word of a file's path counts as this many occurrences
PATH_LIKE = re.compile(r"[\w.\-]*[/\\][\w.\-/\\]+|[\w\-]+\.[A-Za-z]{1,5}\b")
QUOTED = re.compile(r"`([^`]+)`")


_PRIOR_BY_EXT = {
    **dict.fromkeys((".md", ".rst", ".txt", ".adoc", ".toml", ".yaml", ".yml", ".cfg", ".ini",
                     ".json"), 0.5),
    **dict.fromkeys((".html", ".htm", ".jinja", ".j2", ".tpl", ".mustache", ".hbs"), 0.6),
    **dict.fromkeys((".po", ".pot", ".csv", ".tsv", ".svg", ".xml", ".xlf", ".properties"), 0.2),
}


def file_prior(path: str, tags: FileTags) -> float:
    """How much a lexical match in this kind of file is worth: code over prose over data."""
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    ext = name[dot:].lower() if dot > 0 else ""
    if tags.lang != "text":
        prior = 1.0
    elif ext in _PRIOR_BY_EXT:
        prior = _PRIOR_BY_EXT[ext]
    else:
        prior = 0.8 if tags.rows else 0.5
    # tests explain behaviour, but the fix usually lives in the code they test
    if "/tests/" in f"/{path}" or name.startswith("test_") or "_test." in name or ".test." in name:
        prior *= 0.8
    return prior


@dataclass
class Question:
    """What a question mentions: path fragments, identifiers, and words for lexical matching."""

    text: str
    paths: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)
    code_names: list[str] = field(default_factory=list)  # written like code: snake, camel, call(), `x`
    words: list[str] = field(default_factory=list)  # stemmed, stopwords removed, in order


def analyze_question(text: str) -> Question:
    """Pull paths, identifiers and words out of a question."""
    q = Question(text)
    for match in PATH_LIKE.findall(text):
        frag = match.replace("\\", "/").strip("./")
        if frag and frag not in q.paths:
            q.paths.append(frag)
    raw = re.findall(r"[^\W\d][\w.]*", text) + QUOTED.findall(text)
    for token in raw:
        for part in re.split(r"[.\s()]+", token):
            if len(part) > 2 and part not in q.identifiers:
                q.identifiers.append(part)
    calls = {m for m in re.findall(r"([^\W\d]\w*)\s*\(", text)}
    quoted = {p for t in QUOTED.findall(text) for p in re.findall(r"[^\W\d]\w*", t)}
    dotted = {p for t in re.findall(r"\w+(?:\.\w+)+", text) for p in t.split(".")}
    for ident in q.identifiers:
        looks_like_code = (
            "_" in ident.strip("_") or any(c.isupper() for c in ident[1:])
            or ident in calls or ident in quoted or ident in dotted
        )
        if looks_like_code:
            q.code_names.append(ident)
    seen: set[str] = set()
    for name in q.code_names:
        if is_compound(name) and "=" + name.lower() not in seen:
            seen.add("=" + name.lower())
            q.words.append("=" + name.lower())
    for token in re.findall(r"[^\W\d]\w*", text):
        for word in split_words(token):
            if word in STOPWORDS or len(word) < 3:
                continue
            s = stem(word)
            if s not in seen:
                seen.add(s)
                q.words.append(s)
    return q


Postings = Mapping[str, Mapping[str, int]]  # stemmed term -> {path: count}


SHARDS = 64  # the word index is stored in this many pieces; a question loads only its terms' pieces


def shard_of(term: str) -> int:
    """Which stored piece of the word index holds `term` (stable across runs and machines)."""
    return zlib.crc32(term.encode("utf-8", "surrogatepass")) % SHARDS


def build_postings(docs: Mapping[str, FileTags]) -> dict[str, dict[str, int]]:
    """The word index of every file: which files use each stemmed term, how often."""
    index: dict[str, dict[str, int]] = {}
    for path in sorted(docs):
        for term, count in docs[path].terms.items():
            bucket = index.get(term)
            if bucket is None:
                index[term] = {path: count}
            else:
                bucket[path] = count
    return index


def bm25_scores(
    question: Question, docs: Mapping[str, FileTags], postings: Postings | None = None
) -> dict[str, float]:
    """BM25 of the question's words against each file's words plus its path words."""
    if not question.words or not docs:
        return {}
    wanted = list(dict.fromkeys(question.words))
    if postings is None:
        postings = {t: {p: d.terms[t] for p, d in docs.items() if t in d.terms} for t in wanted}
    hits: dict[str, dict[str, int]] = {}
    for term in wanted:
        for path, count in postings.get(term, {}).items():
            if path in docs:
                hits.setdefault(path, {})[term] = count
    wanted_set = set(wanted)
    for path, tags in docs.items():
        for term in tags.path_terms:
            if term in wanted_set:
                per = hits.setdefault(path, {})
                per[term] = per.get(term, 0) + PATH_WEIGHT
    df: dict[str, int] = dict.fromkeys(wanted, 0)
    for per in hits.values():
        for term in per:
            df[term] += 1
    n = len(docs)
    avg = sum(d.words for d in docs.values()) / max(n, 1) + PATH_WEIGHT * 4
    scores: dict[str, float] = {}
    for path in sorted(hits):
        per = hits[path]
        length = docs[path].words + PATH_WEIGHT * 4
        norm = BM25_K1 * (1 - BM25_B + BM25_B * length / max(avg, 1))
        total = 0.0
        for term in wanted:
            tf = per.get(term)
            if tf:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                total += idf * tf * (BM25_K1 + 1) / (tf + norm)
        scores[path] = total
    return scores


@dataclass
class Graph:
    """The reference graph as parallel edge lists over `nodes` (question-independent, cacheable).

    `defs_key` identifies every file's definition names and `stamps` the file versions the
    edges were computed from, so a later run can recompute only the edges of changed files.
    """

    nodes: list[str]
    src: list[int]
    dst: list[int]
    weight: list[float]
    defs_key: str = ""
    stamps: dict[str, tuple[int, int]] = field(default_factory=dict)

    def dump(self) -> bytes:
        return marshal.dumps((self.nodes, self.src, self.dst, self.weight, self.defs_key, self.stamps))

    @classmethod
    def load(cls, data: bytes) -> Graph:
        nodes, src, dst, weight, defs_key, stamps = marshal.loads(data)
        return cls(nodes, src, dst, weight, defs_key, stamps)


def definitions_key(docs: Mapping[str, FileTags]) -> str:
    """A digest of which file defines which names: equal keys give equal definer maps."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"graph-v{GRAPH_VERSION}\0".encode())
    for path in sorted(docs):
        h.update(path.encode("utf-8", "surrogatepass") + b"\0")
        for name, *_ in docs[path].rows:
            h.update(name.encode("utf-8", "surrogatepass") + b"\1")
    return h.hexdigest()


def _out_edges(i: int, ids: Mapping[str, int], definers: Mapping[str, list[int]]) -> list[tuple[int, float]]:
    out: dict[int, float] = {}
    for name in sorted(ids.keys() & definers.keys()):
        targets = definers[name]
        if len(targets) > MAX_DEFINERS:
            continue
        weight = math.sqrt(ids[name]) / len(targets)
        if name.startswith("_"):
            weight *= 0.1  # private helpers tie files together less than public API
        elif len(name) >= 8:
            weight *= 2.0  # long specific names are strong evidence of a real dependency
        for target in targets:
            if target != i:
                out[target] = out.get(target, 0.0) + weight
    # the strongest dependencies carry the walk; a long tail of weak ones only costs time
    return sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_OUT_EDGES]


def reference_graph(
    docs: Mapping[str, FileTags], *, previous: Graph | None = None, changed: Iterable[str] = ()
) -> Graph:
    """Edges referrer -> definer, from identifiers used in one file and defined in another.

    With a `previous` graph that `can_update`, only the files in `changed` get new out-edges
    (they need their identifiers loaded); the result equals a full rebuild.
    """
    nodes = sorted(docs)
    index = {p: i for i, p in enumerate(nodes)}
    definers: dict[str, list[int]] = {}
    for path in nodes:
        i = index[path]
        for name, *_ in docs[path].rows:
            if len(name) > 2:
                owners = definers.setdefault(name, [])
                if not owners or owners[-1] != i:
                    owners.append(i)
    key = definitions_key(docs)
    reuse: dict[int, list[tuple[int, float]]] | None = None
    if previous is not None and previous.nodes == nodes and previous.defs_key == key:
        reuse = {}
        for s_, d_, w_ in zip(previous.src, previous.dst, previous.weight, strict=True):
            reuse.setdefault(s_, []).append((d_, w_))
    fresh = set(changed)
    graph = Graph(nodes, [], [], [], key)
    for path in nodes:
        i = index[path]
        if reuse is not None and path not in fresh:
            edges = reuse.get(i, [])
        else:
            edges = _out_edges(i, docs[path].identifiers, definers)
        for target, weight in edges:
            graph.src.append(i)
            graph.dst.append(target)
            graph.weight.append(weight)
    return graph


def pagerank(graph: Graph, seeds: Mapping[str, float]) -> dict[str, float]:
    """Personalized PageRank by power iteration; dangling mass returns to the seeds."""
    import numpy as np

    n = len(graph.nodes)
    if n == 0:
        return {}
    personal = np.zeros(n)
    index = {p: i for i, p in enumerate(graph.nodes)}
    for path, value in seeds.items():
        if path in index and value > 0:
            personal[index[path]] += value
    total = personal.sum()
    personal = personal / total if total > 0 else np.full(n, 1.0 / n)
    src = np.asarray(graph.src, dtype=np.int64)
    dst = np.asarray(graph.dst, dtype=np.int64)
    weight = np.asarray(graph.weight, dtype=np.float64)
    out_sum = np.bincount(src, weights=weight, minlength=n)
    norm = weight / np.where(out_sum[src] > 0, out_sum[src], 1.0)
    dangling = out_sum == 0
    rank = personal.copy()
    for _ in range(ITERATIONS):
        spread = np.bincount(dst, weights=rank[src] * norm, minlength=n)
        rank = (1 - DAMPING) * personal + DAMPING * (spread + rank[dangling].sum() * personal)
    return {p: float(rank[i]) for i, p in enumerate(graph.nodes)}
