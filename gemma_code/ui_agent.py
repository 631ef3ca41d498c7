"""Showing agent events: compact lines for people, JSON Lines for programs, and the
terminal's approval prompt (y/n/always) for edits and commands."""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from gemma_code.tasks.agent_events import AgentEvent
    from gemma_code.tools.base import Action
    from gemma_code.tools.permissions import Answer

PREVIEW_LINES = 4  # result lines shown under a call (the rest: `--verbose`)


def call_label(name: str, arguments: dict[str, Any]) -> str:
    """`read_file util.py:10-20`, `run_command pytest -q`: a call in one short line."""
    args = dict(arguments)
    main = ""
    for key in ("path", "command", "query", "pattern"):
        if args.get(key):
            main = str(args.pop(key))
            break
    if name == "read_file" and (args.get("start_line") or args.get("end_line")):
        main += f":{args.pop('start_line', 1)}-{args.pop('end_line', 'end')}"
    for key in ("old_text", "new_text", "content"):
        if key in args:
            args[key] = f"<{len(str(args[key]).splitlines())} lines>"
    rest = " ".join(f"{k}={v}" for k, v in args.items() if v not in (None, ""))
    text = " ".join(p for p in (name, main, rest) if p)
    return text if len(text) <= 160 else text[:157] + "..."


class EventPrinter:
    """Agent events for a person: streamed answer text, one line per call, short results."""

    def __init__(self, out: Console, err: Console, *, show_thoughts: bool = True,
                 verbose: bool = False, more: str = "--verbose shows them") -> None:
        self.more = more
        self.out = out
        self.err = err
        self.show_thoughts = show_thoughts
        self.verbose = verbose
        self._streaming = False

    def _end_stream(self) -> None:
        if self._streaming:
            self.out.print()
            self._streaming = False

    def show(self, event: AgentEvent) -> None:
        from rich.markup import escape
        from rich.text import Text

        kind = event.type
        data = event.to_dict()
        if kind == "text_delta":
            self.out.print(Text(data["text"]), end="")
            self._streaming = True
            return
        if kind in ("text", "step"):
            self._end_stream()
            return
        self._end_stream()
        if kind == "thought" and self.show_thoughts:
            self.err.print(Text(data["text"], style="dim italic"))
        elif kind == "tool_call":
            self.err.print(f"[bold cyan]●[/] {escape(call_label(data['name'], data['arguments']))}")
        elif kind == "tool_result":
            lines = data["output"].rstrip().splitlines() or ["(no output)"]
            limit = len(lines) if self.verbose else PREVIEW_LINES
            style = "dim" if data["ok"] else "red"
            for n, line in enumerate(lines[:limit]):
                self.err.print(Text(("  ⎿ " if n == 0 else "    ") + line, style=style))
            if len(lines) > limit:
                self.err.print(Text(f"    … {len(lines) - limit} more lines ({self.more})",
                                    style="dim"))
        elif kind == "note":
            self.err.print(Text("note: " + data["message"], style="yellow"))
        elif kind == "error":
            from gemma_code.ui import print_error

            print_error(data["message"], data["hint"] or None)
        elif kind == "done":
            stats = data["stats"]
            self.err.print(Text(
                f"{stats['steps']} steps, {stats['tool_calls']} tool calls, prompt tokens "
                f"{stats['prompt_tokens_evaluated']:,} evaluated / {stats['prompt_tokens_reused']:,} "
                f"reused, {stats['elapsed_s']:.1f} s", style="dim"))


class JsonEventWriter:
    """One JSON object per line on `stream`; streamed text pieces are left out (see `text`)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def show(self, event: AgentEvent) -> None:
        if event.type == "text_delta":
            return
        self.stream.write(json.dumps(event.to_dict(), ensure_ascii=False, default=str) + "\n")
        self.stream.flush()


def show_action(console: Console, action: Action) -> str:
    """Show what an approval is about (a diff, a command line); returns what "always" covers."""
    from rich.markup import escape

    from gemma_code.ui_diff import print_change

    console.print(f"[bold yellow]?[/] {escape(action.summary)}")
    if action.kind == "edit" and action.changes:
        for change in action.changes:
            print_change(console, change)
        return "all edits this session"
    if action.kind == "command":
        console.print(f"  [bold]$[/] {escape(action.preview)}")
        return "this command this session"
    console.print(escape(action.preview))
    return "this tool this session"


def terminal_approver(console: Console) -> Any:
    """An Approver that shows the diff or command on `console` and reads y/n/a from the terminal."""

    def approve(action: Action) -> Answer:
        always = show_action(console, action)
        while True:
            try:
                reply = console.input(f"  allow? [bold]y[/]es / [bold]n[/]o / [bold]a[/]lways "
                                      f"({always}) ").strip().lower()
            except EOFError:
                return "no"
            if reply in ("y", "yes"):
                return "yes"
            if reply in ("n", "no", ""):
                return "no"
            if reply in ("a", "always"):
                return "always"

    return approve
