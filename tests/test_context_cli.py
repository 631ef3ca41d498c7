"""`gemma-code context` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import CliRunner

from gemma_code.cli import app

runner = CliRunner()


def test_context_json_prints_the_documented_shape(git_repo: Path, monkeypatch) -> None:
    monkeypatch.chdir(git_repo)
    result = runner.invoke(app, ["context", "what does add do?", "--json", "--budget", "2000"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert isinstance(payload["budget"], int) and payload["budget"] == 2000
    assert isinstance(payload["used"], int) and 0 < payload["used"] <= 2000
    assert payload["files"][0] == {"path": "util.py", "tokens": payload["files"][0]["tokens"],
                                   "mode": "full", "parts": []}
    for item in payload["files"]:
        # documented: path, tokens, mode; added: parts (an excerpt's definitions shown in full)
        assert set(item) == {"path", "tokens", "mode", "parts"}
        assert isinstance(item["tokens"], int) and item["mode"] in ("full", "outline")
        assert isinstance(item["parts"], list)
    assert payload["estimated"] is True  # no model file and no tokenizer setting here


@pytest.mark.llama
def test_context_counts_with_the_configured_tokenizer_file(
    git_repo: Path, monkeypatch, tiny_model_path
) -> None:
    monkeypatch.chdir(git_repo)
    monkeypatch.setenv("GEMMA_CODE_TOKENIZER", str(tiny_model_path))
    result = runner.invoke(app, ["context", "what does add do?", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["estimated"] is False
    assert payload["used"] == sum(f["tokens"] for f in payload["files"]) + payload["map_tokens"]


def test_context_table_shows_files_skipped_and_time(git_repo: Path, monkeypatch) -> None:
    monkeypatch.chdir(git_repo)
    (git_repo / ".env").write_text("TOKEN=x\n", encoding="utf-8")
    result = runner.invoke(app, ["context", "main"])
    assert result.exit_code == 0, result.output
    assert "app.py" in result.stdout
    assert "secret-looking name (1): .env" in result.stdout
    assert " s" in result.stdout.split("tokens;")[1]
    assert "estimates" in result.stdout


def test_context_named_file_comes_first(git_repo: Path, monkeypatch) -> None:
    monkeypatch.chdir(git_repo)
    result = runner.invoke(app, ["context", "anything", "-f", "README.md", "--json"])
    assert json.loads(result.stdout)["files"][0]["path"] == "README.md"


def test_context_missing_named_file_is_a_usage_error(git_repo: Path, monkeypatch) -> None:
    monkeypatch.chdir(git_repo)
    result = runner.invoke(app, ["context", "anything", "-f", "nothere.py"])
    assert result.exit_code == 2, result.output
    assert "no such file: nothere.py" in result.stderr


def test_context_named_folder_is_a_usage_error(git_repo: Path, monkeypatch) -> None:
    (git_repo / "pkg").mkdir()
    monkeypatch.chdir(git_repo)
    result = runner.invoke(app, ["context", "anything", "-f", "pkg"])
    assert result.exit_code == 2, result.output


def test_context_outside_git_walks_the_folder(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "tool.py").write_text("def tool():\n    pass\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["context", "tool", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [f["path"] for f in payload["files"]] == ["tool.py"]
    assert any("not in a git repository" in n for n in payload["notes"])


def test_context_show_prints_the_packed_text(git_repo: Path, monkeypatch) -> None:
    monkeypatch.chdir(git_repo)
    result = runner.invoke(app, ["context", "add", "--show", "--budget", "3000"])
    assert result.exit_code == 0
    assert "### util.py" in result.stdout and "return a + b" in result.stdout


def test_context_empty_question_is_a_usage_error(git_repo: Path, monkeypatch) -> None:
    monkeypatch.chdir(git_repo)
    result = runner.invoke(app, ["context", "  "])
    assert result.exit_code == 2


def test_context_help_prose_is_one_line_per_paragraph() -> None:
    from gemma_code.cli.context import CONTEXT_HELP

    prose = [p for p in CONTEXT_HELP.strip().split("\n\n") if not p.startswith("  ")]
    assert prose and all("\n" not in p for p in prose)
