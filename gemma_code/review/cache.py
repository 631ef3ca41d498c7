"""Review results cached on disk by what was reviewed and how, so a re-run is instant.

Each record carries a checksum: a damaged file is a miss (and is deleted, so the next review
writes a good one). A cache that cannot be written (read-only, full disk) never changes a
review's outcome: `save` reports the failure instead of raising it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from gemma_code import paths
from gemma_code.atomic import write_text_atomic
from gemma_code.integrity import intact, sealed

CACHE_VERSION = 2  # bump when the prompt or the findings format changes


def cache_key(material: dict[str, Any]) -> str:
    """A stable hash of everything that decides the review's result."""
    blob = json.dumps({"v": CACHE_VERSION, **material}, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_folder() -> Path:
    return paths.cache_dir() / "review"


def cache_path(key: str) -> Path:
    return cache_folder() / f"{key}.json"


def load(key: str) -> dict[str, Any] | None:
    """The cached record for `key`, or None (a damaged file counts as a miss and is removed)."""
    path = cache_path(key)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        data = None
    if not intact(data) or not isinstance(data.get("record"), dict):
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    record: dict[str, Any] = data["record"]
    return record


def save(key: str, record: dict[str, Any]) -> str | None:
    """Store a finished review (atomically, fsynced); returns why it could not be, or None."""
    try:
        write_text_atomic(cache_path(key), json.dumps(sealed({"record": record}), ensure_ascii=False))
    except OSError as exc:
        return f"review cache not written ({exc.strerror or exc}); the review itself is complete"
    return None


def clear() -> tuple[int, int]:
    """Remove every cached review; returns (files, bytes) freed."""
    folder = cache_folder()
    if not folder.is_dir():
        return 0, 0
    files = [p for p in folder.iterdir() if p.is_file()]
    freed = 0
    for path in files:
        with contextlib.suppress(OSError):
            freed += path.stat().st_size
    shutil.rmtree(folder, ignore_errors=True)
    return len(files), freed
