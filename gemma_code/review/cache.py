"""Review results cached on disk by what was reviewed and how, so a re-run is instant."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from gemma_code import paths
from gemma_code.atomic import write_text_atomic

CACHE_VERSION = 1  # bump when the prompt or the findings format changes


def cache_key(material: dict[str, Any]) -> str:
    """A stable hash of everything that decides the review's result."""
    blob = json.dumps({"v": CACHE_VERSION, **material}, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_path(key: str) -> Path:
    return paths.cache_dir() / "review" / f"{key}.json"


def load(key: str) -> dict[str, Any] | None:
    """The cached record for `key`, or None (a damaged file counts as a miss)."""
    try:
        data = json.loads(cache_path(key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def save(key: str, record: dict[str, Any]) -> None:
    """Store a finished review (written atomically: a concurrent reader never sees half)."""
    write_text_atomic(cache_path(key), json.dumps(record, ensure_ascii=False))
