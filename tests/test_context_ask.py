"""`ask` packs repository context by default, within the engine's window."""

from __future__ import annotations

from pathlib import Path

from cli_runner import CliRunner

from gemma_code.cli import app
from gemma_code.config import Settings
from gemma_code.tasks.ask import repo_context_for

runner = CliRunner()


def test_ask_puts_repository_context_in_the_system_turn(scripted, git_repo: Path, monkeypatch) -> None:
    monkeypatch.chdir(git_repo)
    engine = scripted("It adds.")
    result = runner.invoke(app, ["ask", "what does add do?"])
    assert result.exit_code == 0, result.output
    system = engine.calls[0].messages[0].content
    assert "# Repository context" in system
    assert "### util.py" in system and "return a + b" in system
    assert "what does add do?" not in system  # the question goes in the user turn, after the prefix


def test_ask_no_context_leaves_the_repository_out(scripted, git_repo: Path, monkeypatch) -> None:
    monkeypatch.chdir(git_repo)
    engine = scripted("ok")
    assert runner.invoke(app, ["ask", "--no-context", "what does add do?"]).exit_code == 0
    assert "### util.py" not in engine.calls[0].messages[0].content


def test_ask_budget_caps_the_context(scripted, git_repo: Path, monkeypatch) -> None:
    monkeypatch.chdir(git_repo)
    engine = scripted("ok")
    assert runner.invoke(app, ["ask", "--budget", "1", "what does add do?"]).exit_code == 0
    assert "### util.py" not in engine.calls[0].messages[0].content


def test_context_shrinks_to_the_room_left_in_the_window(scripted, git_repo: Path, monkeypatch) -> None:
    monkeypatch.chdir(git_repo)
    (git_repo / "big.py").write_text(
        "\n".join(f"def add_{i}(a, b):\n    return a + b + {i}" for i in range(400)), encoding="utf-8"
    )
    engine = scripted(n_ctx=1400)
    settings = Settings(budget=100_000, max_tokens=256)
    text = repo_context_for(engine, "add", [], settings)
    assert text is not None
    assert engine.count_tokens(text) <= 1400 - 256 - 512


def test_named_files_steer_but_are_not_repeated(scripted, git_repo: Path, monkeypatch) -> None:
    monkeypatch.chdir(git_repo)
    engine = scripted()
    text = repo_context_for(engine, "explain", [Path("util.py")], Settings(budget=4000))
    assert text is not None and "### util.py" not in text
    assert "### app.py" in text  # app.py uses util.add: the graph pulls it in


def test_no_context_outside_a_repository(scripted, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert repo_context_for(scripted(), "q", [], Settings()) is None
    assert repo_context_for(scripted(), "q", [], Settings(context=False)) is None
