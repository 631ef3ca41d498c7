"""Checksums for the on-disk caches: a damaged entry must read as a miss, never as data."""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
CHECK = "check"  # the key of a JSON record's own checksum


def file_crc(path: Path, *, sync: bool = False) -> int:
    """CRC-32 of a file's bytes (read in 1 MiB chunks); with `sync`, the file is fsynced too."""
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            crc = zlib.crc32(block, crc)
        if sync:
            os.fsync(handle.fileno())
    return crc


def record_check(record: dict[str, Any]) -> str:
    """SHA-256 of a JSON record's content (its own CHECK key left out)."""
    body = {k: v for k, v in record.items() if k != CHECK}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def sealed(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its checksum, as written to disk."""
    return {**record, CHECK: record_check(record)}


def intact(record: object) -> bool:
    """Whether a record read back from disk carries a matching checksum."""
    return isinstance(record, dict) and record.get(CHECK) == record_check(record)
