"""The pure-Python GGUF header reader: metadata, tensor sizes, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemma_code.errors import BadModelFileError, ModelNotFoundError
from gemma_code.models.gguf_header import SkippedArray, read_metadata, tensor_sizes


def test_reads_metadata_and_skips_the_vocabulary(tiny_model_path: Path) -> None:
    meta = read_metadata(tiny_model_path)
    assert meta["general.architecture"] == "gemma3"
    assert meta["gemma3.context_length"] == 32768
    assert meta["tokenizer.ggml.tokens"] == SkippedArray(8, 262144)


def test_stop_at_ends_before_the_tokenizer(tiny_model_path: Path) -> None:
    meta = read_metadata(tiny_model_path, stop_at="tokenizer.")
    assert "gemma3.block_count" in meta
    assert not any(key.startswith("tokenizer.") for key in meta)


def test_tensor_sizes_add_up_to_the_data_section(tiny_model_path: Path) -> None:
    sizes = tensor_sizes(tiny_model_path)
    assert len(sizes) == read_metadata(tiny_model_path)["GGUF.tensor_count"]
    assert sizes["output_norm.weight"] == 640 * 4
    assert sum(sizes.values()) < tiny_model_path.stat().st_size


def test_missing_file_is_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        read_metadata(tmp_path / "nope.gguf")


def test_non_gguf_file_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"<html>not a model</html>")
    with pytest.raises(BadModelFileError, match="not a GGUF"):
        read_metadata(bad)


def test_truncated_gguf_is_rejected(tmp_path: Path, tiny_model_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with tiny_model_path.open("rb") as handle:
        cut.write_bytes(handle.read(4000))
    with pytest.raises(BadModelFileError, match="truncated or corrupt"):
        read_metadata(cut)
