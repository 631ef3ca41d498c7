"""Tags of every candidate file through the sqlite cache, parsing new and changed files
(across processes when there are many)."""

from __future__ import annotations

import marshal
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gemma_code.context.cache import ContextCache
from gemma_code.context.files import RepoFile
from gemma_code.context.tags import FileTags, extract_tags

GROWN_LIMIT = 4_000_000
PARALLEL_FROM = 400  # files to parse before it pays to start worker processes
MAX_WORKERS = 4


@dataclass
class TagScan:
    """Tags of every candidate file, with cache statistics and what had to be skipped."""

    tags: dict[str, FileTags] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parsed: list[str] = field(default_factory=list)  # re-read this run (new or changed files)
    reused: int = 0  # taken from the cache


def read_file(root: Path, rel: str, size: int) -> tuple[bytes | None, str]:
    """A file's bytes (None with a reason when unreadable); a size change is reported."""
    try:
        with open(root / rel, "rb") as handle:
            data = handle.read(size + 1)
            if len(data) > size:
                data += handle.read(GROWN_LIMIT)  # it grew since it was listed: take what is there
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or type(exc).__name__})"
    if len(data) != size:
        return data, "changed during the scan"
    return data, ""


def scan_tags(
    root: Path,
    files: Sequence[RepoFile],
    *,
    cache: ContextCache | None = None,
    trusted: Iterable[str] = (),
    identifiers: bool = True,
    terms: bool = True,
    before_fork: Callable[[], None] | None = None,
) -> TagScan:
    """Tags for every file: cached rows whose mtime and size still match, the rest re-read.

    `identifiers` and `terms` of cached files are loaded only when asked for (graph and
    word-index rebuilds); freshly parsed files always carry them. `before_fork` runs before
    worker processes are started (the caller's threads must be idle then).
    """
    root = Path(root).resolve()
    key = str(root)
    scan = TagScan()
    own = cache is None
    cache = cache or ContextCache()
    trusted_set = set(trusted)
    try:
        rows = cache.load_tags(key, terms=terms)
        id_rows = cache.load_identifiers(key) if identifiers else {}
        fresh: list[tuple[str, int, int, bytes, bytes, bytes]] = []
        stale = [f for f in files if not _row_matches(rows.get(f.path), f)]
        parsed = _parse_all(root, stale, trusted_set, before_fork)
        for item in files:
            row = rows.get(item.path)
            if row is not None and _row_matches(row, item):
                tags = FileTags.load(item.path, row[2], row[3], id_rows.get(item.path))
                scan.reused += 1
            else:
                result, problem, blobs = parsed[item.path]
                if result is None:
                    scan.skipped.append((item.path, problem))
                    continue
                tags = result
                scan.parsed.append(item.path)
                if problem:
                    scan.notes.append(f"{item.path} changed while it was read; its tags may be stale")
                else:
                    fresh.append((item.path, item.mtime_ns, item.size, *(blobs or tags.dump())))
            if tags.skip and item.path not in trusted_set:
                scan.skipped.append((item.path, tags.skip))
                continue
            scan.tags[item.path] = tags
        cache.store_tags(key, fresh)
        listed = {f.path for f in files}
        gone = [p for p in rows if p not in listed and not (root / p).exists()]
        if gone:
            cache.forget_tags(key, gone)
        if not cache.ok:
            scan.notes.append(cache.error)
    finally:
        if own:
            cache.close()
    return scan


SNAPSHOT_VERSION = 1  # of the stored-tags layout: part of its key


def snapshot(scan: TagScan) -> bytes | None:
    """Every file's tags (without identifiers and terms) and the skipped files as one blob, for
    a warm run over the same file versions (None when this scan met a problem worth redoing:
    a file that could not be read may be readable next time without changing its stat)."""
    if scan.notes or any(why.startswith(("unreadable", "changed during")) for _, why in scan.skipped):
        return None
    return marshal.dumps(({path: t.meta() for path, t in scan.tags.items()}, scan.skipped))


def from_snapshot(blob: bytes) -> TagScan | None:
    """The scan a snapshot holds (None when it is unreadable)."""
    try:
        metas, skipped = marshal.loads(blob)
        scan = TagScan(skipped=[(path, why) for path, why in skipped])
        for path, meta in metas.items():
            scan.tags[path] = FileTags.from_meta(path, meta)
    except (ValueError, TypeError, EOFError, AttributeError):
        return None
    scan.reused = len(scan.tags)
    return scan


def _row_matches(row: tuple[int, int, bytes, bytes | None] | None, item: RepoFile) -> bool:
    return row is not None and row[0] == item.mtime_ns and row[1] == item.size


def _parse_one(root: str, path: str, size: int, trusted: bool) -> tuple[FileTags | None, str]:
    data, problem = read_file(Path(root), path, size)
    if data is None:
        return None, problem
    return extract_tags(path, data, check_content=not trusted), problem


def _parse_chunk(root: str, items: list[tuple[str, int, bool]]) -> list[tuple[bytes | None, str]]:
    """Worker side of a parallel parse: tags travel back as the cache's marshal blobs."""
    out: list[tuple[bytes | None, str]] = []
    for path, size, trusted in items:
        tags, problem = _parse_one(root, path, size, trusted)
        out.append((marshal.dumps(tags.dump()) if tags is not None else None, problem))
    return out


Parsed = dict[str, tuple[FileTags | None, str, tuple[bytes, bytes, bytes] | None]]


def _parse_all(
    root: Path, items: Sequence[RepoFile], trusted: set[str], before_fork: Callable[[], None] | None = None,
) -> Parsed:
    """Parse files, across processes when there are many (a cold run over a large repository)."""
    work = [(f.path, f.size, f.path in trusted) for f in items]
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    results: Parsed = {}
    if len(work) >= PARALLEL_FROM and workers > 1:
        if before_fork is not None:
            before_fork()
        try:
            from concurrent.futures import ProcessPoolExecutor

            size = max(len(work) // (workers * 8), 16)
            chunks = [work[i : i + size] for i in range(0, len(work), size)]
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for chunk, answers in zip(chunks, pool.map(_parse_chunk, [str(root)] * len(chunks), chunks),
                                          strict=True):
                    for (path, _, _), (blob, problem) in zip(chunk, answers, strict=True):
                        if blob is None:
                            results[path] = (None, problem, None)
                        else:
                            meta, terms, ids = marshal.loads(blob)
                            tags = FileTags.load(path, meta, terms, ids)
                            results[path] = (tags, problem, (meta, terms, ids))
            return results
        except (OSError, RuntimeError, ImportError):
            results.clear()  # no processes here (a sandbox, a frozen app): parse in this one
    for path, size, is_trusted in work:
        one, problem = _parse_one(str(root), path, size, is_trusted)
        results[path] = (one, problem, None)
    return results


