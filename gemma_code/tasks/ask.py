"""`ask`: a one-shot question about the code, with named files, piped input and repo context."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gemma_code.config import Settings
from gemma_code.engine.base import Chunk, Engine, GenerationStats, ImageData, Message
from gemma_code.errors import PromptTooLongError
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
    counted: int | None = None,
) -> Generator[Chunk, None, None]:
    """Check the prompt fits, then stream the reply (the last chunk carries the stats).

    `gemma-code ask`, `explain` and every chat turn answer through here; `counted` is the
    prompt's token count when the caller has just counted it (the chat, fitting its window).
    """
    if counted is None:
        check_fits(engine, messages, max_tokens=max_tokens, think=think)
    elif counted + max_tokens > engine.info.n_ctx:
        raise PromptTooLongError(counted, engine.info.n_ctx, max_tokens)
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


PROMPT_OVERHEAD = 512  # system rules and turn markers around the context in `ask`


def answer_reserve(n_ctx: int, max_tokens: int) -> int:
    """Tokens of the window kept for the answer when sizing the repository context.

    A fixed share of the window (an eighth, at most 4,096), so the packed context, and with
    it the prompt cache's saved prefix, stays the same when only --max-tokens changes; more
    only when max_tokens asks for more than that share.
    """
    return max(min(n_ctx // 8, 4096), max_tokens)


def context_budget(
    engine: Engine, question: str, files: Sequence[Path], settings: Settings, *, reserved: int = 0
) -> int:
    """Tokens the repository context may use: the setting `budget`, capped by the room the
    engine's window leaves after the reply, the question, the -f files and the rules.

    `reserved` tokens (PDF pages and images, already packed) come out of both.
    """
    overhead = PROMPT_OVERHEAD + engine.count_tokens(question)
    for path in files:
        try:
            overhead += engine.count_tokens(Path(path).read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue  # the task reports unreadable -f files itself
    room = engine.info.n_ctx - answer_reserve(engine.info.n_ctx, settings.max_tokens) - overhead - reserved
    return min(settings.budget - reserved, room)


def repo_context_for(
    engine: Engine, question: str, files: Sequence[Path], settings: Settings,
    *, cwd: Path | None = None, reserved: int = 0,
) -> str | None:
    """Repository context for the question, sized to the engine's window.

    None outside a repository, when context is off, or when nothing fits. The -f `files` steer
    the ranking but are left out of the block, since the task shows them in full itself.
    The context builder only sees a token counter; the budgeting is this task's. `reserved`
    tokens of the budget are already taken (by PDF pages and images).
    """
    from gemma_code.context import build_context
    from gemma_code.gitops import repo_root

    if not settings.context:
        return None
    root = repo_root(cwd or Path.cwd())
    if root is None:
        return None
    budget = context_budget(engine, question, files, settings, reserved=reserved)
    if budget <= 0:
        return None
    info = engine.info
    packed = build_context(
        root, question, budget=budget, count_tokens=engine.count_tokens,
        seeds=list(files), omit=list(files),
        tokenizer_id=f"engine:{info.backend}:{info.name}:{info.path}",
        max_file_bytes=settings.max_file_bytes,
    )
    return packed.text or None
