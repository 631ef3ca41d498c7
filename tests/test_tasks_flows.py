"""Each flow runs through gemma_code/tasks/ with the scripted engine, and the chat and the CLI
call the same task functions (a spy wraps the real function and records who called it)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
from cli_runner import CliRunner
from conftest import git
from test_repl_support import drive, lines

from gemma_code.cli import app
from gemma_code.engine.scripted import ScriptedEngine
from gemma_code.tasks import apply as apply_task
from gemma_code.tasks import ask as ask_task
from gemma_code.tasks import edit as edit_task
from gemma_code.tasks import explain as explain_task
from gemma_code.tasks import review as review_task

runner = CliRunner()

RENAME = "util.py\n<<<<<<< SEARCH\ndef add(a, b):\n=======\ndef add_numbers(a, b):\n>>>>>>> REPLACE\n"
WRONG_APP = "app.py\n<<<<<<< SEARCH\nprint(plus(1, 2))\n=======\nprint(add(1, 3))\n>>>>>>> REPLACE\n"
CLEAN_REVIEW = '{"findings": []}'


def spy(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[str]:
    """Record each call of `module.name` (the real function still runs)."""
    calls: list[str] = []
    real: Callable[..., Any] = getattr(module, name)

    @functools.wraps(real)
    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, recording)
    return calls


# --- the task functions on their own: usable from Python, no terminal ------------------------

def test_edit_rounds_keeps_a_round_one_failure_open_when_round_two_fixes_something_else(git_repo):
    asked: list[str] = []

    def ask_again(text: str) -> str:
        asked.append(text)
        # another file's edit; the failed app.py block is not sent again
        return "README.md\n<<<<<<< SEARCH\n# demo\n=======\n# demo app\n>>>>>>> REPLACE\n"

    outcome = edit_task.edit_rounds(git_repo, WRONG_APP + RENAME, ask_again=ask_again, retries=1)
    assert len(asked) == 1 and "app.py: block 1" in asked[0]
    assert [f.edit.path for f in outcome.failures] == ["app.py"]  # still open: nothing to write


def test_run_edit_is_edit_rounds_with_one_engine_call_per_round(git_repo):
    engine = ScriptedEngine(replies=[WRONG_APP, RENAME])
    messages = edit_task.edit_messages("rename add", files={"util.py": "def add(a, b): ..."})
    outcome = edit_task.run_edit(engine, git_repo, messages, max_tokens=64, retries=1)
    assert len(engine.calls) == 2 and len(outcome.rounds) == 2
    assert all(r.stats is not None for r in outcome.rounds)
    assert outcome.messages[-2].content == WRONG_APP  # the model's failed reply, then the retry


def test_plan_reply_never_asks_again_and_commit_message_is_one_format(git_repo):
    outcome = apply_task.plan_reply(git_repo, RENAME)
    assert len(outcome.rounds) == 1 and [c.path for c in outcome.changes()] == ["util.py"]
    message = apply_task.commit_message("x" * 80, outcome.changes(), verb="apply")
    assert message.splitlines()[0] == "gemma-code apply: " + "x" * 61 + "..."
    assert message.splitlines()[2] == "- modify util.py"
    assert apply_task.commit_message("tidy", ["a.py"], verb="chat") == "gemma-code chat: tidy\n\n- a.py\n"


def test_run_review_uses_the_callers_engine_and_leaves_it_open(git_repo):
    from gemma_code.config import Settings

    (git_repo / "util.py").write_text("def add(a, b):\n    return a - b\n", encoding="utf-8")
    git(git_repo, "add", "util.py")
    target = review_task.collect_target(cwd=git_repo)
    settings = Settings(context=False)
    assert review_task.cached_review(target, settings, max_tokens=256) is None
    engine = ScriptedEngine(replies=[CLEAN_REVIEW])
    result = review_task.run_review(engine, target, settings, max_tokens=256)
    assert result.reviewed == ["util.py"] and not engine.closed
    cached = review_task.cached_review(target, settings, max_tokens=256)
    assert cached is not None and cached.cached  # a second run needs no model


def test_explain_request_resolves_the_target_against_the_given_folder(git_repo):
    messages = explain_task.explain_request(git_repo, "util.py::add", cwd=git_repo)
    assert "def add(a, b):" in messages[-1].content and "`add` in util.py" in messages[-1].content


# --- the chat and the CLI call the same task functions ---------------------------------------

def test_edit_runs_edit_rounds_from_the_cli_and_from_the_chat(git_repo, scripted, monkeypatch):
    calls = spy(monkeypatch, edit_task, "edit_rounds")
    requests = spy(monkeypatch, edit_task, "edit_request")
    monkeypatch.chdir(git_repo)
    scripted(RENAME)
    assert runner.invoke(app, ["edit", "rename add", "util.py", "--yes", "--no-context"]).exit_code == 0
    assert calls == ["edit_rounds"] and requests == ["edit_request"]
    git(git_repo, "checkout", "--", "util.py")
    drive(lines("/edit rename add", "y"), ScriptedEngine(replies=[RENAME]), git_repo)
    assert calls == ["edit_rounds"] * 2 and requests == ["edit_request"] * 2


def test_apply_and_commit_go_through_the_apply_task_from_both(git_repo, monkeypatch, tmp_path):
    plans = spy(monkeypatch, apply_task, "plan_reply")
    writes = spy(monkeypatch, apply_task, "write_with_safety")
    messages = spy(monkeypatch, apply_task, "commit_message")
    reply = tmp_path / "reply.md"
    reply.write_text(RENAME, encoding="utf-8")
    monkeypatch.chdir(git_repo)
    assert runner.invoke(app, ["apply", str(reply), "--commit"]).exit_code == 0
    assert len(plans) == len(writes) == len(messages) == 1
    git(git_repo, "reset", "-q", "--hard", "HEAD~1")
    out, _ = drive(lines(f"/apply {reply}", "y", "/commit", "y"), ScriptedEngine(), git_repo)
    assert "committed" in out
    assert len(plans) == len(writes) == len(messages) == 2


def test_explain_and_ask_stream_through_the_ask_task_from_both(git_repo, scripted, monkeypatch):
    streams = spy(monkeypatch, ask_task, "stream_ask")
    requests = spy(monkeypatch, explain_task, "explain_request")
    monkeypatch.chdir(git_repo)
    scripted("It adds.", "It adds too.")
    assert runner.invoke(app, ["explain", "util.py::add"]).exit_code == 0
    assert runner.invoke(app, ["ask", "--no-context", "what?"]).exit_code == 0
    assert streams == ["stream_ask"] * 2 and requests == ["explain_request"]
    drive(lines("/explain util.py::add", "and why?"), ScriptedEngine(replies=["a", "b"]), git_repo)
    assert streams == ["stream_ask"] * 4 and requests == ["explain_request"] * 2


def test_review_runs_run_review_from_the_cli_and_from_the_chat(git_repo, scripted, monkeypatch):
    reviews = spy(monkeypatch, review_task, "run_review")
    (git_repo / "util.py").write_text("def add(a, b):\n    return a - b\n", encoding="utf-8")
    git(git_repo, "add", "util.py")
    monkeypatch.chdir(git_repo)
    engine = scripted(CLEAN_REVIEW)
    result = runner.invoke(app, ["review", "--format", "json", "--no-cache", "--no-context"])
    assert result.exit_code == 0, result.output
    assert reviews == ["run_review"] and engine.closed  # the CLI opened it, so the CLI closed it
    chat_engine = ScriptedEngine(replies=[CLEAN_REVIEW])
    (git_repo / "util.py").write_text("def add(a, b):\n    return a * b\n", encoding="utf-8")
    git(git_repo, "add", "util.py")
    drive(lines("/review"), chat_engine, git_repo)
    assert reviews == ["run_review"] * 2 and len(chat_engine.calls) == 1
