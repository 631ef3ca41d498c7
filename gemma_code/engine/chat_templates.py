"""Prompt formats: Gemma 4's turns and thinking channel, plus documented fallbacks.

Formats:
- ``gemma4``: the template embedded in Gemma 4 GGUFs, rendered byte for byte (tools included).
- ``gemma3``: Gemma 2/3 turns (``<start_of_turn>user ... <end_of_turn>``), system text folded
  into the first user turn as Gemma 3's own template does. Used for Gemma 2/3 files with no
  embedded template, such as the small test model.
- ``plain``: ``System:`` / ``User:`` / ``Assistant:`` paragraphs for any other model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from gemma_code.engine.base import Chunk, Message
from gemma_code.engine.gemma_tools import (
    call_segments,
    declaration_segments,
    render_call,
    render_declarations,
    render_response,
    response_segments,
)

FORMATS = ("gemma4", "gemma3", "plain")

# Gemma 4 control strings
BOS = "<bos>"
TURN_OPEN = "<|turn>"
TURN_CLOSE = "<turn|>"
THINK = "<|think|>"
CHANNEL_OPEN = "<|channel>"
CHANNEL_CLOSE = "<channel|>"
EMPTY_THOUGHT = CHANNEL_OPEN + "thought\n" + CHANNEL_CLOSE

STOP_STRINGS: dict[str, tuple[str, ...]] = {
    "gemma4": (TURN_CLOSE, "<eos>", "<|tool_response>"),
    "gemma3": ("<end_of_turn>", "<eos>"),
    "plain": ("\nUser:", "\nSystem:"),
}


def strip_thinking(text: str) -> str:
    """Drop every ``<|channel>...<channel|>`` block, as the Gemma 4 template does."""
    result = ""
    for part in text.split(CHANNEL_CLOSE):
        result += part.split(CHANNEL_OPEN)[0] if CHANNEL_OPEN in part else part
    return result.strip()


def render_gemma4_segments(
    messages: Sequence[Message], *, think: bool = False, add_generation_prompt: bool = True
) -> list[tuple[str, bool]]:
    """Gemma 4's template as (text, is_template) segments; message content is never template.

    Byte for byte the GGUF template (tests compare them), with tools: a model turn's calls,
    then the results of the `tool` messages that follow it, then its text; a model message
    without calls right after those results is that same turn's final text (the model wrote
    it after the results without closing the turn). Reasoning is rendered only on tool-call
    turns after the last user turn, as the official template's newer revision does.
    """
    out: list[tuple[str, bool]] = [(BOS, True)]

    def t(text: str) -> None:
        out.append((text, True))

    def c(text: str) -> None:
        if text:
            out.append((text, False))

    rest = list(messages)
    system = rest.pop(0) if rest and rest[0].role == "system" else None
    tools = system.tools if system else ()
    if think or system is not None or tools:
        t(TURN_OPEN + "system\n" + (THINK if think else ""))
        if system is not None:
            c(system.content.strip())
        for tool in tools:
            out.extend(declaration_segments(tool))
        t(TURN_CLOSE + "\n")
    last_user = max((i for i, m in enumerate(rest) if m.role == "user"), default=-1)
    after_results = False
    index = 0
    while index < len(rest):
        message = rest[index]
        index += 1
        if message.role in ("system", "tool"):
            raise ValueError(
                "a system message may only come first"
                if message.role == "system"
                else "a tool result must follow the model turn that called the tool"
            )
        t(f"{TURN_OPEN}{message.role}\n")
        if message.role != "model":
            c(message.content.strip())
            t(TURN_CLOSE + "\n")
            after_results = False
            continue
        if message.tool_calls and message.reasoning and index - 1 > last_user:
            t(CHANNEL_OPEN + "thought\n")
            c(message.reasoning)
            t("\n" + CHANNEL_CLOSE)
        for call in message.tool_calls:
            out.extend(call_segments(call))
        results = 0
        while index < len(rest) and rest[index].role == "tool" and message.tool_calls:
            result = rest[index]
            response = result.response if result.response is not None else result.content
            out.extend(response_segments(result.name, response))
            results += 1
            index += 1
        content = message.content
        if (
            results and not content and index < len(rest) and rest[index].role == "model"
            and not rest[index].tool_calls
        ):
            content = rest[index].content  # the same turn's answer, written after the results
            index += 1
        c(strip_thinking(content))
        after_results = results > 0
        if not (results and not content):
            t(TURN_CLOSE + "\n")
    if add_generation_prompt:
        if not after_results:
            t(TURN_OPEN + "model\n")
        if not think:
            t(EMPTY_THOUGHT)
    return [(text, template) for text, template in out if text]


def render_gemma4(
    messages: Sequence[Message], *, think: bool = False, add_generation_prompt: bool = True
) -> str:
    """Render like the Gemma 4 GGUF template (text, tools, calls, results, thinking)."""
    segments = render_gemma4_segments(
        messages, think=think, add_generation_prompt=add_generation_prompt
    )
    return "".join(text for text, _ in segments)


def with_tool_text(messages: Sequence[Message]) -> list[Message]:
    """Formats without native tools: declarations, calls and results written out as text."""
    out: list[Message] = []
    for m in messages:
        if m.role == "system" and m.tools:
            declared = render_declarations(m.tools)
            out.append(Message("system", (m.content.strip() + "\n\n" + declared).strip()))
        elif m.role == "model" and m.tool_calls:
            out.append(Message("model", m.content + "".join(render_call(c) for c in m.tool_calls)))
        elif m.role == "tool":
            result = m.response if m.response is not None else m.content
            out.append(Message("user", render_response(m.name, result)))
        else:
            out.append(m)
    return out


def render_gemma3(messages: Sequence[Message], *, add_generation_prompt: bool = True) -> str:
    """Gemma 2/3 turns; the system text opens the first user turn."""
    out = [BOS]
    rest = with_tool_text(messages)
    system = ""
    if rest and rest[0].role == "system":
        system = rest[0].content.strip() + "\n\n"
        rest = rest[1:]
    for index, message in enumerate(rest):
        if message.role == "system":
            raise ValueError("a system message may only come first")
        text = message.content.strip()
        if index == 0 and message.role == "user":
            text = system + text
        out.append(f"<start_of_turn>{message.role}\n{text}<end_of_turn>\n")
    if add_generation_prompt:
        out.append("<start_of_turn>model\n")
    return "".join(out)


def render_plain(messages: Sequence[Message], *, add_generation_prompt: bool = True) -> str:
    """Plain labelled paragraphs for models without a known format."""
    labels = {"system": "System", "user": "User", "model": "Assistant"}
    parts = [f"{labels[m.role]}: {m.content.strip()}\n\n" for m in with_tool_text(messages)]
    if add_generation_prompt:
        parts.append("Assistant:")
    return "".join(parts)


def render(
    messages: Sequence[Message],
    fmt: str,
    *,
    think: bool = False,
    add_generation_prompt: bool = True,
) -> str:
    """Render `messages` in prompt format `fmt` (thinking exists only in gemma4)."""
    if fmt == "gemma4":
        return render_gemma4(messages, think=think, add_generation_prompt=add_generation_prompt)
    if fmt == "gemma3":
        return render_gemma3(messages, add_generation_prompt=add_generation_prompt)
    if fmt == "plain":
        return render_plain(messages, add_generation_prompt=add_generation_prompt)
    raise ValueError(f"unknown prompt format {fmt!r}; known: {', '.join(FORMATS)}")


def detect_format(arch: str, template: str | None) -> str:
    """Choose the prompt format from a GGUF's architecture and embedded chat template."""
    if template and TURN_OPEN in template:
        return "gemma4"
    if arch == "gemma4":
        return "gemma4"
    if (template and "<start_of_turn>" in template) or arch in {"gemma2", "gemma3", "gemma3n"}:
        return "gemma3"
    return "plain"


class ThoughtSplitter:
    """Splits streamed model text into thought and answer pieces.

    Gemma 4 writes ``<|channel>thought\\n ... <channel|>`` before its answer when thinking is
    on. Tags may arrive split across pieces, so a possible tag prefix is held back.
    """

    _TAGS = (CHANNEL_OPEN, CHANNEL_CLOSE)

    def __init__(self) -> None:
        self._buffer = ""
        self._in_thought = False
        self._skip_channel_name = False
        self._answer_started = False

    def feed(self, piece: str) -> Iterator[Chunk]:
        self._buffer += piece
        yield from self._drain(final=False)

    def finish(self) -> Iterator[Chunk]:
        yield from self._drain(final=True)

    def _held_back(self) -> int:
        """Length of the buffer's longest suffix that could start a tag."""
        for size in range(min(len(self._buffer), max(map(len, self._TAGS)) - 1), 0, -1):
            tail = self._buffer[-size:]
            if any(tag.startswith(tail) for tag in self._TAGS):
                return size
        return 0

    def _drain(self, *, final: bool) -> Iterator[Chunk]:
        while self._buffer:
            if self._skip_channel_name:
                newline = self._buffer.find("\n")
                if newline < 0:
                    if final:
                        self._buffer = ""
                    return
                self._buffer = self._buffer[newline + 1 :]
                self._skip_channel_name = False
                continue
            tag = CHANNEL_CLOSE if self._in_thought else CHANNEL_OPEN
            at = self._buffer.find(tag)
            if at >= 0:
                yield from self._emit(self._buffer[:at])
                self._buffer = self._buffer[at + len(tag) :]
                self._in_thought = not self._in_thought
                self._skip_channel_name = self._in_thought
                continue
            keep = 0 if final else self._held_back()
            text = self._buffer[: len(self._buffer) - keep]
            self._buffer = self._buffer[len(self._buffer) - keep :]
            yield from self._emit(text)
            return

    def _emit(self, text: str) -> Iterator[Chunk]:
        if not text:
            return
        if self._in_thought:
            yield Chunk("thought", text)
            return
        if not self._answer_started:
            text = text.lstrip("\n")
            if not text:
                return
            self._answer_started = True
        yield Chunk("text", text)


def split_thoughts(pieces: Iterable[str]) -> Iterator[Chunk]:
    """Run a whole stream of text pieces through a ThoughtSplitter."""
    splitter = ThoughtSplitter()
    for piece in pieces:
        yield from splitter.feed(piece)
    yield from splitter.finish()
