"""The chat's code commands on a real git repository: /edit /apply /undo /diff /commit /refactor
/explain /context /review, with the scripted engine."""

from __future__ import annotations

import json

from conftest import git
from test_repl_support import drive, lines

from gemma_code.config import Settings
from gemma_code.engine.scripted import ScriptedEngine

RENAME = """Renaming add.

util.py
<<<<<<< SEARCH
def add(a, b):
=======
def add_numbers(a, b):
>>>>>>> REPLACE
"""
WRONG = """util.py
<<<<<<< SEARCH
def plus(a, b):
=======
def add_numbers(a, b):
>>>>>>> REPLACE
"""


def test_edit_previews_the_diff_and_applies_after_confirmation(git_repo):
    engine = ScriptedEngine(replies=[RENAME])
    out, repl = drive(lines("/edit rename add to add_numbers", "y"), engine, git_repo)
    assert "-def add(a, b):" in out and "+def add_numbers(a, b):" in out
    assert (git_repo / "util.py").read_text().startswith("def add_numbers(a, b):")
    assert "applied to util.py" in out and repl.applied == ["util.py"]
    assert "Instruction: rename add to add_numbers" in engine.calls[0].messages[-1].content
    assert "<<<<<<< SEARCH" in engine.calls[0].messages[0].content  # format in the fixed system turn


def test_declined_edit_writes_nothing(git_repo):
    out, _ = drive(lines("/edit rename add", "n"), ScriptedEngine(replies=[RENAME]), git_repo)
    assert "not applied" in out
    assert (git_repo / "util.py").read_text().startswith("def add(a, b):")


def test_failed_edit_goes_back_to_the_model_with_the_reason(git_repo):
    engine = ScriptedEngine(replies=[WRONG, RENAME])
    _out, repl = drive(lines("/edit rename add", "y"), engine, git_repo)
    retry = engine.calls[1].messages[-1].content
    assert "did not apply" in retry and "closest actual lines" in retry
    assert engine.calls[1].messages[-2].content.strip() == WRONG.strip()  # its failed answer, kept
    assert (git_repo / "util.py").read_text().startswith("def add_numbers(a, b):")
    assert [t.mode for t in repl.conv.turns] == ["edit", "retry"]


def test_edit_that_never_applies_writes_nothing_and_says_so(git_repo):
    engine = ScriptedEngine(replies=[WRONG, WRONG, WRONG])
    out, _ = drive(lines("/edit rename add"), engine, git_repo)
    assert "could not be applied; nothing was written" in out
    assert (git_repo / "util.py").read_text().startswith("def add(a, b):")
    assert len(engine.calls) == 3  # the first try and two retries


def test_apply_takes_the_last_answer_then_undo_and_diff(git_repo):
    engine = ScriptedEngine(replies=[RENAME])
    out, _ = drive(lines("how would you rename add?", "/apply", "y", "/diff", "/undo", "/diff"),
                   engine, git_repo)
    assert "applied to util.py" in out
    assert "+def add_numbers(a, b):" in out.split("applied to util.py")[1]  # /diff after apply
    assert "undone: util.py" in out
    assert out.rstrip().splitlines()[-2].endswith("no uncommitted changes")
    assert (git_repo / "util.py").read_text().startswith("def add(a, b):")


def test_apply_without_an_answer_is_a_clear_error(git_repo):
    out, _ = drive(lines("/apply"), ScriptedEngine(), git_repo)
    assert "error: no answer to apply yet" in out


def test_apply_of_an_answer_without_edits_says_so(git_repo):
    out, _ = drive(lines("hi", "/apply"), ScriptedEngine(replies=["Just prose."]), git_repo)
    assert "holds no edit blocks" in out


def test_commit_commits_the_files_the_chat_changed(git_repo):
    engine = ScriptedEngine(replies=[RENAME])
    out, _ = drive(lines("/edit rename add to add_numbers", "y", "/commit", "y"), engine, git_repo)
    assert "committed" in out
    assert git(git_repo, "log", "-1", "--format=%s").strip() == "gemma-code chat: rename add to add_numbers"
    assert git(git_repo, "status", "--porcelain").strip() == ""


def test_commit_with_nothing_changed_says_so(git_repo):
    out, _ = drive(lines("/commit"), ScriptedEngine(), git_repo)
    assert "nothing to commit" in out


def test_refactor_shows_the_model_every_site_of_the_symbol(git_repo):
    engine = ScriptedEngine(replies=[RENAME])
    drive(lines("/refactor rename `add` to add_numbers", "n"), engine, git_repo)
    sent = engine.calls[0].messages[-1].content
    assert "Symbol `add`" in sent and "app.py" in sent and "util.py" in sent
    assert "every reference" in sent


def test_explain_sends_the_symbol_with_its_callers(git_repo):
    engine = ScriptedEngine(replies=["It adds."])
    out, _ = drive(lines("/explain util.py::add"), engine, git_repo)
    sent = engine.calls[0].messages[-1].content
    assert "util.py (lines 1-2)" in sent and "return a + b" in sent
    assert "app.py" in sent  # a caller
    assert "It adds." in out


def test_context_lists_the_packed_files(git_repo):
    engine = ScriptedEngine(replies=["ok"])
    settings = Settings(context=True, max_tokens=64)
    out, _repl = drive(lines("/context", "hello"), engine, git_repo, settings=settings)
    assert "util.py" in out and "app.py" in out and "-token budget" in out
    system = engine.calls[0].messages[0].content
    assert "# Repository context" in system and "def add(a, b):" in system


def test_review_prints_findings_and_the_chat_goes_on(git_repo):
    (git_repo / "util.py").write_text("def add(a, b):\n    return a - b\n", encoding="utf-8")
    git(git_repo, "add", "util.py")
    finding = json.dumps({"findings": [{
        "file": "util.py", "line": 2, "title": "Subtraction instead of addition",
        "explanation": "add() now subtracts", "severity": "critical", "fix": None,
    }]})
    engine = ScriptedEngine(replies=[finding, "after review"])
    out, repl = drive(lines("/review", "thanks"), engine, git_repo)
    assert "Subtraction instead of addition" in out
    assert "after review" in out and repl.engine is engine
    assert [m.content for m in repl.conv.history] == ["thanks", "after review"]


def test_reset_forgets_files_and_history_and_repacks_the_context(git_repo):
    engine = ScriptedEngine(replies=["one", "two"])
    settings = Settings(context=True, max_tokens=64)
    (git_repo / "notes.txt").write_text("remember me\n")
    out, repl = drive(lines("/add notes.txt", "first", "/reset", "/files", "second"), engine, git_repo,
                      settings=settings)
    assert "conversation and files reset; repository context rebuilt" in out
    assert repl.added == [] and [m.content for m in engine.calls[1].messages[1:]] == ["second"]
    assert engine.calls[1].messages[0].content == engine.calls[0].messages[0].content
    assert repl.packed.files and "repository context (" in out.split("repository context rebuilt")[-1]


def test_a_round_one_failure_survives_a_retry_that_fixes_something_else(git_repo):
    wrong_app = "app.py\n<<<<<<< SEARCH\nprint(plus(1, 2))\n=======\nprint(add(1, 3))\n>>>>>>> REPLACE\n"
    readme = "README.md\n<<<<<<< SEARCH\n# demo\n=======\n# demo app\n>>>>>>> REPLACE\n"
    engine = ScriptedEngine(replies=[wrong_app + RENAME, readme, readme])
    out, _ = drive(lines("/edit rename add and fix app", "y"), engine, git_repo)
    assert "could not be applied; nothing was written" in out
    assert (git_repo / "util.py").read_text().startswith("def add(a, b):")
    assert (git_repo / "README.md").read_text() == "# demo\n"
