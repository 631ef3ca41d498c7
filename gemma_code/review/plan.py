"""Split a change into model calls: per file, by hunk, within token budgets, capped per run."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from gemma_code.review.changes import (
    FileChange,
    Hunk,
    Line,
    render_change,
    render_hunk_header,
    render_line,
    skip_reason,
)

MAX_FILES = 60  # files reviewed per run; the rest are listed as skipped
MAX_TOTAL_TOKENS = 49152  # diff tokens per run
MAX_FILE_TOKENS = 24576  # diff tokens per file: one huge file must not crowd out the others
CHECK_EVERY = 256  # lines between two deadline checks while a big diff is cut up
LINE_CUT = " …[line cut]"


def _no_deadline() -> None:
    return None


def _cut_line(line: Line, cost: int, room: int, count_tokens: Callable[[str], int]) -> tuple[Line, int]:
    """A line too long for any request (minified code, data), shortened to about `room` tokens."""
    text = line.text
    while cost > room and len(text) > 16:
        text = text[: max(16, len(text) * room // (cost + 1))]
        cut = Line(line.kind, text + LINE_CUT, line.new)
        cost = count_tokens(render_line(cut)) + 1
    return Line(line.kind, text + LINE_CUT, line.new), cost


def _regroup(flat: list[tuple[Hunk, Line]]) -> list[Hunk]:
    out: list[Hunk] = []
    source: Hunk | None = None
    for hunk, line in flat:
        if hunk is not source:
            out.append(Hunk(hunk.header, []))
            source = hunk
        out[-1].lines.append(line)
    return out


def _halves(piece: list[Hunk]) -> tuple[list[Hunk], list[Hunk]]:
    flat = [(h, ln) for h in piece for ln in h.lines]
    return _regroup(flat[: len(flat) // 2]), _regroup(flat[len(flat) // 2 :])


def _pieces(
    change: FileChange, count_tokens: Callable[[str], int], limit: int, budget: int,
    check: Callable[[], None],
) -> tuple[list[list[Hunk]], int, int]:
    """Consecutive pieces of a file's hunks, each of at most `limit` tokens, until `budget` tokens.

    Linear in the diff: each line is rendered and counted once, and counting stops at the
    budget, so a 4 MB file costs no more than the part that is reviewed. Returns the pieces,
    the number of diff lines they hold and the file's number of diff lines.
    """
    head = count_tokens(render_change(change, []))
    total_lines = sum(len(h.lines) for h in change.hunks)
    pieces: list[list[Hunk]] = []
    cur: list[Hunk] = []
    used, spent, taken, seen = head, 0, 0, 0

    def close() -> None:
        nonlocal cur, used, spent
        if cur:
            pieces.append(cur)
            spent += used
        cur, used = [], head

    for hunk in change.hunks:
        header_cost = count_tokens(render_hunk_header(hunk)) + 1
        part: Hunk | None = None
        for line in hunk.lines:
            seen += 1
            if seen % CHECK_EVERY == 0:
                check()
            cost = count_tokens(render_line(line)) + 1
            room = max(limit - head - header_cost, 1)
            if cost > room:
                line, cost = _cut_line(line, cost, room, count_tokens)
            extra = cost + (header_cost if part is None else 0)
            if cur and used + extra > limit:
                close()
                part, extra = None, cost + header_cost
            if spent + used + extra > budget:
                close()
                return pieces, taken, total_lines
            if part is None:
                part = Hunk(hunk.header, [])
                cur.append(part)
                used += header_cost
            part.lines.append(line)
            used += cost
            taken += 1
    close()
    return pieces, taken, total_lines


def _fitted(change: FileChange, piece: list[Hunk], count_tokens: Callable[[str], int], limit: int,
            check: Callable[[], None]) -> list[tuple[str, int]]:
    """The piece's text and its real token count, halved while the whole counts over `limit`
    (the sum of per-line counts is only an estimate of it)."""
    check()
    text = render_change(change, piece)
    tokens = count_tokens(text)
    lines = sum(len(h.lines) for h in piece)
    if tokens <= limit or lines < 2:
        return [(text, tokens)]
    first, second = _halves(piece)
    return (_fitted(change, first, count_tokens, limit, check)
            + _fitted(change, second, count_tokens, limit, check))


def plan_requests(
    changes: Sequence[FileChange], count_tokens: Callable[[str], int], *, per_request: int,
    total: int = MAX_TOTAL_TOKENS, max_files: int = MAX_FILES, per_file: int = MAX_FILE_TOKENS,
    check: Callable[[], None] = _no_deadline,
) -> tuple[list[tuple[list[str], str]], list[str], list[tuple[str, str]], list[str]]:
    """Group file diffs into requests of at most `per_request` tokens; split big files by line.

    A file's diff beyond `per_file` tokens, or beyond what is left of `total`, is reviewed in
    part, with a notice. `check` is called regularly and may raise to stop at a deadline.
    Returns (requests as (paths, text)), reviewed paths, skipped (path, reason), notices.
    """
    requests: list[tuple[list[str], str]] = []
    reviewed: list[str] = []
    skipped: list[tuple[str, str]] = []
    notices: list[str] = []
    cur_paths: list[str] = []
    cur_parts: list[str] = []
    cur_tokens = spent = 0

    def flush() -> None:
        nonlocal cur_paths, cur_parts, cur_tokens
        if cur_parts:
            requests.append((cur_paths, "\n".join(cur_parts)))
        cur_paths, cur_parts, cur_tokens = [], [], 0

    for change in changes:
        check()
        reason = skip_reason(change)
        if reason:
            skipped.append((change.path, reason))
            continue
        if len(reviewed) >= max_files or spent >= total:
            skipped.append((change.path, "over the review cap"))
            continue
        budget = min(total - spent, per_file)
        pieces, taken, lines = _pieces(change, count_tokens, per_request, budget, check)
        if not pieces:
            skipped.append((change.path, "over the review cap"))
            continue
        for piece in pieces:
            for text, tokens in _fitted(change, piece, count_tokens, per_request, check):
                if cur_tokens + tokens > per_request:
                    flush()
                if change.path not in cur_paths:
                    cur_paths.append(change.path)
                cur_parts.append(text)
                cur_tokens += tokens
                spent += tokens
        if taken < lines:
            why = "review cap" if budget < per_file else "per-file limit"
            notices.append(f"{change.path}: only part of this diff was reviewed (the first {taken:,} "
                           f"of {lines:,} diff lines; {why}); the rest was not reviewed")
        reviewed.append(change.path)
    flush()
    if any(reason == "over the review cap" for _, reason in skipped):
        notices.append(
            f"the change is large: {sum(r == 'over the review cap' for _, r in skipped)} file(s) "
            "were not reviewed (review them with `gemma-code review FILES`)"
        )
    return requests, reviewed, skipped, notices


_SYMBOL = re.compile(r"\b(?:def|class|func|fn|function|struct|interface|type|impl)\s+([A-Za-z_]\w*)")


def change_symbols(changes: Sequence[FileChange], limit: int = 200) -> list[str]:
    """Names of the functions and classes a change touches (hunk headers and added definitions),
    the first `limit` of them: a huge diff stops early instead of collecting every name."""
    names: dict[str, None] = {}
    for change in changes:
        for hunk in change.hunks:
            texts = [hunk.header] + [ln.text for ln in hunk.lines if ln.kind == "+"]
            for text in texts:
                for name in _SYMBOL.findall(text):
                    names.setdefault(name)
                    if len(names) >= limit:
                        return list(names)
    return list(names)
