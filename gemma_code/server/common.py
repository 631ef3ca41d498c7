"""What the three APIs share: the served model, request checks, ids, and the reply stream."""

from __future__ import annotations

import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from gemma_code.engine.base import Chunk, Engine, Message
from gemma_code.engine.gemma_tools import CallWatcher, ToolSpec
from gemma_code.server.runner import ApiError, Job, Outcome, Runner, outcome_of
from gemma_code.server.security import BodyTooLarge


@dataclass
class Served:
    """The model behind the server and the defaults requests fall back to."""

    engine: Engine
    runner: Runner
    alias: str
    names: frozenset[str]
    think: bool
    max_tokens: int
    # Responses API conversations by response id, for `previous_response_id` (newest last)
    conversations: OrderedDict[str, list[Message]] = field(default_factory=OrderedDict)

    def remember(self, response_id: str, messages: list[Message], keep: int = 256) -> None:
        self.conversations[response_id] = messages
        while len(self.conversations) > keep:
            self.conversations.popitem(last=False)

    def check_model(self, name: Any, *, anthropic: bool = False) -> None:
        """Unknown model names are refused (404), so a misconfigured client learns it at once."""
        if name is None or name == "":
            return
        if not isinstance(name, str):
            raise ApiError(400, "`model` must be a string", param="model")
        if name not in self.names:
            raise ApiError(
                404, f"the model {name!r} is not served here; this server serves {self.alias!r}",
                "not_found_error" if anthropic else "model_not_found", "model",
            )


async def read_json(request: Any) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/413 ApiError."""
    try:
        raw = await request.body()
    except BodyTooLarge:
        raise ApiError(413, "request body too large") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def int_field(body: dict[str, Any], *names: str, default: int | None = None) -> int | None:
    """The first of `names` present, which must be a positive integer."""
    for name in names:
        if name in body and body[name] is not None:
            value = body[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ApiError(400, f"`{name}` must be an integer", param=name)
            if value <= 0:
                raise ApiError(400, f"`{name}` must be at least 1, not {value}", param=name)
            return value
    return default


def temperature_of(body: dict[str, Any]) -> float | None:
    value = body.get("temperature")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 2:
        raise ApiError(400, "`temperature` must be a number from 0 to 2", param="temperature")
    return float(value)


def stops_of(value: Any, name: str = "stop") -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ApiError(400, f"`{name}` must be a string or a list of strings", param=name)


def schema_of(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, f"{where} must be a JSON Schema object", param="tools")
    return value


def tool_spec(name: Any, description: Any, parameters: Any, where: str) -> ToolSpec:
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, f"{where}: every tool needs a name", param="tools")
    return ToolSpec(name, str(description or ""), schema_of(parameters, f"{where}.parameters"))


def arguments_of(value: Any, where: str) -> dict[str, Any]:
    """Call arguments sent back by a client: a JSON object, or a string holding one."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            parsed = json.loads(value)
        except ValueError:
            raise ApiError(400, f"{where}: the arguments are not valid JSON") from None
        if isinstance(parsed, dict):
            return parsed
    raise ApiError(400, f"{where}: the arguments must be a JSON object")


def with_tools(messages: list[Message], tools: Sequence[ToolSpec]) -> list[Message]:
    """Declare `tools` in the system turn (one is added when there is none)."""
    if not tools:
        return messages
    if messages and messages[0].role == "system":
        first = messages[0]
        return [Message("system", first.content, tools=tuple(tools)), *messages[1:]]
    return [Message("system", "", tools=tuple(tools)), *messages]


def check_order(messages: list[Message]) -> None:
    """Our renderers need a non-empty conversation whose tool results follow their calls."""
    if not any(m.role in ("user", "tool") for m in messages):
        raise ApiError(400, "the conversation needs at least one user message", param="messages")
    previous = ""
    for message in messages:
        if message.role == "tool" and previous not in ("model-calls", "tool"):
            raise ApiError(400, "a tool result must follow the assistant message that called "
                           "the tool", param="messages")
        previous = "model-calls" if message.role == "model" and message.tool_calls else message.role


def usage_numbers(outcome: Outcome) -> tuple[int, int, int]:
    stats = outcome.stats
    return stats.prompt_tokens, stats.completion_tokens, stats.prompt_tokens_reused


@dataclass
class Piece:
    """One step of a streamed reply: thought text, answer text, or the finished outcome."""

    kind: str  # thought | text | done
    text: str = ""
    outcome: Outcome | None = None


async def reply_pieces(runner: Runner, job: Job) -> AsyncIterator[Piece]:
    """Thoughts and answer text as they come; a native call is held back and parsed at the end."""
    cancel = threading.Event()
    chunks: list[Chunk] = []
    watcher = CallWatcher()
    shown = 0
    async for chunk in runner.chunks(job, cancel):
        chunks.append(chunk)
        if chunk.kind == "thought" and chunk.text:
            yield Piece("thought", chunk.text)
        elif chunk.kind == "text":
            text = watcher.feed(chunk.text) if job.tool_names is not None else chunk.text
            shown += len(text)
            if text:
                yield Piece("text", text)
    outcome = outcome_of(chunks, job)
    if job.tool_names is not None:
        rest = watcher.finish() if not watcher.started else ""
        if not outcome.reply.calls:
            rest = watcher.raw[shown:]  # a call that could not be parsed stays visible as text
        if rest:
            yield Piece("text", rest)
    yield Piece("done", outcome=outcome)


def sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def first_piece(runner: Runner, job: Job) -> tuple[Piece, AsyncIterator[Piece]]:
    """Start a streamed reply and wait for its first piece, so that a request the engine
    refuses (a prompt too long for the window) still gets a 4xx status, not a broken stream."""
    pieces = reply_pieces(runner, job)
    try:
        first = await pieces.__anext__()
    except StopAsyncIteration:  # pragma: no cover - reply_pieces always ends with "done"
        raise ApiError(500, "the model produced nothing") from None
    return first, pieces


async def chain(first: Piece, rest: AsyncIterator[Piece]) -> AsyncIterator[Piece]:
    yield first
    async for piece in rest:
        yield piece
