"""Colored per-file diffs of planned changes, for the edit preview."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from gemma_code.edits.model import FileChange


def _text(data: bytes | None) -> list[str]:
    if data is None:
        return []
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n").splitlines(keepends=True)


def unified_diff(change: FileChange, context: int = 3) -> str:
    """The change as a unified diff (a/ b/ paths, /dev/null for created or deleted files)."""
    old = "/dev/null" if change.old is None else f"a/{change.path}"
    new = "/dev/null" if change.new is None else f"b/{change.path}"
    lines = difflib.unified_diff(_text(change.old), _text(change.new), old, new, n=context)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)


def diff_stats(change: FileChange) -> tuple[int, int]:
    """Lines added and removed."""
    added = removed = 0
    for line in unified_diff(change, 0).splitlines():
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return added, removed


def print_change(console: Console, change: FileChange) -> None:
    """A header (path, action, +/-) and the colored diff."""
    from rich.markup import escape
    from rich.text import Text

    added, removed = diff_stats(change)
    console.print(f"[bold]{escape(change.path)}[/] ({change.action}, "
                  f"[green]+{added}[/] [red]-{removed}[/])")
    for line in unified_diff(change).splitlines()[2:]:
        style = ("green" if line.startswith("+") else "red" if line.startswith("-")
                 else "cyan" if line.startswith("@@") else "dim")
        console.print(Text(line, style=style))
