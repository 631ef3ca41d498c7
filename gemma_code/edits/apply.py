"""Apply parsed edits: plan every change in memory, then write all of it or none of it."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gemma_code.edits.match import (
    closest_lines,
    find_block,
    find_ignoring_blanks,
    reindent,
    settle_shift,
    squash,
)
from gemma_code.edits.model import ApplyResult, Edit, EditsFailedError, Failure, FileChange
from gemma_code.edits.placement import (
    deletion_applied,
    hunk_ops,
    inserted_already,
    is_deletion,
    keep_file_context,
    rebase_blanks,
    trim_blank_ends,
)
from gemma_code.edits.safepath import (
    UnsafePathError,
    active_hooks_dirs,
    normalize,
    refuse_hooks,
    resolve_inside,
)
from gemma_code.edits.textfile import NotTextError, TextFile, text_lines
from gemma_code.edits.writer import write_changes

# "... rest of the file unchanged": a whole-file block that elides code must not be written
_ELISION = re.compile(
    r"^\s*(?:#|//|/\*|--|<!--|\*)?\s*(?:\.\.\.|…)?\s*[\[(]?\s*(?:(?:the )?rest of|remaining|existing|"
    r"other|previous|same as before|unchanged|omitted|\.\.\.|…)[^\n]*?(?:\.\.\.|…|unchanged|omitted|"
    r"here|as before|code|methods|functions|file|content)?\s*[\])]?\s*(?:\*/|-->)?\s*$",
    re.IGNORECASE,
)
_ELLIPSIS_ONLY = re.compile(r"^\s*(?:#|//|/\*|--|<!--)?\s*(?:\.\.\.|…)\s*(?:\*/|-->)?\s*$")
# the example path in our own format instructions: a model that echoes them must not create it
PLACEHOLDER_PATHS = frozenset({"path/to/file.py"})
SHRINK_LIMIT = 0.4  # a whole-file reply under 40% of a 10+ line file is taken for a fragment


@dataclass
class _FileState:
    rel: str
    real: Path
    old: bytes | None
    text: TextFile | None
    mode: int | None
    cursor: dict[int, int] = field(default_factory=dict)  # diff group -> line after last hunk
    offset: dict[int, int] = field(default_factory=dict)  # diff group -> lines added so far
    last_edit: Edit | None = None


@dataclass
class Plan:
    """The planned outcome of edits: new contents in memory, and every failure."""

    root: Path
    files: dict[str, _FileState] = field(default_factory=dict)
    applied: list[Edit] = field(default_factory=list)
    already_applied: list[Edit] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    hooks: list[Path] | None = None  # active git hook folders inside the work tree, found once

    def changes(self) -> list[FileChange]:
        """Files whose bytes would change, in the order first touched."""
        out: list[FileChange] = []
        for state in self.files.values():
            new = state.text.encode() if state.text is not None else None
            if new != state.old:
                out.append(FileChange(state.rel, state.old, new, state.mode))
        return out

    def result(self, *, checked_only: bool = False) -> ApplyResult:
        return ApplyResult(self.changes(), list(self.applied), list(self.already_applied),
                           list(self.notes), None, checked_only)


def _fail(plan: Plan, edit: Edit, reason: str, lines: Sequence[str] = (),
          block: Sequence[str] = (), hint: int | None = None,
          candidates: Sequence[int] = ()) -> None:
    closest = closest_lines(lines, block, hint=hint) if lines and block and not candidates else None
    plan.failures.append(Failure(
        edit, reason, closest[0] + 1 if closest else None, tuple(closest[1]) if closest else (),
        tuple(c + 1 for c in candidates)))


def _load(plan: Plan, edit: Edit) -> _FileState | None:
    try:
        rel = normalize(edit.path)
        if rel in plan.files:
            return plan.files[rel]
        real = resolve_inside(plan.root, rel)
        if plan.hooks is None:
            plan.hooks = active_hooks_dirs(plan.root)
        refuse_hooks(real, plan.hooks)
    except UnsafePathError as exc:
        _fail(plan, edit, f"refused: {exc}")
        return None
    if rel in PLACEHOLDER_PATHS and not real.exists():
        _fail(plan, edit, f"refused: {rel} is the example path from the instructions; "
              "name a file of this repository")
        return None
    if real.is_dir():
        _fail(plan, edit, "refused: the path is a directory")
        return None
    old = text = mode = None
    if real.exists():
        old = real.read_bytes()
        mode = real.stat().st_mode & 0o7777
        try:
            text = TextFile.decode(old)
        except NotTextError:
            _fail(plan, edit, "refused: binary file")
            return None
    state = _FileState(rel, real, old, text, mode)
    plan.files[rel] = state
    return state


def _same_lines(a: Sequence[str], b: Sequence[str]) -> bool:
    return len(a) == len(b) and all(x.rstrip() == y.rstrip() for x, y in zip(a, b, strict=True))


def _did_you_mean(root: Path, rel: str, limit: int = 3) -> str:
    """"; did you mean x/app.py?": files elsewhere in the repository with the same name."""
    name = rel.rsplit("/", 1)[-1]
    found: list[str] = []
    for path in root.rglob(name):
        parts = path.relative_to(root).parts
        if ".git" in parts or any(p.startswith(".") or p in {"node_modules", "__pycache__"}
                                  for p in parts[:-1]):
            continue
        found.append("/".join(parts))
        if len(found) >= limit:
            break
    return f"; did you mean {' or '.join(sorted(found))}?" if found else ""


def _partial_line(lines: list[str], search: list[str]) -> int | None:
    """The 1-based line where SEARCH's text starts when it is there, but not as whole lines."""
    needle = "\n".join(search).strip()
    if not needle:
        return None
    text = "\n".join(lines)
    at = text.find(needle)
    return None if at < 0 else text.count("\n", 0, at) + 1


def _replace(plan: Plan, state: _FileState, edit: Edit) -> None:
    if state.text is None:
        if not edit.search.strip():  # a blank SEARCH line meant "empty"
            _create(plan, state, edit)
            return
        _fail(plan, edit, "the file does not exist" + _did_you_mean(plan.root, state.rel) +
              " (to create it, use an empty SEARCH section)")
        return
    lines = state.text.lines
    search, replace = text_lines(edit.search), text_lines(edit.replace)
    if not search:
        _fail(plan, edit, "nothing to anchor the change: no context or removed lines")
        return
    is_diff = edit.fmt == "diff"
    after = state.cursor.get(edit.group, 0) if is_diff else 0
    hint = None
    if is_diff and edit.line_hint is not None:
        hint = max(edit.line_hint - 1, 0) + state.offset.get(edit.group, 0)
    found = find_block(lines, search, after=after, hint=hint)
    if found.match is None and not found.candidates:
        trimmed_s, trimmed_r = trim_blank_ends(search, replace)
        if trimmed_s and trimmed_s != search:
            search, replace = trimmed_s, trimmed_r
            found = find_block(lines, search, after=after, hint=hint)
    if found.match is None and not found.candidates and after:
        found = find_block(lines, search, hint=hint)
    if found.candidates:
        _fail(plan, edit, f"the SEARCH text matches {len(found.candidates)} places; "
              "add surrounding lines to make it unique", candidates=found.candidates)
        return
    match = found.match
    if match is None and is_diff and _apply_ignoring_blanks(plan, state, edit, search, replace,
                                                             after, hint):
        return
    if match is None:
        done = find_block(lines, replace) if replace and replace != search else None
        if done is not None and done.match is not None and (
                not is_deletion(search, replace) or deletion_applied(lines, search, replace)):
            plan.already_applied.append(edit)
            return
        part = _partial_line(lines, search)
        if part is not None:
            _fail(plan, edit, f"SEARCH must be whole lines: its text is part of line {part}; copy "
                  "the whole line(s) into SEARCH and REPLACE", lines, search, hint)
            return
        _fail(plan, edit, "the SEARCH text is not in the file", lines, search, hint)
        return
    settled = settle_shift(lines, search, replace, match)
    new_block = reindent(replace, settled) if settled is not None else None
    if new_block is None:
        _fail(plan, edit, "the SEARCH text matched with a different indentation width, and the "
              "REPLACE lines cannot be re-indented the same way", lines, search, hint)
        return
    if match.level != "exact":
        keep_file_context(lines, match, search, replace, new_block)
    if search == replace or inserted_already(lines, match, search, new_block):
        plan.already_applied.append(edit)
        return
    state.text.lines = lines[: match.start] + new_block + lines[match.end :]
    state.cursor[edit.group] = match.start + len(new_block)
    state.offset[edit.group] = state.offset.get(edit.group, 0) + len(new_block) - len(search)
    if match.level != "exact":
        how = {"whitespace": "ignoring trailing whitespace", "indentation": "re-indented",
               "rescaled": "with its indentation width converted"}[match.level]
        plan.notes.append(f"{state.rel}: {edit.describe()} matched {how} at line {match.start + 1}")
    plan.applied.append(edit)


def _apply_ignoring_blanks(plan: Plan, state: _FileState, edit: Edit, search: list[str],
                           replace: list[str], after: int, hint: int | None) -> bool:
    """A diff hunk whose context has blank lines the file lacks, or lacks some it has: applied
    when its other lines sit in exactly one place. False when that does not settle it."""
    assert state.text is not None
    lines = state.text.lines
    found = find_ignoring_blanks(lines, search, after=after, hint=hint)
    if found.match is None and not found.candidates and after:
        found = find_ignoring_blanks(lines, search, hint=hint)
    if found.candidates:
        _fail(plan, edit, f"the hunk's lines, blank lines aside, match {len(found.candidates)} "
              "places; add surrounding lines to make it unique", candidates=found.candidates)
        return True
    if found.match is None:
        return False
    match = found.match
    whole_search, whole_replace = text_lines(edit.search), text_lines(edit.replace)
    new_block = rebase_blanks(lines[match.start : match.end], whole_search, whole_replace,
                               hunk_ops(edit, whole_search, whole_replace))
    if new_block is None:
        _fail(plan, edit, "the hunk's blank lines differ from the file's next to the lines it "
              "adds or removes, so where they go is unclear; copy the context lines exactly",
              lines, search, hint)
        return True
    if new_block == lines[match.start : match.end]:
        return False  # the hunk changes only blank lines the file does not have: not settled
    state.text.lines = lines[: match.start] + new_block + lines[match.end :]
    state.cursor[edit.group] = match.start + len(new_block)
    state.offset[edit.group] = (state.offset.get(edit.group, 0) + len(new_block)
                                - (match.end - match.start))
    plan.notes.append(f"{state.rel}: {edit.describe()} matched with different blank lines "
                      f"at line {match.start + 1}")
    plan.applied.append(edit)
    return True


def _whole(plan: Plan, state: _FileState, edit: Edit) -> None:
    new = text_lines(edit.replace)
    if state.text is None:
        state.text = TextFile.new(edit.replace)
        plan.applied.append(edit)
        return
    old = state.text.lines
    if _same_lines(old, new):
        plan.already_applied.append(edit)
        return
    known = {squash(line) for line in old}
    elided = [n for n, line in enumerate(new, 1) if squash(line) not in known and
              (_ELLIPSIS_ONLY.match(line) or (_ELISION.match(line) and len(line.strip()) < 80 and
                                               any(c in line for c in "#/*-<.…")))]
    if elided:
        _fail(plan, edit, f"the whole-file block elides code (line {elided[0]} of the block: "
              f"{new[elided[0] - 1].strip()!r}); send SEARCH/REPLACE blocks instead")
        return
    if len(old) >= 10 and len(new) < SHRINK_LIMIT * len(old):
        _fail(plan, edit, f"the whole-file block has {len(new)} lines for a {len(old)}-line file; "
              "it looks like a fragment: send SEARCH/REPLACE blocks instead")
        return
    state.text.lines = new
    plan.applied.append(edit)


def _create(plan: Plan, state: _FileState, edit: Edit) -> None:
    new = text_lines(edit.replace)
    if state.text is None:
        state.text = TextFile.new(edit.replace)
        plan.applied.append(edit)
    elif _same_lines(state.text.lines, new):
        plan.already_applied.append(edit)
    elif not state.text.lines:
        state.text.lines = new
        plan.applied.append(edit)
    else:
        _fail(plan, edit, "the file already exists; to change it, quote the lines to replace "
              "in the SEARCH section")


def plan_edits(root: Path, edits: Sequence[Edit], *, base: Plan | None = None) -> Plan:
    """Work out every edit in memory (on top of `base`'s results); nothing is written."""
    plan = Plan(Path(root))
    if base is not None:
        plan.files = copy.deepcopy(base.files)
        plan.applied, plan.already_applied = list(base.applied), list(base.already_applied)
        plan.notes = list(base.notes)
    for edit in edits:
        state = _load(plan, edit)
        if state is None:
            continue
        state.last_edit = edit
        if edit.kind == "delete":
            if state.text is None:
                plan.already_applied.append(edit)
            elif edit.search and not _same_lines(state.text.lines, text_lines(edit.search)):
                _fail(plan, edit, "the deletion diff quotes different content than the file has; "
                      "the file was kept", state.text.lines, text_lines(edit.search))
            else:
                state.text = None
                plan.applied.append(edit)
        elif edit.kind == "create":
            _create(plan, state, edit)
        elif edit.kind == "whole":
            _whole(plan, state, edit)
        else:
            _replace(plan, state, edit)
    for state in plan.files.values():
        if state.text is not None:
            try:
                state.text.encode()
            except UnicodeEncodeError:
                assert state.last_edit is not None
                _fail(plan, state.last_edit, f"the new text cannot be written in the file's encoding "
                      f"({state.text.encoding})")
    return plan


def apply_edits(root: Path, edits: Sequence[Edit], *, check: bool = False,
                journal: bool = True) -> ApplyResult:
    """Apply every edit or none: EditsFailedError lists each failure and nothing is written.

    With `check`, only validates. Each applied change set is journaled for `gemma-code undo`.
    """
    plan = plan_edits(root, edits)
    if plan.failures:
        raise EditsFailedError(plan.failures)
    result = plan.result(checked_only=check)
    if not check and result.changes:
        result.journal_id = write_changes(Path(root), result.changes, journal=journal)
    return result
