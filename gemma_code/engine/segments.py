"""Split a rendered prompt into template text and message content.

The template's control strings (``<|turn>``, ``<start_of_turn>``...) must become control
tokens, but the same strings inside a user's file or question must not: a coding assistant
reads chat-template code, and ``<|turn>model`` inside a file would otherwise end the user's
turn for the model. So the engine tokenizes template parts with special tokens parsed and
message content as plain text. (llama.cpp still matches user-defined tokens such as Gemma 4's
``<|channel>`` inside text; control tokens such as ``<|turn>`` are protected.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gemma_code.engine.base import KVCacheEngine, Message
from gemma_code.engine.chat_templates import render, strip_thinking

_MARK = "\x00{}\x00"
_MARKS = re.compile("\x00(\\d+)\x00")


def content_as_rendered(message: Message, fmt: str) -> str:
    """A message's content as the renderer writes it (stripped; earlier thoughts dropped)."""
    if fmt == "gemma4" and message.role == "model":
        return strip_thinking(message.content)
    return message.content.strip()


def render_segments(
    messages: Sequence[Message], fmt: str, *, think: bool = False
) -> list[tuple[str, bool]] | None:
    """[(text, is_template)] whose texts join to `render(messages, fmt)`; None if they cannot."""
    if any("\x00" in m.content for m in messages):
        return None
    marked = [Message(m.role, _MARK.format(i)) for i, m in enumerate(messages)]
    parts = _MARKS.split(render(marked, fmt, think=think))
    segments: list[tuple[str, bool]] = []
    for index, part in enumerate(parts):
        text = part if index % 2 == 0 else content_as_rendered(messages[int(part)], fmt)
        if text:
            segments.append((text, index % 2 == 0))
    if "".join(text for text, _ in segments) != render(messages, fmt, think=think):
        return None  # the renderer changed in a way this split does not know
    return segments


def evaluated_tokens(
    engine: KVCacheEngine, messages: Sequence[Message], *, think: bool,
    add_generation_prompt: bool = True,
) -> list[int]:
    """The tokens the engine evaluates for `messages` (its own `prompt_tokens`: message content
    tokenized as text, so a file quoting `<|turn>` cannot end a turn), with or without the
    generation prompt at the end."""
    tokens = list(engine.prompt_tokens(messages, think=think))
    if not add_generation_prompt:  # prompt_tokens always ends with it: all template text
        fmt = engine.info.chat_format
        bare = render(messages, fmt, think=think, add_generation_prompt=False)
        opening = render(messages, fmt, think=think)[len(bare):]
        tokens = tokens[: len(tokens) - len(engine.tokenize(opening))] if opening else tokens
    return tokens
