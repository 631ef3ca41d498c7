"""Excerpts of files too large to go in whole: the definitions that match the question in full,
the same file's definitions that call them, the lines of other files that use them, and an
outline of the rest."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

from gemma_code.context.rank import Question
from gemma_code.context.tags import DefRow, FileTags, split_words, stem

MAX_USES = 12  # lines of other files shown as using the excerpt's matches
COMMON_USES = 40  # a name used on more lines than this is too common to say anything
MAX_USE_CHARS = 160
MAX_DEF_LINES = 250  # a longer definition is not taken whole (its parts may be)
MAX_CLASS_LINES = 80  # a longer class is represented by its methods
_WORD = re.compile(r"[^\W\d]\w*")
_DEFINES = re.compile(r"^\s*(?:async\s+)?(?:def|class|function|fn|func|interface|struct|type)\s")


def _score(row: DefRow, lines: list[str], words: set[str], names: set[str]) -> float:
    name, _, start, end, _ = row
    body = "\n".join(lines[start - 1 : end])
    found = {stem(w) for token in set(_WORD.findall(body)) for w in split_words(token)}
    score = float(len(words & found))
    if name in names:
        score += 4.0
    elif {stem(w) for w in split_words(name)} & words:
        score += 1.0
    return score / (1.0 + math.log(1 + end - start))


def _candidates(tags: FileTags) -> list[DefRow]:
    out = []
    for row in tags.rows:
        _, kind, start, end, _ = row
        span = end - start + 1
        if span > MAX_DEF_LINES or (kind in ("class", "struct", "interface", "impl", "module")
                                     and span > MAX_CLASS_LINES):
            continue
        out.append(row)
    return out


def _overlaps(row: DefRow, chosen: list[DefRow]) -> bool:
    return any(row[2] <= c[3] and c[2] <= row[3] for c in chosen)


def excerpt_block(
    path: str,
    text: str,
    tags: FileTags,
    question: Question,
    room: int,
    count: Callable[[str], int],
    fence: Callable[[str, str], str],
    lang: str = "",
    uses: Callable[[list[str]], Sequence[tuple[str, int, str]]] | None = None,
) -> tuple[str, tuple[str, ...], int]:
    """(block, names shown in full, tokens) within `room` tokens; ("", (), 0) when nothing matches.

    `uses(names)`: lines of the repository using any of `names` as a word (path, line, text);
    those outside this file that are not definitions are shown after the parts, when they fit.
    """
    lines = text.split("\n")
    words = {w for w in question.words if not w.startswith("=")}
    names = set(question.identifiers)
    scored = [(s, row) for row in _candidates(tags) if (s := _score(row, lines, words, names)) > 0]
    scored.sort(key=lambda t: (-t[0], t[1][2]))
    chosen: list[DefRow] = []
    for _, row in scored[:12]:
        if not _overlaps(row, chosen):
            chosen.append(row)
    if not chosen:
        return "", (), 0
    # the same file's callers of what was chosen, after the matches themselves
    picked = {row[0] for row in chosen}
    for row in _candidates(tags):
        if len(chosen) >= 16:
            break
        if row in chosen or _overlaps(row, chosen):
            continue
        body = "\n".join(lines[row[2] - 1 : row[3]])
        if any(re.search(rf"\b{re.escape(n)}\b", body) for n in picked):
            chosen.append(row)
    used = _uses_elsewhere(path, sorted(picked), uses) if uses is not None else []
    # the most relevant parts that fit without the outline, then the uses elsewhere and as much
    # outline as fits
    ordered = list(chosen)
    while ordered:
        parts = sorted(ordered, key=lambda r: r[2])
        rest = [r for r in tags.rows if not _overlaps(r, parts)]
        # outline rows nearest the parts shown first, when not all of them fit
        rest.sort(key=lambda r: (min(abs(r[2] - c[2]) for c in parts), r[2]))
        for shown_uses in dict.fromkeys((len(used), 0)):
            keep = len(rest)
            while True:
                block = _render(path, lines, tags, parts, rest[:keep], fence, lang, used[:shown_uses])
                tokens = count(block)
                if tokens <= room:
                    return block, tuple(r[0] for r in ordered), tokens
                if keep == 0:
                    break
                keep //= 2
        ordered.pop()  # the least relevant part goes first
    return "", (), 0


def _uses_elsewhere(
    path: str, names: list[str], uses: Callable[[list[str]], Sequence[tuple[str, int, str]]],
) -> list[str]:
    """`other/path.py:12: line` for lines of other files that use the names (not define them)."""
    names = [n for n in names if len(n) >= 3 and n.isidentifier()]
    if not names:
        return []
    found = list(uses(names))
    words = {n: re.compile(rf"\b{re.escape(n)}\b") for n in names}
    per_name: dict[str, int] = {n: 0 for n in names}
    for _, _, text in found:
        for name, pattern in words.items():
            if pattern.search(text):
                per_name[name] += 1
    common = {n for n, hits in per_name.items() if hits > COMMON_USES}
    out: list[str] = []
    for other, line, text in found:
        if other == path or _DEFINES.match(text):
            continue
        if not any(words[n].search(text) for n in names if n not in common):
            continue
        snippet = text.strip()
        if len(snippet) > MAX_USE_CHARS:
            snippet = snippet[: MAX_USE_CHARS - 3] + "..."
        out.append(f"{other}:{line}: {snippet}")
        if len(out) >= MAX_USES:
            break
    return out


def _render(
    path: str, lines: list[str], tags: FileTags, chosen: list[DefRow], rest: list[DefRow],
    fence: Callable[[str, str], str], lang: str, used: Sequence[str] = (),
) -> str:
    left_out = len(tags.rows) - len(rest) - len(chosen)
    parts = [f"### {path} (excerpt: {len(chosen)} definitions in full, then an outline of the rest; "
             f"{tags.lines} lines)\n"]
    for _, _, start, end, _ in chosen:
        parts.append(f"lines {start}-{end}:\n" + fence("\n".join(lines[start - 1 : end]).rstrip(), lang))
    if used:
        parts.append("used in other files (path:line: text):\n" + fence("\n".join(used), ""))
    if rest:
        rest = sorted(rest, key=lambda r: r[2])
        width = len(str(rest[-1][2]))
        rows, last = [], -1
        for _, _, line, _, signature in rest:
            if line != last:
                rows.append(f"{line:>{width}}: {signature}")
                last = line
        more = f" ({left_out} more not shown)" if left_out > 0 else ""
        parts.append(f"outline of the rest (line: signature){more}:\n" + fence("\n".join(rows), ""))
    return "".join(parts) + "\n"
