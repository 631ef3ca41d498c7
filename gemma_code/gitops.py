"""Every git call gemma-code makes, in one place, through one runner (`_cli`: the git CLI).

Functions take the repository root (or a folder inside it) and raise GitError with a hint
when git fails; "not a repository" is an answer (None / False), not an error. `repo_root` is
the one way to find a repository's root.

One mechanism: every call runs the git CLI through `_run` (`_cli` for text output), so git's
own answers (worktrees, GIT_DIR, GIT_INDEX_FILE, which `git commit -a` sets for its hooks,
safe.directory) hold everywhere. gitpython drove the same CLI for some calls; importing it
cost 130-700 ms on a loaded 2-core machine, too much for a pre-commit hook and a cold `ask`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from gemma_code.errors import GitError


def _reason(stderr: str) -> str:
    """git's reason from its stderr: the first fatal:/error: line (usage notes follow it), else the last."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for line in lines:
        for prefix in ("fatal:", "error:"):
            if line.startswith(prefix):
                return line[len(prefix):].strip()
    return lines[-1] if lines else ""


def dirty_paths(root: Path, paths: Sequence[str]) -> list[str]:
    """Which of `paths` (repo-relative) have uncommitted changes, staged or not."""
    top = repo_root(root)
    if top is None or not paths:
        return []
    out = _cli(top, "status", "--porcelain", "-z", "--untracked-files=no", "--", *paths)
    return [item[3:] for item in out.split("\0") if len(item) > 3]


def uncommitted_paths(root: Path, paths: Sequence[str]) -> list[str]:
    """Which of `paths` differ from HEAD in the index or work tree, untracked ones included."""
    top = repo_root(root)
    if top is None or not paths:
        return []
    out = _cli(top, "status", "--porcelain", "-z", "--untracked-files=all", "--", *paths)
    return [item[3:] for item in out.split("\0") if len(item) > 3]


def stash_create(root: Path) -> str | None:
    """A commit object holding the uncommitted changes (`git stash create`), leaving them in place."""
    top = repo_root(root)
    if top is None:
        return None
    return _cli(top, "stash", "create").strip() or None


def commit_paths(root: Path, paths: Sequence[str], message: str) -> str:
    """Stage and commit exactly `paths` (new, changed or deleted); returns the commit sha."""
    top = repo_root(root)
    if top is None:
        raise GitError("not a git repository", "--commit needs a git repository; run `git init`")
    _cli(top, "add", "-A", "--", *paths)
    _cli(top, "commit", "-q", "-m", message, "--", *paths)
    return _cli(top, "rev-parse", "HEAD").strip()


def unstage(root: Path, paths: Sequence[str]) -> None:
    """Set the index entries of `paths` back to HEAD's (or drop them before a first commit)."""
    top = repo_root(root)
    if top is None or not paths:
        return
    if head_sha(top) is None:
        _cli(top, "rm", "--cached", "-q", "-r", "--ignore-unmatch", "--", *paths)
    else:
        _cli(top, "reset", "-q", "HEAD", "--", *paths)


def head_sha(root: Path) -> str | None:
    """The commit HEAD points to, or None (no repository, or no commit yet)."""
    top = repo_root(root)
    if top is None:
        return None
    try:
        return _cli(top, "rev-parse", "--verify", "-q", "HEAD").strip() or None
    except GitError:
        return None


def tracked_files(root: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files of the repository holding `root`, repo-relative."""
    top = repo_root(root)
    return sorted(set(listed_files(top))) if top is not None else []


EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree, HEAD before a first commit


# A repository's own config can name commands that git runs while reading: core.fsmonitor runs
# on `status` and `ls-files --others` (a repository that arrives with its .git folder, from an
# archive or a shared disk, is untrusted input). Our reads never need it.
_SAFE_READS = ("-c", "core.quotePath=false", "-c", "core.fsmonitor=false")


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The one place gemma-code starts git: `git ARGS` in `root`, output as bytes."""
    try:
        return subprocess.run(["git", *_SAFE_READS, *args], cwd=root,
                              capture_output=True, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed", "install git and try again") from None


def _text(data: bytes) -> str:
    """git's output as text: UTF-8 (bad bytes replaced), universal newlines."""
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def _cli(root: Path, *args: str) -> str:
    """Run git in `root`; its output as text; GitError with git's own message when it fails."""
    proc = _run(root, *args)
    if proc.returncode != 0:
        detail = _reason(_text(proc.stderr)) or f"exit status {proc.returncode}"
        command = next((a for a in args if not a.startswith("-")), "")
        raise GitError(f"git {command} failed: {detail}",
                       "run the git command yourself to see the full message")
    return _text(proc.stdout)


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
    return diff_text(root, "--no-color", "--no-ext-diff", "--no-textconv", "HEAD", "--", *paths)


def index_contents(root: Path, paths: Sequence[str]) -> dict[str, bytes]:
    """The staged bytes of `paths` (`git show :path`); paths not in the index are left out."""
    out: dict[str, bytes] = {}
    for path in paths:
        proc = _run(root, "show", f":{path}")
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


def cached_files(root: Path) -> list[str]:
    """Files in git's index under `root` (`git ls-files --cached`: no walk of the folder)."""
    out = _cli(root, "ls-files", "-z", "--cached")
    return [p for p in out.split("\0") if p]


def status_entries(root: Path) -> list[tuple[str, str]]:
    """(XY code, path) of every uncommitted change, untracked files as "??" (`git status`).

    Submodules are not looked into (slow, and a broken one makes status fail), and git takes
    no optional lock on the index, so a user's own git command never meets a lock of ours.
    """
    out = _cli(root, "--no-optional-locks", "status", "--porcelain", "-z", "--untracked-files=all",
               "--ignore-submodules=all")
    entries: list[tuple[str, str]] = []
    fields = iter(out.split("\0"))
    for field in fields:
        if len(field) > 3 and field[2] == " ":
            entries.append((field[:2], field[3:]))
            if field[0] in "RC" or field[1] in "RC":
                next(fields, None)  # with -z a rename or copy is followed by its old path
    return entries


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


def file_log(root: Path, commits: int) -> str:
    """The files of the last `commits` commits of HEAD, each commit led by a NUL (no merges)."""
    return _cli(root, "log", "-n", str(commits), "--no-merges", "--name-only", "--format=%x00",
                "--no-renames")


def grep_phrases(root: Path, phrases: Sequence[str], limit: int = 200) -> dict[str, list[str]]:
    """Files (tracked or untracked, not binary) holding each phrase verbatim, ignoring case."""
    found: dict[str, list[str]] = {}
    for phrase in phrases:
        try:
            out = _cli(root, "grep", "-l", "-i", "-F", "-I", "--untracked", "-e", phrase)
        except GitError:  # no match exits 1
            out = ""
        found[phrase] = sorted(out.splitlines())[:limit]
    return found


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
    return _grep_numbered(root, [*args, "-e", query], limit)


def grep_word_lines(
    root: Path, words: Sequence[str], limit: int = 400, keep: Callable[[str], bool] | None = None,
) -> list[tuple[str, int, str]]:
    """Lines of a work tree holding any of `words` as a whole word: (path, 1-based line, text),
    the first `limit` of those in files that `keep` accepts."""
    if not words:
        return []
    args = ["grep", "-n", "-z", "-I", "-F", "-w", "--no-color", "--untracked"]
    for word in words:
        args += ["-e", word]
    return _grep_numbered(root, args, limit, keep)


def _grep_numbered(
    root: Path, args: list[str], limit: int, keep: Callable[[str], bool] | None = None,
) -> list[tuple[str, int, str]]:
    try:
        out = _cli(root, *args)
    except GitError:  # no match exits 1
        return []
    found: list[tuple[str, int, str]] = []
    for line in out.split("\n"):  # not splitlines(): a form feed or U+2028 is inside a line
        parts = line.split("\0", 2)
        if len(parts) == 3 and parts[1].isdigit() and (keep is None or keep(parts[0])):
            found.append((parts[0], int(parts[1]), parts[2]))
            if len(found) >= limit:
                break
    return found
