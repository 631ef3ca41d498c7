"""Parse model replies into edits and apply them safely: all or nothing, journaled for undo.

Public API (see docs/edits.md): `parse_reply`, `apply_edits`, `plan_edits`, `undo_last`.
"""

from __future__ import annotations

from gemma_code.edits.apply import Plan, apply_edits, plan_edits
from gemma_code.edits.journal import list_entries, undo_last
from gemma_code.edits.model import (
    ApplyResult,
    Edit,
    EditsFailedError,
    Failure,
    FileChange,
    NoEditsError,
)
from gemma_code.edits.parse import MalformedReplyError, ParseProblem, parse_reply, parse_reply_lenient
from gemma_code.edits.writer import ChangedOnDiskError, write_changes

__all__ = [
    "ApplyResult", "ChangedOnDiskError", "Edit", "EditsFailedError", "Failure", "FileChange",
    "MalformedReplyError", "NoEditsError", "ParseProblem", "Plan", "apply_edits", "list_entries",
    "parse_reply", "parse_reply_lenient", "plan_edits", "undo_last", "write_changes",
]
