"""Find where a block of lines sits in a file: exact, whitespace-tolerant, re-indented, re-scaled.

A match must be unique at the first level that finds anything; several are reported back
as candidates, never guessed between.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

Level = Literal["exact", "whitespace", "indentation", "rescaled"]
LEVELS: tuple[Level, ...] = ("exact", "whitespace", "indentation", "rescaled")


@dataclass(frozen=True)
class Match:
    """Lines [start, end) of the file (0-based) match; replacement lines shift by `indent` chars."""

    start: int
    end: int
    level: Level
    indent: int = 0
    indent_char: str = " "
    scale: Fraction = Fraction(1)  # "rescaled": file width = scale * block width + indent


@dataclass(frozen=True)
class Search:
    """The outcome of looking for a block: one match, several candidates, or nothing."""

    match: Match | None = None
    candidates: tuple[int, ...] = field(default_factory=tuple)  # 0-based starts when ambiguous


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def squash(line: str) -> str:
    """A line with its whitespace runs collapsed, for tolerant comparison."""
    return " ".join(line.split())


def _exact(a: str, b: str) -> bool:
    return a == b


def _rstrip(a: str, b: str) -> bool:
    return a.rstrip() == b.rstrip()


def _at(lines: Sequence[str], block: Sequence[str], start: int, same: Callable[[str, str], bool]) -> bool:
    return all(same(lines[start + k], block[k]) for k in range(len(block)))


def _content_pairs(lines: Sequence[str], block: Sequence[str], start: int) -> list[tuple[str, str]] | None:
    """(file line, block line) for the block's non-blank lines at `start`, if all but indentation agree.

    Blank lines must line up, and each pair must be equal once whitespace runs are squashed.
    """
    pairs: list[tuple[str, str]] = []
    for k, want in enumerate(block):
        have = lines[start + k]
        if not have.strip() or not want.strip():
            if have.strip() or want.strip():
                return None
            continue
        if squash(have) != squash(want):
            return None
        pairs.append((have, want))
    return pairs


def _indent_shift(lines: Sequence[str], block: Sequence[str], start: int) -> tuple[int, str] | None:
    """The one indentation shift that makes the block equal the file at `start`, if any."""
    pairs = _content_pairs(lines, block, start)
    if pairs is None:
        return None
    shift: int | None = None
    char = " "
    for have, want in pairs:
        delta = len(_indent(have)) - len(_indent(want))
        if shift is None:
            shift = delta
            char = "\t" if _indent(have).startswith("\t") else " "
        elif delta != shift:
            return None
    return (shift or 0), char


def _indent_scale(lines: Sequence[str], block: Sequence[str], start: int) -> tuple[Fraction, int, str] | None:
    """One linear map of indentation widths (2 spaces -> 4, spaces -> tabs) from block to file."""
    content = _content_pairs(lines, block, start)
    if content is None:
        return None
    pairs: list[tuple[int, int]] = []
    chars: set[str] = set()
    for have, want in content:
        hi, wi = _indent(have), _indent(want)
        if len(set(hi)) > 1 or len(set(wi)) > 1:
            return None  # mixed tabs and spaces in one indentation: no safe mapping
        chars.update(hi)
        pairs.append((len(hi), len(wi)))
    if len(chars) > 1 or len({w for _, w in pairs}) < 2:
        return None
    (f1, w1) = pairs[0]
    f2, w2 = next((f, w) for f, w in pairs if w != w1)
    scale = Fraction(f2 - f1, w2 - w1)
    offset = f1 - scale * w1
    if scale <= 0 or offset.denominator != 1 or any(f != scale * w + offset for f, w in pairs):
        return None
    return scale, int(offset), (chars.pop() if chars else " ")


def _starts(lines: Sequence[str], block: Sequence[str], after: int) -> range:
    return range(after, len(lines) - len(block) + 1)


def find_block(
    lines: Sequence[str], block: Sequence[str], *, after: int = 0, hint: int | None = None
) -> Search:
    """Look for `block` in `lines` from line `after` on, level by level.

    With several matches at one level, `hint` (a 0-based start a diff header gave) picks the
    match that starts exactly there; otherwise every candidate is returned and none is chosen.
    """
    if not block:
        return Search()
    first = block[0]
    k0 = next((k for k, b in enumerate(block) if b.strip()), None)
    for level in LEVELS:
        if level in ("indentation", "rescaled") and k0 is None:
            break
        key = squash(block[k0]) if k0 is not None else ""
        found: list[Match] = []
        for start in _starts(lines, block, after):
            if level == "exact":
                if lines[start] == first and _at(lines, block, start, _exact):
                    found.append(Match(start, start + len(block), level))
            elif level == "whitespace":
                if lines[start].rstrip() == first.rstrip() and _at(lines, block, start, _rstrip):
                    found.append(Match(start, start + len(block), level))
            elif squash(lines[start + (k0 or 0)]) != key:
                continue
            elif level == "indentation":
                shift = _indent_shift(lines, block, start)
                if shift is not None:
                    found.append(Match(start, start + len(block), level, shift[0], shift[1]))
            else:
                scaled = _indent_scale(lines, block, start)
                if scaled is not None:
                    found.append(Match(start, start + len(block), level, scaled[1], scaled[2],
                                       scaled[0]))
        if len(found) == 1:
            return Search(found[0])
        if len(found) > 1:
            exact = [m for m in found if hint is not None and m.start == hint]
            if len(exact) == 1:
                return Search(exact[0])
            return Search(None, tuple(m.start for m in found))
    return Search()


def find_ignoring_blanks(
    lines: Sequence[str], block: Sequence[str], *, after: int = 0, hint: int | None = None
) -> Search:
    """Where `block`'s non-blank lines sit in `lines` with only blank lines between them, the
    block's own blank lines (extra, or missing where the file has some) aside.

    Lines compare ignoring trailing whitespace. The match spans the first to the last matched
    non-blank line; several placements are returned as candidates (`hint` may pick one).
    """
    wanted = [b.rstrip() for b in block if b.strip()]
    if not wanted:
        return Search()
    found: list[Match] = []
    for start in range(after, len(lines)):
        if lines[start].rstrip() != wanted[0]:
            continue
        at, k = start, 1
        while k < len(wanted):
            at += 1
            while at < len(lines) and not lines[at].strip():
                at += 1
            if at >= len(lines) or lines[at].rstrip() != wanted[k]:
                break
            k += 1
        if k == len(wanted):
            found.append(Match(start, at + 1, "whitespace"))
    if len(found) == 1:
        return Search(found[0])
    exact = [m for m in found if hint is not None and m.start == hint]
    if len(exact) == 1:
        return Search(exact[0])
    return Search(None, tuple(m.start for m in found))


def reindent(block: Sequence[str], match: Match) -> list[str] | None:
    """Shift a replacement's indentation the way the matched text was; None if it cannot be."""
    if match.level == "rescaled":
        out = []
        for line in block:
            width = match.scale * len(_indent(line)) + match.indent
            if not line.strip():
                out.append("")
            elif width.denominator != 1 or width < 0:
                return None
            else:
                out.append(match.indent_char * int(width) + line.lstrip())
        return out
    if match.level != "indentation" or match.indent == 0:
        return list(block)
    out = []
    for line in block:
        if not line.strip():
            out.append(line)
        elif match.indent > 0:
            out.append(match.indent_char * match.indent + line)
        else:
            cut = min(-match.indent, len(_indent(line)))
            out.append(line[cut:])
    return out


def closest_lines(
    lines: Sequence[str], block: Sequence[str], *, hint: int | None = None, limit: int = 12
) -> tuple[int, list[str]] | None:
    """The file window (0-based start, its lines) most like `block`, or None when nothing is alike."""
    if not lines or not block:
        return None
    wanted = [squash(b) for b in block]
    have = [squash(line) for line in lines]
    width = min(len(block), len(lines))
    present = set(w for w in wanted if w)
    best: tuple[int, int] | None = None  # (score, -distance), start
    best_start = 0
    for start in range(0, len(lines) - width + 1):
        if not any(have[start + k] in present for k in range(width)):
            continue
        score = sum(1 for k in range(width) if have[start + k] == wanted[k] and wanted[k])
        score += sum(1 for k in range(width) if have[start + k] in present and have[start + k])
        distance = abs(start - hint) if hint is not None else 0
        key = (score, -distance)
        if best is None or key > best:
            best, best_start = key, start
    if best is None:
        import difflib

        target = next((w for w in wanted if w), "")
        close = difflib.get_close_matches(target, have, n=1, cutoff=0.6)
        if not close:
            return None
        best_start = max(0, have.index(close[0]))
    # a line of context either side shows the model where the text really sits
    start = max(0, best_start - 1)
    end = min(len(lines), best_start + min(width, limit) + 1)
    return start, list(lines[start:end])


def indent_unit(lines: Sequence[str]) -> int | None:
    """The usual indentation step of some lines (4 for 4-space code, 1 for tabs); None if unclear."""
    from collections import Counter
    from itertools import pairwise

    widths = [len(_indent(line)) for line in lines if line.strip()]
    steps = Counter(abs(b - a) for a, b in pairwise(widths) if a != b)
    ranked = steps.most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def settle_shift(lines: Sequence[str], block: Sequence[str], replace: Sequence[str],
                 match: Match) -> Match | None:
    """Decide a one-width block's shift: it says nothing about the indentation unit.

    A SEARCH whose lines share one indentation matches shifted at any unit, so deeper
    REPLACE lines are mapped with the ratio of the file's unit to the reply's; None when
    either unit is unclear (refuse rather than guess).
    """
    widths = {len(_indent(b)) for b in block if b.strip()}
    others = {len(_indent(r)) for r in replace if r.strip()} - widths
    if match.level != "indentation" or match.indent == 0 or len(widths) != 1 or not others:
        return match
    file_unit = indent_unit(lines)
    reply_unit = indent_unit([*block, *replace])
    if file_unit is None or reply_unit is None:
        return None
    scale = Fraction(file_unit, reply_unit)
    if scale == 1:
        return match
    (w0,) = widths
    file_width = w0 + match.indent
    offset = file_width - scale * w0
    if offset.denominator != 1:
        return None
    return Match(match.start, match.end, "rescaled", int(offset), match.indent_char, scale)
