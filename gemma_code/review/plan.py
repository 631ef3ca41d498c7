"""Split a change into model calls: per file, by hunk, within token budgets, capped per run."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from gemma_code.review.changes import FileChange, Hunk, render_change, skip_reason

MAX_FILES = 60  # files reviewed per run; the rest are listed as skipped
MAX_TOTAL_TOKENS = 49152  # diff tokens per run


def _split_hunk(hunk: Hunk, fits: Callable[[list[Hunk]], bool]) -> list[Hunk]:
    """Consecutive pieces of a hunk too big for one request, each the longest that fits."""
    pieces: list[Hunk] = []
    rest = hunk.lines
    while rest:
        lo, hi = 1, len(rest)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits([Hunk(hunk.header, rest[:mid])]):
                lo = mid
            else:
                hi = mid - 1
        pieces.append(Hunk(hunk.header, rest[:lo]))
        rest = rest[lo:]
    return pieces


def plan_requests(
    changes: Sequence[FileChange], count_tokens: Callable[[str], int], *, per_request: int,
    total: int = MAX_TOTAL_TOKENS, max_files: int = MAX_FILES,
) -> tuple[list[tuple[list[str], str]], list[str], list[tuple[str, str]], list[str]]:
    """Group file diffs into requests of at most `per_request` tokens; split big files by hunk.

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
        reason = skip_reason(change)
        if reason:
            skipped.append((change.path, reason))
            continue
        if len(reviewed) >= max_files or spent >= total:
            skipped.append((change.path, "over the review cap"))
            continue

        def fits(hunks: list[Hunk], change: FileChange = change) -> bool:
            return count_tokens(render_change(change, hunks)) <= per_request

        pieces: list[list[Hunk]] = [[]]
        for whole in change.hunks:
            for hunk in [whole] if fits([whole]) else _split_hunk(whole, fits):
                if pieces[-1] and not fits([*pieces[-1], hunk]):
                    pieces.append([])
                pieces[-1].append(hunk)
        for piece in pieces:
            text = render_change(change, piece)
            tokens = count_tokens(text)
            if spent + tokens > total:
                notices.append(f"{change.path}: only part of this diff was reviewed (review cap)")
                break
            if cur_tokens + tokens > per_request:
                flush()
            if change.path not in cur_paths:
                cur_paths.append(change.path)
            cur_parts.append(text)
            cur_tokens += tokens
            spent += tokens
        reviewed.append(change.path)
    flush()
    if any(reason == "over the review cap" for _, reason in skipped):
        notices.append(
            f"the change is large: {sum(r == 'over the review cap' for _, r in skipped)} file(s) "
            "were not reviewed (review them with `gemma-code review FILES`)"
        )
    return requests, reviewed, skipped, notices


_SYMBOL = re.compile(r"\b(?:def|class|func|fn|function|struct|interface|type|impl)\s+([A-Za-z_]\w*)")


def change_symbols(changes: Sequence[FileChange]) -> list[str]:
    """Names of the functions and classes a change touches (hunk headers and added definitions)."""
    names: list[str] = []
    for change in changes:
        for hunk in change.hunks:
            texts = [hunk.header] + [ln.text for ln in hunk.lines if ln.kind == "+"]
            for text in texts:
                for name in _SYMBOL.findall(text):
                    if name not in names:
                        names.append(name)
    return names
