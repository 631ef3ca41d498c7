"""What the edit engine works with: parsed Edits, per-edit failures, and the applied result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gemma_code.errors import EditRejectedError

EditKind = Literal["replace", "create", "whole", "delete"]
Format = Literal["search-replace", "diff", "whole-file"]


@dataclass(frozen=True)
class Edit:
    """One change to one file, as the model wrote it.

    kind: "replace" swaps `search` for `replace` (a SEARCH/REPLACE block or one diff hunk);
    "create" writes a new file with `replace`; "whole" sets a file's content to `replace`;
    "delete" removes the file. `block` numbers the blocks of a reply from 1; hunks of one diff
    share `group` and must apply in order. `line_hint` is the diff's (maybe wrong) old line.
    `hunk_ops` is a diff hunk's line tags in order (" " context, "-" removed, "+" added).
    """

    path: str
    kind: EditKind = "replace"
    search: str = ""
    replace: str = ""
    block: int = 0
    fmt: Format = "search-replace"
    line_hint: int | None = None
    group: int = 0
    reply_line: int = 0
    hunk_ops: str = ""

    def describe(self) -> str:
        """`block 2 (SEARCH/REPLACE, reply line 14)`: how failures name an edit."""
        label = {"search-replace": "SEARCH/REPLACE", "diff": "diff hunk", "whole-file": "whole file"}
        return f"block {self.block} ({label[self.fmt]}, reply line {self.reply_line})"


@dataclass(frozen=True)
class Failure:
    """Why one edit did not apply, with the closest actual lines when there are some."""

    edit: Edit
    reason: str
    closest_start: int | None = None  # 1-based line of the closest text in the file
    closest: tuple[str, ...] = ()
    candidates: tuple[int, ...] = ()  # 1-based lines of every match, when ambiguous

    def explain(self) -> str:
        """Several lines: file, block, reason, and the closest actual lines numbered."""
        lines = [f"{self.edit.path}: {self.edit.describe()}: {self.reason}"]
        if self.candidates:
            lines.append("  matches at lines " + ", ".join(str(n) for n in self.candidates))
        if self.closest and self.closest_start is not None:
            lines.append(f"  closest actual lines ({self.closest_start}-"
                         f"{self.closest_start + len(self.closest) - 1}):")
            width = len(str(self.closest_start + len(self.closest)))
            for offset, text in enumerate(self.closest):
                lines.append(f"  {self.closest_start + offset:>{width}} | {text}")
        return "\n".join(lines)


@dataclass
class FileChange:
    """A file's content before and after (None: absent), and its permission bits."""

    path: str  # repository-relative, forward slashes
    old: bytes | None
    new: bytes | None
    mode: int | None = None

    @property
    def action(self) -> str:
        if self.old is None:
            return "create"
        if self.new is None:
            return "delete"
        return "modify"


@dataclass
class ApplyResult:
    """What apply_edits did (or, with check=True, would do)."""

    changes: list[FileChange] = field(default_factory=list)
    applied: list[Edit] = field(default_factory=list)
    already_applied: list[Edit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "matched ignoring indentation"
    journal_id: str | None = None
    checked_only: bool = False

    @property
    def paths(self) -> list[str]:
        return [change.path for change in self.changes]


class EditsFailedError(EditRejectedError):
    """Some edits could not be applied; nothing was written. `failures` says why, per edit."""

    def __init__(self, failures: list[Failure], hint: str | None = None) -> None:
        count = len(failures)
        super().__init__(
            f"{count} edit{'s' if count != 1 else ''} could not be applied; nothing was written",
            hint or "fix the blocks named above (or ask the model again) and re-run",
        )
        self.failures = failures

    def details(self) -> str:
        """Every failure explained, one paragraph each."""
        return "\n".join(f.explain() for f in self.failures)


class NoEditsError(EditRejectedError):
    """The reply held no edit blocks at all."""
