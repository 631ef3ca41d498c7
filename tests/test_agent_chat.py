"""The chat's agent mode: /mode, tool calls shown compactly, approvals typed in, /undo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_repl_support import drive, lines

from gemma_code.engine.gemma_tools import ToolCall, render_call
from gemma_code.engine.scripted import ScriptedEngine


def tc(name: str, **arguments: Any) -> str:
    return render_call(ToolCall(name, arguments))


EDIT = tc("edit_file", path="util.py", old_text="return a + b", new_text="return b + a")


def test_auto_edit_mode_runs_the_agent_and_undo_reverts_its_step(git_repo: Path) -> None:
    engine = ScriptedEngine(replies=[EDIT, "Swapped the operands.", "plain answer"])
    out, repl = drive(lines("/mode auto-edit", "swap them", "/undo", "/mode off", "hi"),
                      engine, git_repo)
    assert "● edit_file util.py" in out and "edited util.py (+1 -1 lines)" in out
    assert "Swapped the operands." in out
    assert "undone: util.py" in out
    assert (git_repo / "util.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert engine.calls[0].messages[0].tools  # the agent's prompt declares the tools
    assert not engine.calls[2].messages[0].tools  # back to the plain chat
    assert "plain answer" in out and repl.agent.mode is None


def test_ask_mode_shows_the_diff_and_takes_the_typed_answer(git_repo: Path) -> None:
    engine = ScriptedEngine(replies=[EDIT, "declined, so nothing changed", EDIT, "done"])
    out, _ = drive(lines("/mode ask", "swap", "n", "swap again", "y"), engine, git_repo)
    assert "-    return a + b" in out and "+    return b + a" in out
    assert "the user declined" in engine.calls[1].prompt
    assert (git_repo / "util.py").read_text() == "def add(a, b):\n    return b + a\n"


def test_mode_shows_in_the_toolbar_and_bad_modes_are_refused(git_repo: Path) -> None:
    out, repl = drive(lines("/mode yolo", "/mode plan"), ScriptedEngine(), git_repo)
    assert "unknown mode 'yolo'" in out
    assert "mode plan" in repl.toolbar()


def test_results_are_compact_and_expand_shows_them_whole(git_repo: Path) -> None:
    (git_repo / "long.txt").write_text("".join(f"row {n}\n" for n in range(30)))
    engine = ScriptedEngine(replies=[tc("read_file", path="long.txt"), "read it"])
    out, _ = drive(lines("/mode plan", "read long.txt", "/expand 1"), engine, git_repo)
    compact, expanded = out.split("/expand shows them", 1)
    assert "row 29" not in compact and "row 29" in expanded
    assert "1. read_file (ok)" in expanded
