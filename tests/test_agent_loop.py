"""The agent loop end to end: the scripted engine replays raw Gemma 4 replies with native
tool calls, the tools act on real git repositories, and the tests check what the model saw."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import pytest

from gemma_code.engine.chat_templates import EMPTY_THOUGHT
from gemma_code.engine.gemma_tools import ToolCall, render_call
from gemma_code.engine.scripted import ScriptedEngine
from gemma_code.tasks.agent import AgentOptions, AgentSession
from gemma_code.tasks.agent_events import AgentEvent
from gemma_code.tools import Permissions
from gemma_code.tools.base import Action
from gemma_code.tools.sandbox import Sandbox, find_sandbox

TEST_FILE = "import unittest\nfrom util import add\n\n\nclass T(unittest.TestCase):\n" \
            "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"


def tc(name: str, **arguments: Any) -> str:
    """The raw text a model writes to call `name`."""
    return render_call(ToolCall(name, arguments))


def run(engine: ScriptedEngine, root: Path, task: str = "do it", *, mode: str = "ask",
        approver: Any = None, **options: Any) -> tuple[AgentSession, list[dict[str, Any]]]:
    opts = AgentOptions(mode=mode, **options)
    session = AgentSession(engine, root, opts, permissions=Permissions(mode, approver))
    events = [e.to_dict() for e in session.run(task)]
    return session, events


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def yes(action: Action) -> Any:
    return "yes"


@pytest.fixture
def buggy_repo(git_repo: Path) -> Path:
    (git_repo / "util.py").write_text("def add(a, b):\n    return a - b\n")
    (git_repo / "test_util.py").write_text(TEST_FILE)
    return git_repo


def test_reads_edits_runs_the_tests_and_answers(buggy_repo: Path) -> None:
    pytest_cmd = f"{sys.executable} -m unittest -q test_util"
    engine = ScriptedEngine(replies=[
        "Let me look." + tc("read_file", path="util.py"),
        tc("edit_file", path="util.py", old_text="    return a - b", new_text="    return a + b"),
        tc("run_command", command=pytest_cmd),
        "Fixed `add` in util.py: it subtracted. The tests pass.",
    ])
    shown: list[Action] = []

    def approve(action: Action) -> Any:
        shown.append(action)
        return "yes"

    _, events = run(engine, buggy_repo, "fix add", approver=approve)
    assert (buggy_repo / "util.py").read_text() == "def add(a, b):\n    return a + b\n"
    results = of(events, "tool_result")
    assert [r["name"] for r in results] == ["read_file", "edit_file", "run_command"]
    assert all(r["ok"] for r in results), results
    assert "exit code 0" in results[2]["output"] and "OK" in results[2]["output"]
    assert results[1]["changed"] == ["util.py"]
    assert "-    return a - b" in shown[0].preview and shown[1].preview == pytest_cmd
    done = events[-1]
    assert done["type"] == "done" and done["stats"]["stop_reason"] == "answer"
    assert done["answer"].startswith("Fixed `add`")
    assert done["stats"]["tool_calls"] == 3 and done["stats"]["steps"] == 4
    assert of(events, "text")[0]["text"] == "Let me look."
    # the model saw each result natively, and every prompt extends the last one
    prompts = [c.prompt for c in engine.calls]
    assert '<|tool_response>response:read_file{output:<|"|>util.py (2 lines):' in prompts[1]
    for before, after in itertools.pairwise(prompts):
        assert after.startswith(before.removesuffix(EMPTY_THOUGHT))
    assert "<|tool>declaration:edit_file{" in prompts[0]
    assert "Mode: ask." in prompts[0] and "fix add" in prompts[0]


def test_first_prompt_has_agents_md_and_the_packed_context(git_repo: Path) -> None:
    (git_repo / "AGENTS.md").write_text("Always run `make check` before answering.\n")
    engine = ScriptedEngine(replies=["Nothing to do."])
    run(engine, git_repo, "explain add")
    system = engine.calls[0].messages[0].content
    assert "# Project instructions (AGENTS.md)" in system and "make check" in system
    assert "# Repository context" in system and "def add(a, b)" in system
    assert [m.role for m in engine.calls[0].messages] == ["system", "user"]


def test_a_turn_without_calls_ends_the_run(git_repo: Path) -> None:
    engine = ScriptedEngine(replies=["The answer is 42."])
    _, events = run(engine, git_repo)
    assert [e["type"] for e in events if e["type"] != "text_delta"] == ["text", "step", "done"]
    assert events[-1]["answer"] == "The answer is 42."


def test_plan_mode_refuses_edits_and_commands(git_repo: Path) -> None:
    engine = ScriptedEngine(replies=[
        tc("edit_file", path="util.py", old_text="return a + b", new_text="return 0"),
        tc("run_command", command="touch made_by_plan"),
        "Plan: change util.py.",
    ])
    _, events = run(engine, git_repo, mode="plan", approver=yes)
    results = of(events, "tool_result")
    assert [r["ok"] for r in results] == [False, False]
    assert all("plan mode is read-only" in r["output"] for r in results)
    assert (git_repo / "util.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert not (git_repo / "made_by_plan").exists()
    assert "plan mode is read-only" in engine.calls[1].prompt  # the model was told


def test_the_same_call_three_times_is_not_run_and_the_fourth_stops(git_repo: Path) -> None:
    same = tc("run_command", command="echo run >> count.txt")
    engine = ScriptedEngine(replies=[same] * 4 + ["never reached"])
    _, events = run(engine, git_repo, mode="auto-edit", approver=yes)
    assert (git_repo / "count.txt").read_text() == "run\nrun\n"  # the 3rd and 4th never ran
    results = of(events, "tool_result")
    assert "not run: you made this exact run_command call 3 times" in results[2]["output"]
    assert "made this exact run_command call 3 times" in engine.calls[3].prompt
    errors = of(events, "error")
    assert errors and "4 times in a row" in errors[0]["message"] and errors[0]["exit_code"] == 1
    assert events[-1]["stats"]["stop_reason"] == "repetition"
    assert len(engine.calls) == 4


def test_a_different_call_resets_the_repetition_count(git_repo: Path) -> None:
    read = tc("read_file", path="util.py")
    other = tc("read_file", path="app.py")
    engine = ScriptedEngine(replies=[read, read, other, read, read, "done"])
    _, events = run(engine, git_repo)
    assert all(r["ok"] for r in of(events, "tool_result"))
    assert events[-1]["stats"]["stop_reason"] == "answer"


def test_max_steps_stops_the_run(git_repo: Path) -> None:
    engine = ScriptedEngine(replies=[tc("read_file", path="util.py"),
                                     tc("read_file", path="app.py"), "late answer"])
    _, events = run(engine, git_repo, max_steps=2)
    assert "stopped after 2 steps" in of(events, "error")[0]["message"]
    assert events[-1]["stats"]["stop_reason"] == "max_steps" and len(engine.calls) == 2


def test_a_denied_command_does_not_run_and_the_model_is_told(git_repo: Path) -> None:
    engine = ScriptedEngine(replies=[tc("run_command", command="touch denied.txt"), "ok"])
    _, events = run(engine, git_repo, approver=lambda action: "no")
    assert not (git_repo / "denied.txt").exists()
    assert "the user declined" in of(events, "tool_result")[0]["output"]
    assert "the user declined" in engine.calls[1].prompt


def test_without_a_terminal_edits_and_commands_are_refused(git_repo: Path) -> None:
    engine = ScriptedEngine(replies=[
        tc("write_file", path="new.py", content="x = 1\n"),
        tc("run_command", command="touch ran.txt"), "ok"])
    _, events = run(engine, git_repo, approver=None)
    assert not (git_repo / "new.py").exists() and not (git_repo / "ran.txt").exists()
    assert all("no terminal" in r["output"] for r in of(events, "tool_result"))


@pytest.mark.parametrize("mode", ["plan", "ask", "auto-edit", "full-auto"])
def test_a_write_outside_the_repository_is_refused_in_every_mode(git_repo: Path, mode: str) -> None:
    if mode == "full-auto" and not isinstance(find_sandbox(), Sandbox):
        pytest.skip("full-auto needs bubblewrap (.ci/run installs it)")
    engine = ScriptedEngine(replies=[
        tc("write_file", path="../evil.py", content="x = 1\n"),
        tc("edit_file", path="/etc/hostname", old_text="a", new_text="b"),
        "ok"])
    _, events = run(engine, git_repo, mode=mode, approver=yes)
    results = of(events, "tool_result")
    assert not (git_repo.parent / "evil.py").exists()
    assert [r["ok"] for r in results] == [False, False]
    assert all(r["output"].startswith("refused") for r in results), results


def test_a_malformed_call_and_an_unknown_tool_are_reported_to_the_model(git_repo: Path) -> None:
    engine = ScriptedEngine(replies=[
        "<|tool_call>call:read_file{path:}<tool_call|>",
        tc("delete_everything", path="."),
        "I could not read it.",
    ])
    _, events = run(engine, git_repo)
    assert "malformed argument list" in engine.calls[1].prompt
    assert "unknown tool 'delete_everything'" in engine.calls[2].prompt
    assert len(of(events, "note")) == 2 and events[-1]["stats"]["stop_reason"] == "answer"


def test_old_results_are_shortened_before_the_window_overflows(git_repo: Path) -> None:
    for name in ("a.txt", "b.txt", "c.txt"):
        (git_repo / name).write_text("".join(f"{name} line {n}\n" for n in range(250)))
    engine = ScriptedEngine(replies=[tc("read_file", path="a.txt"), tc("read_file", path="b.txt"),
                                     tc("read_file", path="c.txt"), "done"], n_ctx=6000)
    _, events = run(engine, git_repo, use_context=False, max_tokens=512, result_tokens=3000)
    notes = [n["message"] for n in of(events, "note")]
    assert any("shortened an older read_file result" in n for n in notes), notes
    last = engine.calls[-1]
    assert "this older result" in last.prompt and "call the tool again" in last.prompt
    assert "c.txt line 249" in last.prompt  # the newest result is whole
    assert events[-1]["stats"]["stop_reason"] == "answer"


def test_undo_reverts_the_last_step_then_the_run(git_repo: Path) -> None:
    engine = ScriptedEngine(replies=[
        tc("write_file", path="new.py", content="x = 1\n"),
        tc("edit_file", path="util.py", old_text="return a + b", new_text="return b + a"),
        "done"])
    session, _ = run(engine, git_repo, mode="auto-edit")
    assert session.undo_step() == ["util.py"]
    assert "return a + b" in (git_repo / "util.py").read_text() and (git_repo / "new.py").exists()
    assert session.undo_run() == ["new.py"]
    assert not (git_repo / "new.py").exists()


def test_ctrl_c_during_approval_leaves_a_consistent_conversation(git_repo: Path) -> None:
    def interrupt(action: Action) -> Any:
        raise KeyboardInterrupt

    engine = ScriptedEngine(replies=[tc("run_command", command="ls"), "answer"])
    session = AgentSession(engine, git_repo, AgentOptions(), permissions=Permissions("ask", interrupt))
    with pytest.raises(KeyboardInterrupt):
        for _ in session.run("list"):
            pass
    assert session.messages[-1].role == "tool"
    assert "interrupted" in session.messages[-1].response["error"]
    events: list[AgentEvent] = list(session.run("just answer"))  # the chat goes on
    assert events[-1].to_dict()["answer"] == "answer"


def test_the_prompt_estimate_between_exact_counts_never_undercounts(buggy_repo: Path) -> None:
    from gemma_code.tasks.prompting import prompt_tokens

    engine = ScriptedEngine(replies=[
        tc("read_file", path="util.py"), tc("search", query="add"),
        tc("edit_file", path="util.py", old_text="    return a - b", new_text="    return a + b"),
        "done"])
    session, _ = run(engine, buggy_repo, mode="auto-edit")
    estimate = session.window.estimate(session.messages)
    exact = prompt_tokens(engine, session.messages, think=False)
    assert estimate is not None and exact <= estimate <= exact + 16 * 8


def test_reasoning_of_a_tool_call_turn_reaches_the_next_step(git_repo: Path) -> None:
    engine = ScriptedEngine(replies=[
        "<|channel>thought\nI should read util.py first.<channel|>" + tc("read_file", path="util.py"),
        "<|channel>thought\nIt adds.<channel|>It returns a + b.",
    ])
    _, events = run(engine, git_repo, think=True)
    assert [e["text"] for e in of(events, "thought")] == ["I should read util.py first.", "It adds."]
    second = engine.calls[1].prompt
    assert "<|think|>" in second
    assert "<|channel>thought\nI should read util.py first.\n<channel|><|tool_call>call:read_file" \
        in second
    assert events[-1]["answer"] == "It returns a + b."
