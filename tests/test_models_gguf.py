"""inspect_gguf: the pure-Python GGUF header reader."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from gemma_code.errors import BadModelFileError, ModelNotFoundError
from gemma_code.models.gguf_header import SkippedArray, inspect_gguf, quant_from_filename


def test_inspect_gemma4_vocab_file_reads_the_attention_layout(gemma4_vocab: Path) -> None:
    info = inspect_gguf(gemma4_vocab)
    assert info.arch == "gemma4"
    assert info.context_length == 262144
    assert info.block_count == 30
    assert info.chat_template is not None and "<|turn>" in info.chat_template
    assert info.head_count_kv == [8, 8, 8, 8, 8, 2] * 5
    assert info.key_length == 512 and info.value_length == 512
    assert info.key_length_swa == 256 and info.value_length_swa == 256
    assert info.sliding_window == 1024
    assert info.sliding_window_pattern == [True] * 5 + [False] + [True] * 5 + [False] + [True] * 5 + [
        False
    ] + [True] * 5 + [False] + [True] * 5 + [False]
    assert info.expert_count == 128 and info.expert_used_count == 8
    assert info.vocab_size == 262144
    assert info.size == gemma4_vocab.stat().st_size
    assert [layer for layer in range(30) if not info.is_sliding(layer)] == [5, 11, 17, 23, 29]
    assert info.kv_heads(5) == 2 and info.kv_heads(0) == 8
    assert info.arch_key("attention.sliding_window") == 1024
    # The vocabulary and merges are stepped over, not decoded.
    assert info.metadata["tokenizer.ggml.merges"] == SkippedArray(8, 514906)


@pytest.mark.llama
def test_inspect_tiny_model(tiny_model_path: Path) -> None:
    info = inspect_gguf(tiny_model_path)
    assert info.arch == "gemma3"
    assert info.quant == "Q4_K_M" and info.file_type == 15
    assert info.context_length == 32768 and info.block_count == 18
    assert info.chat_template is None  # a base model: the engine needs its fallback format
    assert info.head_count_kv == 1 and info.kv_heads(3) == 1
    assert info.name == "Gemma 3 270m"
    assert info.size == tiny_model_path.stat().st_size


def _header(*kvs: bytes, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, 0, len(kvs)) + b"".join(kvs)


def _str(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def _kv_u32(key: str, value: int) -> bytes:
    return _str(key) + struct.pack("<I", 4) + struct.pack("<I", value)


def test_inspect_reads_scalar_keys_of_a_written_header(tmp_path: Path) -> None:
    path = tmp_path / "m-IQ4_XS.gguf"
    path.write_bytes(
        _header(
            _str("general.architecture") + struct.pack("<I", 8) + _str("gemma4"),
            _kv_u32("gemma4.context_length", 8192),
            _kv_u32("gemma4.attention.head_count_kv", 4),
        )
    )
    info = inspect_gguf(path)
    assert (info.arch, info.context_length, info.head_count_kv) == ("gemma4", 8192, 4)
    assert info.file_type is None and info.quant == "IQ4_XS"  # no file_type key: from the name


def test_inspect_refuses_a_non_gguf_file(tmp_path: Path) -> None:
    path = tmp_path / "index.html"
    path.write_bytes(b"<!doctype html>" + b" " * 100)
    with pytest.raises(BadModelFileError, match="not a GGUF model file"):
        inspect_gguf(path)


def test_inspect_refuses_a_truncated_header(tmp_path: Path, gemma4_vocab: Path) -> None:
    whole = gemma4_vocab.read_bytes()[: 1_000_000]
    path = tmp_path / "cut.gguf"
    path.write_bytes(whole)
    with pytest.raises(BadModelFileError, match="truncated"):
        inspect_gguf(path)


def test_inspect_refuses_gguf_version_1(tmp_path: Path) -> None:
    path = tmp_path / "old.gguf"
    path.write_bytes(_header(version=1) + b"\0" * 16)
    with pytest.raises(BadModelFileError, match="version 1"):
        inspect_gguf(path)


def test_inspect_missing_file_is_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        inspect_gguf(tmp_path / "absent.gguf")


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("gemma-4-26B-A4B-it-Q4_K_M.gguf", "Q4_K_M"),
        ("gemma-4-26B-A4B-it-UD-IQ4_XS.gguf", "UD-IQ4_XS"),
        ("gemma-4-26B-A4B-it-Q8_0.gguf", "Q8_0"),
        ("gemma-3-270m-q4_k_m.gguf", "Q4_K_M"),
        ("model-bf16.gguf", "BF16"),
        ("model.gguf", None),
    ],
)
def test_quant_from_filename(name: str, quant: str | None) -> None:
    assert quant_from_filename(name) == quant
