"""Parsing Gemma 4 replies that may hold native tool calls (see gemma_tools).

Nothing here raises on model output: every defect becomes a line in ``ParsedReply.errors``,
written so that the model can read it as a tool error and correct itself.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemma_code.engine.gemma_tools import ParsedReply

QUOTE = '<|"|>'
CALL_OPEN, CALL_CLOSE = "<|tool_call>", "<tool_call|>"
RESPONSE_OPEN = "<|tool_response>"
CHANNEL_OPEN, CHANNEL_CLOSE = "<|channel>", "<channel|>"
_NAME = re.compile(r"[A-Za-z_][\w.\-]*")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
_SNIPPET = 80


class _Malformed(Exception):
    def __init__(self, why: str, at: int) -> None:
        super().__init__(why)
        self.why = why
        self.at = at


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 3] + "..."


class _Args:
    """Recursive descent over ``{key:value,...}`` in the native notation."""

    def __init__(self, text: str, at: int) -> None:
        self.s = text
        self.i = at

    def _ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def _expect(self, char: str, what: str) -> None:
        self._ws()
        if not self.s.startswith(char, self.i):
            found = self.s[self.i : self.i + 12] or "the end of the reply"
            raise _Malformed(f"expected {what} but found {found!r}", self.i)
        self.i += len(char)

    def obj(self) -> dict[str, Any]:
        self._expect("{", "'{'")
        out: dict[str, Any] = {}
        self._ws()
        if self.s.startswith("}", self.i):
            self.i += 1
            return out
        while True:
            self._ws()
            key = self._key()
            self._expect(":", f"':' after the key {key!r}")
            out[key] = self.value()
            self._ws()
            if self.s.startswith(",", self.i):
                self.i += 1
                continue
            self._expect("}", "',' or '}'")
            return out

    def _key(self) -> str:
        if self.s.startswith(QUOTE, self.i):
            return self._string()
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in ":,{}[]<" and not self.s[self.i].isspace():
            self.i += 1
        if self.i == start:
            raise _Malformed("expected a key", start)
        return self.s[start : self.i]

    def _string(self) -> str:
        start = self.i + len(QUOTE)
        end = self.s.find(QUOTE, start)
        if end < 0:
            raise _Malformed(f"a string opened with {QUOTE} is never closed", self.i)
        self.i = end + len(QUOTE)
        return self.s[start:end]

    def value(self) -> Any:
        self._ws()
        if self.s.startswith(QUOTE, self.i):
            return self._string()
        if self.s.startswith("{", self.i):
            return self.obj()
        if self.s.startswith("[", self.i):
            self.i += 1
            items: list[Any] = []
            self._ws()
            if self.s.startswith("]", self.i):
                self.i += 1
                return items
            while True:
                items.append(self.value())
                self._ws()
                if self.s.startswith(",", self.i):
                    self.i += 1
                    continue
                self._expect("]", "',' or ']'")
                return items
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in ",}]<":
            self.i += 1
        word = self.s[start : self.i].strip()
        if not word:
            raise _Malformed("expected a value", start)
        return _bare(word)


def _bare(word: str) -> Any:
    """An unquoted value: a number, true/false/null, else the word itself as text."""
    lowered = word.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    if _NUMBER.fullmatch(word):
        return float(word) if any(c in word for c in ".eE") else int(word)
    return word


def _split_thoughts(head: str) -> tuple[str, str]:
    """(answer text, thought text) of the part of a reply before its first call."""
    text: list[str] = []
    thought: list[str] = []
    rest = head
    while rest:
        at = rest.find(CHANNEL_OPEN)
        if at < 0:
            text.append(rest)
            break
        text.append(rest[:at])
        body = rest[at + len(CHANNEL_OPEN) :]
        end = body.find(CHANNEL_CLOSE)
        inner, rest = (body, "") if end < 0 else (body[:end], body[end + len(CHANNEL_CLOSE) :])
        newline = inner.find("\n")
        thought.append(inner[newline + 1 :] if newline >= 0 else "")
    return "".join(text).strip(), "".join(thought).strip()


def _parse_one(raw: str, at: int) -> tuple[str, dict[str, Any], int]:
    """One call starting at `at` (just past ``<|tool_call>``): (name, arguments, end)."""
    if not raw.startswith("call:", at):
        raise _Malformed("a call must start with 'call:NAME{'", at)
    match = _NAME.match(raw, at + 5)
    if match is None:
        raise _Malformed("the call has no tool name", at + 5)
    parser = _Args(raw, match.end())
    arguments = parser.obj()
    parser._expect(CALL_CLOSE, CALL_CLOSE)
    return match.group(), arguments, parser.i


def _gap_error(gap: str) -> str | None:
    """What to say about text found after a call (None when it is only white space)."""
    if not gap.strip():
        return None
    if CHANNEL_OPEN in gap:
        return f"a stray {CHANNEL_OPEN} after the tool call was ignored; reply with calls or text"
    return f"text after the tool call was ignored: {_snippet(gap)!r}"


def parse_reply(
    raw: str, known: Collection[str] | None = None, *, max_calls: int | None = None
) -> ParsedReply:
    """Split a raw reply into text, thought and calls; every defect becomes an error line.

    `known`: the names that may be called (others are reported and dropped). `max_calls`:
    calls past this many are reported and dropped (None: no limit).
    """
    from gemma_code.engine.gemma_tools import ParsedReply, ToolCall

    first = raw.find(CALL_OPEN)
    head = raw if first < 0 else raw[:first]
    text, thought = _split_thoughts(head)
    reply = ParsedReply(text=text, thought=thought)
    at = first
    seen: set[str] = set()
    while at >= 0:
        start = at + len(CALL_OPEN)
        name = _NAME.match(raw, start + 5)
        label = name.group() if name and raw.startswith("call:", start) else "a tool"
        try:
            tool, arguments, end = _parse_one(raw, start)
        except _Malformed as exc:
            close = raw.find(CALL_CLOSE, start)
            if close < 0:
                reply.errors.append(f"the call to {label} was cut off before {CALL_CLOSE}")
            else:
                bad = raw[at : (close + len(CALL_CLOSE)) if close >= 0 else len(raw)]
                reply.errors.append(
                    f"the call to {label} has a malformed argument list ({exc.why}): "
                    f"{_snippet(bad)}; write call:NAME{{key:<|\"|>text<|\"|>,n:5}}"
                )
            end = len(raw) if close < 0 else close + len(CALL_CLOSE)
        else:
            _accept(reply, ToolCall(tool, arguments), known, max_calls, seen)
        stop = raw.find(RESPONSE_OPEN, end)
        following = raw.find(CALL_OPEN, end)
        if stop >= 0 and (following < 0 or stop < following):
            following = -1
            gap = raw[end:stop]
        else:
            gap = raw[end:] if following < 0 else raw[end:following]
        error = _gap_error(gap)
        if error:
            reply.errors.append(error)
        at = following
    return reply


def _accept(
    reply: ParsedReply, call: Any, known: Collection[str] | None, max_calls: int | None,
    seen: set[str],
) -> None:
    from gemma_code.engine.gemma_tools import render_call

    if known is not None and call.name not in known:
        names = ", ".join(sorted(known)) or "none"
        reply.errors.append(f"unknown tool {call.name!r}; the tools are: {names}")
        return
    key = render_call(call)
    if key in seen:
        reply.errors.append(f"the call to {call.name} repeats an earlier call in this reply; it runs once")
        return
    if max_calls is not None and len(reply.calls) >= max_calls:
        reply.errors.append(
            f"only {max_calls} call(s) per reply are run; the call to {call.name} was ignored"
        )
        return
    seen.add(key)
    reply.calls.append(call)


class CallWatcher:
    """Streams answer text until a call begins; a possible ``<|tool_call>`` prefix is held back.

    `feed` returns the text that is safe to show now. Once a call starts, nothing more is
    shown (`started` is True) and `raw` keeps everything for `parse_reply`.
    """

    def __init__(self) -> None:
        self.raw = ""
        self.started = False
        self._held = ""

    def feed(self, text: str) -> str:
        self.raw += text
        if self.started:
            return ""
        held = self._held + text
        at = held.find(CALL_OPEN)
        if at >= 0:
            self.started = True
            self._held = ""
            return held[:at]
        keep = 0
        for size in range(min(len(held), len(CALL_OPEN) - 1), 0, -1):
            if CALL_OPEN.startswith(held[-size:]):
                keep = size
                break
        self._held = held[len(held) - keep :]
        return held[: len(held) - keep]

    def finish(self) -> str:
        """What was held back, when the reply ended without a call."""
        held, self._held = ("" if self.started else self._held), ""
        return held
