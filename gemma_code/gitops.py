"""Every git call gemma-code makes, in one place (gitpython, imported lazily; the git CLI).

Functions take the repository root (or a folder inside it) and raise GitError with a hint
when git fails; "not a repository" is an answer (None / False), not an error, except for
`work_tree_root`, which the review and the hook call when they need a repository.

The review and the hook use the git CLI (`_cli`): a hook must start fast, and the CLI honours
GIT_INDEX_FILE, which `git commit -a` sets for its hooks.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gemma_code.errors import GitError


def _reason(stderr: str) -> str:
    """git's reason from its stderr: the first fatal:/error: line (usage notes follow it), else the last."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for line in lines:
        for prefix in ("fatal:", "error:"):
            if line.startswith(prefix):
                return line[len(prefix):].strip()
    return lines[-1] if lines else ""


@contextmanager
def _git_errors(action: str) -> Iterator[None]:
    import git

    try:
        yield
    except git.GitCommandError as exc:
        detail = _reason(str(exc.stderr or "")) or str(exc)
        raise GitError(f"git {action} failed: {detail}",
                       "run the git command yourself to see the full message") from None
    except git.GitCommandNotFound:
        raise GitError("git is not installed or not on PATH", "install git") from None


def _repo(start: Path) -> Any:
    import git

    try:
        return git.Repo(start, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


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


def uncommitted_paths(root: Path, paths: Sequence[str]) -> list[str]:
    """Which of `paths` differ from HEAD in the index or work tree, untracked ones included."""
    repo = _repo(root)
    if repo is None or not paths:
        return []
    with _git_errors("status"):
        out = repo.git.status("--porcelain", "-z", "--untracked-files=all", "--", *paths)
    return [item[3:] for item in out.split("\0") if len(item) > 3]


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


def unstage(root: Path, paths: Sequence[str]) -> None:
    """Set the index entries of `paths` back to HEAD's (or drop them before a first commit)."""
    repo = _repo(root)
    if repo is None or not paths:
        return
    with _git_errors("reset"):
        if head_sha(root) is None:
            repo.git.rm("--cached", "-q", "-r", "--ignore-unmatch", "--", *paths)
        else:
            repo.git.reset("-q", "HEAD", "--", *paths)


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
    """Tracked and untracked-but-not-ignored files of the repository holding `root`, repo-relative."""
    top = repo_root(root)
    return sorted(set(listed_files(top))) if top is not None else []


# --- the git CLI: the review, the hook and the REPL's /diff -------------------------------

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree, HEAD before a first commit


def _cli(root: Path, *args: str) -> str:
    """Run git in `root`; GitError with git's own message when it fails."""
    try:
        proc = subprocess.run(
            ["git", "-c", "core.quotePath=false", *args], cwd=root, capture_output=True,
            text=True, encoding="utf-8", errors="replace", check=False,
        )
    except FileNotFoundError:
        raise GitError("git is not installed", "install git and try again") from None
    if proc.returncode != 0:
        detail = _reason(proc.stderr) or "failed"
        raise GitError(f"git {args[0]}: {detail}")
    return proc.stdout


REVIEW_HINT = "run this in a repository, or name FILES to review them as they are"


def repo_root(start: Path | str) -> Path | None:
    """The top of the work tree containing `start` (a folder or a file), or None outside one.

    The one way gemma-code finds a repository: git's own answer (worktrees, GIT_DIR, bare
    repositories and safe.directory as git sees them), one fast `git rev-parse`.
    """
    here = Path(start).resolve()
    while not here.is_dir():  # a file, or a path not created yet
        if here.parent == here:
            return None
        here = here.parent
    try:
        top = _cli(here, "rev-parse", "--show-toplevel").strip()
    except GitError:
        return None
    return Path(top) if top else None


def work_tree_root(start: Path | None = None, *, hint: str = REVIEW_HINT) -> Path:
    """The top of the work tree containing `start` (default: cwd); GitError with `hint` outside one."""
    here = (start or Path.cwd()).resolve()
    top = repo_root(here)
    if top is None:
        raise GitError(f"{here} is not inside a git repository", hint)
    return top


def staged_tree(root: Path) -> str:
    """The tree id of exactly what is staged (`git write-tree`: the index, not the work tree)."""
    return _cli(root, "write-tree").strip()


def head_tree(root: Path) -> str:
    """HEAD's tree id, or git's empty tree before the first commit."""
    try:
        return _cli(root, "rev-parse", "--verify", "-q", "HEAD^{tree}").strip()
    except GitError:
        return EMPTY_TREE


def rev_parse(root: Path, spec: str) -> list[str]:
    """The commit ids `spec` names (`A..B` gives two); GitError for an unknown name."""
    return _cli(root, "rev-parse", spec).split()


def diff_text(root: Path, *args: str) -> str:
    """`git diff ARGS` as patch text (paths unquoted: core.quotePath=false)."""
    return _cli(root, "diff", *args)


def uncommitted_diff(root: Path, paths: Sequence[str] = ()) -> str:
    """The work tree against HEAD (`git diff HEAD -- PATHS`), staged or not."""
    return diff_text(root, "--no-color", "HEAD", "--", *paths)


def index_contents(root: Path, paths: Sequence[str]) -> dict[str, bytes]:
    """The staged bytes of `paths` (`git show :path`); paths not in the index are left out."""
    out: dict[str, bytes] = {}
    for path in paths:
        try:
            proc = subprocess.run(["git", "show", f":{path}"], cwd=root, capture_output=True,
                                  check=False)
        except FileNotFoundError:
            raise GitError("git is not installed", "install git and try again") from None
        if proc.returncode == 0:
            out[path] = proc.stdout
    return out


def hooks_dir(root: Path) -> Path:
    """Git's real hooks directory for the repository at `root` (core.hooksPath, worktrees)."""
    path = Path(_cli(root, "rev-parse", "--git-path", "hooks").strip())
    return path if path.is_absolute() else (root / path).resolve()


# --- the context builder's reads (the git CLI: no gitpython import on a cold run) ----------


def listed_files(root: Path) -> list[str]:
    """Tracked plus untracked-but-not-ignored files under `root` (`git ls-files`), git's order."""
    out = _cli(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return [p for p in out.split("\0") if p]


def changed_files(root: Path) -> list[str]:
    """Files with uncommitted changes, untracked ones included (`git status`), sorted."""
    out = _cli(root, "status", "--porcelain", "-z", "--untracked-files=all")
    # with -z a rename adds its old path as a bare entry: the "XY " prefix tells them apart
    return sorted({e[3:] for e in out.split("\0") if len(e) > 3 and e[2] == " "})


def recent_files(root: Path, commits: int = 5) -> list[str]:
    """Files touched by the last `commits` commits, sorted; GitError before the first commit."""
    out = _cli(root, "log", "-n", str(commits), "--name-only", "--format=", "--no-renames")
    return sorted({line for line in out.splitlines() if line})


def grep_words(root: Path, words: Sequence[str], limit: int = 2_000) -> list[str]:
    """Files (tracked or untracked, not binary) holding any of `words` as a whole word (`git grep`)."""
    args = ["grep", "-l", "-w", "-F", "-I", "--untracked"]
    for word in words:
        args += ["-e", word]
    try:
        out = _cli(root, *args)
    except GitError:  # no match exits 1; either way: nothing found
        return []
    return sorted(out.splitlines())[:limit]


def grep_lines(
    root: Path, query: str, *, ignore_case: bool = False, in_git: bool = True, limit: int = 1_000
) -> list[tuple[str, int, str]]:
    """Lines holding `query` as fixed text: (path, 1-based line, text), at most `limit`.

    Tracked and untracked-not-ignored files of a work tree (`git grep`); outside one, the
    folder's files (`git grep --no-index`). Binary files are skipped.
    """
    args = ["grep", "-n", "-z", "-I", "-F", "--no-color"]
    args += ["--untracked"] if in_git else ["--no-index"]
    if ignore_case:
        args.append("-i")
    args += ["-e", query]
    try:
        out = _cli(root, *args)
    except GitError:  # no match exits 1
        return []
    found: list[tuple[str, int, str]] = []
    for line in out.splitlines():
        parts = line.split("\0", 2)
        if len(parts) == 3 and parts[1].isdigit():
            found.append((parts[0], int(parts[1]), parts[2]))
            if len(found) >= limit:
                break
    return found
