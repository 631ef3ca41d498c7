"""`ask`: a one-shot question about the code, with named files, piped input and repo context."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gemma_code.config import Settings
from gemma_code.engine.base import Chunk, Engine, GenerationStats, ImageData, Message
from gemma_code.tasks.prompting import BASE_RULES, check_fits, fence, read_named_file

SYSTEM_PROMPT = (
    BASE_RULES
    + " Answer the user's question about their code. Use Markdown; put code in fenced blocks."
)


@dataclass
class AskResult:
    """The collected reply of one `ask`."""

    answer: str = ""
    thoughts: str = ""
    stats: GenerationStats = field(default_factory=GenerationStats)


def ask_messages(
    question: str,
    *,
    files: Sequence[Path] = (),
    stdin_text: str | None = None,
    repo_context: str | None = None,
    documents: Sequence[str] = (),
    images: Sequence[ImageData] = (),
) -> list[Message]:
    """System turn (rules + repository context, the stable prefix), then the question turn.

    `documents` are blocks already read and packed (PDF pages, tasks/attachments.py); `images`
    open the question turn.
    """
    system = SYSTEM_PROMPT
    if repo_context:
        system += "\n\n# Repository context\n\n" + repo_context
    parts: list[str] = []
    for path in files:
        parts.append(fence(str(path), read_named_file(path)))
    parts.extend(documents)
    if stdin_text and stdin_text.strip():
        parts.append(fence("(standard input)", stdin_text))
    parts.append(question.strip())
    return [Message("system", system), Message("user", "\n".join(parts), images=tuple(images))]


def stream_ask(
    engine: Engine,
    messages: Sequence[Message],
    *,
    max_tokens: int,
    think: bool = False,
    temperature: float | None = None,
) -> Generator[Chunk, None, None]:
    """Check the prompt fits, then stream the reply (the last chunk carries the stats)."""
    check_fits(engine, messages, max_tokens=max_tokens, think=think)
    yield from engine.stream(messages, max_tokens=max_tokens, think=think, temperature=temperature)


def collect(chunks: Iterator[Chunk]) -> AskResult:
    """Gather a stream into an AskResult."""
    result = AskResult()
    for chunk in chunks:
        if chunk.kind == "text":
            result.answer += chunk.text
        elif chunk.kind == "thought":
            result.thoughts += chunk.text
        elif chunk.stats is not None:
            result.stats = chunk.stats
    return result


def repo_context_for(
    engine: Engine, question: str, files: Sequence[Path], settings: Settings, *, reserved: int = 0
) -> str | None:
    """Repository context for the question, packed by the context builder (None outside a repo).

    `reserved` tokens of the budget are already taken (by PDF pages).
    """
    from gemma_code.context import context_for_prompt

    return context_for_prompt(engine, question, files, settings, reserved=reserved)
