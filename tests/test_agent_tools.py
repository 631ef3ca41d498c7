"""The agent's tools on real git repositories: reads, searches, edits through the edit engine,
commands, the sandbox, permission modes, and bounded results."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gemma_code.edits.journal import list_entries, undo_last
from gemma_code.errors import ConfigError
from gemma_code.tools import Permissions, Toolbox, ToolContext, ToolError, builtin_tools
from gemma_code.tools.base import Action, ToolOutput, bound_text
from gemma_code.tools.permissions import MODES, decide
from gemma_code.tools.sandbox import Sandbox, bwrap_args, find_sandbox, macos_profile


def words(text: str) -> int:
    return len(text.split())


def ctx_for(root: Path, **kw: Any) -> ToolContext:
    return ToolContext(root, words, **kw)


def call(root: Path, name: str, **args: Any) -> ToolOutput:
    return Toolbox(builtin_tools()).prepare(ctx_for(root), name, args).execute()


def refused(root: Path, name: str, **args: Any) -> str:
    with pytest.raises(ToolError) as info:
        Toolbox(builtin_tools()).prepare(ctx_for(root), name, args)
    return info.value.message


# -- reading ---------------------------------------------------------------------------------


def test_list_files_shows_git_view_and_marks_secrets(git_repo: Path) -> None:
    (git_repo / ".env").write_text("TOKEN=1\n")
    (git_repo / "pkg").mkdir()
    (git_repo / "pkg" / "mod.py").write_text("x = 1\n")
    out = call(git_repo, "list_files").output
    assert "app.py\n" in out and "pkg/mod.py\n" in out
    assert ".env (secret-looking name" in out
    only = call(git_repo, "list_files", path="pkg").output
    assert "pkg/mod.py" in only and "app.py" not in only
    pattern = call(git_repo, "list_files", pattern="u*.py").output
    assert "util.py" in pattern and "app.py" not in pattern


def test_read_file_range_and_refusals(git_repo: Path, tmp_path: Path) -> None:
    (git_repo / "long.py").write_text("".join(f"line{n}\n" for n in range(1, 21)))
    out = call(git_repo, "read_file", path="long.py", start_line=5, end_line=7).output
    assert out == "long.py (lines 5-7 of 20):\nline5\nline6\nline7\n"
    (tmp_path / "outside.txt").write_text("secret")
    os.symlink(tmp_path / "outside.txt", git_repo / "link.txt")
    assert "outside the repository" in refused(git_repo, "read_file", path="link.txt")
    assert "`..`" in refused(git_repo, "read_file", path="../outside.txt")
    assert "absolute" in refused(git_repo, "read_file", path=str(tmp_path / "outside.txt"))
    assert ".git" in refused(git_repo, "read_file", path=".git/config")
    (git_repo / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert "secrets" in refused(git_repo, "read_file", path="id_rsa")
    assert "no such file" in refused(git_repo, "read_file", path="nope.py")
    assert "whole number" in refused(git_repo, "read_file", path="app.py", start_line="x")


def test_read_file_is_bounded_with_a_note(git_repo: Path) -> None:
    (git_repo / "big.txt").write_text("".join(f"word{n} filler text here\n" for n in range(2000)))
    action = Toolbox(builtin_tools()).prepare(ctx_for(git_repo, max_result_tokens=500),
                                             "read_file", {"path": "big.txt"})
    out = action.execute()
    assert out.truncated
    assert words(out.output) <= 500
    assert "cut: showing lines 1-" in out.output and "start_line" in out.output


def test_search_finds_definitions_and_text(git_repo: Path) -> None:
    out = call(git_repo, "search", query="add").output
    assert "definitions of add:" in out and "util.py:1:" in out
    assert "app.py:1: from util import add" in out
    assert "nothing found" in call(git_repo, "search", query="zzz_absent").output
    ignoring = call(git_repo, "search", query="FROM UTIL").output
    assert "ignoring case" in ignoring


# -- editing ---------------------------------------------------------------------------------


def test_edit_file_applies_a_unique_match_and_journals_it(git_repo: Path) -> None:
    action = Toolbox(builtin_tools()).prepare(
        ctx_for(git_repo), "edit_file",
        {"path": "util.py", "old_text": "return a + b", "new_text": "return b + a"})
    assert action.kind == "edit" and "-    return a + b" in action.preview
    assert (git_repo / "util.py").read_text() == "def add(a, b):\n    return a + b\n"  # not yet
    out = action.execute()
    assert out.ok and out.journal_id
    assert (git_repo / "util.py").read_text() == "def add(a, b):\n    return b + a\n"
    assert list_entries(git_repo)[-1].label == "agent"
    undo_last(git_repo)
    assert (git_repo / "util.py").read_text() == "def add(a, b):\n    return a + b\n"


def test_edit_file_refuses_ambiguous_or_missing_text(git_repo: Path) -> None:
    (git_repo / "dup.py").write_text("x = 1\ny = 2\nx = 1\n")
    message = refused(git_repo, "edit_file", path="dup.py", old_text="x = 1", new_text="x = 3")
    assert "matches 2 places" in message and "nothing was changed" in message
    message = refused(git_repo, "edit_file", path="util.py", old_text="return a - b",
                      new_text="return 0")
    assert "not in the file" in message and "closest actual lines" in message
    assert (git_repo / "dup.py").read_text() == "x = 1\ny = 2\nx = 1\n"


@pytest.mark.parametrize("path", ["../escape.py", "/tmp/escape.py", ".git/hooks/pre-commit",
                                  "sub/../../escape.py"])
def test_writes_outside_the_repository_are_refused(git_repo: Path, path: str) -> None:
    assert "refused" in refused(git_repo, "write_file", path=path, content="x\n")
    assert "refused" in refused(git_repo, "edit_file", path=path, old_text="a", new_text="b")
    assert not (git_repo.parent / "escape.py").exists()


def test_write_file_through_a_symlinked_folder_is_refused(git_repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, git_repo / "out")
    assert "symlink" in refused(git_repo, "write_file", path="out/new.py", content="x\n")
    assert not (outside / "new.py").exists()


def test_write_file_creates_and_refuses_fragments(git_repo: Path) -> None:
    out = call(git_repo, "write_file", path="pkg/new.py", content="print('hi')\n")
    assert out.ok and (git_repo / "pkg" / "new.py").read_text() == "print('hi')\n"
    assert out.output.startswith("created pkg/new.py")
    (git_repo / "long.py").write_text("".join(f"v{n} = {n}\n" for n in range(30)))
    assert "fragment" in refused(git_repo, "write_file", path="long.py", content="v1 = 1\n")


def test_edit_refused_when_the_file_changed_after_approval_was_asked(git_repo: Path) -> None:
    action = Toolbox(builtin_tools()).prepare(
        ctx_for(git_repo), "edit_file",
        {"path": "util.py", "old_text": "return a + b", "new_text": "return b + a"})
    (git_repo / "util.py").write_text("def add(a, b):\n    return a + b  # touched\n")
    out = action.execute()
    assert not out.ok and "changed while waiting" in out.output
    assert "touched" in (git_repo / "util.py").read_text()


# -- commands --------------------------------------------------------------------------------


def test_run_command_reports_exit_code_and_output(git_repo: Path) -> None:
    out = call(git_repo, "run_command", command="echo hello; ls; exit 3")
    assert not out.ok
    assert "exit code 3" in out.output and "hello" in out.output and "util.py" in out.output


def test_run_command_timeout_kills_the_process_group(git_repo: Path) -> None:
    ctx = ctx_for(git_repo, command_timeout_s=3)
    out = Toolbox(builtin_tools()).prepare(
        ctx, "run_command", {"command": "sleep 30 & echo started; wait"}).execute()
    assert not out.ok and "killed after 3 s" in out.output and "started" in out.output


def test_run_command_output_keeps_head_and_tail(git_repo: Path) -> None:
    ctx = ctx_for(git_repo, max_result_tokens=300)
    out = Toolbox(builtin_tools()).prepare(
        ctx, "run_command", {"command": "for i in $(seq 1 2000); do echo row $i; done"}).execute()
    assert out.truncated and "row 1\n" in out.output and "row 2000" in out.output
    assert "lines of the output cut here" in out.output


def test_bound_text_never_cuts_silently() -> None:
    text = "".join(f"a b c {n}\n" for n in range(100))
    same, cut = bound_text(text, 10_000, words)
    assert same == text and not cut
    short, cut = bound_text(text, 100, words, more="ask for less")
    assert cut and words(short) <= 100 and "ask for less" in short
    one_line, cut = bound_text("x " * 5000, 50, words)
    assert cut and "characters" in one_line


# -- sandbox ---------------------------------------------------------------------------------


@pytest.fixture
def sandbox() -> Sandbox:
    found = find_sandbox()
    if not isinstance(found, Sandbox):
        pytest.skip(f"no sandbox here: {found} (.ci/run installs bubblewrap)")
    return found


@pytest.fixture
def listener() -> Iterator[int]:
    """A real TCP server on 127.0.0.1 that answers 'pong'."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.sendall(b"pong")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def _sandboxed(root: Path, box: Sandbox | None, command: str) -> ToolOutput:
    ctx = ctx_for(root, sandbox=box)
    return Toolbox(builtin_tools()).prepare(ctx, "run_command", {"command": command}).execute()


def test_sandbox_blocks_writes_outside_the_repository(git_repo: Path, tmp_path: Path,
                                                      sandbox: Sandbox) -> None:
    target = tmp_path / "outside.txt"
    out = _sandboxed(git_repo, sandbox, f"echo inside > made.txt; echo x > {target}; "
                                        "echo y > .git/hooks/pre-commit")
    assert (git_repo / "made.txt").read_text() == "inside\n"
    assert not target.exists()
    assert not (git_repo / ".git" / "hooks" / "pre-commit").exists()
    assert "Read-only file system" in out.output
    out = _sandboxed(git_repo, None, f"echo x > {target}")  # the same command, unconfined
    assert out.ok and target.exists()


def test_sandbox_blocks_the_network(git_repo: Path, listener: int, sandbox: Sandbox) -> None:
    probe = (f"python3 -c \"import socket; s = socket.create_connection(('127.0.0.1', {listener}),"
             " 3); print(s.recv(4).decode())\"")
    assert "pong" in _sandboxed(git_repo, None, probe).output  # reachable without the sandbox
    out = _sandboxed(git_repo, sandbox, probe)
    assert not out.ok and "pong" not in out.output
    assert "sandboxed" in out.output


def test_sandbox_arguments_and_macos_profile(tmp_path: Path) -> None:
    (tmp_path / ".git" / "hooks").mkdir(parents=True)
    args = bwrap_args("bwrap", tmp_path)
    assert args[args.index("--bind") + 1] == str(tmp_path)
    assert "--unshare-net" in args and "--die-with-parent" in args
    assert str(tmp_path / ".git" / "hooks") in args
    profile = macos_profile(Path("/Users/me/repo"))
    assert '(deny network*)' in profile and '(subpath "/Users/me/repo")' in profile
    assert '(deny file-write* (subpath "/Users/me/repo/.git/hooks")' in profile


@pytest.mark.skipif(sys.platform == "darwin", reason="sandbox-exec ships with macOS")
def test_full_auto_refuses_to_start_without_a_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    from gemma_code.tools import sandbox as module

    monkeypatch.setattr(module, "_FOUND", {})
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError) as info:
        module.require_sandbox()
    assert "bubblewrap" in info.value.message or "sandbox-exec" in info.value.message
    assert info.value.hint and "install" in info.value.hint


# -- permissions -----------------------------------------------------------------------------


def _action(kind: Any, key: str = "") -> Action:
    return Action("run_command" if kind == "command" else "x", kind, "s", "p",
                  lambda: ToolOutput(True, ""), approval_key=key)


def test_modes_table() -> None:
    assert [decide(m, "read") for m in MODES] == ["run"] * 4
    assert [decide(m, "edit") for m in MODES] == ["refuse", "ask", "run", "run"]
    assert [decide(m, "command") for m in MODES] == ["refuse", "ask", "ask", "run"]
    assert [decide(m, "external") for m in MODES] == ["refuse", "ask", "ask", "ask"]
    assert decide("ask", "external", allowed=True) == "run"
    assert decide("plan", "external", allowed=True) == "refuse"


def test_without_a_terminal_approval_means_refused() -> None:
    perms = Permissions("ask", None)
    ok, why = perms.check(_action("command", "rm -rf build"))
    assert not ok and "no terminal" in why
    assert perms.check(_action("read"))[0]


def test_always_is_remembered_per_command() -> None:
    answers = iter(["always", "no"])
    asked: list[str] = []

    def approver(action: Action) -> Any:
        asked.append(action.approval_key)
        return next(answers)

    perms = Permissions("auto-edit", approver)
    assert perms.check(_action("command", "pytest"))[0]
    assert perms.check(_action("command", "pytest"))[0]  # not asked again
    ok, why = perms.check(_action("command", "make"))
    assert not ok and "declined" in why
    assert asked == ["pytest", "make"]


def _alive(marker: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline and "pytest" not in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_a_sandboxed_command_past_its_limit_is_killed_with_its_children(
        git_repo: Path, sandbox: Sandbox) -> None:
    marker = f"agent-sandbox-marker-{os.getpid()}"
    command = (f"python3 -c 'import time; time.sleep(60)' {marker} & "
               f"python3 -c 'import time; time.sleep(60)' {marker}")
    ctx = ctx_for(git_repo, sandbox=sandbox, command_timeout_s=2)
    out = Toolbox(builtin_tools()).prepare(ctx, "run_command", {"command": command}).execute()
    assert not out.ok and "killed after 2 s" in out.output
    for _ in range(100):  # the kernel reaps the sandbox's processes right after it dies
        if not _alive(marker):
            break
        time.sleep(0.1)
    assert _alive(marker) == []
