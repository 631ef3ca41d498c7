"""Where a block's lines go, and whether they are already there: pure functions over lines.

apply.py plans edits with these: a re-sent insertion or deletion recognized as applied (and a
misquoted deletion told from an applied one), context kept as the file has it, and a diff hunk
whose blank lines differ from the file's rebased onto the file's own lines.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from gemma_code.edits.match import Match, find_block, squash
from gemma_code.edits.model import Edit


def inserted_already(lines: list[str], match: Match, search: list[str], replace: list[str]) -> bool:
    """A pure insertion (replace = before + search + after) whose new lines already surround the match.

    Re-sent edits are common (a retry round, a reply applied twice); applying one again would
    duplicate its lines, so it counts as already applied.
    """
    n = len(search)
    known = {squash(line) for line in search}
    for p in range(len(replace) - n + 1):
        if replace[p : p + n] == search:
            before, after = replace[:p], replace[p + n :]
            # only new, non-blank lines tell an applied insertion from a repeated neighbour
            if not any(line.strip() and squash(line) not in known for line in before + after):
                return False
            lo, hi = match.start - len(before), match.end + len(after)
            if lo < 0 or hi > len(lines):
                return False
            return [squash(x) for x in lines[lo:hi]] == [squash(x) for x in replace]
    return False


def keep_file_context(lines: Sequence[str], match: Match, search: Sequence[str],
                       replace: Sequence[str], new_block: list[str]) -> None:
    """Unchanged context lines keep the file's own bytes, not the model's tolerated copy."""
    ops = difflib.SequenceMatcher(None, search, replace, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, _ in ops:
        if tag == "equal":
            for t in range(i2 - i1):
                new_block[j1 + t] = lines[match.start + i1 + t]


def is_deletion(search: Sequence[str], replace: Sequence[str]) -> bool:
    """REPLACE's lines are SEARCH's lines with some left out: the edit only deletes."""
    kept = iter([squash(s) for s in search])
    return len(replace) < len(search) and all(squash(r) in kept for r in replace)


def deletion_applied(lines: Sequence[str], search: Sequence[str], replace: Sequence[str]) -> bool:
    """Whether a deletion whose REPLACE is in the file was applied, not misquoted.

    Finding REPLACE proves nothing by itself: the kept lines were in the file before the edit
    too. It does when the deleted lines were bracketed by kept lines with text on both sides
    (or by the file's start or end, where REPLACE is found), and one side occurs only at
    REPLACE's place: the edit can only mean that place, and there nothing is left between them.
    """
    squashed = [squash(x) for x in search]
    matcher = difflib.SequenceMatcher(None, squashed, [squash(x) for x in replace], autojunk=False)
    gone = [i for tag, i1, i2, _, _ in matcher.get_opcodes() if tag != "equal"
            for i in range(i1, i2)]
    at = find_block(lines, replace).match
    if not gone or at is None:
        return False
    before, after = list(search[: gone[0]]), list(search[gone[-1] + 1 :])
    has_before, has_after = any(x.strip() for x in before), any(x.strip() for x in after)
    if not (has_before or at.start == 0) or not (has_after or at.end == len(lines)):
        return False
    if not has_before and not has_after:
        return True  # REPLACE is the whole file
    first = find_block(lines, before).match if has_before else None
    last = find_block(lines, after).match if has_after else None
    return (first is not None and first.start == at.start) or (last is not None and
                                                               last.end == at.end)


def hunk_ops(edit: Edit, search: Sequence[str], replace: Sequence[str]) -> list[str]:
    """The hunk's line tags (" ", "-", "+"): as the diff wrote them, else worked out by difflib."""
    ops = list(edit.hunk_ops)
    if ops.count(" ") + ops.count("-") == len(search) and \
            ops.count(" ") + ops.count("+") == len(replace):
        return ops
    worked: list[str] = []
    matcher = difflib.SequenceMatcher(None, list(search), list(replace), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            worked += [" "] * (i2 - i1)
        else:
            worked += ["-"] * (i2 - i1) + ["+"] * (j2 - j1)
    return worked


def rebase_blanks(file_span: Sequence[str], search: Sequence[str], replace: Sequence[str],
                   ops: Sequence[str]) -> list[str] | None:
    """Apply a hunk to the file lines it matched ignoring blank lines.

    Context keeps the file's own lines; a blank line only the hunk has is dropped; a blank line
    only the file has is kept. None when that blank line sits where lines are added, or between
    removed lines: whether it goes before or after them, or goes too, is a guess.
    """
    kept: list[bool] = []
    inserts: dict[int, list[str]] = {}
    added = iter(replace)
    for op in ops:
        if op == "+":
            inserts.setdefault(len(kept), []).append(next(added))
        else:
            kept.append(op == " ")
            if op == " ":
                next(added)
    out: list[str] = []
    i = k = 0
    while i < len(search) or k < len(file_span):
        s_blank = i < len(search) and not search[i].strip()
        f_blank = k < len(file_span) and not file_span[k].strip()
        if i < len(search) and (k >= len(file_span) or s_blank == f_blank):
            out += inserts.pop(i, [])
            if kept[i] and k < len(file_span):
                out.append(file_span[k])
            i, k = i + 1, k + 1
        elif i < len(search) and s_blank:
            out += inserts.pop(i, [])
            i += 1  # a blank line only the hunk has
        else:  # a blank line only the file has
            removed_around = 0 < i < len(search) and not kept[i - 1] and not kept[i]
            if inserts.get(i) or removed_around:
                return None
            out.append(file_span[k])
            k += 1
    for rest in inserts.values():
        out += rest
    return out


def trim_blank_ends(search: list[str], replace: list[str]) -> tuple[list[str], list[str]]:
    """Drop blank lines at the ends of a SEARCH (and the matching ones of its REPLACE)."""
    s, r = list(search), list(replace)
    while s and not s[0].strip():
        s.pop(0)
        if r and not r[0].strip():
            r.pop(0)
    while s and not s[-1].strip():
        s.pop()
        if r and not r[-1].strip():
            r.pop()
    return s, r
