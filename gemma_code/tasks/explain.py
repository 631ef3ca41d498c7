"""`explain`: a file, a line range or a symbol, with its callers and callees as context."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path

from gemma_code.engine.base import Message
from gemma_code.errors import UsageError
from gemma_code.tasks.prompting import BASE_RULES, fence, relative_to_root

SYSTEM_PROMPT = (
    BASE_RULES + " Explain the code the user points at: what it does, how, and why it matters "
    "to its callers. Refer to line numbers. Use Markdown; keep it short."
)
_TARGET = re.compile(r"^(?P<path>.+?)(?:::(?P<symbol>[\w.$]+)|:(?P<start>\d+)(?:-(?P<end>\d+))?)?$")
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
MAX_CALLERS = 12
MAX_CALLEES = 10


@dataclass(frozen=True)
class Target:
    """What to explain: a path, with a 1-based inclusive line range or a symbol name."""

    path: str
    start: int | None = None
    end: int | None = None
    symbol: str | None = None


@dataclass
class Snippet:
    """The code to explain and the code around it that the model should see."""

    path: str
    start: int
    end: int
    text: str
    symbol: str | None = None
    callers: list[tuple[str, int, str]] = field(default_factory=list)
    callees: list[tuple[str, int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parse_target(spec: str) -> Target:
    """`app.py`, `app.py:10-20`, `app.py:10` or `app.py::Class.method`; UsageError otherwise."""
    match = _TARGET.match(spec.strip())
    if not match or not match.group("path"):
        raise UsageError(f"cannot read target {spec!r}",
                         "use PATH, PATH:START-END or PATH::SYMBOL, e.g. app.py::main")
    start = int(match.group("start")) if match.group("start") else None
    end = int(match.group("end")) if match.group("end") else start
    if start is not None and (start < 1 or end is None or end < start):
        raise UsageError(f"bad line range in {spec!r}", "lines count from 1: app.py:10-20")
    return Target(match.group("path"), start, end, match.group("symbol"))


def _numbered(lines: list[str], start: int) -> str:
    width = len(str(start + len(lines)))
    return "\n".join(f"{start + k:>{width}}  {line}" for k, line in enumerate(lines))


def _block_end(lines: list[str], index: int) -> int:
    """The last line (0-based) of the definition starting at `index`: by indentation or braces."""
    head = lines[index]
    indent = len(head) - len(head.lstrip())
    depth = 0
    # brace languages open the body on the definition line or the next one
    braces = "{" in head or (index + 1 < len(lines) and lines[index + 1].strip().startswith("{"))
    for k in range(index, len(lines)):
        depth += lines[k].count("{") - lines[k].count("}")
        if braces and depth <= 0 and k > index:
            return k
        stripped = lines[k].strip()
        if k > index and not braces and stripped and not stripped.startswith((")", "]")) and \
                len(lines[k]) - len(lines[k].lstrip()) <= indent:
            last = k - 1
            while last > index and not lines[last].strip():
                last -= 1
            return last
    return len(lines) - 1


def _find_definition(root: Path, rel: str, lines: list[str], name: str) -> tuple[int, int] | None:
    """1-based (start, end) of `name`'s definition in the file: tree-sitter tags, else a pattern."""
    last = name.split(".")[-1]
    from gemma_code.context.tags import file_tags

    try:
        tags = [t for t in file_tags(root, rel).definitions if t.name == last]
        if tags:
            return tags[0].line, tags[0].end_line
    except (OSError, ValueError):
        pass
    pattern = re.compile(rf"^\s*(?:export\s+)?(?:async\s+)?(?:def|class|function|fn|func|struct|"
                         rf"interface|type|enum|trait|impl)\s+{re.escape(last)}\b")
    for k, line in enumerate(lines):
        if pattern.match(line):
            return k + 1, _block_end(lines, k) + 1
    return None


def _sites(root: Path, name: str, kind: str) -> list[tuple[str, int, str]]:
    from gemma_code.context.tags import find_definitions, find_references

    finder = find_definitions if kind == "definitions" else find_references
    return [(t.path, t.line, t.text) for t in finder(root, name)]


def load_snippet(root: Path, target: Target, *, related: bool = True) -> Snippet:
    """Read the target's code and, for a symbol or range, its callers and callees."""
    root = Path(root)
    file = root / target.path
    if not file.is_file():
        raise UsageError(f"no such file: {target.path}", "give a path relative to the current folder")
    lines = file.read_text(encoding="utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    start, end, name = 1, len(lines), target.symbol
    if target.symbol:
        found = _find_definition(root, target.path, lines, target.symbol)
        if found is None:
            raise UsageError(f"{target.symbol} is not defined in {target.path}",
                             "check the name, or give a line range: PATH:START-END")
        start, end = found
    elif target.start is not None:
        if target.start > len(lines):
            raise UsageError(f"{target.path} has only {len(lines)} lines")
        start, end = target.start, min(target.end or target.start, len(lines))
    body = lines[start - 1 : end]
    snippet = Snippet(target.path, start, end, _numbered(body, start), name)
    if not related or (name is None and target.start is None):
        return snippet
    if name:
        last = name.split(".")[-1]
        callers = [s for s in _sites(root, last, "references")
                   if not (s[0] == target.path and start <= s[1] <= end)]
        snippet.callers = callers[:MAX_CALLERS]
        if len(callers) > MAX_CALLERS:
            snippet.notes.append(f"{len(callers) - MAX_CALLERS} more references not shown")
    called = []
    for word in _CALL.findall("\n".join(body)):
        if word not in called and not keyword.iskeyword(word) and word != (name or "").split(".")[-1]:
            called.append(word)
    for word in called:
        if len(snippet.callees) >= MAX_CALLEES:
            break
        defs = _sites(root, word, "definitions")
        if defs:
            snippet.callees.append(defs[0])
    return snippet


def explain_messages(snippet: Snippet, question: str | None = None) -> list[Message]:
    """System rules, then the code (numbered), its callers and callees, and the request."""
    what = (f"`{snippet.symbol}` in {snippet.path}" if snippet.symbol else
            f"{snippet.path} lines {snippet.start}-{snippet.end}")
    parts = [fence(f"{snippet.path} (lines {snippet.start}-{snippet.end})", snippet.text)]
    if snippet.callers:
        parts.append("Callers and other references:\n" + "\n".join(
            f"- {p}:{n}: {t.strip()}" for p, n, t in snippet.callers))
    if snippet.callees:
        parts.append("Definitions of what it calls:\n" + "\n".join(
            f"- {p}:{n}: {t.strip()}" for p, n, t in snippet.callees))
    parts.append(question.strip() if question else f"Explain {what}.")
    return [Message("system", SYSTEM_PROMPT), Message("user", "\n\n".join(parts))]


def explain_request(root: Path, target: str, *, cwd: Path, question: str | None = None,
                    ) -> list[Message]:
    """The messages for `explain PATH[:L1-L2|::SYMBOL]` (PATH relative to `cwd`): the code, its
    callers and callees, and the question. `gemma-code explain` and the chat's /explain use it."""
    spec = parse_target(target.strip())
    rel = relative_to_root(root, Path(spec.path), cwd=cwd)
    snippet = load_snippet(root, Target(rel, spec.start, spec.end, spec.symbol))
    return explain_messages(snippet, question)
