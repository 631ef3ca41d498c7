"""Pure-Python reader of a GGUF file's header (key/values, tensor sizes): no numpy, no llama.cpp.

Used to plan the context window and KV cache before anything heavy loads, and by `models`.
Large arrays (the vocabulary, merges, scores) are stepped over and kept as their length only.
"""

from __future__ import annotations

import mmap
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemma_code.errors import BadModelFileError, ModelNotFoundError

GGUF_MAGIC = b"GGUF"

# Arrays longer than this (token lists, merges) are skipped, not decoded: only their length is kept.
MAX_ARRAY_ITEMS = 4096

# llama.cpp's llama_ftype values (general.file_type) -> the quant name users know.
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
    22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
    28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0",
    37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
}

_QUANT_IN_NAME = re.compile(
    r"(?<![A-Za-z0-9])((?:UD-)?(?:I?Q[1-8]_[0-9A-Z_]+?|I?Q[1-8]_[0-9]|BF16|F16|F32|MXFP4(?:_MOE)?))"
    r"(?=[.-]|$)",
    re.IGNORECASE,
)

# GGUF value types: (struct format, byte size) for the fixed-width ones.
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4),
    6: ("<f", 4), 7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8),
}
_STRING = 8
_ARRAY = 9
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class SkippedArray:
    """A long array (e.g. the vocabulary) that was stepped over: its item type and length."""

    item_type: int
    length: int


@dataclass
class GGUFInfo:
    """What the header says about a model: architecture, context, template, quant, KV shapes."""

    path: Path
    size: int  # bytes on disk
    version: int
    tensor_count: int
    arch: str | None = None
    name: str | None = None
    context_length: int | None = None
    block_count: int | None = None
    embedding_length: int | None = None
    chat_template: str | None = None
    file_type: int | None = None
    quant: str | None = None
    head_count: int | list[int] | None = None
    head_count_kv: int | list[int] | None = None
    key_length: int | None = None
    value_length: int | None = None
    key_length_swa: int | None = None
    value_length_swa: int | None = None
    sliding_window: int | None = None
    sliding_window_pattern: int | list[bool] | None = None
    expert_count: int | None = None
    expert_used_count: int | None = None
    vocab_size: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)

    def arch_key(self, suffix: str) -> Any:
        """The value of `{arch}.{suffix}` (e.g. "attention.head_count_kv"), or None."""
        return self.metadata.get(f"{self.arch}.{suffix}") if self.arch else None

    def kv_heads(self, layer: int) -> int | None:
        """KV heads of one layer, whether the file stores one number or one per layer."""
        value = self.head_count_kv
        if isinstance(value, list):
            return value[layer] if 0 <= layer < len(value) else None
        return value

    def is_sliding(self, layer: int) -> bool:
        """Whether a layer uses sliding-window attention (per the file's pattern key)."""
        pattern = self.sliding_window_pattern
        if isinstance(pattern, list):
            return bool(pattern[layer]) if 0 <= layer < len(pattern) else False
        if isinstance(pattern, int) and pattern > 0:
            # Gemma 3 style: every `pattern`-th layer is global, the rest slide.
            return (layer + 1) % pattern != 0
        return False


class _Cursor:
    """Reads little-endian GGUF values from a buffer, raising BadModelFileError on truncation."""

    def __init__(self, buf: Any, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.end = len(buf)
        self.path = path

    def _need(self, n: int) -> None:
        if self.pos + n > self.end:
            raise BadModelFileError(
                f"{self.path}: the GGUF file is truncated or corrupt"
                f" (needed {n} bytes at offset {self.pos})",
                "the file is incomplete or damaged; download it again (`models pull NAME --force`)",
            )

    def scalar(self, kind: int) -> Any:
        fmt, size = _SCALARS[kind]
        self._need(size)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def skip(self, n: int) -> None:
        self._need(n)
        self.pos += n

    def u32(self) -> int:
        return int(self.scalar(4))

    def u64(self) -> int:
        return int(self.scalar(10))

    def string(self) -> str:
        n = self.u64()
        self._need(n)
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def _skip_strings(self, count: int) -> None:
        # Variable-length items must be walked one by one; a tight loop keeps a 262K-token
        # vocabulary plus 515K merges to a fraction of a second.
        unpack, buf, pos, end = _U64.unpack_from, self.buf, self.pos, self.end
        try:
            for _ in range(count):
                pos += 8 + unpack(buf, pos)[0]
        except struct.error:
            pos = end + 1
        if pos > end:
            self._need(end + 1 - self.pos)
        self.pos = pos

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.scalar(kind)
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item = self.u32()
            count = self.u64()
            return self.array(item, count)
        raise BadModelFileError(
            f"{self.path}: unknown GGUF value type {kind} at offset {self.pos}",
            "the file is damaged or from a newer GGUF version than this reader knows",
        )

    def array(self, item: int, count: int) -> list[Any] | SkippedArray:
        if item in _SCALARS:
            fmt, size = _SCALARS[item]
            total = size * count
            self._need(total)
            if count > MAX_ARRAY_ITEMS:
                self.pos += total
                return SkippedArray(item, count)
            values = list(struct.unpack_from(f"<{count}{fmt[1]}", self.buf, self.pos))
            self.pos += total
            return values
        if item == _STRING:
            if count > MAX_ARRAY_ITEMS:
                self._skip_strings(count)
                return SkippedArray(item, count)
            return [self.string() for _ in range(count)]
        if count > MAX_ARRAY_ITEMS:
            for _ in range(count):
                self.value(item)
            return SkippedArray(item, count)
        return [self.value(item) for _ in range(count)]


def quant_from_filename(name: str) -> str | None:
    """The quant named in a file name ("gemma-4-26B-A4B-it-UD-IQ4_XS.gguf" -> "UD-IQ4_XS")."""
    found = _QUANT_IN_NAME.findall(Path(name).stem)
    return found[-1].upper() if found else None


def is_gguf(path: Path) -> bool:
    """Whether the file starts with the GGUF magic bytes."""
    try:
        with Path(path).open("rb") as handle:
            return handle.read(4) == GGUF_MAGIC
    except OSError:
        return False


def read_metadata(path: str | Path, *, stop_at: str | None = None) -> dict[str, Any]:
    """Every key/value of the GGUF at `path`, plus "GGUF.version" and "GGUF.tensor_count".

    `stop_at`: stop before the first key with that prefix (e.g. "tokenizer.").
    """
    with _mapped(Path(path)) as cur:
        version, tensor_count = _preamble(cur)
        meta: dict[str, Any] = {"GGUF.version": version, "GGUF.tensor_count": tensor_count}
        for key, value, _, _ in _entries(cur, stop_at):
            meta[key] = value
        return meta


def raw_entries(path: str | Path, prefix: str) -> list[bytes]:
    """The encoded key/value entries whose key starts with `prefix`, to copy into another GGUF."""
    with _mapped(Path(path)) as cur:
        _preamble(cur)
        return [bytes(cur.buf[start:end]) for key, _, start, end in _entries(cur) if key.startswith(prefix)]


def tensor_sizes(path: str | Path) -> dict[str, int]:
    """Bytes of each tensor's data, from the gaps between data offsets (no type table needed)."""
    with _mapped(Path(path)) as cur:
        _, tensor_count = _preamble(cur)
        alignment = 32
        for key, value, _, _ in _entries(cur):
            if key == "general.alignment" and isinstance(value, int):
                alignment = value
        starts: list[tuple[int, str]] = []
        for _ in range(tensor_count):
            name = cur.string()
            n_dims = cur.u32()
            cur.skip(8 * n_dims + 4)  # the shape and the GGML type: not needed for sizes
            starts.append((cur.u64(), name))
        data_start = (cur.pos + alignment - 1) // alignment * alignment
        starts.sort()
        ends = [s for s, _ in starts[1:]] + [cur.end - data_start]
        return {name: end - start for (start, name), end in zip(starts, ends, strict=False)}


@contextmanager
def _mapped(path: Path) -> Iterator[_Cursor]:
    """The file mmapped read-only behind a _Cursor; ModelNotFoundError/BadModelFileError on failure."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise ModelNotFoundError(
            f"model file {path} does not exist",
            "check the path, or `gemma-code models list` for downloaded models",
        ) from None
    except IsADirectoryError:
        raise BadModelFileError(f"{path} is a directory, not a GGUF file") from None
    except OSError as exc:
        raise BadModelFileError(
            f"{path}: cannot read the model file ({exc.strerror})", "check the path and its permissions"
        ) from None
    with handle:
        try:
            size = path.stat().st_size
            if size < 24:
                raise BadModelFileError(
                    f"{path}: not a GGUF model file (only {size} bytes)",
                    "pass a .gguf file, or a name from `gemma-code models list`",
                )
            # mmap: the OS pages in only the header bytes we touch, even for a 17 GB file.
            buf = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise BadModelFileError(
                f"{path}: cannot read the model file ({exc.strerror})", "check the file"
            ) from None
    try:
        yield _Cursor(buf, path)
    finally:
        buf.close()


def _preamble(cur: _Cursor) -> tuple[int, int]:
    """Check the magic and version; (version, tensor_count), the cursor left on the first key."""
    buf, path = cur.buf, cur.path
    if bytes(buf[:4]) != GGUF_MAGIC:
        raise BadModelFileError(
            f"{path}: not a GGUF model file (it starts with {bytes(buf[:4])!r}, not b'GGUF')",
            "pass a .gguf file, or a name from `gemma-code models list`",
        )
    cur.pos = 4
    version = cur.u32()
    if version < 2:
        raise BadModelFileError(
            f"{path}: GGUF version {version} is too old for llama.cpp",
            "convert the model again with a current llama.cpp, or download a newer file",
        )
    tensor_count = cur.u64()
    return version, tensor_count


def _entries(cur: _Cursor, stop_at: str | None = None) -> Iterator[tuple[str, Any, int, int]]:
    """(key, value, start, end) of each key/value entry, in file order; `stop_at` as in read_metadata."""
    kv_count = cur.u64()
    if kv_count > 1_000_000:
        raise BadModelFileError(
            f"{cur.path}: implausible GGUF header ({kv_count} keys)", "the file is damaged"
        )
    for _ in range(kv_count):
        start = cur.pos
        key = cur.string()
        if stop_at is not None and key.startswith(stop_at):
            return
        kind = cur.u32()
        value = cur.value(kind)
        yield key, value, start, cur.pos


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int_or_list(value: Any) -> int | list[int] | None:
    if isinstance(value, list):
        return [int(v) for v in value]
    return _int(value)


def inspect_gguf(path: Path | str) -> GGUFInfo:
    """Read a GGUF file's header: architecture, context, template, quant and attention shapes."""
    path = Path(path)
    md = read_metadata(path)
    version, tensor_count = md.pop("GGUF.version"), md.pop("GGUF.tensor_count")
    arch = md.get("general.architecture")
    arch = arch if isinstance(arch, str) else None

    def a(suffix: str) -> Any:
        return md.get(f"{arch}.{suffix}") if arch else None

    file_type = _int(md.get("general.file_type"))
    quant = FILE_TYPES.get(file_type) if file_type is not None else None
    template = md.get("tokenizer.chat_template")
    tokens = md.get("tokenizer.ggml.tokens")
    vocab = tokens.length if isinstance(tokens, SkippedArray) else (
        len(tokens) if isinstance(tokens, list) else None
    )
    pattern = a("attention.sliding_window_pattern")
    name = md.get("general.name")
    return GGUFInfo(
        path=path,
        size=path.stat().st_size,
        version=version,
        tensor_count=tensor_count,
        arch=arch,
        name=name if isinstance(name, str) else None,
        context_length=_int(a("context_length")),
        block_count=_int(a("block_count")),
        embedding_length=_int(a("embedding_length")),
        chat_template=template if isinstance(template, str) else None,
        file_type=file_type,
        quant=quant or quant_from_filename(path.name),
        head_count=_int_or_list(a("attention.head_count")),
        head_count_kv=_int_or_list(a("attention.head_count_kv")),
        key_length=_int(a("attention.key_length")),
        value_length=_int(a("attention.value_length")),
        key_length_swa=_int(a("attention.key_length_swa")),
        value_length_swa=_int(a("attention.value_length_swa")),
        sliding_window=_int(a("attention.sliding_window")),
        sliding_window_pattern=(
            [bool(v) for v in pattern] if isinstance(pattern, list) else _int(pattern)
        ),
        expert_count=_int(a("expert_count")),
        expert_used_count=_int(a("expert_used_count")),
        vocab_size=vocab,
        metadata=md,
    )
