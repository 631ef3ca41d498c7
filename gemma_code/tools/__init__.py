"""What the agent may do: read, search, edit (through edits/), run commands (sandboxed in
full-auto), and call MCP servers' tools; permission modes; every result bounded in tokens.

Public API (see docs/agent.md): `Toolbox`, `builtin_tools`, `Tool`, `Action`, `ToolContext`,
`ToolOutput`, `ToolError`, `Permissions`, `MODES`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gemma_code.tools.base import Action, Tool, ToolContext, ToolError, ToolOutput, check_arguments
from gemma_code.tools.command import RUN_COMMAND
from gemma_code.tools.files import LIST_FILES, READ_FILE, SEARCH
from gemma_code.tools.permissions import MODES, Permissions
from gemma_code.tools.write import EDIT_FILE, WRITE_FILE

__all__ = [
    "MODES", "Action", "Permissions", "Tool", "ToolContext", "ToolError", "ToolOutput", "Toolbox",
    "builtin_tools",
]


def builtin_tools() -> list[Tool]:
    """The six built-in tools, in the order they are declared to the model."""
    return [LIST_FILES, READ_FILE, SEARCH, EDIT_FILE, WRITE_FILE, RUN_COMMAND]


class Toolbox:
    """The tools offered in one run, by name."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self.tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self.tools:
                raise ValueError(f"two tools are named {tool.name}")
            self.tools[tool.name] = tool

    def __iter__(self) -> Any:
        return iter(self.tools.values())

    def prepare(self, ctx: ToolContext, name: str, arguments: Mapping[str, Any]) -> Action:
        """Validate a call and plan it (nothing changes yet); ToolError tells the model why not."""
        tool = self.tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; the tools are: {', '.join(self.tools)}")
        return tool.prepare(ctx, check_arguments(tool, arguments))
