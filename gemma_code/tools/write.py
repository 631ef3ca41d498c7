"""The editing tools: edit_file and write_file, through the edit engine (gemma_code/edits).

Each call is planned in memory first (unique match, all-or-nothing, confined to the
repository), shown as a diff for approval, then written atomically and journaled for undo.
"""

from __future__ import annotations

from typing import Any

from gemma_code.tools.base import Action, Tool, ToolContext, ToolError, ToolOutput, schema
from gemma_code.tools.files import repo_path

JOURNAL_LABEL = "agent"


def _plan(ctx: ToolContext, tool: str, edit: Any) -> list[Any]:
    """The file changes `edit` makes, or ToolError explaining why it cannot apply."""
    from gemma_code.edits import plan_edits

    plan = plan_edits(ctx.root, [edit])
    if plan.failures:
        details = "\n".join(f.explain() for f in plan.failures)
        details = details.replace("SEARCH text", "old_text").replace("SEARCH section", "old_text")
        details = details.replace("REPLACE lines", "new_text lines")
        details = details.replace("block 1 (SEARCH/REPLACE, reply line 0): ", "")
        details = details.replace("block 1 (whole file, reply line 0): ", "")
        raise ToolError(f"{tool}: nothing was changed.\n{details}")
    return plan.changes()


def _action(ctx: ToolContext, tool: str, rel: str, edit: Any) -> Action:
    from gemma_code.ui_diff import diff_stats, unified_diff

    changes = _plan(ctx, tool, edit)
    if not changes:
        return Action(tool, "edit", f"{rel}: no change", "",
                      lambda: ToolOutput(True, f"{rel} already has this content; nothing changed"))
    diff = "".join(unified_diff(c) for c in changes)
    added, removed = (sum(x) for x in zip(*(diff_stats(c) for c in changes), strict=True))
    verb = "create" if changes[0].action == "create" else "edit"
    done = "created" if verb == "create" else "edited"

    def run() -> ToolOutput:
        from gemma_code.edits import write_changes

        stale = ToolOutput(False, f"{rel} changed while waiting for approval; nothing was "
                                  "written. Read it again")
        try:  # the file may have changed while the user decided
            again = _plan(ctx, tool, edit)
        except ToolError:
            return stale
        if [(c.path, c.new) for c in again] != [(c.path, c.new) for c in changes]:
            return stale
        entry = write_changes(ctx.root, again, label=JOURNAL_LABEL, extra=dict(ctx.journal_extra))
        return ToolOutput(True, f"{done} {rel} (+{added} -{removed} lines)", changes=again,
                          journal_id=entry)

    return Action(tool, "edit", f"{verb} {rel} (+{added} -{removed})", diff, run,
                  approval_key="edit", changes=changes)


def prepare_edit_file(ctx: ToolContext, args: dict[str, Any]) -> Action:
    from gemma_code.edits import Edit

    rel, real = repo_path(ctx, str(args["path"]))
    old, new = str(args["old_text"]), str(args["new_text"])
    if not old.strip() and real.exists():
        raise ToolError(f"edit_file: old_text is empty; quote the lines of {rel} to replace "
                        "(or use write_file to replace the whole file)")
    if old == new:
        raise ToolError("edit_file: old_text and new_text are the same; nothing to do")
    return _action(ctx, "edit_file", rel, Edit(rel, "replace", old, new, block=1))


def prepare_write_file(ctx: ToolContext, args: dict[str, Any]) -> Action:
    from gemma_code.edits import Edit

    rel, real = repo_path(ctx, str(args["path"]))
    if real.is_dir():
        raise ToolError(f"write_file: {rel} is a folder")
    content = str(args["content"])
    return _action(ctx, "write_file", rel, Edit(rel, "whole", "", content, block=1, fmt="whole-file"))


EDIT_FILE = Tool(
    "edit_file",
    "Replace one exact, unique piece of a file (old_text) with new_text. Quote enough lines "
    "of old_text to match one place only.",
    schema({"path": ("STRING", "the file, relative to the repository root"),
            "old_text": ("STRING", "the exact lines to replace, as they are in the file"),
            "new_text": ("STRING", "the lines to put in their place")},
           ("path", "old_text", "new_text")),
    "edit", prepare_edit_file,
)
WRITE_FILE = Tool(
    "write_file",
    "Create a file, or replace a whole file, with the given content.",
    schema({"path": ("STRING", "the file, relative to the repository root"),
            "content": ("STRING", "the complete new content of the file")}, ("path", "content")),
    "edit", prepare_write_file,
)
