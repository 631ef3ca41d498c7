"""The git pre-commit hook: install (chaining any hook already there), uninstall (restoring it), status.

The hook lives in git's real hooks directory (`git rev-parse --git-path hooks`: honours
core.hooksPath and linked worktrees). A hook that was there before is renamed to
`pre-commit.gemma-code-chained` and run first; uninstalling puts it back.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from gemma_code.atomic import write_text_atomic
from gemma_code.errors import GemmaCodeError, GitError
from gemma_code.gitops import hooks_dir, repo_root

MARKER = "# gemma-code pre-commit hook"
PYTHON_TAG = "# gemma-code-python: "
CHAINED = "pre-commit.gemma-code-chained"
NOT_A_REPO_HINT = "the hook lives in a git repository: run `gemma-code hook` in one (`git init` makes one)"

SCRIPT = """#!/bin/sh
{marker} (remove it with: gemma-code hook uninstall)
# It reviews exactly what is staged. Skip once: GEMMA_CODE_SKIP=1 git commit, or git commit --no-verify.
{python_tag}{python}
hook_dir=$(dirname "$0")
if [ -x "$hook_dir/{chained}" ]; then
    # the pre-commit hook that was here before gemma-code's; it runs first, as it always did
    "$hook_dir/{chained}" "$@" || exit $?
fi
if [ "${{GEMMA_CODE_SKIP:-0}}" = "1" ]; then
    echo "gemma-code: review skipped (GEMMA_CODE_SKIP=1)" >&2
    exit 0
fi
if [ ! -x {python_q} ]; then
    echo "gemma-code: {python} is gone; review skipped (run: gemma-code hook install --force)" >&2
    exit 0
fi
# GEMMA_CODE_HOOK: never ask anything (no one can answer a hook)
GEMMA_CODE_HOOK=1 exec {python_q} -m gemma_code review --staged --format text
"""


class HookError(GemmaCodeError):
    """A hook operation would lose someone's hook; nothing was changed."""


@dataclass
class HookStatus:
    """What is installed in the repository's pre-commit slot."""

    hooks_dir: Path
    hook: Path
    state: str  # absent | gemma-code | other
    chained: Path | None  # the earlier hook gemma-code runs first
    python: str | None  # the interpreter the installed hook runs

    @property
    def python_ok(self) -> bool:
        return self.python is not None and os.access(self.python, os.X_OK)


def render_script(python: str) -> str:
    """The hook script, running gemma-code with the interpreter that installed it."""
    return SCRIPT.format(
        marker=MARKER, python_tag=PYTHON_TAG, python=python, python_q=shlex.quote(python),
        chained=CHAINED,
    )


def _is_ours(hook: Path) -> bool:
    try:
        return not hook.is_symlink() and MARKER in hook.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def _recorded_python(hook: Path) -> str | None:
    for line in hook.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(PYTHON_TAG):
            return line[len(PYTHON_TAG):].strip()
    return None


def status(start: Path | None = None) -> HookStatus:
    """The pre-commit slot of the repository containing `start`."""
    here = (start or Path.cwd()).resolve()
    root = repo_root(here)
    if root is None:
        raise GitError(f"{here} is not inside a git repository", NOT_A_REPO_HINT)
    folder = hooks_dir(root)
    hook = folder / "pre-commit"
    chained = folder / CHAINED
    has_chained = chained.exists() or chained.is_symlink()
    if _is_ours(hook):
        return HookStatus(folder, hook, "gemma-code", chained if has_chained else None,
                          _recorded_python(hook))
    state = "other" if hook.exists() or hook.is_symlink() else "absent"
    return HookStatus(folder, hook, state, None, None)


def install(start: Path | None = None, *, force: bool = False, python: str | None = None) -> HookStatus:
    """Install the hook; an existing foreign hook is kept and chained, never overwritten."""
    python = python or sys.executable
    now = status(start)
    now.hooks_dir.mkdir(parents=True, exist_ok=True)
    chained = now.hooks_dir / CHAINED
    if now.state == "gemma-code" and now.python not in (None, python) and now.python_ok and not force:
        raise HookError(
            f"the gemma-code hook in {now.hook} runs another environment ({now.python})",
            "add --force to point it at this one",
        )
    if now.state == "other":
        if chained.exists() or chained.is_symlink():
            raise HookError(
                f"{now.hook} is not gemma-code's and {chained} already exists; nothing changed",
                "look at both files, remove the one you do not need, then install again",
            )
        os.rename(now.hook, chained)  # a rename keeps the file exactly, symlinks included
    write_text_atomic(now.hook, render_script(python))
    os.chmod(now.hook, 0o755)
    return status(start)


def uninstall(start: Path | None = None) -> tuple[HookStatus, str]:
    """Remove gemma-code's hook and put back the hook it chained; returns the new status and what happened."""
    now = status(start)
    if now.state == "absent":
        return now, f"no pre-commit hook in {now.hooks_dir}; nothing to do"
    if now.state == "other":
        raise HookError(
            f"{now.hook} is not gemma-code's hook; left it alone",
            "remove it by hand if you want it gone",
        )
    if now.chained is not None:
        os.replace(now.chained, now.hook)
        done = f"removed gemma-code's hook and restored the earlier one at {now.hook}"
    else:
        now.hook.unlink()
        done = f"removed {now.hook}"
    return status(start), done
