"""Gemma 4's native tool calls: declarations, calls and results, rendered and parsed.

The format is the one in the official chat template (``tokenizer.chat_template`` of the Gemma 4
GGUFs), reproduced byte for byte, quirks included (tests render both and compare):

- a declaration, in the system turn: ``<|tool>declaration:NAME{description:<|"|>...<|"|>,
  parameters:{properties:{...},required:[...],type:<|"|>OBJECT<|"|>}}<tool|>``;
- a call, written by the model: ``<|tool_call>call:NAME{key:<|"|>text<|"|>,n:5}<tool_call|>``
  (not JSON: bare keys, strings between ``<|"|>``, keys sorted);
- a result: ``<|tool_response>response:NAME{value:<|"|>text<|"|>}<tool_response|>``.

After a call the model writes ``<|tool_response>`` itself, an end-of-generation token, so
decoding stops at the end of a call. Rendering is done as segments ``(text, is_template)``:
strings that come from users or tools are content (tokenized as text, never as control
tokens); the format's own markup is template. `parse_reply` survives the failure modes seen
with Gemma 4 elsewhere (two calls, text or ``<|channel>`` after a call, a malformed argument
list, an unknown tool): each becomes a line in ``ParsedReply.errors``, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

QUOTE = '<|"|>'
TOOL_OPEN, TOOL_CLOSE = "<|tool>", "<tool|>"
CALL_OPEN, CALL_CLOSE = "<|tool_call>", "<tool_call|>"
RESPONSE_OPEN, RESPONSE_CLOSE = "<|tool_response>", "<tool_response|>"
_CHANNEL_OPEN, _CHANNEL_CLOSE = "<|channel>", "<channel|>"
_STANDARD_KEYS = ("description", "type", "properties", "required", "nullable")

Segments = list[tuple[str, bool]]  # (text, is_template)


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call; `parameters` is a JSON Schema object."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolCall:
    """One call the model made; `id` is the API's call id (empty inside the model's text)."""

    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass
class ParsedReply:
    """A model reply split into its answer text, its thoughts and its tool calls."""

    text: str = ""
    thought: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# -- rendering --------------------------------------------------------------------------------


class _Out:
    """Collects segments; adjacent pieces of the same kind are merged."""

    def __init__(self) -> None:
        self.parts: Segments = []

    def t(self, text: str) -> None:
        self._add(text, True)

    def c(self, text: str) -> None:
        self._add(text, False)

    def word(self, text: str) -> None:
        """A bare key or value from data: template text unless it could spell a control token."""
        self._add(text, "<" not in text and ">" not in text)

    def _add(self, text: str, template: bool) -> None:
        if not text:
            return
        if self.parts and self.parts[-1][1] == template:
            self.parts[-1] = (self.parts[-1][0] + text, template)
        else:
            self.parts.append((text, template))

    def text(self) -> str:
        return "".join(text for text, _ in self.parts)


def _dictsort(mapping: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    """jinja2's ``dictsort``: by key, case-insensitively, stable."""
    return sorted(mapping.items(), key=lambda kv: kv[0].lower() if isinstance(kv[0], str) else kv[0])


def _upper(value: Any) -> str:
    """jinja2's ``upper`` filter (a missing value is the empty string)."""
    return "" if value is None else str(value).upper()


def _scalar(value: Any) -> str:
    """How jinja2 prints a value that is not a string, bool, mapping or sequence."""
    return "None" if value is None else str(value)


def _argument(out: _Out, value: Any, *, escape_keys: bool = True) -> None:
    """The template's ``format_argument`` macro."""
    if isinstance(value, str):
        out.t(QUOTE)
        out.c(value)
        out.t(QUOTE)
    elif isinstance(value, bool):
        out.t("true" if value else "false")
    elif isinstance(value, Mapping):
        out.t("{")
        for index, (key, item) in enumerate(_dictsort(value)):
            if index:
                out.t(",")
            if escape_keys:
                out.t(QUOTE)
                out.c(str(key))
                out.t(QUOTE)
            else:
                out.word(str(key))
            out.t(":")
            _argument(out, item, escape_keys=escape_keys)
        out.t("}")
    elif isinstance(value, (list, tuple)):
        out.t("[")
        for index, item in enumerate(value):
            if index:
                out.t(",")
            _argument(out, item, escape_keys=escape_keys)
        out.t("]")
    else:
        out.word(_scalar(value))


def _quoted_list(out: _Out, items: Iterable[Any]) -> None:
    for index, item in enumerate(items):
        if index:
            out.t(",")
        out.t(QUOTE)
        out.c(str(item))
        out.t(QUOTE)


def _parameters(out: _Out, properties: Mapping[str, Any]) -> None:
    """The template's ``format_parameters`` macro (property names it reserves are skipped)."""
    first = True
    for key, value in _dictsort(properties):
        if key in _STANDARD_KEYS:
            continue
        value = value if isinstance(value, Mapping) else {}
        if not first:
            out.t(",")
        first = False
        out.word(str(key))
        out.t(":{")
        comma = False
        if value.get("description"):
            out.t("description:" + QUOTE)
            out.c(str(value["description"]))
            out.t(QUOTE)
            comma = True
        if value.get("nullable"):
            out.t("," if comma else "")
            comma = True
            out.t("nullable:true")
        kind = _upper(value.get("type"))
        if kind == "STRING":
            if value.get("enum"):
                out.t("," if comma else "")
                comma = True
                out.t("enum:")
                _argument(out, value["enum"])
        elif kind == "OBJECT":
            out.t(",properties:{")
            nested = value.get("properties")
            _parameters(out, nested if isinstance(nested, Mapping) else value)
            out.t("}")
            if value.get("required"):
                out.t(",required:[")
                _quoted_list(out, value["required"])
                out.t("]")
        elif kind == "ARRAY":
            _array_items(out, value)
        out.t("," if comma else "")
        out.t("type:" + QUOTE + kind + QUOTE + "}")


def _array_items(out: _Out, value: Mapping[str, Any]) -> None:
    items = value.get("items")
    if not isinstance(items, Mapping) or not items:
        return
    out.t(",items:{")
    first = True
    for key, item in _dictsort(items):
        if item is None:
            continue
        if not first:
            out.t(",")
        first = False
        if key == "properties":
            out.t("properties:{")
            if isinstance(item, Mapping):
                _parameters(out, item)
            out.t("}")
        elif key == "required":
            out.t("required:[")
            _quoted_list(out, item)
            out.t("]")
        elif key == "type":
            out.t("type:")
            _argument(out, item.upper() if isinstance(item, str) else [_upper(i) for i in item])
        else:
            out.word(str(key))
            out.t(":")
            _argument(out, item)
    out.t("}")


def declaration_segments(tool: ToolSpec) -> Segments:
    """``<|tool>declaration:NAME{...}<tool|>`` as segments."""
    out = _Out()
    out.t(TOOL_OPEN + "declaration:")
    out.word(tool.name)
    out.t("{description:" + QUOTE)
    out.c(tool.description)
    out.t(QUOTE)
    params = tool.parameters
    if params:
        out.t(",parameters:{")
        properties = params.get("properties")
        if properties:
            out.t("properties:{")
            _parameters(out, properties)
            out.t("},")
        if params.get("required"):
            out.t("required:[")
            _quoted_list(out, params["required"])
            out.t("],")
        if params.get("type"):
            out.t("type:" + QUOTE + _upper(params["type"]) + QUOTE + "}")
    out.t("}" + TOOL_CLOSE)
    return out.parts


def call_segments(call: ToolCall) -> Segments:
    """``<|tool_call>call:NAME{key:value,...}<tool_call|>`` as segments (keys sorted)."""
    out = _Out()
    out.t(CALL_OPEN + "call:")
    out.word(call.name)
    out.t("{")
    for index, (key, value) in enumerate(_dictsort(call.arguments)):
        if index:
            out.t(",")
        out.word(str(key))
        out.t(":")
        _argument(out, value, escape_keys=False)
    out.t("}" + CALL_CLOSE)
    return out.parts


def response_segments(name: str, response: Any) -> Segments:
    """``<|tool_response>response:NAME{...}<tool_response|>``; a non-mapping is ``{value:...}``."""
    out = _Out()
    out.t(RESPONSE_OPEN + "response:")
    out.word(name or "unknown")
    if isinstance(response, Mapping):
        out.t("{")
        for index, (key, value) in enumerate(_dictsort(response)):
            if index:
                out.t(",")
            out.word(str(key))
            out.t(":")
            _argument(out, value, escape_keys=False)
        out.t("}")
    else:
        out.t("{value:")
        _argument(out, response, escape_keys=False)
        out.t("}")
    out.t(RESPONSE_CLOSE)
    return out.parts


def _join(segments: Segments) -> str:
    return "".join(text for text, _ in segments)


def render_declarations(tools: Sequence[ToolSpec]) -> str:
    """Every tool's declaration, as the template writes them into the system turn."""
    return "".join(_join(declaration_segments(tool)) for tool in tools)


def render_call(call: ToolCall) -> str:
    """One call in the model's own notation."""
    return _join(call_segments(call))


def render_response(name: str, response: Any) -> str:
    """One tool result as the model expects it after its call."""
    return _join(response_segments(name, response))


# -- parsing ----------------------------------------------------------------------------------

from gemma_code.engine.gemma_tools_parse import CallWatcher, parse_reply  # noqa: E402

__all__ = [
    "CALL_CLOSE", "CALL_OPEN", "QUOTE", "RESPONSE_CLOSE", "RESPONSE_OPEN", "TOOL_CLOSE",
    "TOOL_OPEN", "CallWatcher", "ParsedReply", "Segments", "ToolCall", "ToolSpec",
    "call_segments", "declaration_segments", "parse_reply", "render_call",
    "render_declarations", "render_response", "response_segments",
]
