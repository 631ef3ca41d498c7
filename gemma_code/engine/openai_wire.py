"""Tool turns between our Messages and the OpenAI wire format, for the openai engine.

Requests: declared tools go in `tools`, a model turn's calls in `tool_calls` (with its
`reasoning_content`), results as `role: "tool"` messages answering those calls by id.
Replies: `tool_calls` deltas are folded and handed back as Gemma 4's native call text, so a
caller parses a remote reply exactly like a local one (gemma_tools.parse_reply).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gemma_code.engine.base import Message
from gemma_code.engine.chat_templates import strip_thinking
from gemma_code.engine.gemma_tools import CALL_CLOSE, CALL_OPEN, ToolCall, render_call

_ROLES = {"system": "system", "user": "user", "model": "assistant", "tool": "tool"}


def wire_messages(messages: Sequence[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(messages, tools) in the chat-completions shape."""
    out: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    pending: list[str] = []  # ids of the last model turn's calls not answered yet
    for index, m in enumerate(messages):
        if m.role == "system" and m.tools:
            tools = [{"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in m.tools]
        item: dict[str, Any] = {
            "role": _ROLES[m.role],
            "content": strip_thinking(m.content) if m.role == "model" else m.content,
        }
        if m.role == "model" and m.tool_calls:
            pending = [c.id or f"call_{index}_{n}" for n, c in enumerate(m.tool_calls)]
            item["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {
                    "name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
                for call_id, c in zip(pending, m.tool_calls, strict=True)
            ]
            if m.reasoning:
                item["reasoning_content"] = m.reasoning
        elif m.role == "tool":
            item["tool_call_id"] = pending.pop(0) if pending else f"call_{index}"
            if m.response is not None:
                item["content"] = json.dumps(m.response, ensure_ascii=False)
        out.append(item)
    return out, tools


class CallDeltas:
    """Folds streamed `tool_calls` deltas; `native()` spells them as Gemma 4 calls."""

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, str]] = {}

    def feed(self, deltas: Any) -> None:
        for part in deltas if isinstance(deltas, list) else []:
            if not isinstance(part, dict):
                continue
            entry = self.calls.setdefault(int(part.get("index") or 0), {"name": "", "arguments": ""})
            function = part.get("function") or {}
            entry["name"] += str(function.get("name") or "")
            entry["arguments"] += str(function.get("arguments") or "")

    def native(self) -> str:
        out = []
        for _index, entry in sorted(self.calls.items()):
            try:
                arguments = json.loads(entry["arguments"] or "{}")
            except ValueError:
                arguments = None
            if isinstance(arguments, dict):
                out.append(render_call(ToolCall(entry["name"], arguments)))
            else:  # the parser reports it as a malformed argument list
                out.append(f"{CALL_OPEN}call:{entry['name']}{{{entry['arguments']}}}{CALL_CLOSE}")
        return "".join(out)
