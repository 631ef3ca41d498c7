"""What every agent tool shares: its declaration, the prepared action, bounded output, errors.

A tool call goes through two steps. `prepare` checks the arguments and the paths (nothing is
changed; a bad call raises ToolError, whose message the model sees) and returns an Action
with a preview (a diff, a command line) for the user to approve. `Action.execute` does it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from gemma_code.edits.model import FileChange
    from gemma_code.tools.sandbox import Sandbox

# read: looks only; edit: changes files in the repository; command: runs a program;
# external: a tool of an MCP server (runs outside gemma-code's control)
ToolKind = Literal["read", "edit", "command", "external"]
CountFn = Callable[[str], int]

DEFAULT_RESULT_TOKENS = 4_000
# Pre-cut huge texts by characters before counting tokens: no token is this many characters
# on average, so the cut never removes text that would have fit.
CHARS_PER_TOKEN_MAX = 12


class ToolError(Exception):
    """A call the tool refuses or cannot do; `message` is what the model is told."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class ToolOutput:
    """What one executed call produced: `output` goes to the model (already bounded)."""

    ok: bool
    output: str
    changes: list[FileChange] = field(default_factory=list)
    journal_id: str | None = None
    truncated: bool = False


@dataclass
class Action:
    """A validated call waiting for permission: what it will do, and how to do it."""

    tool: str
    kind: ToolKind
    summary: str  # one line: "edit src/app.py (+3 -1)", "run: pytest -q"
    preview: str  # what the user approves: a diff, the command line, the arguments
    execute: Callable[[], ToolOutput]
    approval_key: str = ""  # "always" answers remember this key (a command, a tool name)
    changes: list[FileChange] = field(default_factory=list)


@dataclass
class ToolContext:
    """Where and how tools act: the repository root, the tokenizer, the limits, the sandbox."""

    root: Path
    count_tokens: CountFn
    max_result_tokens: int = DEFAULT_RESULT_TOKENS
    command_timeout_s: float = 300.0
    sandbox: Sandbox | None = None  # set in full-auto: commands run inside it
    journal_extra: dict[str, str] = field(default_factory=dict)  # run id, step, for undo


@dataclass(frozen=True)
class Tool:
    """One tool: its declaration for the model and its `prepare` step."""

    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of an OBJECT, as Gemma 4's declarations take it
    kind: ToolKind
    prepare: Callable[[ToolContext, dict[str, Any]], Action]


def schema(properties: Mapping[str, tuple[str, str]], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A parameters schema from {name: (TYPE, description)}."""
    return {
        "type": "OBJECT",
        "properties": {name: {"type": kind, "description": text}
                       for name, (kind, text) in properties.items()},
        "required": list(required),
    }


def check_arguments(tool: Tool, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments with the declared types (numbers given as text are accepted); ToolError otherwise."""
    props: dict[str, Any] = tool.parameters.get("properties", {})
    out: dict[str, Any] = {}
    unknown = sorted(set(arguments) - set(props))
    if unknown:
        raise ToolError(f"{tool.name}: unknown argument {', '.join(unknown)}; "
                        f"it takes {', '.join(props) or 'no arguments'}")
    for name in tool.parameters.get("required", []):
        if arguments.get(name) is None:
            raise ToolError(f"{tool.name}: missing required argument `{name}`")
    for name, value in arguments.items():
        if value is None:
            continue
        kind = str(props[name].get("type", "STRING")).upper()
        if kind == "INTEGER":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ToolError(f"{tool.name}: `{name}` must be a whole number, not {value!r}")
            try:
                out[name] = int(value)
            except ValueError:
                raise ToolError(f"{tool.name}: `{name}` must be a whole number, not {value!r}") from None
        elif kind == "STRING":
            if isinstance(value, (dict, list)):
                raise ToolError(f"{tool.name}: `{name}` must be text")
            if isinstance(value, bool):
                value = "true" if value else "false"
            out[name] = value if isinstance(value, str) else str(value)
        else:
            out[name] = value
    return out


def bound_text(
    text: str,
    limit: int,
    count_tokens: CountFn,
    *,
    keep: Literal["head", "head_tail"] = "head",
    what: str = "output",
    more: str = "",
    first_line: int = 1,
) -> tuple[str, bool]:
    """`text` cut at line boundaries to `limit` tokens, with a note saying what was cut.

    `head_tail` keeps the start and the end (a command's errors come last). `more` tells the
    model how to see the rest; `first_line` numbers the lines in the note. Returns (text, cut).
    """
    if limit <= 0 or (len(text) <= limit * CHARS_PER_TOKEN_MAX and count_tokens(text) <= limit):
        return text, False
    lines = text.splitlines(keepends=True)
    total_lines = len(lines)
    room = max(limit - 60, limit // 2)  # the note itself costs tokens

    def fits(chunk: str) -> bool:
        return len(chunk) <= room * CHARS_PER_TOKEN_MAX and count_tokens(chunk) <= room

    if keep == "head_tail" and total_lines > 2:
        head_n = _most_lines(lines, lambda n: fits("".join(lines[:n])), cap=total_lines)
        head_budget = max(room // 3, 1)
        head_n = _most_lines(lines, lambda n: len("".join(lines[:n])) <= head_budget *
                             CHARS_PER_TOKEN_MAX and count_tokens("".join(lines[:n])) <= head_budget,
                             cap=head_n)
        rest = room - count_tokens("".join(lines[:head_n]))
        tail_n = _most_lines(lines, lambda n: len("".join(lines[total_lines - n:])) <= rest *
                             CHARS_PER_TOKEN_MAX and count_tokens("".join(lines[total_lines - n:]))
                             <= rest, cap=total_lines - head_n)
        dropped = total_lines - head_n - tail_n
        note = (f"[… {dropped:,} of {total_lines:,} lines of {what} cut here to stay within "
                f"{limit:,} tokens{'; ' + more if more else ''} …]\n")
        return "".join(lines[:head_n]) + note + "".join(lines[total_lines - tail_n:]), True
    n = _most_lines(lines, lambda k: fits("".join(lines[:k])), cap=total_lines)
    if n == 0:  # one huge line: cut it by characters
        chars = _most_lines(list(text), lambda k: fits(text[:k]), cap=min(len(text), room * 12))
        body = text[:chars]
        note = f"\n[… {what} cut after {chars:,} of {len(text):,} characters to stay within " \
               f"{limit:,} tokens{'; ' + more if more else ''}]\n"
        return body + note, True
    body = "".join(lines[:n])
    if not body.endswith("\n"):
        body += "\n"
    last = first_line + n - 1
    note = (f"[… {what} cut: showing lines {first_line:,}-{last:,} of {first_line + total_lines - 1:,} "
            f"to stay within "
            f"{limit:,} tokens{'; ' + more if more else ''}]\n")
    return body + note, True


def _most_lines(items: list[Any], ok: Callable[[int], bool], *, cap: int) -> int:
    """The largest n in [0, cap] with ok(n), by bisection (ok is monotone)."""
    lo, hi = 0, cap
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo
