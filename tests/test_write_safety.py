"""Issue 14, items 3 and 7: a file saved while the y/n prompt is open is never overwritten, and a
`kill -9` in the middle of a 200-file apply is reported by the next command and undone exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import git

from gemma_code import paths
from gemma_code.edits import ChangedOnDiskError, FileChange, list_entries, plan_edits, write_changes
from gemma_code.edits.journal import journal_dir
from gemma_code.edits.parse import parse_reply

REPO = Path(__file__).resolve().parent.parent
HANG_GUARD_S = 300  # only stops a broken test from hanging the suite; nothing asserts a time


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "300"
    return env


class _Reader(threading.Thread):
    """Collects a child's output as it arrives; `wait_for(text)` blocks until it has appeared."""

    def __init__(self, stream: object) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.data = b""
        self.changed = threading.Condition()

    def run(self) -> None:
        fd = self.stream.fileno()  # type: ignore[attr-defined]
        while True:
            chunk = os.read(fd, 4096)
            with self.changed:
                if not chunk:
                    self.data += b"\0EOF"
                    self.changed.notify_all()
                    return
                self.data += chunk
                self.changed.notify_all()

    def wait_for(self, text: bytes) -> None:
        with self.changed:
            ok = self.changed.wait_for(lambda: text in self.data or b"\0EOF" in self.data,
                                       timeout=HANG_GUARD_S)
        assert ok and text in self.data, self.data.decode(errors="replace")


def test_write_refuses_every_file_when_one_changed_after_planning(git_repo: Path) -> None:
    reply = ("app.py\n<<<<<<< SEARCH\n    print(add(1, 2))\n=======\n    print(add(2, 2))\n"
             ">>>>>>> REPLACE\nutil.py\n<<<<<<< SEARCH\n    return a + b\n=======\n"
             "    return b + a\n>>>>>>> REPLACE\n")
    plan = plan_edits(git_repo, parse_reply(reply))
    mine = "def add(a, b):\n    return int(a) + int(b)  # saved meanwhile\n"
    (git_repo / "util.py").write_text(mine)
    with pytest.raises(ChangedOnDiskError) as caught:
        write_changes(git_repo, plan.changes(), label="edit")
    assert "util.py" in caught.value.message and "nothing was written" in caught.value.message
    assert (git_repo / "util.py").read_text() == mine
    assert "print(add(1, 2))" in (git_repo / "app.py").read_text()  # all or nothing
    assert list_entries(git_repo) == []
    assert git(git_repo, "status", "--porcelain", "--untracked-files=all") == " M util.py\n"


def test_write_refuses_a_file_created_after_planning(tmp_path: Path) -> None:
    change = FileChange("new.py", None, b"x = 1\n")
    (tmp_path / "new.py").write_bytes(b"mine\n")
    with pytest.raises(ChangedOnDiskError):
        write_changes(tmp_path, [change])
    assert (tmp_path / "new.py").read_bytes() == b"mine\n"


def test_interactive_edit_keeps_a_file_saved_while_the_prompt_is_open(git_repo: Path,
                                                                      tmp_path: Path) -> None:
    """The real race: `edit` waits at its y/n prompt, an editor saves the file, the user says y."""
    reply = "util.py\n<<<<<<< SEARCH\n    return a + b\n=======\n    return b + a\n>>>>>>> REPLACE\n"
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"replies": [reply]}))
    env = _env() | {"GEMMA_CODE_ENGINE": "scripted", "GEMMA_CODE_SCRIPT": str(script)}
    child = subprocess.Popen(
        [sys.executable, "-m", "gemma_code", "edit", "swap the operands", "util.py", "--no-context"],
        cwd=git_repo, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdin is not None
    err = _Reader(child.stderr)
    out = _Reader(child.stdout)
    err.start()
    out.start()
    try:
        err.wait_for(b"Apply to util.py?")
        mine = "def add(a, b):\n    return a + b  # my own change, saved during the prompt\n"
        (git_repo / "util.py").write_text(mine)
        child.stdin.write(b"y\n")
        child.stdin.close()
        assert child.wait(timeout=HANG_GUARD_S) == 6
    finally:
        if child.poll() is None:
            child.kill()
    err.join(HANG_GUARD_S)
    text = err.data.decode(errors="replace")
    assert "changed on disk since the edit was planned: util.py; nothing was written" in text
    assert (git_repo / "util.py").read_text() == mine
    assert list_entries(git_repo) == []


# --- kill -9 in the middle of a 200-file apply -------------------------------------------

N_MODIFIED, N_CREATED, KILL_AFTER = 150, 50, 80

# Runs `gemma-code apply` for real; after the KILL_AFTER-th file renamed into the repository
# it says PAUSED and blocks on stdin, so the test's kill -9 always lands mid-apply.
PAUSING_APPLY = """
import os, sys
repo, reply, after = os.path.realpath(sys.argv[1]), sys.argv[2], int(sys.argv[3])
real_replace, done = os.replace, [0]
def replace(src, dst, *a, **k):
    real_replace(src, dst, *a, **k)
    if os.path.realpath(dst).startswith(repo + os.sep):
        done[0] += 1
        if done[0] == after:
            print("PAUSED", flush=True)
            sys.stdin.read()
os.replace = replace
from gemma_code.cli import main
sys.argv = ["gemma-code", "apply", reply]
main()
"""


def _big_change(repo: Path) -> tuple[str, dict[str, bytes], dict[str, bytes]]:
    """A reply changing 150 committed files and creating 50 in a new folder; old and new bytes."""
    old: dict[str, bytes] = {}
    new: dict[str, bytes] = {}
    blocks = []
    for n in range(N_MODIFIED):
        rel = f"pkg/mod_{n:03d}.py"
        body = f"def f_{n}(x):\n    return x + {n}\n"
        (repo / "pkg").mkdir(exist_ok=True)
        (repo / rel).write_text(body)
        old[rel] = body.encode()
        new[rel] = body.replace(f"x + {n}", f"x * {n}").encode()
        blocks.append(f"{rel}\n<<<<<<< SEARCH\n    return x + {n}\n=======\n    return x * {n}\n"
                      ">>>>>>> REPLACE\n")
    for n in range(N_CREATED):
        rel = f"gen/sub/new_{n:03d}.py"
        new[rel] = f"VALUE_{n} = {n}\n".encode()
        blocks.append(f"{rel}\n<<<<<<< SEARCH\n=======\nVALUE_{n} = {n}\n>>>>>>> REPLACE\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "200 files")
    return "\n".join(blocks), old, new


def _run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gemma_code", *args], cwd=repo, env=_env(),
                          capture_output=True, text=True, timeout=HANG_GUARD_S)


def test_kill_9_mid_apply_is_reported_and_undone_exactly(git_repo: Path, tmp_path: Path) -> None:
    reply, old, new = _big_change(git_repo)
    reply_file = tmp_path / "reply.md"
    reply_file.write_text(reply)
    before = {p.relative_to(git_repo).as_posix(): p.read_bytes()
              for p in git_repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    child = subprocess.Popen(
        [sys.executable, "-c", PAUSING_APPLY, str(git_repo), str(reply_file), str(KILL_AFTER)],
        cwd=git_repo, env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    out = _Reader(child.stdout)
    out.start()
    try:
        out.wait_for(b"PAUSED")
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=HANG_GUARD_S) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()

    # the crash left a mixed set, as a real one would ...
    now = {rel: (git_repo / rel).read_bytes() if (git_repo / rel).is_file() else None for rel in new}
    assert sum(now[rel] == new[rel] for rel in new) == KILL_AFTER
    assert all(now[rel] == old.get(rel) for rel in new if now[rel] != new[rel])
    # ... but no temporary file where `git add -A` would pick it up
    listed = git(git_repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert listed and all(line[3:] in new for line in listed), listed
    assert not [p for p in git_repo.rglob("*") if ".git" not in p.parts and p.name.endswith(".tmp")]

    # the next command says what happened, once
    first = _run(git_repo, "undo", "--list")
    assert first.returncode == 0, first.stderr
    assert "was interrupted (its process died) after writing 80 of 200 file(s)" in first.stderr
    assert "gemma-code undo" in first.stderr and "(interrupted)" in first.stdout
    assert "interrupted (its process died)" not in _run(git_repo, "undo", "--list").stderr
    leftovers = [p for p in journal_dir(git_repo).rglob("*") if "staging" in p.parts]
    assert leftovers == [] and not (git_repo / ".git" / "gemma-code-staging").exists()

    # undo restores exactly: old bytes back, created files and their folders gone
    undone = _run(git_repo, "undo")
    assert undone.returncode == 0, undone.stderr
    after = {p.relative_to(git_repo).as_posix(): p.read_bytes()
             for p in git_repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert after == before
    assert not (git_repo / "gen").exists()
    assert git(git_repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert list_entries(git_repo) == []


def test_a_finished_apply_leaves_no_staging_behind(git_repo: Path) -> None:
    plan = plan_edits(git_repo, parse_reply(
        "lib/new.py\n<<<<<<< SEARCH\n=======\nX = 1\n>>>>>>> REPLACE\n"))
    entry = write_changes(git_repo, plan.changes())
    assert entry is not None and (git_repo / "lib" / "new.py").read_text() == "X = 1\n"
    assert git(git_repo, "status", "--porcelain", "--untracked-files=all") == "?? lib/new.py\n"
    assert not [p for p in journal_dir(git_repo).rglob("*") if "staging" in p.parts]
    assert not (paths.data_dir() / "staging").exists()
    assert [e.state for e in list_entries(git_repo)] == ["done"]


def _two_file_plan(repo: Path, second: str) -> list[FileChange]:
    reply = ("util.py\n<<<<<<< SEARCH\n    return a + b\n=======\n    return b + a\n>>>>>>> REPLACE\n"
             f"{second}\n<<<<<<< SEARCH\n=======\nX = 1\n>>>>>>> REPLACE\n")
    return plan_edits(repo, parse_reply(reply)).changes()


def test_a_disk_error_mid_apply_restores_what_was_written_and_names_the_file(git_repo: Path) -> None:
    from gemma_code.errors import EditRejectedError

    (git_repo / "blocker").write_text("a file where a folder is needed\n")
    changes = _two_file_plan(git_repo, "blocker/new.py")
    with pytest.raises(EditRejectedError) as caught:
        write_changes(git_repo, changes)
    assert caught.value.message.startswith("could not write blocker/new.py")
    assert (git_repo / "util.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert list_entries(git_repo) == [] and not (paths.data_dir() / "staging").exists()
    assert not [p for p in journal_dir(git_repo).rglob("*") if "staging" in p.parts]


def test_ctrl_c_mid_apply_restores_what_was_written(git_repo: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    changes = _two_file_plan(git_repo, "lib/new.py")
    real_replace, calls = os.replace, []

    def interrupted(src: str, dst: str) -> None:  # Ctrl-C arrives after the first file is in place
        if str(dst).startswith(str(git_repo)):
            calls.append(dst)
            if len(calls) == 2:
                raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_changes(git_repo, changes)
    monkeypatch.setattr(os, "replace", real_replace)
    assert (git_repo / "util.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert not (git_repo / "lib").exists() and list_entries(git_repo) == []
    assert git(git_repo, "status", "--porcelain", "--untracked-files=all") == ""
