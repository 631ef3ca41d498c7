"""Permission modes: which tool calls run, which ask the user first, which are refused.

| mode      | read | edit    | command               | MCP tool (not allowed in config) |
|-----------|------|---------|-----------------------|----------------------------------|
| plan      | run  | refused | refused               | refused                          |
| ask       | run  | ask     | ask                   | ask                              |
| auto-edit | run  | run     | ask                   | ask                              |
| full-auto | run  | run     | run, in the sandbox   | ask (MCP servers are not sandboxed) |

With nobody to ask (no terminal: a pipe, CI), "ask" means refused. The model is told why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from gemma_code.errors import UsageError
from gemma_code.tools.base import Action, ToolKind

MODES = ("plan", "ask", "auto-edit", "full-auto")
DEFAULT_MODE = "ask"
Decision = Literal["run", "ask", "refuse"]
Answer = Literal["yes", "no", "always"]
# asks the user about one action; None where nobody can be asked
Approver = Callable[[Action], Answer]

_TABLE: dict[str, dict[ToolKind, Decision]] = {
    "plan": {"read": "run", "edit": "refuse", "command": "refuse", "external": "refuse"},
    "ask": {"read": "run", "edit": "ask", "command": "ask", "external": "ask"},
    "auto-edit": {"read": "run", "edit": "run", "command": "ask", "external": "ask"},
    "full-auto": {"read": "run", "edit": "run", "command": "run", "external": "ask"},
}


def check_mode(mode: str) -> str:
    """`mode` if it is one of MODES; UsageError naming them otherwise."""
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}", f"choose one of: {', '.join(MODES)}")
    return mode


def decide(mode: str, kind: ToolKind, *, allowed: bool = False) -> Decision:
    """What `mode` does with a call of `kind`; `allowed` MCP tools run without asking."""
    decision = _TABLE[check_mode(mode)][kind]
    if kind == "external" and allowed and mode != "plan":
        return "run"
    return decision


@dataclass
class Permissions:
    """The mode, who approves, and what the user allowed for the rest of the session."""

    mode: str = DEFAULT_MODE
    approver: Approver | None = None
    allowed_tools: set[str] = field(default_factory=set)  # MCP SERVER__TOOL names from the config
    always: set[tuple[str, str]] = field(default_factory=set)  # (tool, approval key)

    def check(self, action: Action) -> tuple[bool, str]:
        """(may it run, why not): asks the approver when the mode says so."""
        decision = decide(self.mode, action.kind, allowed=action.tool in self.allowed_tools)
        if decision == "run":
            return True, ""
        if decision == "refuse":
            what = {"edit": "changes to files", "command": "commands",
                    "external": "external tools"}.get(action.kind, "this")
            return False, (f"refused: plan mode is read-only ({what} are not allowed). "
                           "Describe the change you would make instead")
        key = (action.tool, action.approval_key or action.tool)
        if action.kind == "edit":
            key = ("edit", "edit")  # "always" for an edit covers every edit of the session
        if key in self.always:
            return True, ""
        if self.approver is None:
            return False, ("refused: this needs the user's approval and nobody can be asked "
                           "(no terminal). Continue without it, or say what the user should run")
        answer = self.approver(action)
        if answer == "always":
            self.always.add(key)
            return True, ""
        if answer == "yes":
            return True, ""
        return False, "the user declined this call. Do not repeat it; try another way or ask"
