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
from collections.abc import Callable, Sequence

from gemma_code.engine.base import Engine, KVCacheEngine, Message, as_kv_engine
from gemma_code.engine.chat_templates import render, render_gemma4_segments, strip_thinking, with_tool_text
from gemma_code.errors import EngineError

# Each message's content is replaced by a marker, the result rendered and split at the
# markers. The marker must not occur in any content (a NUL byte in a file once switched the
# split off and let quoted control strings through): its nonce is chosen until none does.
_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use characters: the markers' brackets


def _marker_nonce(messages: Sequence[Message]) -> str:
    nonce = 0
    while any(f"{_OPEN}{nonce}." in m.content for m in messages):
        nonce += 1
    return f"{_OPEN}{nonce}."


def content_as_rendered(message: Message, fmt: str) -> str:
    """A message's content as the renderer writes it (stripped; earlier thoughts dropped)."""
    if fmt == "gemma4" and message.role == "model":
        return strip_thinking(message.content)
    return message.content.strip()


def render_segments(
    messages: Sequence[Message], fmt: str, *, think: bool = False
) -> list[tuple[str, bool]] | None:
    """[(text, is_template)] whose texts join to `render(messages, fmt)`; None if they cannot."""
    if fmt == "gemma4":  # its renderer keeps content (tool arguments and results too) apart
        return render_gemma4_segments(messages, think=think)
    # formats without native tools write declarations, calls and results out as text: content
    messages = with_tool_text(messages)
    head = _marker_nonce(messages)
    marked = [Message(m.role, f"{head}{i}{_CLOSE}") for i, m in enumerate(messages)]
    parts = re.split(re.escape(head) + "(\\d+)" + _CLOSE, render(marked, fmt, think=think))
    segments: list[tuple[str, bool]] = []
    for index, part in enumerate(parts):
        text = part if index % 2 == 0 else content_as_rendered(messages[int(part)], fmt)
        if text:
            segments.append((text, index % 2 == 0))
    if "".join(text for text, _ in segments) != render(messages, fmt, think=think):
        return None  # the renderer changed in a way this split does not know
    return segments


def content_safe_tokens(
    tokenize: Callable[[str, bool], list[int]], messages: Sequence[Message], fmt: str, *,
    think: bool = False,
) -> list[int]:
    """A prompt's tokens with `tokenize(text, special)`: template parsed, content as text.

    Any runtime's tokenizer fits (the engine's, or llama-cpp-python's `Llama.tokenize`).
    """
    if fmt == "plain":  # no control strings in the template: all of it is text
        return tokenize(render(messages, fmt, think=think), False)
    segments = render_segments(messages, fmt, think=think)
    if segments is None:
        raise EngineError(f"the {fmt} prompt could not be split into template and content",
                          "this is a bug in gemma-code's prompt format; please report it")
    tokens: list[int] = []
    for text, template in segments:
        tokens += tokenize(text, template)
    return tokens


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


def count_prompt(engine: Engine, messages: Sequence[Message], *, think: bool) -> int:
    """The prompt's exact size as the engine evaluates it (content counted as text)."""
    kv = as_kv_engine(engine)
    if kv is not None:
        return len(kv.prompt_tokens(messages, think=think))
    return engine.count_tokens(render(messages, engine.info.chat_format, think=think))
