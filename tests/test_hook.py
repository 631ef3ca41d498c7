"""The pre-commit hook in real repositories: real `git commit` runs the installed hook (scripted engine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import CliRunner
from conftest import git

from gemma_code.cli import app
from gemma_code.review import hook

runner = CliRunner()

CRITICAL = json.dumps({"findings": [{
    "file": "util.py", "line": 2, "title": "add() subtracts", "explanation": "wrong operator",
    "severity": "critical", "fix": None,
}]})
CLEAN = '{"findings": []}'
FOREIGN = "#!/bin/sh\necho foreign-hook-ran >> \"$(git rev-parse --git-dir)/foreign.log\"\nexit {code}\n"


def script(tmp_path: Path, *replies: object) -> dict[str, str]:
    """Environment for a commit whose hook uses the scripted engine with `replies`."""
    path = tmp_path / "replies.json"
    log = tmp_path / "seen.jsonl"
    path.write_text(json.dumps({"replies": list(replies), "log": str(log)}), encoding="utf-8")
    return {**os.environ, "GEMMA_CODE_ENGINE": "scripted", "GEMMA_CODE_SCRIPT": str(path)}


def seen(tmp_path: Path) -> list[dict[str, object]]:
    log = tmp_path / "seen.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def commit(repo: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "commit", "-m", "change", *extra], cwd=repo, env=env, capture_output=True, text=True,
        check=False,
    )


def stage_bug(repo: Path) -> None:
    (repo / "util.py").write_text("def add(a, b):\n    return a - b\n", encoding="utf-8")
    git(repo, "add", "util.py")


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def test_hook_blocks_a_commit_with_a_critical_finding(git_repo, tmp_path):
    hook.install(git_repo)
    stage_bug(git_repo)
    before = head(git_repo)
    proc = commit(git_repo, script(tmp_path, CRITICAL))
    assert proc.returncode != 0
    assert "util.py:2: critical: add() subtracts" in proc.stdout + proc.stderr
    assert head(git_repo) == before
    assert "    2 +     return a - b" in seen(tmp_path)[0]["messages"][1]["content"]  # type: ignore[index]


def test_hook_lets_a_clean_change_through(git_repo, tmp_path):
    hook.install(git_repo)
    stage_bug(git_repo)
    before = head(git_repo)
    proc = commit(git_repo, script(tmp_path, CLEAN))
    assert proc.returncode == 0, proc.stderr
    assert head(git_repo) != before
    assert "no findings" in proc.stdout + proc.stderr


def test_hook_reviews_the_temporary_index_of_commit_all(git_repo, tmp_path):
    hook.install(git_repo)
    (git_repo / "util.py").write_text("def add(a, b):\n    return a * b\n", encoding="utf-8")
    proc = commit(git_repo, script(tmp_path, CRITICAL), "-a")
    assert proc.returncode != 0
    assert "return a * b" in seen(tmp_path)[0]["messages"][1]["content"]  # type: ignore[index]


def test_hook_fails_open_when_the_engine_fails(git_repo, tmp_path):
    hook.install(git_repo)
    stage_bug(git_repo)
    proc = commit(git_repo, script(tmp_path, {"error": "CUDA error: out of memory"}))
    assert proc.returncode == 0
    assert "did NOT run" in proc.stderr


def test_hook_fails_closed_when_configured(git_repo, tmp_path):
    hook.install(git_repo)
    (git_repo / ".gemma-code.toml").write_text("fail_closed = true\n", encoding="utf-8")
    stage_bug(git_repo)
    before = head(git_repo)
    proc = commit(git_repo, script(tmp_path, {"error": "CUDA error: out of memory"}))
    assert proc.returncode != 0  # git reports any failing hook as 1
    assert head(git_repo) == before
    assert "blocking because fail_closed is set" in proc.stderr


@pytest.mark.parametrize("how", ["env", "no-verify"])
def test_hook_is_skipped_with_gemma_code_skip_or_no_verify(git_repo, tmp_path, how):
    hook.install(git_repo)
    stage_bug(git_repo)
    env = script(tmp_path, CRITICAL)
    if how == "env":
        env["GEMMA_CODE_SKIP"] = "1"
    proc = commit(git_repo, env, *(["--no-verify"] if how == "no-verify" else []))
    assert proc.returncode == 0, proc.stderr
    assert seen(tmp_path) == []


def test_install_chains_an_existing_hook_and_uninstall_restores_it(git_repo, tmp_path):
    original = git_repo / ".git" / "hooks" / "pre-commit"
    original.write_text(FOREIGN.format(code=0), encoding="utf-8")
    original.chmod(0o750)
    st = hook.install(git_repo)
    assert st.state == "gemma-code" and st.chained is not None
    stage_bug(git_repo)
    proc = commit(git_repo, script(tmp_path, CRITICAL))
    assert proc.returncode != 0
    assert (git_repo / ".git" / "foreign.log").read_text() == "foreign-hook-ran\n"
    assert len(seen(tmp_path)) == 1
    _st, done = hook.uninstall(git_repo)
    assert "restored" in done
    assert original.read_text(encoding="utf-8") == FOREIGN.format(code=0)
    assert original.stat().st_mode & 0o777 == 0o750
    assert not (original.parent / hook.CHAINED).exists()


def test_a_failing_chained_hook_blocks_before_the_review_runs(git_repo, tmp_path):
    original = git_repo / ".git" / "hooks" / "pre-commit"
    original.write_text(FOREIGN.format(code=3), encoding="utf-8")
    original.chmod(0o755)
    hook.install(git_repo)
    stage_bug(git_repo)
    proc = commit(git_repo, script(tmp_path, CLEAN))
    assert proc.returncode != 0
    assert seen(tmp_path) == []


def test_uninstall_without_an_earlier_hook_removes_the_file(git_repo):
    st = hook.install(git_repo)
    hook.uninstall(git_repo)
    assert not st.hook.exists()
    assert hook.status(git_repo).state == "absent"


def test_install_honours_core_hooks_path(git_repo, tmp_path):
    git(git_repo, "config", "core.hooksPath", ".githooks")
    st = hook.install(git_repo)
    assert st.hook == (git_repo / ".githooks" / "pre-commit").resolve()
    assert not (git_repo / ".git" / "hooks" / "pre-commit").exists()
    stage_bug(git_repo)
    assert commit(git_repo, script(tmp_path, CRITICAL)).returncode != 0


def test_install_from_a_linked_worktree_uses_the_shared_hooks_dir(git_repo, tmp_path):
    worktree = tmp_path / "wt"
    git(git_repo, "worktree", "add", "-q", "-b", "feature", str(worktree))
    st = hook.install(worktree)
    assert st.hook == (git_repo / ".git" / "hooks" / "pre-commit").resolve()
    stage_bug(worktree)
    before = head(worktree)
    proc = commit(worktree, script(tmp_path, CRITICAL))
    assert proc.returncode != 0
    assert head(worktree) == before


def test_the_hook_runs_the_installing_interpreter(git_repo):
    st = hook.install(git_repo)
    text = st.hook.read_text(encoding="utf-8")
    assert f"{sys.executable} -m gemma_code review --staged" in text
    assert st.python == sys.executable and st.python_ok
    assert os.access(st.hook, os.X_OK)


def test_install_refuses_to_overwrite_a_hook_from_another_environment_without_force(git_repo):
    hook.install(git_repo, python="/bin/sh")  # stands in for another environment's python
    with pytest.raises(hook.HookError, match="another environment"):
        hook.install(git_repo)
    assert hook.install(git_repo, force=True).python == sys.executable


def test_install_never_overwrites_a_saved_hook(git_repo):
    hooks = git_repo / ".git" / "hooks"
    (hooks / "pre-commit").write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    (hooks / hook.CHAINED).write_text("#!/bin/sh\necho saved\n", encoding="utf-8")
    with pytest.raises(hook.HookError, match="already exists"):
        hook.install(git_repo)
    assert (hooks / hook.CHAINED).read_text(encoding="utf-8") == "#!/bin/sh\necho saved\n"


def test_uninstall_leaves_another_tools_hook_alone(git_repo):
    other = git_repo / ".git" / "hooks" / "pre-commit"
    other.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    with pytest.raises(hook.HookError, match="not gemma-code's"):
        hook.uninstall(git_repo)
    assert other.exists()


def test_hook_cli_install_status_uninstall(git_repo, monkeypatch):
    monkeypatch.chdir(git_repo)
    assert "not installed" in runner.invoke(app, ["hook", "status"]).stdout
    assert runner.invoke(app, ["hook", "install"]).exit_code == 0
    status = json.loads(runner.invoke(app, ["hook", "status", "--json"]).stdout)
    assert status["state"] == "gemma-code" and status["python_ok"] is True
    assert runner.invoke(app, ["hook", "uninstall"]).exit_code == 0
    assert json.loads(runner.invoke(app, ["hook", "status", "--json"]).stdout)["state"] == "absent"


@pytest.mark.parametrize("action", ["install", "status", "uninstall"])
def test_hook_cli_outside_git_exits_5_with_the_hooks_own_hint(tmp_path, monkeypatch, action):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    result = runner.invoke(app, ["hook", action])
    assert result.exit_code == 5, result.output
    assert "not inside a git repository" in result.stderr
    assert "name FILES" not in result.stderr and "git init" in result.stderr


def test_pre_commit_framework_manifest_declares_gemma_code_review():
    text = (Path(__file__).resolve().parents[1] / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    assert "- id: gemma-code-review" in text
    assert "entry: gemma-code review --staged --format text" in text
    assert "pass_filenames: false" in text


def test_status_says_when_the_installing_interpreter_is_gone(git_repo, monkeypatch, tmp_path):
    hook.install(git_repo, python=str(tmp_path / "gone" / "python"))
    monkeypatch.chdir(git_repo)
    result = runner.invoke(app, ["hook", "status"])
    assert "missing: reinstall with --force" in result.stdout
    assert hook.install(git_repo).python == sys.executable  # a gone interpreter needs no --force
