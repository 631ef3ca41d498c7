"""`apply`, `edit`, `refactor`, `explain` and `undo` through the CLI, in real git repositories."""

from __future__ import annotations

import json

import pytest
from cli_runner import CliRunner
from conftest import git

from gemma_code.cli import app
from gemma_code.edits import list_entries

runner = CliRunner()

SR_UTIL = "util.py\n<<<<<<< SEARCH\n    return a + b\n=======\n    return b + a\n>>>>>>> REPLACE\n"
BAD_UTIL = "util.py\n<<<<<<< SEARCH\n    return a + c\n=======\n    return 0\n>>>>>>> REPLACE\n"


@pytest.fixture
def repo(git_repo, monkeypatch):
    monkeypatch.chdir(git_repo)
    return git_repo


def test_apply_reply_file_applies_and_exits_0(repo, tmp_path):
    (tmp_path / "reply.md").write_text("Sure, here it is.\n\n" + SR_UTIL + "\nHope it helps!")
    result = runner.invoke(app, ["apply", str(tmp_path / "reply.md")])
    assert result.exit_code == 0, result.output
    assert (repo / "util.py").read_text() == "def add(a, b):\n    return b + a\n"
    assert "applied: util.py (modify)" in result.stderr
    assert len(list_entries(repo)) == 1


def test_apply_reads_stdin_with_dash(repo):
    result = runner.invoke(app, ["apply", "-"], input=SR_UTIL)
    assert result.exit_code == 0, result.output
    assert "b + a" in (repo / "util.py").read_text()


def test_apply_check_validates_without_writing(repo):
    result = runner.invoke(app, ["apply", "-", "--check"], input=SR_UTIL)
    assert result.exit_code == 0, result.output
    assert "would change util.py" in result.stderr
    assert "a + b" in (repo / "util.py").read_text() and list_entries(repo) == []


def test_apply_failure_exits_6_explains_and_writes_nothing(repo):
    reply = ("app.py\n<<<<<<< SEARCH\n    print(add(1, 2))\n=======\n    print(add(2, 2))\n"
             ">>>>>>> REPLACE\n" + BAD_UTIL)
    result = runner.invoke(app, ["apply", "-"], input=reply)
    assert result.exit_code == 6
    assert ("util.py: block 2 (SEARCH/REPLACE, reply line 8): the SEARCH text is not in the file"
            in result.stderr)
    assert "closest actual lines (1-2)" in result.stderr and "2 |     return a + b" in result.stderr
    assert "print(add(1, 2))" in (repo / "app.py").read_text()


def test_apply_malformed_reply_exits_6(repo):
    result = runner.invoke(app, ["apply", "-"], input="util.py\n<<<<<<< SEARCH\nx\n")
    assert result.exit_code == 6 and "malformed" in result.stderr


def test_apply_reply_without_edits_exits_6(repo):
    result = runner.invoke(app, ["apply", "-"], input="Just prose, no edits.\n")
    assert result.exit_code == 6 and "no edits found" in result.stderr


def test_apply_missing_reply_file_is_usage_error(repo):
    result = runner.invoke(app, ["apply", "nope.md"])
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_apply_refuses_path_outside_repo(repo):
    reply = "../escape.py\n<<<<<<< SEARCH\n=======\nx = 1\n>>>>>>> REPLACE\n"
    result = runner.invoke(app, ["apply", "-"], input=reply)
    assert result.exit_code == 6 and "`..`" in result.stderr
    assert not (repo.parent / "escape.py").exists()


def test_edit_sends_file_and_instruction_then_applies_with_yes(repo, scripted):
    engine = scripted("Swapped the operands.\n\n" + SR_UTIL)
    result = runner.invoke(app, ["edit", "swap the operands", "util.py", "--yes"])
    assert result.exit_code == 0, result.output
    assert (repo / "util.py").read_text() == "def add(a, b):\n    return b + a\n"
    user = engine.calls[0].messages[-1].content
    assert "util.py\n```\ndef add(a, b):\n    return a + b\n```" in user
    assert user.endswith("Instruction: swap the operands")
    assert "<<<<<<< SEARCH" in engine.calls[0].messages[0].content
    assert "+    return b + a" in result.stdout and "-    return a + b" in result.stdout


def test_edit_retry_round_sends_failure_and_closest_lines_then_applies(repo, scripted):
    engine = scripted(BAD_UTIL, SR_UTIL)
    result = runner.invoke(app, ["edit", "swap", "util.py", "--yes"])
    assert result.exit_code == 0, result.output
    assert len(engine.calls) == 2
    feedback = engine.calls[1].messages[-1].content
    assert "did not apply" in feedback and "the SEARCH text is not in the file" in feedback
    assert "2 |     return a + b" in feedback
    assert engine.calls[1].messages[-2].role == "model"
    assert "b + a" in (repo / "util.py").read_text()
    assert "1 correction round" in result.stderr


def test_edit_gives_up_after_retries_and_says_what_did_not_apply(repo, scripted):
    engine = scripted(BAD_UTIL, BAD_UTIL, BAD_UTIL)
    result = runner.invoke(app, ["edit", "swap", "util.py", "--yes"])
    assert result.exit_code == 6
    assert len(engine.calls) == 3
    assert "not applied: util.py: block 1" in result.stderr
    assert "a + b" in (repo / "util.py").read_text() and list_entries(repo) == []


def test_edit_keeps_successful_edits_across_rounds(repo, scripted):
    first = SR_UTIL + "\napp.py\n<<<<<<< SEARCH\nnot there\n=======\nx\n>>>>>>> REPLACE\n"
    fix = "app.py\n<<<<<<< SEARCH\n    print(add(1, 2))\n=======\n    print(add(3, 4))\n>>>>>>> REPLACE\n"
    scripted(first, fix)
    result = runner.invoke(app, ["edit", "change both", "util.py", "app.py", "--yes"])
    assert result.exit_code == 0, result.output
    assert "b + a" in (repo / "util.py").read_text()
    assert "add(3, 4)" in (repo / "app.py").read_text()


def test_edit_confirmation_per_file_yes_then_no(repo, scripted):
    fix = "app.py\n<<<<<<< SEARCH\n    print(add(1, 2))\n=======\n    print(add(3, 4))\n>>>>>>> REPLACE\n"
    scripted(SR_UTIL + fix)
    result = runner.invoke(app, ["edit", "both", "util.py", "app.py"], input="y\nn\n")
    assert result.exit_code == 0, result.output
    assert "b + a" in (repo / "util.py").read_text()
    assert "add(1, 2)" in (repo / "app.py").read_text()


def test_edit_confirmation_quit_writes_nothing(repo, scripted):
    scripted(SR_UTIL)
    result = runner.invoke(app, ["edit", "swap", "util.py"], input="q\n")
    assert result.exit_code == 0 and "nothing applied" in result.stderr
    assert "a + b" in (repo / "util.py").read_text()


def test_edit_dry_run_shows_diff_and_writes_nothing(repo, scripted):
    scripted(SR_UTIL)
    result = runner.invoke(app, ["edit", "swap", "util.py", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "+    return b + a" in result.stdout and "dry run" in result.stderr
    assert "a + b" in (repo / "util.py").read_text()


def test_edit_commit_commits_with_generated_message(repo, scripted):
    scripted(SR_UTIL)
    result = runner.invoke(app, ["edit", "swap the operands", "util.py", "--yes", "--commit"])
    assert result.exit_code == 0, result.output
    log = git(repo, "log", "-1", "--format=%s%n%b")
    assert log.startswith("gemma-code edit: swap the operands") and "- modify util.py" in log
    assert git(repo, "status", "--porcelain") == ""


def test_apply_commit_outside_git_exits_5_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "util.py").write_text("def add(a, b):\n    return a + b\n")
    result = runner.invoke(app, ["apply", "-", "--commit"], input=SR_UTIL)
    assert result.exit_code == 5, result.output
    assert "nothing was written" in result.stderr
    assert "a + b" in (tmp_path / "util.py").read_text()
    assert list_entries(tmp_path) == []


def test_edit_commit_outside_git_exits_5_and_writes_nothing(tmp_path, monkeypatch, scripted):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "util.py").write_text("def add(a, b):\n    return a + b\n")
    scripted(SR_UTIL)
    result = runner.invoke(app, ["edit", "swap", "util.py", "--yes", "--commit"])
    assert result.exit_code == 5, result.output
    assert "a + b" in (tmp_path / "util.py").read_text()


def test_apply_commit_refuses_file_with_uncommitted_changes_and_writes_nothing(repo):
    mine = "def add(a, b):\n    return a + b\n# my uncommitted note\n"
    (repo / "util.py").write_text(mine)
    result = runner.invoke(app, ["apply", "-", "--commit"], input=SR_UTIL)
    assert result.exit_code == 2, result.output
    assert "uncommitted changes in util.py" in result.stderr and "stash" in result.stderr
    assert (repo / "util.py").read_text() == mine
    assert git(repo, "log", "--format=%s").split() == ["initial"]


def test_apply_commit_does_not_commit_other_staged_work(repo):
    (repo / "README.md").write_text("# demo\nstaged by me\n")
    git(repo, "add", "README.md")
    result = runner.invoke(app, ["apply", "-", "--commit"], input=SR_UTIL)
    assert result.exit_code == 0, result.output
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["util.py"]
    assert git(repo, "diff", "--cached", "--name-only").split() == ["README.md"]


def test_apply_commit_blocked_by_hook_says_edits_written_and_undo_reverts(repo):
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho blocked by policy >&2\nexit 1\n")
    hook.chmod(0o755)
    result = runner.invoke(app, ["apply", "-", "--commit"], input=SR_UTIL)
    assert result.exit_code == 5, result.output
    assert "written but not committed" in result.stderr and "gemma-code undo" in result.stderr
    assert "b + a" in (repo / "util.py").read_text()
    assert runner.invoke(app, ["undo"]).exit_code == 0
    assert git(repo, "status", "--porcelain") == ""


def test_edit_on_dirty_file_keeps_uncommitted_work_recoverable_and_undo_restores_it(repo, scripted):
    (repo / "util.py").write_text("def add(a, b):\n    return a + b\n# my uncommitted note\n")
    scripted(SR_UTIL)
    result = runner.invoke(app, ["edit", "swap", "util.py", "--yes"])
    assert result.exit_code == 0, result.output
    assert "uncommitted changes in util.py were kept" in result.stderr
    stash = list_entries(repo)[-1].extra["stash"]
    assert "# my uncommitted note" in git(repo, "show", f"{stash}:util.py")
    undo = runner.invoke(app, ["undo"])
    assert undo.exit_code == 0, undo.output
    assert (repo / "util.py").read_text() == "def add(a, b):\n    return a + b\n# my uncommitted note\n"


def test_undo_reverts_last_change_set_and_lists(repo, scripted):
    scripted(SR_UTIL)
    assert runner.invoke(app, ["edit", "swap", "util.py", "--yes"]).exit_code == 0
    listed = runner.invoke(app, ["undo", "--list"])
    assert "edit" in listed.stdout and "util.py" in listed.stdout
    result = runner.invoke(app, ["undo"])
    assert result.exit_code == 0 and "restored util.py" in result.stderr
    assert git(repo, "status", "--porcelain") == ""
    again = runner.invoke(app, ["undo"])
    assert again.exit_code == 1 and "nothing to undo" in again.stderr


def test_undo_works_outside_git(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.py").write_text("a = 1\n")
    reply = "x.py\n<<<<<<< SEARCH\na = 1\n=======\na = 2\n>>>>>>> REPLACE\n"
    assert runner.invoke(app, ["apply", "-"], input=reply).exit_code == 0
    assert runner.invoke(app, ["undo"]).exit_code == 0
    assert (tmp_path / "x.py").read_text() == "a = 1\n"


def test_refactor_sends_symbol_sites_and_files_that_use_it(repo, scripted):
    reply = (
        "util.py\n<<<<<<< SEARCH\ndef add(a, b):\n=======\ndef plus(a, b):\n>>>>>>> REPLACE\n"
        "app.py\n<<<<<<< SEARCH\nfrom util import add\n=======\nfrom util import plus\n>>>>>>> REPLACE\n"
        "app.py\n<<<<<<< SEARCH\n    print(add(1, 2))\n=======\n    print(plus(1, 2))\n>>>>>>> REPLACE\n"
    )
    engine = scripted(reply)
    result = runner.invoke(app, ["refactor", "rename to plus", "--symbol", "add", "--yes"])
    assert result.exit_code == 0, result.output
    user = engine.calls[0].messages[-1].content
    assert "util.py\n```\ndef add(a, b):" in user and "app.py\n```\nfrom util import add" in user
    assert "- definition util.py:1: def add(a, b):" in user and "- reference app.py:5:" in user
    assert "plus(1, 2)" in (repo / "app.py").read_text()
    assert (repo / "util.py").read_text().startswith("def plus(a, b):")


def test_refactor_unknown_symbol_is_usage_error(repo, scripted):
    scripted("unused")
    result = runner.invoke(app, ["refactor", "rename", "--symbol", "nosuchname"])
    assert result.exit_code == 2 and "not found" in result.stderr


def test_explain_symbol_includes_code_and_callers(repo, scripted):
    engine = scripted("`add` returns the sum.")
    result = runner.invoke(app, ["explain", "util.py::add"])
    assert result.exit_code == 0, result.output
    assert "`add` returns the sum." in result.stdout
    user = engine.calls[0].messages[-1].content
    assert "1  def add(a, b):\n2      return a + b" in user
    assert "app.py:5:" in user and user.endswith("Explain `add` in util.py.")


def test_explain_line_range_and_question(repo, scripted):
    engine = scripted("It prints.")
    result = runner.invoke(app, ["explain", "app.py:4-5", "what is printed?"])
    assert result.exit_code == 0, result.output
    user = engine.calls[0].messages[-1].content
    assert "app.py (lines 4-5)" in user and "5      print(add(1, 2))" in user
    assert "util.py:1: def add(a, b):" in user
    assert user.endswith("what is printed?")


@pytest.mark.parametrize("target", ["app.py:9-3", "nope.py", "app.py::missing", "app.py:99"])
def test_explain_bad_targets_are_usage_errors(repo, scripted, target):
    scripted("x")
    result = runner.invoke(app, ["explain", target])
    assert result.exit_code == 2, result.output


def test_edit_unknown_format_is_usage_error(repo, scripted):
    scripted("x")
    result = runner.invoke(app, ["edit", "x", "--format", "yaml"])
    assert result.exit_code == 2


def test_journal_manifest_names_label_and_instruction(repo, scripted):
    scripted(SR_UTIL)
    runner.invoke(app, ["edit", "swap them", "util.py", "--yes"])
    entry = list_entries(repo)[-1]
    manifest = json.loads((entry.folder / "manifest.json").read_text())
    assert manifest["label"] == "edit" and manifest["extra"]["instruction"] == "swap them"


def test_failure_left_out_of_the_retry_reply_is_still_reported(repo, scripted):
    bad_app = "app.py\n<<<<<<< SEARCH\nnot there\n=======\nx\n>>>>>>> REPLACE\n"
    scripted(BAD_UTIL + "\n" + bad_app, SR_UTIL)
    result = runner.invoke(app, ["edit", "both", "util.py", "app.py", "--yes", "--retries", "1"])
    assert result.exit_code == 6
    assert "not applied: app.py" in result.stderr and "not applied: util.py" not in result.stderr
    assert "a + b" in (repo / "util.py").read_text()


def test_explain_from_a_subfolder_uses_repo_root(repo, scripted, monkeypatch):
    (repo / "pkg").mkdir()
    (repo / "pkg" / "m.py").write_text("from util import add\n\n\ndef twice(x):\n    return add(x, x)\n")
    monkeypatch.chdir(repo / "pkg")
    engine = scripted("ok")
    result = runner.invoke(app, ["explain", "m.py::twice"])
    assert result.exit_code == 0, result.output
    user = engine.calls[0].messages[-1].content
    assert "pkg/m.py (lines 4-5)" in user and "util.py:1: def add(a, b):" in user


def test_edit_asks_the_engine_for_speculative_decoding_and_ask_does_not(repo, scripted):
    engine = scripted(SR_UTIL, "an answer")
    assert runner.invoke(app, ["edit", "--yes", "--no-context", "swap", "util.py"]).exit_code == 0
    assert runner.invoke(app, ["ask", "--no-context", "why?"]).exit_code == 0
    assert [call.speculative for call in engine.calls] == [True, False]


def _ragged_paragraphs(text: str) -> list[str]:
    """Prose paragraphs with a hard newline (rich would keep it and wrap raggedly)."""
    return [p for p in text.strip().split("\n\n")
            if "\n" in p and not all(line.startswith("  ") for line in p.splitlines())]


def test_edit_command_help_prose_is_one_line_per_paragraph():
    from gemma_code.cli import edit

    for text in (edit.APPLY_HELP, edit.EDIT_HELP, edit.REFACTOR_HELP, edit.UNDO_HELP):
        assert _ragged_paragraphs(text) == []
