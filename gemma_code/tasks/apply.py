"""Applying a change set: plan a reply's edits, write them journaled, commit them on request.

`gemma-code apply`, `edit`, `refactor` and the chat's /apply, /edit, /refactor and /commit all
write and commit through here, with one commit-message builder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gemma_code.edits.model import FileChange
from gemma_code.errors import GitError, UsageError
from gemma_code.tasks.edit import EditOutcome, edit_rounds


def plan_reply(root: Path, reply: str) -> EditOutcome:
    """The edits in a saved model reply, parsed and planned (no model to ask again)."""
    return edit_rounds(root, reply, ask_again=lambda _text: None, retries=0)


def commit_message(summary: str, changes: Sequence[FileChange | str], *, verb: str) -> str:
    """The commit message of every gemma-code commit: `gemma-code VERB: SUMMARY` and the files."""
    first = " ".join(summary.split()) or "changes"
    if len(first) > 64:
        first = first[:61].rstrip() + "..."
    lines = [f"gemma-code {verb}: {first}", ""]
    lines += [f"- {c}" if isinstance(c, str) else f"- {c.action} {c.path}" for c in changes]
    return "\n".join(lines) + "\n"


@dataclass
class Written:
    """A change set on disk: its journal entry, and how earlier uncommitted work was kept."""

    changes: list[FileChange]
    journal_id: str | None
    dirty: list[str] = field(default_factory=list)
    stash: str | None = None
    commit: str | None = None
    commit_error: GitError | None = None


def check_commit(root: Path, paths: Sequence[str]) -> None:
    """Refuse `--commit` before anything is written: outside git (GitError), or when a touched file
    holds uncommitted work that the commit would sweep in with the edit (UsageError)."""
    from gemma_code import gitops

    if gitops.repo_root(root) is None:
        raise GitError(f"{root} is not inside a git repository; nothing was written",
                       "--commit needs a git repository: run `git init`, or drop --commit")
    pending = gitops.uncommitted_paths(root, paths)
    if pending:
        raise UsageError(f"--commit would also commit your uncommitted changes in "
                         f"{', '.join(pending)}; nothing was written",
                         "commit or stash them first, or drop --commit")


def write_with_safety(root: Path, changes: Sequence[FileChange], *, label: str = "edit",
                      extra: dict[str, str] | None = None,
                      commit: str | None = None) -> Written:
    """Write `changes` journaled; uncommitted edits in those files also go into a `git stash create`
    object first; with `commit` (a message), commit exactly those files (checked before writing;
    a commit that then fails is kept in `commit_error`, the files stay written)."""
    from gemma_code import gitops
    from gemma_code.edits.writer import write_changes

    if commit is not None:
        check_commit(root, [c.path for c in changes])
    meta = dict(extra or {})
    dirty = gitops.dirty_paths(root, [c.path for c in changes if c.old is not None])
    stash = gitops.stash_create(root) if dirty else None
    if stash:
        meta["stash"] = stash
    entry = write_changes(root, changes, label=label, extra=meta)
    done = Written(list(changes), entry, dirty, stash)
    if commit is not None:
        try:
            done.commit = gitops.commit_paths(root, [c.path for c in changes], commit)
        except GitError as exc:  # the files are written: say so, and how to revert them
            done.commit_error = exc
            # check_commit saw these paths equal to HEAD: the index goes back to that
            gitops.unstage(root, [c.path for c in changes])
    return done


def paths_to_commit(root: Path, applied: Sequence[str]) -> list[str]:
    """What the chat's /commit commits: the files it changed that still differ from HEAD, else
    every changed tracked file. Raises GitError outside a repository."""
    from gemma_code import gitops

    if gitops.repo_root(root) is None:
        raise GitError("not a git repository", "/commit needs git; run `git init` first")
    paths = gitops.dirty_paths(root, list(applied)) if applied else []
    return paths or gitops.dirty_paths(root, gitops.tracked_files(root))


def commit_files(root: Path, paths: Sequence[str], message: str) -> str:
    """Commit exactly `paths` with `message`; returns the new commit's sha."""
    from gemma_code import gitops

    return gitops.commit_paths(root, list(paths), message)
