"""A llama-cpp-python chat handler whose prompts keep message content as text (for `serve`).

llama-cpp-python's own chat handlers render a prompt string and tokenize all of it with
special tokens parsed, so `<end_of_turn>` or `<|turn>` inside a client's message becomes a
real turn marker. This handler renders our Gemma formats and tokenizes them the way the
local engine does (`segments.content_safe_tokens`): template strings as control tokens,
content as text. It reuses llama-cpp-python's completion-to-chat plumbing unchanged by
handing it a Llama whose `tokenize` returns those tokens for that one prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from gemma_code.engine.base import Message
from gemma_code.engine.gemma import STOP_STRINGS, render
from gemma_code.engine.segments import content_safe_tokens


class _Pretokenized:
    """A Llama that answers `tokenize(prompt)` with tokens prepared for that prompt."""

    def __init__(self, llama: Any, prompt: bytes, tokens: list[int]) -> None:
        self._llama = llama
        self._prompt = prompt
        self._tokens = tokens

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llama, name)

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        if text == self._prompt:
            return list(self._tokens)
        return list(self._llama.tokenize(text, add_bos=add_bos, special=special))


def content_safe_chat_handler(
    fmt: str,
    to_messages: Callable[[Any], Sequence[Message]],
    think: Callable[[], bool],
) -> Any:
    """A chat handler for `Llama.chat_handler`: our `fmt` rendering, content tokenized as text.

    `to_messages` turns the request's OpenAI-style messages into ours; `think()` says whether
    this request thinks (read per request).
    """
    from llama_cpp.llama_chat_format import (
        ChatFormatterResponse,
        chat_formatter_to_chat_completion_handler,
    )

    def handler(*, llama: Any, messages: Any, **kwargs: Any) -> Any:
        ours = list(to_messages(messages))
        wanted = think()
        prompt = render(ours, fmt, think=wanted)
        tokens = content_safe_tokens(
            lambda text, special: list(llama.tokenize(text.encode("utf-8"), add_bos=False,
                                                      special=special)),
            ours, fmt, think=wanted,
        )
        if fmt == "plain":  # the other formats' prompts carry <bos> themselves
            tokens.insert(0, int(llama.token_bos()))

        def formatter(**_: Any) -> Any:
            # our prompt starts with <bos> already (added_special), except the plain format
            return ChatFormatterResponse(prompt=prompt, stop=list(STOP_STRINGS[fmt]),
                                         added_special=fmt != "plain")

        inner = chat_formatter_to_chat_completion_handler(formatter)
        proxy = cast(Any, _Pretokenized(llama, prompt.encode("utf-8"), tokens))
        return inner(llama=proxy, messages=messages, **kwargs)

    return handler
