"""Keep secret values out of every prompt, whatever engine and whatever task sends it.

`load_engine` wraps each engine in a RedactingEngine: message content reaches the model
with well-known secret values (secret_patterns.py) replaced by numbered placeholders, and
the model's answer gets the real values back before anyone reads or applies it (an edit
of the line holding a key keeps the key). The user is told once per kind of value found.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from gemma_code.engine.base import Chunk, Message
from gemma_code.secret_patterns import Redactor

_NOTES: list[str] = []  # notes for the user, taken by the CLI after each command or turn
_MEMO_LIMIT = 256  # message contents remembered (a chat's system prompt is scanned once)


def take_notes() -> list[str]:
    """The notes gathered since the last call (each said once)."""
    notes = list(_NOTES)
    _NOTES.clear()
    return notes


class RedactingEngine:
    """An engine whose prompts carry no secret values; everything else is the inner engine's."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.redactor = Redactor()
        self._memo: dict[str, str] = {}
        self._said = 0

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        if name == "prompt_tokens" and callable(value):
            return lambda messages, **kw: value(self.clean(messages), **kw)
        return value

    def clean(self, messages: Sequence[Message]) -> list[Message]:
        """`messages` with every secret value in their content replaced by its placeholder."""
        # replace() keeps the rest of each turn (tool calls, tool names, declared tools)
        out = [replace(m, content=self._text(m.content)) for m in messages]
        if len(self.redactor.values) > self._said:
            self._said = len(self.redactor.values)
            note = self.redactor.note()
            if note:
                _NOTES.append(note)
        return out

    def _text(self, content: str) -> str:
        done = self._memo.get(content)
        if done is None:
            done = self.redactor.redact(content)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[content] = done
        return done

    def stream(self, messages: Sequence[Message], **kwargs: Any) -> Iterator[Chunk]:
        """The inner engine's stream over clean messages, placeholders in the answer restored."""
        chunks = self.inner.stream(self.clean(messages), **kwargs)
        if not self.redactor.values:
            yield from chunks
            return
        held = ""
        try:
            for chunk in chunks:
                if chunk.kind != "text":
                    if held:
                        yield Chunk("text", self.redactor.restore(held))
                        held = ""
                    text = self.redactor.restore(chunk.text) if chunk.text else chunk.text
                    yield Chunk(chunk.kind, text, stats=chunk.stats) if text != chunk.text else chunk
                    continue
                held += chunk.text
                keep = self._partial_tail(held)
                ready, held = held[: len(held) - keep], held[len(held) - keep:]
                if ready:
                    yield Chunk("text", self.redactor.restore(ready))
            if held:
                yield Chunk("text", self.redactor.restore(held))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _partial_tail(self, text: str) -> int:
        """Length of the end of `text` that could be the start of a placeholder (held back)."""
        at = text.rfind("[", max(0, len(text) - 96))
        while at >= 0:
            tail = text[at:]
            if any(mark.startswith(tail) for mark in self.redactor.values):
                return len(tail)
            at = text.rfind("[", max(0, len(text) - 96), at)
        return 0

    def close(self) -> None:
        self.inner.close()
