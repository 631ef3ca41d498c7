"""Prompt formats: Gemma 4's turns and thinking channel, plus documented fallbacks.

Formats:
- ``gemma4``: the template embedded in Gemma 4 GGUFs, rendered byte for byte (text only).
- ``gemma3``: Gemma 2/3 turns (``<start_of_turn>user ... <end_of_turn>``), system text folded
  into the first user turn as Gemma 3's own template does. Used for Gemma 2/3 files with no
  embedded template, such as the small test model.
- ``plain``: ``System:`` / ``User:`` / ``Assistant:`` paragraphs for any other model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from gemma_code.engine.base import Chunk, Message

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


def render_gemma4(
    messages: Sequence[Message], *, think: bool = False, add_generation_prompt: bool = True
) -> str:
    """Render like the Gemma 4 GGUF template (messages with text content, no tools)."""
    out = [BOS]
    rest = list(messages)
    if think or (rest and rest[0].role == "system"):
        out.append(TURN_OPEN + "system\n")
        if think:
            out.append(THINK)
        if rest and rest[0].role == "system":
            out.append(rest[0].content.strip())
            rest = rest[1:]
        out.append(TURN_CLOSE + "\n")
    for message in rest:
        if message.role == "system":
            raise ValueError("a system message may only come first")
        out.append(f"{TURN_OPEN}{message.role}\n")
        if message.role == "model":
            out.append(strip_thinking(message.content))
        else:
            out.append(message.content.strip())
        out.append(TURN_CLOSE + "\n")
    if add_generation_prompt:
        out.append(TURN_OPEN + "model\n")
        if not think:
            out.append(EMPTY_THOUGHT)
    return "".join(out)


def render_gemma3(messages: Sequence[Message], *, add_generation_prompt: bool = True) -> str:
    """Gemma 2/3 turns; the system text opens the first user turn."""
    out = [BOS]
    rest = list(messages)
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
    parts = [f"{labels[m.role]}: {m.content.strip()}\n\n" for m in messages]
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
