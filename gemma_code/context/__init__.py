"""The context builder: repository files -> ranked, budgeted context for the prompt."""

from __future__ import annotations

import functools
import gc
import hashlib
import importlib
import marshal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from gemma_code import gitops
from gemma_code.context.cache import TAGS_VERSION, ContextCache
from gemma_code.context.files import FileScan, RepoFile, grep_files, scan_files
from gemma_code.context.fuse import message_phrases, rank_files
from gemma_code.context.history import load_history
from gemma_code.context.pack import MapStore, PackedContext, PackedFile, pack
from gemma_code.context.rank import (
    Graph,
    analyze_question,
    build_postings,
    definitions_key,
    reference_graph,
    shard_of,
)
from gemma_code.context.tags import FileTags
from gemma_code.context.tagscan import SNAPSHOT_VERSION, TagScan, from_snapshot, scan_tags, snapshot
from gemma_code.context.tokens import CountFn, TokenCounter
from gemma_code.errors import GitError

__all__ = [
    "PackedContext", "PackedFile", "build_context",
]

# Beyond this many candidate files, the rest are listed in the map but not parsed or ranked,
# so a 100,000-file checkout costs bounded time.
MAX_RANKED = 25_000
# files changed since the stored word index was built that are patched in at question time;
# beyond this many, the index is built again whole (from every file's stored words)
OVERLAY_MAX = 256
P = ParamSpec("P")
R = TypeVar("R")


def _relative(root: Path, items: Iterable[str | Path]) -> list[str]:
    out: list[str] = []
    for item in items:
        path = Path(item)
        if not path.is_absolute():
            candidate = (Path.cwd() / path).resolve()
            path = candidate if candidate.exists() else (root / path)
        try:
            rel = path.resolve().relative_to(root).as_posix()
        except (ValueError, OSError):
            continue  # outside the repository: the caller includes it some other way
        if rel not in out:
            out.append(rel)
    return out


def _bounded(scan: FileScan, question: str, keep: set[str], limit: int) -> list[RepoFile]:
    """At most `limit` files to parse: named, mentioned and dirty ones first, then by path."""
    if len(scan.files) <= limit:
        return scan.files
    q = analyze_question(question)
    mentioned = q.paths
    # files containing a code-looking name from the question, found by git's own grep (fast, C)
    keep = keep | set(grep_files(scan.root, q.code_names)) if scan.in_git else keep
    first = [f for f in scan.files
             if f.path in keep or any(f.path.endswith(m) for m in mentioned)]
    chosen = {f.path for f in first}
    rest = [f for f in scan.files if f.path not in chosen]
    picked = (first + rest)[:limit]
    left = len(scan.files) - len(picked)
    scan.notes.append(
        f"{len(scan.files):,} files: ranked {len(picked):,}, left {left:,} unranked "
        "(listed in the map only); name files with -f or mention their paths to include them"
    )
    return sorted(picked, key=lambda f: f.path)


class _Early:
    """Work that needs only the folder and the question, started before the files are scanned:
    git's own processes (HEAD, the verbatim phrases) and the numerical library's import run
    while this process lists and stats the files."""

    def __init__(self, head: Future[str | None], sites: Future[dict[str, list[str]] | None],
                 numpy: Future[Any]) -> None:
        self._head, self._sites, self._numpy = head, sites, numpy

    @classmethod
    def start(cls, base: Path, question: str) -> _Early:
        pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="gc-context")
        try:
            # numpy, for the graph ranking, is a warm run's largest import
            numpy = pool.submit(importlib.import_module, "numpy")
            in_git = (base / ".git").exists()
            if not in_git:
                return cls(_done(None), _done(None), numpy)
            return cls(pool.submit(_head, base), pool.submit(_phrase_sites, base, message_phrases(question)),
                       numpy)
        finally:
            pool.shutdown(wait=False)  # the submitted work still finishes

    def head(self) -> str | None:
        return self._head.result()

    def settle(self) -> None:
        """Wait until the early work is done: before this process forks its parse workers, no
        thread of ours may be half-way through an import or a process start (a forked child
        would inherit the locks they hold)."""
        futures: list[Future[Any]] = [self._head, self._sites, self._numpy]
        wait(futures)

    def sites(self) -> dict[str, list[str]] | None:
        return self._sites.result()


def _done(value: None) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def _head(base: Path) -> str | None:
    try:
        found = gitops.rev_parse(base, "HEAD")
    except GitError:  # before the first commit, or git missing
        return None
    return found[0] if found else None


def _phrase_sites(base: Path, phrases: list[str]) -> dict[str, list[str]] | None:
    if not phrases:
        return None
    try:
        return gitops.grep_phrases(base, phrases)
    except GitError:
        return None


def _load_graph(blob: bytes) -> Graph | None:
    """A cached graph, or None when the blob is unreadable (then it is rebuilt)."""
    try:
        return Graph.load(blob)
    except (ValueError, TypeError, EOFError):
        return None


def _without_cyclic_gc(fn: Callable[P, R]) -> Callable[P, R]:
    """Run `fn` with Python's cycle collector paused: a build allocates tens of thousands of
    small objects (tags, index rows) and creates no cycles, so the collector's passes over
    every live object are pure cost (~0.1 s of a warm run). Reference counting still frees
    everything; the collector resumes when the build returns."""

    @functools.wraps(fn)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        if not gc.isenabled():  # paused already (a concurrent build, or the caller's choice)
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()

    return paused


@_without_cyclic_gc
def build_context(
    root: Path | str,
    question: str,
    *,
    budget: int,
    count_tokens: CountFn | None = None,
    named: Sequence[str | Path] = (),
    seeds: Sequence[str | Path] = (),
    omit: Sequence[str | Path] = (),
    tokenizer_id: str = "",
    max_file_bytes: int = 1_000_000,
    max_ranked: int = MAX_RANKED,
    contents: Mapping[str, bytes] | None = None,
) -> PackedContext:
    """Rank the repository's files for `question` and pack them into `budget` tokens.

    `contents`: the bytes to show for some files instead of the work tree's (a staged review
    shows the staged version: the version its diff is about).

    `named` files (the user's -f) rank first and may break the secret and size filters;
    `seeds` steer the ranking; `omit` files are ranked but not packed (the caller shows them).
    Token counts use `count_tokens` (cached by content under `tokenizer_id`), else an estimate.
    """
    start = time.perf_counter()
    base = Path(root).resolve()
    if not base.is_dir():
        return PackedContext("", budget, 0, notes=[f"{base} is not a folder"],
                             estimated=count_tokens is None)
    named_rel = _relative(base, named)
    seed_rel = _relative(base, seeds)
    omit_rel = set(_relative(base, omit))
    early = _Early.start(base, question)
    for attempt in range(2):  # a damaged cache entry is dropped, then everything derived is redone
        with ContextCache() as cache:
            scan = scan_files(base, max_file_bytes=max_file_bytes, named=named_rel)
            keep = set(named_rel) | set(seed_rel) | set(scan.dirty)
            files = _bounded(scan, question, keep, max_ranked)
            root_key = str(base)
            print_key = _fingerprint(files, named_rel)
            # the graph and the word index depend only on the files: reuse them while none changed
            blob = cache.load_blob(root_key, "graph", print_key)
            cached_graph = _load_graph(blob) if blob is not None else None
            previous = None
            if cached_graph is None:
                # an older graph of this repository: only the edges of files changed since are redone
                older = cache.load_blob(root_key, "graph")
                previous = _load_graph(older) if older is not None else None
            words = analyze_question(question).words
            shard_numbers = {shard_of(w) for w in words}
            found = cache.load_postings(root_key, print_key, shard_numbers)
            # an index of older file versions serves when few files changed since: see _Overlay
            overlay = None if found is not None else _Overlay.load(cache, root_key, files, named_rel,
                                                                   shard_numbers)
            # the same file versions as a stored graph and word index: their tags in one read
            snap_key = f"{print_key}:{SNAPSHOT_VERSION}"
            need_ids = cached_graph is None and previous is None  # the graph is built again whole
            indexed = found is not None or overlay is not None
            snap = cache.load_blob(root_key, "tags", snap_key) if cached_graph and indexed else None
            stored = from_snapshot(snap) if snap is not None else None
            if stored is not None:
                tags = stored
            else:
                tags = scan_tags(base, files, cache=cache, trusted=named_rel, identifiers=need_ids,
                                 terms=not indexed, before_fork=early.settle)
                data = snapshot(tags)
                if data is not None:
                    cache.store_blob(root_key, "tags", snap_key, data)
            if overlay is not None and not overlay.fill_terms(cache, root_key, tags.tags):
                # a changed file's words are not stored as they are now: index every file again
                overlay = None
                tags = scan_tags(base, files, cache=cache, trusted=named_rel, identifiers=need_ids,
                                 terms=True, before_fork=early.settle)
            docs = tags.tags
            graph = cached_graph
            if graph is None:
                graph = _updated_graph(cache, root_key, files, docs, previous)
                cache.store_blob(root_key, "graph", print_key, graph.dump())
            if found is not None:
                postings = _from_shards(found, words)
            elif overlay is not None:
                postings = overlay.postings(words, docs)
            else:
                index = build_postings(docs)
                shards: dict[int, dict[str, dict[str, int]]] = {}
                for term in sorted(index):
                    shards.setdefault(shard_of(term), {})[term] = index[term]
                stamps = _index_stamps(files, tags)
                cache.store_postings(root_key, print_key, {n: marshal.dumps(v) for n, v in shards.items()},
                                     stamps)
                postings = {t: index[t] for t in words if t in index}
            history = load_history(base, cache, head=early.head()) if scan.in_git else None
            sites = early.sites() if scan.in_git else None
            ranking = rank_files(
                question, docs, named=named_rel, seeds=seed_rel, dirty=scan.dirty, recent=scan.recent,
                graph=graph, postings=postings, history=history, phrase_sites=sites,
            )
            order = [p for p in ranking.order if p not in omit_rel]
            counter = TokenCounter(count_tokens, tokenizer_id, cache)
            packed = pack(base, order, docs, budget=max(budget, 0), counter=counter,
                          named=[p for p in named_rel if p not in omit_rel],
                          all_paths=[f.path for f in scan.files], contents=contents, question=question,
                          maps=MapStore(cache, root_key))
            if counter.counted and count_tokens is not None and packed.text:
                _verify(packed, count_tokens)
            if not cache.damaged or attempt:
                if cache.trim(root_key):
                    scan.notes.append("the context cache passed its size bound; other "
                                      "repositories' entries were dropped")
                break
            cache.drop_derived(root_key)
    packed.skipped = sorted(scan.skipped + tags.skipped + packed.skipped)
    packed.ranked = len(docs)
    packed.order = order
    packed.notes = scan.notes + tags.notes + packed.notes
    if not docs:
        packed.notes.append("no readable text files to rank")
    packed.notes.append(
        f"tags: {len(tags.parsed):,} files parsed, {tags.reused:,} from the cache"
    )
    if attempt:
        packed.notes.append("context cache: damaged entries were found, dropped and rebuilt")
    packed.elapsed_s = time.perf_counter() - start
    return packed


def _index_stamps(files: Sequence[RepoFile], tags: TagScan) -> bytes:
    """The file versions a fresh word index holds, for patching it later (_Overlay). A file the
    scan could not read as it is (unreadable, or changing) is left out: it counts as changed
    next time. After a read that saw a file change, none are kept: the next change rebuilds."""
    if tags.notes:
        return b""
    unsure = {p for p, why in tags.skipped if why.startswith(("unreadable", "changed during"))}
    return marshal.dumps({f.path: (f.mtime_ns, f.size) for f in files if f.path not in unsure})


def _from_shards(shards: Mapping[int, bytes], words: Iterable[str]) -> dict[str, dict[str, int]]:
    """The postings of `words` from stored index shards."""
    postings: dict[str, dict[str, int]] = {}
    for blob_part in shards.values():
        shard = marshal.loads(blob_part)
        postings.update({t: shard[t] for t in words if t in shard})
    return postings


class _Overlay:
    """The stored word index of older file versions, patched at question time with the files
    changed since: their old rows leave the postings and their current words come in. After an
    edit, a run reads the few changed files' words instead of reading every file's words and
    building and storing the whole index again (about 1 s of a 1.6-1.8 s run on a 4,000-file
    repository)."""

    def __init__(self, shards: dict[int, bytes], stamps: dict[str, tuple[int, int]], changed: list[str],
                 removed: set[str]) -> None:
        self.shards, self.stamps, self.changed = shards, stamps, changed
        self.drop = removed | set(changed)

    @classmethod
    def load(
        cls, cache: ContextCache, root_key: str, files: Sequence[RepoFile], named: Sequence[str],
        shard_numbers: Iterable[int],
    ) -> _Overlay | None:
        older = cache.load_older_postings(root_key, shard_numbers)
        if older is None:
            return None
        try:
            stamps = marshal.loads(older[0])
        except (ValueError, TypeError, EOFError):
            return None
        if not isinstance(stamps, dict):
            return None
        current = {f.path: (f.mtime_ns, f.size) for f in files}
        # named files may pass filters that kept them out of the index: their words always come in
        changed = sorted({p for p, stamp in current.items() if stamps.get(p) != stamp}
                         | (set(named) & current.keys()))
        removed = {p for p in stamps if p not in current}
        if len(changed) + len(removed) > OVERLAY_MAX:
            return None
        return cls(older[1], current, changed, removed)

    def fill_terms(self, cache: ContextCache, root_key: str, docs: Mapping[str, FileTags]) -> bool:
        """Give the changed files read from the cache (without words) their stored words; False
        when a stored row is missing or not of the file's current version."""
        wanted = [p for p in self.changed if p in docs and not docs[p].terms]
        if not wanted:
            return True
        rows = cache.load_terms(root_key, wanted)
        for path in wanted:
            row = rows.get(path)
            if row is None or (row[0], row[1]) != self.stamps[path]:
                return False
            docs[path].terms = marshal.loads(row[2])
        return True

    def postings(self, words: Iterable[str], docs: Mapping[str, FileTags]) -> dict[str, dict[str, int]]:
        """The question words' postings: the stored ones without the changed and removed files,
        plus the changed files' current counts."""
        wanted = list(dict.fromkeys(words))
        postings = _from_shards(self.shards, wanted)
        for term in wanted:
            bucket = {p: n for p, n in postings.get(term, {}).items() if p not in self.drop}
            for path in self.changed:
                count = docs[path].terms.get(term) if path in docs else None
                if count:
                    bucket[path] = count
            if bucket:
                postings[term] = bucket
            else:
                postings.pop(term, None)
        return postings


def _updated_graph(
    cache: ContextCache, root_key: str, files: Sequence[RepoFile], docs: dict[str, FileTags],
    previous: Graph | None,
) -> Graph:
    """The reference graph, recomputing only changed files' edges when `previous` allows it."""
    stamps = {f.path: (f.mtime_ns, f.size) for f in files}
    changed = sorted(p for p in docs if previous is None or previous.stamps.get(p) != stamps.get(p))
    if previous is None or previous.nodes != sorted(docs) or previous.defs_key != definitions_key(docs):
        previous, changed = None, sorted(docs)  # files or definitions changed: rebuild it all
    missing = [p for p in changed if not docs[p].identifiers]
    for path, blob in cache.load_identifiers(root_key, missing if previous else None).items():
        if path in docs and not docs[path].identifiers:
            docs[path].identifiers = marshal.loads(blob)
    graph = reference_graph(docs, previous=previous, changed=changed)
    graph.stamps = stamps
    return graph


def _fingerprint(files: Sequence[RepoFile], named: Sequence[str]) -> str:
    """Identifies the exact set of file versions (and trusted names) a graph was built from."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"v{TAGS_VERSION}\0{sorted(named)}\0".encode())
    for f in files:
        h.update(f"{f.path}\0{f.mtime_ns}\0{f.size}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _verify(packed: PackedContext, count_tokens: CountFn) -> None:
    """Recount the whole block once when a tokenizer is loaded anyway; it must fit the budget."""
    exact = count_tokens(packed.text)
    if exact != packed.used:
        packed.notes.append(f"whole-text count {exact:,} differs from the sum of parts {packed.used:,}")
        packed.used = exact
    while packed.used > packed.budget and packed.files:
        dropped = packed.files.pop()
        marker = f"### {dropped.path}"
        cut = packed.text.rfind(marker)
        packed.text = packed.text[:cut] if cut >= 0 else packed.text
        packed.used = count_tokens(packed.text)
        packed.notes.append(f"dropped {dropped.path} to stay within the budget")
