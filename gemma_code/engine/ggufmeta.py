"""A pure-Python reader of a GGUF file's metadata (no numpy, no llama.cpp).

Used to plan the context window and KV cache before anything heavy loads. Large arrays
(the vocabulary, merges, scores) are skipped and recorded as their length only.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemma_code.errors import BadModelFileError, ModelNotFoundError

MAGIC = b"GGUF"

# GGUF value types -> struct format (scalars)
_SCALARS: dict[int, str] = {
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
    12: "<d",
}
_STRING = 8
_ARRAY = 9
_KEEP_ARRAY = 4096  # arrays longer than this are skipped (vocabularies, merges, scores)


@dataclass(frozen=True)
class SkippedArray:
    """A large array left unread; only its length is kept."""

    length: int


def read_metadata(path: str | Path, *, stop_at: str | None = None) -> dict[str, Any]:
    """Every metadata key of the GGUF at `path`; `stop_at`: stop before the first key with that prefix."""
    file = Path(path)
    try:
        handle = file.open("rb")
    except FileNotFoundError:
        raise ModelNotFoundError(
            f"model file {file} does not exist",
            "check the path, or `gemma-code models list` for downloaded models",
        ) from None
    except IsADirectoryError:
        raise BadModelFileError(f"{file} is a directory, not a GGUF file") from None
    except OSError as exc:
        raise BadModelFileError(f"cannot read {file}: {exc.strerror}") from None
    with handle:
        if handle.read(4) != MAGIC:
            raise BadModelFileError(
                f"{file} is not a GGUF file (bad magic)",
                "gemma-code runs GGUF models; download one with `gemma-code models pull NAME`",
            )
        try:
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _parse(data, stop_at)
        except (struct.error, ValueError, UnicodeDecodeError, IndexError) as exc:
            raise BadModelFileError(
                f"{file} is a truncated or corrupt GGUF file ({exc})",
                "download it again (`gemma-code models pull NAME`)",
            ) from None


def raw_entries(path: str | Path, prefix: str) -> list[bytes]:
    """The encoded key/value entries whose key starts with `prefix`, to copy into another GGUF."""
    with Path(path).open("rb") as handle, mmap.mmap(
        handle.fileno(), 0, access=mmap.ACCESS_READ
    ) as data:
        if data[:4] != MAGIC:
            raise BadModelFileError(f"{path} is not a GGUF file (bad magic)")
        return [bytes(data[start:end]) for key, start, end in _entries(data) if key.startswith(prefix)]


def _entries(data: mmap.mmap) -> Iterator[tuple[str, int, int]]:
    """(key, start, end) byte ranges of every key/value entry."""
    version, _, n_kv = struct.unpack_from("<IQQ", data, 4)
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    offset = 24
    for _ in range(n_kv):
        start = offset
        key, offset = _string(data, offset)
        (kind,) = struct.unpack_from("<I", data, offset)
        _, offset = _value(data, offset + 4, kind)
        yield key, start, offset


def _parse(data: mmap.mmap, stop_at: str | None) -> dict[str, Any]:
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    offset = 24
    meta: dict[str, Any] = {"GGUF.version": version, "GGUF.tensor_count": n_tensors}
    for _ in range(n_kv):
        key, offset = _string(data, offset)
        if stop_at is not None and key.startswith(stop_at):
            break
        (kind,) = struct.unpack_from("<I", data, offset)
        meta[key], offset = _value(data, offset + 4, kind)
    return meta


def _string(data: mmap.mmap, offset: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<Q", data, offset)
    start = offset + 8
    if start + length > len(data):
        raise ValueError("string runs past the end of the file")
    return data[start : start + length].decode("utf-8"), start + length


def _value(data: mmap.mmap, offset: int, kind: int) -> tuple[Any, int]:
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        return struct.unpack_from(fmt, data, offset)[0], offset + struct.calcsize(fmt)
    if kind == _STRING:
        return _string(data, offset)
    if kind != _ARRAY:
        raise ValueError(f"unknown GGUF value type {kind}")
    item, count = struct.unpack_from("<IQ", data, offset)
    offset += 12
    if item in _SCALARS:
        size = struct.calcsize(_SCALARS[item])
        if count > _KEEP_ARRAY:
            return SkippedArray(count), offset + size * count
        values = list(struct.unpack_from(f"<{count}{_SCALARS[item][1]}", data, offset))
        return values, offset + size * count
    if item == _STRING:
        strings: list[str] = []
        keep = count <= _KEEP_ARRAY
        unpack = struct.Struct("<Q").unpack_from
        for _ in range(count):
            (length,) = unpack(data, offset)
            if keep:
                strings.append(data[offset + 8 : offset + 8 + length].decode("utf-8"))
            offset += 8 + length
        return (strings if keep else SkippedArray(count)), offset
    raise ValueError(f"unsupported GGUF array item type {item}")


def tensor_sizes(path: str | Path) -> dict[str, int]:
    """Bytes of each tensor's data, from the gaps between data offsets (no type table needed)."""
    file = Path(path)
    with file.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != MAGIC:
            raise BadModelFileError(f"{file} is not a GGUF file (bad magic)")
        try:
            return _tensor_sizes(data)
        except (struct.error, ValueError, UnicodeDecodeError) as exc:
            raise BadModelFileError(f"{file} is a truncated or corrupt GGUF file ({exc})") from None


def _tensor_sizes(data: mmap.mmap) -> dict[str, int]:
    (n_tensors,) = struct.unpack_from("<Q", data, 8)
    alignment = 32
    offset = 24
    for key, start, end in _entries(data):
        offset = end
        if key == "general.alignment":
            key_end = start + 8 + len(key)
            alignment = struct.unpack_from("<I", data, key_end + 4)[0]
    starts: list[tuple[int, str]] = []
    for _ in range(n_tensors):
        name, offset = _string(data, offset)
        (n_dims,) = struct.unpack_from("<I", data, offset)
        offset += 4 + 8 * n_dims + 4
        (start,) = struct.unpack_from("<Q", data, offset)
        offset += 8
        starts.append((start, name))
    data_start = (offset + alignment - 1) // alignment * alignment
    starts.sort()
    ends = [s for s, _ in starts[1:]] + [len(data) - data_start]
    return {name: end - start for (start, name), end in zip(starts, ends, strict=False)}
