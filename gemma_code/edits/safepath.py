"""Keep every write inside the repository: no `..`, absolute paths, symlink escapes, `.git/`,
or the active git hooks (a core.hooksPath inside the work tree, such as `.husky/`)."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafePathError(ValueError):
    """A path the edit engine refuses to touch; the message says why."""


def normalize(path: str) -> str:
    """Forward slashes, no leading `./`; refuses what could leave the repository."""
    text = path.strip().replace("\\", "/")
    if not text:
        raise UnsafePathError("empty path")
    if text.startswith("/") or text.startswith("~") or _DRIVE.match(text):
        raise UnsafePathError("absolute paths are refused; use a path inside the repository")
    parts = [p for p in PurePosixPath(text).parts if p not in {".", ""}]
    if not parts:
        raise UnsafePathError("path names the repository itself")
    if ".." in parts:
        raise UnsafePathError("`..` in a path is refused: it could leave the repository")
    if any(p.lower() == ".git" for p in parts):
        raise UnsafePathError("files inside .git/ are never edited")
    if any("\0" in p for p in parts):
        raise UnsafePathError("NUL byte in path")
    return "/".join(parts)


def resolve_inside(root: Path, rel: str) -> Path:
    """The real path `rel` names under `root`; refuses symlinks that lead outside or into .git."""
    base = root.resolve()
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        raise UnsafePathError("the path leads outside the repository through a symlink")
    inner = target.relative_to(base).parts
    if any(p.lower() == ".git" for p in inner):
        raise UnsafePathError("the path leads into .git/ through a symlink")
    if target == base:
        raise UnsafePathError("path names the repository itself")
    return target


def active_hooks_dirs(root: Path) -> list[Path]:
    """Folders of the work tree whose files git runs as hooks (core.hooksPath inside it).

    Husky points core.hooksPath at `.husky/_`, whose scripts run `.husky/<hook>`: so a hooks
    folder inside a dot-folder protects that whole dot-folder.
    """
    from gemma_code.errors import GitError
    from gemma_code.gitops import hooks_dir

    base = root.resolve()
    try:
        hooks = hooks_dir(base).resolve()
    except (GitError, OSError):
        return []
    if base not in hooks.parents or ".git" in hooks.relative_to(base).parts:
        return []  # outside the work tree, or git's own .git/hooks (already refused)
    if hooks.parent != base and hooks.parent.name.startswith("."):
        hooks = hooks.parent
    return [hooks]


def refuse_hooks(target: Path, protected: list[Path]) -> None:
    """UnsafePathError when `target` lies in an active hooks folder."""
    for folder in protected:
        if target == folder or folder in target.parents:
            raise UnsafePathError(
                f"files under {folder.name}/ are git hooks (core.hooksPath): they run at every "
                "commit and are never edited"
            )
