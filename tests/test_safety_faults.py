"""Issue 14, items 9 and 10: git hooks inside the work tree are never edited, paths with rich
markup are printed as they are, a failed write names the file that failed, an unwritable data
folder is a disk error (not an internal error), and a staged review shows staged code."""

from __future__ import annotations

import contextlib
import json
import subprocess

import pytest
from cli_runner import CliRunner
from conftest import git

from gemma_code.cli import app
from gemma_code.edits import EditsFailedError, apply_edits, parse_reply
from gemma_code.edits.apply import write_changes
from gemma_code.edits.model import FileChange
from gemma_code.errors import EditRejectedError

runner = CliRunner()


def sr(path: str, search: str, replace: str) -> str:
    return f"{path}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def whole(path: str, text: str) -> str:
    return f"{path}\n```\n{text}```\n"


HOOK = "#!/bin/sh\necho checked > hook-ran\n"
EVIL = "#!/bin/sh\necho checked > hook-ran\ntouch pwned\n"


@pytest.mark.parametrize("hooks_path,hook_file", [
    (".githooks", ".githooks/pre-commit"),
    (".husky/_", ".husky/pre-commit"),  # husky: .husky/_/pre-commit runs .husky/pre-commit
])
def test_an_injected_edit_cannot_rewrite_an_active_git_hook(git_repo, hooks_path, hook_file):
    hook = git_repo / hook_file
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(HOOK)
    hook.chmod(0o755)
    runner_script = git_repo / hooks_path / "pre-commit"
    if runner_script != hook:
        runner_script.parent.mkdir(parents=True, exist_ok=True)
        runner_script.write_text(f'#!/bin/sh\nexec sh "{hook}"\n')
        runner_script.chmod(0o755)
    git(git_repo, "config", "core.hooksPath", hooks_path)
    with pytest.raises(EditsFailedError) as info:
        apply_edits(git_repo, parse_reply(sr(hook_file, "echo checked > hook-ran\n",
                                             "echo checked > hook-ran\ntouch pwned\n")))
    assert "git hooks" in info.value.details()
    assert hook.read_text() == HOOK
    # the next commit runs the hook as it was: nothing injected ran
    (git_repo / "util.py").write_text("def add(a, b):\n    return b + a\n")
    git(git_repo, "add", "util.py")
    git(git_repo, "commit", "-q", "-m", "swap")
    assert (git_repo / "hook-ran").exists() and not (git_repo / "pwned").exists()


def test_without_core_hooks_path_the_folder_is_ordinary(git_repo):
    # .githooks that git does not run are plain files: editing them is allowed
    (git_repo / ".githooks").mkdir()
    (git_repo / ".githooks" / "pre-commit").write_text(HOOK)
    apply_edits(git_repo, parse_reply(whole(".githooks/pre-commit", EVIL)))
    assert (git_repo / ".githooks" / "pre-commit").read_text() == EVIL


def test_a_path_with_rich_markup_is_written_and_printed_as_it_is(git_repo, monkeypatch):
    monkeypatch.chdir(git_repo)
    reply = "".join(f"--- /dev/null\n+++ b/{name}\n@@ -0,0 +1 @@\n+{text}\n"
                    for name, text in (("[/x].txt", "one"), ("[green]ok[/green].txt", "two")))
    result = runner.invoke(app, ["apply", "-"], input=reply)
    assert result.exit_code == 0, result.output
    assert "internal error" not in result.output
    assert "applied: [/x].txt (create), [green]ok[/green].txt (create)" in result.output
    assert (git_repo / "[/x].txt").read_text() == "one\n"


def test_a_failed_write_names_the_file_that_failed_and_restores_the_rest(tmp_path, monkeypatch):
    import errno
    import os

    from gemma_code.edits import writer

    (tmp_path / "a.py").write_text("a = 1\n")
    real_replace = os.replace

    def replace(src, dst):  # the disk fills up when b.py is put in place
        if str(dst).endswith("b.py"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(writer.os, "replace", replace)
    changes = [FileChange("a.py", b"a = 1\n", b"a = 2\n", 0o644),
               FileChange("b.py", None, b"b = 1\n", None),
               FileChange("c.py", None, b"c = 1\n", None)]
    with pytest.raises(EditRejectedError) as info:
        write_changes(tmp_path, changes)
    assert info.value.message.startswith("could not write b.py:")
    assert (tmp_path / "a.py").read_text() == "a = 1\n"
    assert not (tmp_path / "c.py").exists()


def test_an_unwritable_data_folder_is_a_disk_error_with_a_hint(git_repo, monkeypatch, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "data").write_text("not a folder")  # the journal cannot be created under it
    monkeypatch.setenv("GEMMA_CODE_HOME", str(home))
    monkeypatch.chdir(git_repo)
    result = runner.invoke(app, ["apply", "-"], input=sr("util.py", "    return a + b\n",
                                                          "    return b + a\n"))
    assert result.exit_code == 1
    assert "internal error" not in result.output and "bug" not in result.output
    assert "error: cannot write" in result.output and "GEMMA_CODE_HOME" in result.output
    assert (git_repo / "util.py").read_text() == "def add(a, b):\n    return a + b\n"


def test_a_staged_review_shows_the_staged_file_not_the_work_tree(git_repo, scripted, monkeypatch):
    (git_repo / "util.py").write_text("def add(a, b):\n    STAGED_VERSION = 1\n    return a - b\n")
    git(git_repo, "add", "util.py")
    (git_repo / "util.py").write_text("def add(a, b):\n    WORKTREE_VERSION = 1\n    return a * b\n")
    monkeypatch.chdir(git_repo)
    engine = scripted(json.dumps({"findings": []}))
    result = runner.invoke(app, ["review", "--staged", "--format", "json", "--no-cache"])
    assert result.exit_code == 0, result.output
    prompt = engine.calls[0].prompt
    assert "STAGED_VERSION" in prompt.split("# Repository context", 1)[1].split("Review this change")[0]
    assert "WORKTREE_VERSION" not in prompt


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 64 KiB tmpfs of our own (needs root, as on the development machines and CI)."""
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                          capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True, check=False)


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_full_or_read_only_data_folder_is_a_disk_error(git_repo, monkeypatch, tiny_filesystem,
                                                         fault):
    (tiny_filesystem / "data").mkdir()
    if fault == "full":
        with contextlib.suppress(OSError), (tiny_filesystem / "filler").open("wb", buffering=0) as handle:
            while True:
                handle.write(b"\0" * 4096)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(tiny_filesystem)], check=True)
    monkeypatch.setenv("GEMMA_CODE_HOME", str(tiny_filesystem))
    monkeypatch.chdir(git_repo)
    big = "x = 1\n" * 20_000  # the journal keeps the old bytes: they cannot fit
    (git_repo / "util.py").write_text(big + "def add(a, b):\n    return a + b\n")
    result = runner.invoke(app, ["apply", "-"], input=sr("util.py", "    return a + b\n",
                                                          "    return b + a\n"))
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output
    reason = "No space left on device" if fault == "full" else "Read-only file system"
    assert "error: cannot write" in result.output and reason in result.output
    assert "free some space" in result.output if fault == "full" else "writable" in result.output
    assert (git_repo / "util.py").read_text().endswith("    return a + b\n")
