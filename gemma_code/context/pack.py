"""Pack ranked files into a token budget: a stable repository map, then files in full, then outlines.

Layout (see docs/context.md for why): the map section depends only on the repository, so it is a
byte-identical prefix across questions; the question's files follow, most relevant first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gemma_code.context.tags import FileTags, decode
from gemma_code.context.tokens import TokenCounter

MAP_SHARE = 0.10  # of the budget, for the directory tree
MAP_MAX = 8_000
MAP_MIN_BUDGET = 1_500  # below this the tree is not worth its tokens
FULL_SHARE = 0.70  # of what is left after the map, for whole files; outlines get the rest
BATCH = 24
MAX_SCANNED = 3_000  # candidates looked at while filling; beyond, the budget is full of outlines
MAX_CHARS_PER_TOKEN = 10  # above the densest text seen (Gemma 4: under 5 on Django)
MAX_MISSES = 96  # consecutive candidates that did not fit: what is left is too small to use
FENCE_LANG = {"python": "python", "javascript": "javascript", "typescript": "typescript",
              "tsx": "tsx", "go": "go", "rust": "rust", "java": "java", "c": "c", "cpp": "cpp",
              "csharp": "csharp", "ruby": "ruby", "php": "php"}


@dataclass(frozen=True)
class PackedFile:
    """One file in the packed context."""

    path: str
    tokens: int
    mode: str  # "full" | "outline"


@dataclass
class PackedContext:
    """The rendered context block and what went into it."""

    text: str
    budget: int
    used: int
    files: list[PackedFile] = field(default_factory=list)  # most relevant first
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    estimated: bool = False
    map_tokens: int = 0
    ranked: int = 0  # files that were ranked
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "budget": self.budget,
            "used": self.used,
            "files": [{"path": f.path, "tokens": f.tokens, "mode": f.mode} for f in self.files],
            "estimated": self.estimated,
            "map_tokens": self.map_tokens,
            "ranked": self.ranked,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "notes": list(self.notes),
            "elapsed_s": round(self.elapsed_s, 3),
        }


def fence(text: str, lang: str = "") -> str:
    """Text in a fenced block whose fence outgrows any fence inside it."""
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text}\n{ticks}\n"


def full_block(path: str, text: str, lang: str) -> str:
    """A whole file headed by its path."""
    return f"### {path}\n{fence(text.rstrip(), FENCE_LANG.get(lang, ''))}\n"


def outline_block(path: str, tags: FileTags) -> str:
    """A file's definitions as `line: signature`, headed by its path ("" when it defines nothing)."""
    if not tags.definitions:
        return ""
    width = len(str(tags.definitions[-1].line))
    rows = []
    last = -1
    for tag in tags.definitions:
        if tag.line == last:
            continue  # two captures on one line (a name and its decorator target) print once
        last = tag.line
        rows.append(f"{tag.line:>{width}}: {tag.text}")
    return f"### {path} (outline: {tags.lines} lines; line: signature)\n{fence(chr(10).join(rows))}\n"


def _tree_entries(paths: Sequence[str]) -> list[tuple[int, bool, str, int]]:
    """(depth, is_folder, name, files below) for every folder and file, in tree order."""
    counts: dict[str, int] = {}
    for path in paths:
        parts = path.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            counts[folder] = counts.get(folder, 0) + 1
    entries: list[tuple[int, bool, str, int]] = []
    shown: set[str] = set()
    for path in paths:
        parts = path.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder not in shown:
                shown.add(folder)
                entries.append((i - 1, True, parts[i - 1], counts[folder]))
        entries.append((len(parts) - 1, False, parts[-1], 1))
    return entries


def _render(entries: Sequence[tuple[int, bool, str, int]], depth: int) -> str:
    lines = []
    for level, folder, name, count in entries:
        if level > depth:
            continue
        if folder:
            suffix = f" ({count} files)" if level == depth else ""
            lines.append("  " * level + name + "/" + suffix)
        else:
            lines.append("  " * level + name)
    return "\n".join(lines)


def _count_some(counter: TokenCounter, blocks: Sequence[str], wanted: Sequence[bool]) -> list[int]:
    """Exact counts of the wanted blocks in one batch; 0 for the others."""
    counts = iter(counter.count_many([b for b, w in zip(blocks, wanted, strict=True) if w]))
    return [next(counts) if w else 0 for w in wanted]


def map_block(paths: Sequence[str], room: int, counter: TokenCounter) -> tuple[str, int]:
    """The repository map: the deepest directory tree that fits in `room` tokens."""
    if room <= 0 or not paths:
        return "", 0
    ordered = sorted(paths)
    entries = _tree_entries(ordered)
    deepest = max(e[0] for e in entries)
    head = (
        f"## Repository map ({len(ordered)} files)\n"
        "Files below are marked `### path`; outlines list `line: signature`.\n"
    )
    sizes = [0] * (deepest + 1)  # characters of the tree cut at each depth, roughly
    for level, _, name, _ in entries:
        for d in range(level, deepest + 1):
            sizes[d] += 2 * level + len(name) + 14
    for depth in range(deepest, -1, -1):
        # a tree of over ~3 characters per token of room cannot fit: skip the tokenizer
        if sizes[depth] + len(head) > room * 3.5:
            continue
        block = head + fence(_render(entries, depth)) + "\n"
        tokens = counter.count(block)
        if tokens <= room:
            return block, tokens
    return "", 0


def pack(
    root: Path,
    order: Sequence[str],
    docs: Mapping[str, FileTags],
    *,
    budget: int,
    counter: TokenCounter,
    named: Sequence[str] = (),
    all_paths: Sequence[str] | None = None,
    contents: Mapping[str, bytes] | None = None,
) -> PackedContext:
    """Fill `budget` tokens: the map, then files in rank order in full, then as outlines.

    `contents` replaces some files' bytes (staged versions); those are shown in full or not at
    all, since their outlines were taken from the work tree.
    """
    given = contents or {}
    result = PackedContext(text="", budget=budget, used=0, estimated=counter.estimated)
    map_room = min(int(budget * MAP_SHARE), MAP_MAX) if budget >= MAP_MIN_BUDGET else 0
    map_text, map_tokens = map_block(all_paths if all_paths is not None else list(docs), map_room, counter)
    left = budget - map_tokens
    full_room = int(left * FULL_SHARE)
    named_set = set(named)
    chosen: list[tuple[str, str, int, str]] = []  # (path, mode, tokens, block)
    scanned = misses = 0
    for start in range(0, len(order), BATCH):
        # stop when full, or when a long run of candidates no longer fits in what is left
        if left <= 16 or scanned >= MAX_SCANNED or misses >= MAX_MISSES:
            break
        batch = order[start : start + BATCH]
        scanned += len(batch)
        fulls: list[str] = []
        for path in batch:
            try:
                text = decode(given[path] if path in given else (root / path).read_bytes())
            except OSError as exc:
                result.skipped.append((path, f"unreadable ({exc.strerror})"))
                text = ""
            fulls.append(full_block(path, text, docs[path].lang) if text else "")
        # exact counts only where they can matter: a block that cannot fit even at the densest
        # tokenization seen is not sent to the tokenizer (the costly part of a cold run)
        fit_full = [
            bool(b) and len(b) <= MAX_CHARS_PER_TOKEN * (left if path in named_set else full_room)
            for path, b in zip(batch, fulls, strict=True)
        ]
        full_tokens = _count_some(counter, fulls, fit_full)
        outlines = ["" if path in given else outline_block(path, docs[path]) for path in batch]
        fit_outline = [
            bool(o) and (not fit_full[i] or full_tokens[i] > full_room)
            and len(o) <= MAX_CHARS_PER_TOKEN * left
            for i, o in enumerate(outlines)
        ]
        outline_tokens = _count_some(counter, outlines, fit_outline)
        for i, path in enumerate(batch):
            room = left if path in named_set else full_room
            if fit_full[i] and full_tokens[i] <= min(room, left):
                chosen.append((path, "full", full_tokens[i], fulls[i]))
                left -= full_tokens[i]
                full_room = max(full_room - full_tokens[i], 0)
                misses = 0
                continue
            tokens = outline_tokens[i]
            if outlines[i] and not fit_outline[i] and len(outlines[i]) <= MAX_CHARS_PER_TOKEN * left:
                tokens = counter.count(outlines[i])  # its whole file stopped fitting within this batch
                fit_outline[i] = True
            if fit_outline[i] and tokens <= left:
                chosen.append((path, "outline", tokens, outlines[i]))
                left -= tokens
                misses = 0
            else:
                misses += 1
    result.map_tokens = map_tokens
    result.files = [PackedFile(p, t, m) for p, m, t, _ in chosen]
    result.text = map_text + "".join(block for _, _, _, block in chosen)
    result.used = map_tokens + sum(t for _, _, t, _ in chosen)
    return result
