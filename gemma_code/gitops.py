"""Every git call gemma-code makes, in one place (gitpython, imported lazily).

Functions take the repository root (or a folder inside it) and raise GitError with a hint
when git fails; "not a repository" is an answer (None / False), not an error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gemma_code.errors import GitError


@contextmanager
def _git_errors(action: str) -> Iterator[None]:
    import git

    try:
        yield
    except git.GitCommandError as exc:
        detail = (exc.stderr or str(exc)).strip().splitlines()
        raise GitError(f"git {action} failed: {detail[-1] if detail else exc}",
                       "run the git command yourself to see the full message") from None
    except git.GitCommandNotFound:
        raise GitError("git is not installed or not on PATH", "install git") from None


def _repo(start: Path) -> Any:
    import git

    try:
        return git.Repo(start, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def repo_root(start: Path) -> Path | None:
    """The work tree root containing `start`, or None outside a git repository."""
    repo = _repo(start)
    if repo is None or repo.bare or repo.working_tree_dir is None:
        return None
    return Path(repo.working_tree_dir)


def dirty_paths(root: Path, paths: Sequence[str]) -> list[str]:
    """Which of `paths` (repo-relative) have uncommitted changes, staged or not."""
    repo = _repo(root)
    if repo is None or not paths:
        return []
    with _git_errors("status"):
        out = repo.git.status("--porcelain", "-z", "--untracked-files=no", "--", *paths)
    dirty = []
    for item in out.split("\0"):
        if len(item) > 3:
            dirty.append(item[3:])
    return dirty


def stash_create(root: Path) -> str | None:
    """A commit object holding the uncommitted changes (`git stash create`), leaving them in place."""
    repo = _repo(root)
    if repo is None:
        return None
    with _git_errors("stash create"):
        sha = str(repo.git.stash("create")).strip()
    return sha or None


def commit_paths(root: Path, paths: Sequence[str], message: str) -> str:
    """Stage and commit exactly `paths` (new, changed or deleted); returns the commit sha."""
    repo = _repo(root)
    if repo is None:
        raise GitError("not a git repository", "--commit needs a git repository; run `git init`")
    with _git_errors("commit"):
        repo.git.add("-A", "--", *paths)
        repo.git.commit("-m", message, "--", *paths)
        return str(repo.head.commit.hexsha)


def head_sha(root: Path) -> str | None:
    """The commit HEAD points to, or None (no repository, or no commit yet)."""
    repo = _repo(root)
    if repo is None:
        return None
    try:
        return str(repo.head.commit.hexsha)
    except ValueError:
        return None


def tracked_files(root: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files, repo-relative."""
    repo = _repo(root)
    if repo is None:
        return []
    with _git_errors("ls-files"):
        out = repo.git.ls_files("-z", "--cached", "--others", "--exclude-standard")
    return sorted({p for p in out.split("\0") if p})
