"""The on-disk caches of the context builder: per-file tags and token counts, in one sqlite file.

The database lives in the user cache dir (gemma_code.paths.cache_dir()), never in the repository.
Any sqlite failure (read-only disk, a lock held too long) degrades to no cache. Every stored blob
carries a checksum and every token count a CRC: a damaged entry reads as a miss, is deleted,
and `damaged` tells the caller to rebuild what it derived; a damaged database file is deleted
(the next open starts a fresh one).
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gemma_code import paths

# Bump when the stored tag format or the extraction changes: old rows are then ignored.
TAGS_VERSION = 10
# Bump when any table's or blob's layout changes: the file name changes, older files are removed.
FORMAT_VERSION = 3
SEAL = 8  # bytes of blake2b checksum in front of every stored blob

_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_tags (
    root TEXT NOT NULL, path TEXT NOT NULL, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL,
    version INTEGER NOT NULL, meta BLOB NOT NULL, terms BLOB NOT NULL, ids BLOB NOT NULL,
    PRIMARY KEY (root, path));
CREATE TABLE IF NOT EXISTS postings (
    root TEXT NOT NULL, term TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (root, term));
CREATE TABLE IF NOT EXISTS blobs (
    root TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (root, kind));
CREATE TABLE IF NOT EXISTS tokens (
    tokenizer TEXT NOT NULL, digest TEXT NOT NULL, count INTEGER NOT NULL, crc INTEGER NOT NULL,
    PRIMARY KEY (tokenizer, digest));
"""


def cache_file() -> Path:
    """Where the context caches live (one file per storage format)."""
    return paths.cache_dir() / f"context-v{FORMAT_VERSION}.sqlite"


MAX_BYTES = 512 << 20  # the file is trimmed past this (2.8 GB was seen before there was a bound)


def files(current: Path | None = None) -> list[Path]:
    """The cache file and its sqlite companions (-wal, -shm), and older formats' files."""
    current = current or cache_file()
    if not current.parent.is_dir():
        return []
    return sorted(p for p in current.parent.glob("context*.sqlite*") if p.is_file())


def disk_bytes(current: Path | None = None) -> int:
    total = 0
    for path in files(current):
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total



def seal(data: bytes) -> bytes:
    """`data` with its checksum in front, as stored."""
    return hashlib.blake2b(data, digest_size=SEAL).digest() + data


def unseal(blob: bytes | None) -> bytes | None:
    """The data of a stored blob, or None when its checksum does not match (a damaged entry)."""
    if blob is None or len(blob) < SEAL:
        return None
    data = bytes(blob[SEAL:])
    return data if hashlib.blake2b(data, digest_size=SEAL).digest() == bytes(blob[:SEAL]) else None


def _count_crc(tokenizer: str, digest: str, count: int) -> int:
    return zlib.crc32(f"{tokenizer}\0{digest}\0{count}".encode("utf-8", "surrogatepass"))


def remove_files(path: Path | None = None) -> int:
    """Delete the context cache's files (database, WAL, shared memory); returns the bytes freed."""
    current = path or cache_file()
    freed = 0
    for name in (current.name, current.name + "-wal", current.name + "-shm"):
        target = current.parent / name
        with contextlib.suppress(OSError):
            size = target.stat().st_size
            target.unlink()
            freed += size
    return freed


def clear() -> int:
    """Delete the context cache of every storage format; returns the bytes freed."""
    folder = cache_file().parent
    freed = 0
    for path in folder.glob("context*.sqlite*") if folder.is_dir() else ():
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            path.unlink()
            freed += size
    return freed


def _remove_older_formats(current: Path) -> None:
    """Older gemma-code versions' caches cannot be read by this one: drop them."""
    for old in current.parent.glob("context*.sqlite*"):
        if not old.name.startswith(current.name):
            with contextlib.suppress(OSError):
                old.unlink()


class ContextCache:
    """A thin, failure-tolerant wrapper over the sqlite cache; `ok` is False once it failed."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_file()
        self.ok = True
        self.error = ""
        self.damaged = False  # a damaged entry or file was found (and dropped) in this session
        self._db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if path is None:
                _remove_older_formats(self.path)
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            if _corrupt(exc):  # a damaged file: start over with an empty one
                remove_files(self.path)
                self.damaged = True
                try:
                    self._db = self._open()
                except (sqlite3.Error, OSError) as again:
                    self._fail(again)
            else:
                self._fail(exc)
        except OSError as exc:
            self._fail(exc)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), timeout=5.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # each commit is fsynced
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _fail(self, exc: BaseException) -> None:
        self.ok = False
        self.error = f"context cache disabled ({self.path}: {exc})"
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None
        if isinstance(exc, sqlite3.DatabaseError) and _corrupt(exc):
            remove_files(self.path)  # the next run starts a fresh cache
            self.damaged = True

    def _drop(self, sql: str, rows: Sequence[tuple[str, ...]]) -> None:
        """Delete damaged entries so they are rebuilt, and say so through `damaged`."""
        if not rows:
            return
        self.damaged = True
        with self._guard() as db:
            if db is not None:
                with db:
                    db.executemany(sql, rows)

    def drop_derived(self, root: str) -> None:
        """Forget the repository's word index and graph (after damage: they may have been built
        from a partial read)."""
        with self._guard() as db:
            if db is not None:
                with db:
                    db.execute("DELETE FROM postings WHERE root = ?", (root,))
                    db.execute("DELETE FROM blobs WHERE root = ?", (root,))

    @contextlib.contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection | None]:
        try:
            yield self._db
        except sqlite3.Error as exc:
            self._fail(exc)

    def load_tags(self, root: str, *, terms: bool = True) -> dict[str, tuple[int, int, bytes, bytes | None]]:
        """Every current-version row of a repository: relpath -> (mtime_ns, size, meta, terms)."""
        rows: dict[str, tuple[int, int, bytes, bytes | None]] = {}
        column = "terms" if terms else "NULL"
        with self._guard() as db:
            if db is not None:
                cur = db.execute(
                    f"SELECT path, mtime_ns, size, meta, {column} FROM file_tags "
                    "WHERE root = ? AND version = ?",
                    (root, TAGS_VERSION),
                )
                bad = []
                for path, mtime, size, meta, t in cur:
                    meta_data = unseal(meta)
                    terms_data = unseal(t) if terms else None
                    if meta_data is None or (terms and terms_data is None):
                        bad.append((root, path))
                    else:
                        rows[path] = (mtime, size, meta_data, terms_data)
                self._drop("DELETE FROM file_tags WHERE root = ? AND path = ?", bad)
        return rows

    def load_identifiers(self, root: str, paths: Iterable[str] | None = None) -> dict[str, bytes]:
        """The identifier blobs of a repository's rows (all, or of `paths`), to (re)build the graph."""
        stored: dict[str, bytes] = {}
        with self._guard() as db:
            if db is not None:
                if paths is None:
                    cur = db.execute(
                        "SELECT path, ids FROM file_tags WHERE root = ? AND version = ?", (root, TAGS_VERSION)
                    )
                    stored = dict(cur.fetchall())
                else:
                    for path in sorted(set(paths)):
                        row = db.execute(
                            "SELECT ids FROM file_tags WHERE root = ? AND path = ? AND version = ?",
                            (root, path, TAGS_VERSION),
                        ).fetchone()
                        if row:
                            stored[path] = row[0]
        rows: dict[str, bytes] = {}
        bad = []
        for path, blob in stored.items():
            data = unseal(blob)
            if data is None:
                bad.append((root, path))
            else:
                rows[path] = data
        self._drop("DELETE FROM file_tags WHERE root = ? AND path = ?", bad)
        return rows

    def store_tags(self, root: str, rows: Iterable[tuple[str, int, int, bytes, bytes, bytes]]) -> None:
        """Insert or replace rows (relpath, mtime_ns, size, meta, terms, ids) in one transaction."""
        with self._guard() as db:
            if db is not None:
                with db:
                    db.executemany(
                        "INSERT OR REPLACE INTO file_tags VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(root, p, m, s, TAGS_VERSION, seal(meta), seal(t), seal(ids))
                         for p, m, s, meta, t, ids in rows],
                    )

    def store_postings(self, root: str, key: str, shards: dict[int, bytes], stamps: bytes = b"") -> None:
        """Replace the repository's word index (shard number -> blob), built for `key` from the
        file versions `stamps` (a marshalled {path: (mtime_ns, size)}, kept with it)."""
        with self._guard() as db:
            if db is not None:
                with db:
                    db.execute("DELETE FROM postings WHERE root = ?", (root,))
                    db.executemany(
                        "INSERT INTO postings VALUES (?, ?, ?)",
                        [(root, str(n), seal(d)) for n, d in sorted(shards.items())],
                    )
                    db.execute("INSERT OR REPLACE INTO blobs VALUES (?, 'postings', ?, ?)",
                               (root, key, seal(stamps)))

    def load_postings(self, root: str, key: str, shards: Iterable[int]) -> dict[int, bytes] | None:
        """The index shards asked for, or None when the stored index was built for another `key`."""
        with self._one_read():
            if self.load_blob(root, "postings", key) is None:
                return None
            return self._shards(root, shards)

    def load_older_postings(self, root: str, shards: Iterable[int]) -> tuple[bytes, dict[int, bytes]] | None:
        """The stored word index whatever file versions it was built for: those versions (the
        `stamps` given to store_postings) and the shards asked for; None when there is none."""
        with self._one_read():
            stamps = self.load_blob(root, "postings")
            if not stamps:
                return None
            found = self._shards(root, shards)
        return (stamps, found) if found is not None else None

    @contextlib.contextmanager
    def _one_read(self) -> Iterator[None]:
        """Reads that see one state of the database: another process's store_postings between
        the marker and the shards would otherwise pair one index's versions with another's words."""
        db = self._db
        began = False
        try:
            if db is not None and not db.in_transaction:
                db.execute("BEGIN")
                began = True
        except sqlite3.Error as exc:
            self._fail(exc)
        try:
            yield
        finally:
            db = self._db
            if began and db is not None and db.in_transaction:
                with self._guard():
                    db.execute("COMMIT")

    def _shards(self, root: str, shards: Iterable[int]) -> dict[int, bytes] | None:
        wanted = sorted({str(n) for n in shards})
        found: dict[int, bytes] = {}
        with self._guard() as db:
            if db is not None and wanted:
                marks = ",".join("?" * len(wanted))
                cur = db.execute(
                    f"SELECT term, data FROM postings WHERE root = ? AND term IN ({marks})", (root, *wanted)
                )
                for term, blob in cur:
                    data = unseal(blob)
                    if data is None:
                        self._drop("DELETE FROM postings WHERE root = ?", [(root,)])
                        return None  # the index is rebuilt from the files' terms
                    found[int(term)] = data
        return found if self.ok else None

    def load_terms(self, root: str, paths: Iterable[str]) -> dict[str, tuple[int, int, bytes]]:
        """The word counts of some files' rows: relpath -> (mtime_ns, size, terms)."""
        rows: dict[str, tuple[int, int, bytes]] = {}
        bad = []
        with self._guard() as db:
            if db is not None:
                for path in sorted(set(paths)):
                    row = db.execute(
                        "SELECT mtime_ns, size, terms FROM file_tags "
                        "WHERE root = ? AND path = ? AND version = ?",
                        (root, path, TAGS_VERSION),
                    ).fetchone()
                    if row:
                        data = unseal(row[2])
                        if data is None:
                            bad.append((root, path))
                        else:
                            rows[path] = (row[0], row[1], data)
        self._drop("DELETE FROM file_tags WHERE root = ? AND path = ?", bad)
        return rows

    def load_blob(self, root: str, kind: str, key: str | None = None) -> bytes | None:
        """A derived structure (the reference graph) stored for exactly this `key` (None: any)."""
        with self._guard() as db:
            if db is not None:
                row = db.execute(
                    "SELECT key, data FROM blobs WHERE root = ? AND kind = ?", (root, kind)
                ).fetchone()
                if row and (key is None or row[0] == key):
                    data = unseal(row[1])
                    if data is None:
                        self._drop("DELETE FROM blobs WHERE root = ? AND kind = ?", [(root, kind)])
                    return data
        return None

    def store_blob(self, root: str, kind: str, key: str, data: bytes) -> None:
        """Replace the stored structure of this kind for the repository."""
        with self._guard() as db:
            if db is not None:
                with db:
                    db.execute("INSERT OR REPLACE INTO blobs VALUES (?, ?, ?, ?)",
                               (root, kind, key, seal(data)))

    def forget_tags(self, root: str, relpaths: Iterable[str]) -> None:
        """Drop rows of files that no longer exist, so the cache does not grow forever."""
        with self._guard() as db:
            if db is not None:
                with db:
                    db.executemany(
                        "DELETE FROM file_tags WHERE root = ? AND path = ?", [(root, p) for p in relpaths]
                    )

    def load_tokens(self, tokenizer: str, digests: Iterable[str]) -> dict[str, int]:
        """Known token counts for content digests."""
        wanted = list(digests)
        found: dict[str, int] = {}
        bad: list[tuple[str, ...]] = []
        with self._guard() as db:
            if db is not None:
                for start in range(0, len(wanted), 500):
                    part = wanted[start : start + 500]
                    marks = ",".join("?" * len(part))
                    cur = db.execute(
                        f"SELECT digest, count, crc FROM tokens WHERE tokenizer = ? AND digest IN ({marks})",
                        (tokenizer, *part),
                    )
                    for digest, count, crc in cur:
                        if crc == _count_crc(tokenizer, digest, count):
                            found[digest] = count
                        else:
                            bad.append((tokenizer, digest))
        self._drop("DELETE FROM tokens WHERE tokenizer = ? AND digest = ?", bad)
        return found

    def store_tokens(self, tokenizer: str, counts: dict[str, int]) -> None:
        """Remember token counts by content digest."""
        if not counts:
            return
        with self._guard() as db:
            if db is not None:
                with db:
                    db.executemany(
                        "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?)",
                        [(tokenizer, d, c, _count_crc(tokenizer, d, c)) for d, c in counts.items()],
                    )

    def trim(self, keep_root: str, max_bytes: int = MAX_BYTES) -> bool:
        """Past `max_bytes` on disk, keep only `keep_root`'s tags and drop the token counts
        (both are cheap to rebuild), then compact the file. True when it trimmed."""
        if self._db is None or disk_bytes(self.path) <= max_bytes:
            return False
        with self._guard() as db:
            if db is not None:
                with db:
                    for table in ("file_tags", "postings", "blobs"):
                        db.execute(f"DELETE FROM {table} WHERE root != ?", (keep_root,))
                    db.execute("DELETE FROM tokens")
                db.execute("VACUUM")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if self._db is not None and disk_bytes(self.path) > max_bytes:
            with self._guard() as db:  # this repository alone is too big: start afresh
                if db is not None:
                    with db:
                        for table in ("file_tags", "postings", "blobs", "tokens"):
                            db.execute(f"DELETE FROM {table}")
                    db.execute("VACUUM")
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return True

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def __enter__(self) -> ContextCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _corrupt(exc: sqlite3.DatabaseError) -> bool:
    """A damaged file (not a lock, a read-only disk or a full one)."""
    if isinstance(exc, sqlite3.OperationalError):
        return "malformed" in str(exc)
    return True
