"""Pack ranked files into a token budget: a stable repository map, then files in full, then outlines.

Layout (see docs/context.md for why): the map section depends only on the repository, so it is a
byte-identical prefix across questions; the question's files follow, most relevant first.
"""

from __future__ import annotations

import hashlib
import marshal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gemma_code import gitops
from gemma_code.context.cache import ContextCache
from gemma_code.context.excerpt import excerpt_block
from gemma_code.context.rank import analyze_question
from gemma_code.context.tags import FileTags, decode
from gemma_code.context.tokens import TokenCounter

# The directory tree's share of the budget grows with the budget: at 8K the files matter more.
MAP_SHARES = ((16_000, 0.03), (64_000, 0.05), (None, 0.08))
MAP_MAX = 8_000
MAP_MIN_BUDGET = 1_500  # below this the tree is not worth its tokens
MAP_VERSION = 1  # of the map's rendering: part of a stored map's key
FULL_SHARE = 0.90  # of what is left after the map, for whole files; excerpts and outlines get the rest
TOP_FILES = 2  # the first files in rank order may take up to TOP_SHARE of what is left, whole
TOP_SHARE = 0.95
# The map gives way to the first file when that is what it takes for the file to go whole: up to
# TOP_ALONE of the budget (on the tuning half, 32K whole-file recall 0.840 -> 0.867: a module of
# 31K tokens that a 32K budget showed as an excerpt beside the map).
TOP_ALONE = 0.98
EXCERPT_TOP = 3  # a file ranked this high that is too large to go whole goes in as an excerpt
EXCERPT_SHARE = 0.5  # of what is left, at most, for one excerpt
BATCH = 24
MAX_SCANNED = 3_000  # candidates looked at while filling; beyond, the budget is full of outlines
MAX_CHARS_PER_TOKEN = 10  # above the densest text seen (Gemma 4: under 5 on Django)
MAX_MISSES = 96  # consecutive candidates that did not fit: what is left is too small to use
# In the outline pass a short file goes whole when that costs little more than its outline (or
# it has none: an __init__ of imports, a settings module): the outline would save nothing.
SMALL_LINES = 40
SMALL_WHOLE = 96  # tokens
SMALL_OVER_OUTLINE = 1.25
FENCE_LANG = {"python": "python", "javascript": "javascript", "typescript": "typescript",
              "tsx": "tsx", "go": "go", "rust": "rust", "java": "java", "c": "c", "cpp": "cpp",
              "csharp": "csharp", "ruby": "ruby", "php": "php"}


@dataclass(frozen=True)
class PackedFile:
    """One file in the packed context."""

    path: str
    tokens: int
    mode: str  # "full" | "outline"
    parts: tuple[str, ...] = ()  # an excerpt's definitions shown in full (mode "outline")


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
    order: list[str] = field(default_factory=list)  # the ranking, best first (not in to_dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "budget": self.budget,
            "used": self.used,
            "files": [{"path": f.path, "tokens": f.tokens, "mode": f.mode, "parts": list(f.parts)}
                      for f in self.files],
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


def _uses_in(
    root: Path, docs: Mapping[str, FileTags]
) -> Callable[[list[str]], list[tuple[str, int, str]]]:
    """Lines using some names, from the files the builder may read (no secrets, no vendored code)."""
    def uses(names: list[str]) -> list[tuple[str, int, str]]:
        return gitops.grep_word_lines(root, names, keep=docs.__contains__)
    return uses


def _short_whole(root: Path, path: str, tags: FileTags) -> str:
    """The whole-file block of a short file ("" for a long or unreadable one)."""
    if tags.lines > SMALL_LINES:
        return ""
    try:
        text = decode((root / path).read_bytes())
    except OSError:
        return ""
    return full_block(path, text, tags.lang) if text.strip() else ""


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


class MapStore:
    """The last map of a repository, kept in the context cache: the same files, room and token
    counts give the same map, so a warm run reads it instead of rendering the tree again."""

    def __init__(self, cache: ContextCache, root_key: str) -> None:
        self.cache, self.root_key = cache, root_key

    def get(self, paths: Sequence[str], room: int, counter: TokenCounter) -> tuple[str, int]:
        counts = "estimate" if counter.estimated else counter.tokenizer_id
        if not counts:  # counts from an unnamed tokenizer are not kept
            return map_block(paths, room, counter)
        h = hashlib.blake2b(f"{MAP_VERSION}\0{counts}\0{room}\0".encode(), digest_size=16)
        for path in paths:
            h.update(path.encode("utf-8", "surrogatepass") + b"\0")
        key = h.hexdigest()
        blob = self.cache.load_blob(self.root_key, "map", key)
        if blob is not None:
            try:
                text, tokens = marshal.loads(blob)
                if isinstance(text, str) and isinstance(tokens, int):
                    return text, tokens
            except (ValueError, TypeError, EOFError):
                pass  # unreadable: render it again
        text, tokens = map_block(paths, room, counter)
        self.cache.store_blob(self.root_key, "map", key, marshal.dumps((text, tokens)))
        return text, tokens


def map_share(budget: int) -> int:
    """Tokens the repository map may take: a small share at small budgets, none below the minimum."""
    if budget < MAP_MIN_BUDGET:
        return 0
    share = next(sh for limit, sh in MAP_SHARES if limit is None or budget <= limit)
    return min(int(budget * share), MAP_MAX)


def _whole_room(path: str, rank: int, left: int, full_room: int, named: set[str], first: float) -> int:
    """Tokens a file may take whole: all that is left for a named file, most of it for the top
    files (`first` of it for the first), else the whole-file share."""
    if path in named:
        return left
    if rank < TOP_FILES:
        return max(full_room, int(left * (first if rank == 0 else TOP_SHARE)))
    return full_room


def _map_gives_way(
    root: Path, order: Sequence[str], docs: Mapping[str, FileTags], counter: TokenCounter, budget: int,
    map_tokens: int, named: set[str], given: Mapping[str, bytes],
) -> bool:
    """Whether the first file goes whole only without the map (and then fits in TOP_ALONE)."""
    if not order or not map_tokens:
        return False
    path = order[0]
    try:
        text = decode(given[path] if path in given else (root / path).read_bytes())
    except OSError:
        return False
    block = full_block(path, text, docs[path].lang) if text else ""
    room = _whole_room(path, 0, budget - map_tokens, 0, named, TOP_SHARE)
    alone = int(budget * TOP_ALONE)
    if not block or len(block) <= room or len(block) > MAX_CHARS_PER_TOKEN * alone:
        return False  # fits beside the map at any density, or cannot fit at all
    return room < counter.count(block) <= alone


def pack(
    root: Path,
    order: Sequence[str],
    docs: Mapping[str, FileTags],
    *,
    budget: int,
    counter: TokenCounter,
    named: Sequence[str] = (),
    all_paths: Sequence[str] | None = None,
    question: str = "",
    contents: Mapping[str, bytes] | None = None,
    maps: MapStore | None = None,
) -> PackedContext:
    """Fill `budget` tokens: the map (left out when the first file goes whole only without it),
    then whole files in rank order (up to FULL_SHARE of the rest, the top files up to TOP_SHARE),
    then excerpts of top files too large to go whole, then outlines in what remains. Files appear
    in rank order.

    `contents` replaces some files' bytes (staged versions); those are shown in full or not at
    all, since their outlines were taken from the work tree.
    """
    given = contents or {}
    result = PackedContext(text="", budget=budget, used=0, estimated=counter.estimated)
    map_room = map_share(budget)
    paths = all_paths if all_paths is not None else list(docs)
    map_text, map_tokens = maps.get(paths, map_room, counter) if maps else map_block(paths, map_room, counter)
    named_set = set(named)
    first = TOP_SHARE
    if _map_gives_way(root, order, docs, counter, budget, map_tokens, named_set, given):
        map_text, map_tokens, first = "", 0, TOP_ALONE
        result.notes.append(f"the repository map was left out so that {order[0]} fits whole")
    left = budget - map_tokens
    q = analyze_question(question)
    chosen: dict[str, tuple[str, int, str, tuple[str, ...]]] = {}  # path -> (mode, tokens, block, parts)
    top_texts: dict[str, str] = {}
    left = _whole_files(root, order, docs, counter, left, named_set, chosen, top_texts, result, given, first)
    for path in order[:EXCERPT_TOP]:
        if path in chosen or path in given or not top_texts.get(path) or not q.words or left <= 16:
            continue
        block, parts, tokens = excerpt_block(
            path, top_texts[path], docs[path], q, int(left * EXCERPT_SHARE), counter.count,
            lambda body, lang: fence(body, FENCE_LANG.get(lang, "")), docs[path].lang,
            uses=_uses_in(root, docs) if (root / ".git").exists() else None,
        )
        if block and tokens <= left:
            chosen[path] = ("outline", tokens, block, parts)
            left -= tokens
    _outlines(root, [p for p in order if p not in given], docs, counter, left, chosen)
    ranked = [p for p in order if p in chosen]
    result.map_tokens = map_tokens
    result.files = [PackedFile(p, chosen[p][1], chosen[p][0], chosen[p][3]) for p in ranked]
    result.text = map_text + "".join(chosen[p][2] for p in ranked)
    result.used = map_tokens + sum(chosen[p][1] for p in ranked)
    return result


def _whole_files(
    root: Path, order: Sequence[str], docs: Mapping[str, FileTags], counter: TokenCounter, left: int,
    named: set[str], chosen: dict[str, tuple[str, int, str, tuple[str, ...]]], top_texts: dict[str, str],
    result: PackedContext, given: Mapping[str, bytes], first: float = TOP_SHARE,
) -> int:
    """Whole files in rank order within their share (`first`: the first file's); returns the
    tokens left."""
    full_room = int(left * FULL_SHARE)
    scanned = misses = 0
    for start in range(0, len(order), BATCH):
        if scanned >= MAX_SCANNED or misses >= MAX_MISSES or (full_room <= 16 and start >= TOP_FILES):
            break
        batch = order[start : start + BATCH]
        scanned += len(batch)
        fulls: list[str] = []
        for rank, path in enumerate(batch, start):
            try:
                text = decode(given[path] if path in given else (root / path).read_bytes())
            except OSError as exc:
                result.skipped.append((path, f"unreadable ({exc.strerror})"))
                text = ""
            if rank < EXCERPT_TOP:
                top_texts[path] = text
            fulls.append(full_block(path, text, docs[path].lang) if text else "")
        # exact counts only where they can matter: a block that cannot fit even at the densest
        # tokenization seen is not sent to the tokenizer (the costly part of a cold run)
        rooms = [_whole_room(path, rank, left, full_room, named, first)
                 for rank, path in enumerate(batch, start)]
        fit = [bool(b) and len(b) <= MAX_CHARS_PER_TOKEN * room for b, room in zip(fulls, rooms, strict=True)]
        counts = _count_some(counter, fulls, fit)
        for rank, path in enumerate(batch, start):
            i = rank - start
            if fit[i] and counts[i] <= min(_whole_room(path, rank, left, full_room, named, first), left):
                chosen[path] = ("full", counts[i], fulls[i], ())
                left -= counts[i]
                full_room = max(full_room - counts[i], 0)
                misses = 0
            else:
                misses += 1
    return left


def _outlines(
    root: Path, order: Sequence[str], docs: Mapping[str, FileTags], counter: TokenCounter, left: int,
    chosen: dict[str, tuple[str, int, str, tuple[str, ...]]],
) -> None:
    """Outlines of the next files in rank order while they fit (short files whole: see SMALL_LINES)."""
    rest = [p for p in order[:MAX_SCANNED] if p not in chosen]
    misses = 0
    for start in range(0, len(rest), BATCH):
        if left <= 16 or misses >= MAX_MISSES:
            break
        batch = rest[start : start + BATCH]
        outlines = [outline_block(path, docs[path]) for path in batch]
        fit = [bool(o) and len(o) <= MAX_CHARS_PER_TOKEN * left for o in outlines]
        counts = _count_some(counter, outlines, fit)
        wholes = [_short_whole(root, path, docs[path]) for path in batch]
        cheap = [bool(w) and len(w) <= MAX_CHARS_PER_TOKEN * left for w in wholes]
        whole_counts = _count_some(counter, wholes, cheap)
        for i, path in enumerate(batch):
            cost = whole_counts[i]
            worth = cost <= SMALL_WHOLE or (fit[i] and cost <= counts[i] * SMALL_OVER_OUTLINE)
            if cheap[i] and cost <= left and worth:
                chosen[path] = ("full", cost, wholes[i], ())
                left -= cost
                misses = 0
            elif fit[i] and counts[i] <= left:
                chosen[path] = ("outline", counts[i], outlines[i], ())
                left -= counts[i]
                misses = 0
            else:
                misses += 1
