"""One engine, many clients: requests take turns in arrival order, each client keeps its KV.

The engine has one context. Before a request runs, the runner picks where its prompt starts:
the cache as it is (the same conversation going on), or a conversation saved earlier (a
host-memory copy of its KV cache, one per "slot") whose tokens share a longer prefix with
the prompt. The conversation it leaves is saved first when it is not a prefix of the new
prompt, so an agent's next step reuses its prefix even when another client spoke in between.

Generation runs in a worker thread and hands its chunks to the event loop through a queue;
a client that goes away sets `cancel`, and the generation stops at the next token.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from gemma_code.engine.base import Chunk, Engine, GenerationStats, Message
from gemma_code.engine.gemma_tools import ParsedReply, parse_reply
from gemma_code.errors import GemmaCodeError, PromptTooLongError

MIN_SLOT_TOKENS = 32  # shorter conversations are cheaper to evaluate again than to keep


class ApiError(Exception):
    """A client error (4xx) or a failure, answered in the API's own error shape."""

    def __init__(self, status: int, message: str, kind: str = "", param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param


@dataclass
class Job:
    """What every API turns its request into."""

    messages: list[Message]
    max_tokens: int
    think: bool = False
    temperature: float | None = None
    grammar: str | None = None
    stop: list[str] = field(default_factory=list)
    tool_names: set[str] | None = None  # None: no tools declared, calls are not parsed


@dataclass
class Outcome:
    """The whole reply: raw text (thoughts in their channel), parsed parts, and the stats."""

    raw: str
    reply: ParsedReply
    stats: GenerationStats


def raw_text(chunks: Sequence[Chunk]) -> str:
    """Chunks back into the model's own text: thoughts inside ``<|channel>thought``."""
    out: list[str] = []
    in_thought = False
    for chunk in chunks:
        if chunk.kind == "thought" and not in_thought:
            out.append("<|channel>thought\n")
            in_thought = True
        elif chunk.kind == "text" and in_thought:
            out.append("<channel|>")
            in_thought = False
        if chunk.kind != "stats":
            out.append(chunk.text)
    if in_thought:
        out.append("<channel|>")
    return "".join(out)


def outcome_of(chunks: Sequence[Chunk], job: Job) -> Outcome:
    """Parse a finished reply; calls only when the request declared tools."""
    raw = raw_text(chunks)
    stats = next((c.stats for c in reversed(chunks) if c.stats is not None), GenerationStats())
    if job.tool_names is None:
        thought = "".join(c.text for c in chunks if c.kind == "thought").strip()
        reply = ParsedReply(text=raw_answer(chunks), thought=thought)
    else:
        reply = parse_reply(raw, job.tool_names)
        if not reply.calls and reply.errors:
            # nothing callable came out: the client sees the text the model wrote, not nothing
            reply.text = raw_answer(chunks)
    return Outcome(raw, reply, stats)


def raw_answer(chunks: Sequence[Chunk]) -> str:
    return "".join(c.text for c in chunks if c.kind == "text").strip()


@dataclass
class Slot:
    tokens: list[int]
    data: bytes
    used: float


class Slots:
    """Saved conversations (KV copies in host memory), least recently used dropped first."""

    def __init__(self, engine: Engine, size: int) -> None:
        self.engine: Any = engine
        self.size = size
        self.saved: list[Slot] = []
        self.last_prompt: list[int] = []
        self.enabled = size > 0 and all(
            callable(getattr(engine, name, None))
            for name in ("kv_snapshot", "kv_restore", "kv_tokens", "prompt_tokens")
        )
        self.restores = 0
        self.saves = 0

    def prepare(self, messages: Sequence[Message], think: bool) -> None:
        """Put the best saved start of this prompt into the cache (saving what it replaces)."""
        if not self.enabled:
            return
        from gemma_code.engine.prompt_cache import common_prefix

        prompt = list(self.engine.prompt_tokens(messages, think=think))
        current = list(self.engine.kv_tokens())
        here = common_prefix(current, prompt)
        same_conversation = here > 0 and here >= len(self.last_prompt) * 9 // 10
        if not same_conversation and len(current) >= MIN_SLOT_TOKENS:
            self._save(current)
        best = max(self.saved, key=lambda s: common_prefix(s.tokens, prompt), default=None)
        there = common_prefix(best.tokens, prompt) if best else 0
        if best is not None and there > here and there >= MIN_SLOT_TOKENS:
            self.saved.remove(best)
            if self.engine.kv_restore(best.tokens, best.data):
                self.restores += 1
        self.last_prompt = prompt

    def _save(self, tokens: list[int]) -> None:
        if any(s.tokens == tokens for s in self.saved):
            return
        try:
            kept_tokens, data = self.engine.kv_snapshot()
        except (MemoryError, OSError, RuntimeError):  # a slot is an optimisation, never a failure
            return
        if not data:
            return
        self.saved = [s for s in self.saved if s.tokens != kept_tokens[: len(s.tokens)]]
        self.saved.append(Slot(kept_tokens, data, time.monotonic()))
        self.saves += 1
        while len(self.saved) > self.size:
            self.saved.remove(min(self.saved, key=lambda s: s.used))


class Runner:
    """Runs jobs on the engine one at a time, in arrival order."""

    def __init__(self, engine: Engine, *, slots: int = 4) -> None:
        self.engine = engine
        self.slots = Slots(engine, slots)
        self._lock = threading.Condition()
        self._queue: deque[object] = deque()
        self.served = 0

    def _wait_turn(self, ticket: object, cancel: threading.Event) -> bool:
        with self._lock:
            self._queue.append(ticket)
            while self._queue[0] is not ticket:
                if cancel.is_set():
                    self._queue.remove(ticket)
                    self._lock.notify_all()
                    return False
                self._lock.wait(0.2)
            return True

    def _done(self, ticket: object) -> None:
        with self._lock:
            self._queue.remove(ticket)
            self._lock.notify_all()

    def run(self, job: Job, cancel: threading.Event) -> Iterator[Chunk]:
        """Generate in this (worker) thread after waiting for our turn; stops when cancelled."""
        ticket = object()
        if not self._wait_turn(ticket, cancel):
            return
        try:
            self.slots.prepare(job.messages, job.think)
            stream = self.engine.stream(
                job.messages, max_tokens=job.max_tokens, think=job.think, grammar=job.grammar,
                stop=job.stop, temperature=job.temperature,
            )
            try:
                for chunk in stream:
                    yield chunk
                    if cancel.is_set():
                        break
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
            self.served += 1
        finally:
            self._done(ticket)

    async def chunks(self, job: Job, cancel: threading.Event) -> AsyncIterator[Chunk]:
        """`run` from the event loop: chunks as they come; errors as ApiError."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Chunk | BaseException | None] = asyncio.Queue()

        def work() -> None:
            try:
                for chunk in self.run(job, cancel):
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except BaseException as exc:  # handed to the request that asked, never lost
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = threading.Thread(target=work, name="gemma-code-generate", daemon=True)
        worker.start()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise as_api_error(item)
                yield item
        finally:
            cancel.set()


def as_api_error(exc: BaseException) -> ApiError:
    """Engine failures as API errors: a prompt that does not fit is the client's (400)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, PromptTooLongError):
        return ApiError(400, str(exc), "invalid_request_error", "messages")
    if isinstance(exc, (GemmaCodeError, ValueError)):
        return ApiError(500 if isinstance(exc, GemmaCodeError) else 400, str(exc))
    return ApiError(500, f"internal error: {type(exc).__name__}: {exc}", "server_error")


async def collect(runner: Runner, job: Job, disconnected: Any) -> Outcome:
    """Run a whole job for a non-streaming request; a client that leaves stops it."""
    cancel = threading.Event()
    chunks: list[Chunk] = []

    async def watch() -> None:
        while not cancel.is_set():
            if await disconnected():
                cancel.set()
                return
            await asyncio.sleep(0.25)

    watcher = asyncio.create_task(watch())
    try:
        async for chunk in runner.chunks(job, cancel):
            chunks.append(chunk)
    finally:
        cancel.set()
        watcher.cancel()
    return outcome_of(chunks, job)
