"""`POST /v1/chat/completions`: OpenAI Chat Completions, with tools, streamed or not."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from gemma_code.engine.base import ImageData, Message
from gemma_code.engine.gemma_tools import ToolCall, ToolSpec
from gemma_code.server.common import (
    Piece,
    Served,
    arguments_of,
    chain,
    check_order,
    first_piece,
    int_field,
    new_id,
    read_json,
    sse,
    stops_of,
    temperature_of,
    tool_spec,
    usage_numbers,
    with_tools,
)
from gemma_code.server.images import check_vision, image_of_url
from gemma_code.server.runner import ApiError, Job, Outcome, collect

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "model",
          "tool": "tool", "function": "tool"}


def text_of(content: Any, where: str) -> str:
    """A message's content: a string, null, or a list of text parts (no images)."""
    return content_of(content, where, images_ok=False)[0]


def content_of(content: Any, where: str, *, images_ok: bool = True, param: str = "messages"
               ) -> tuple[str, tuple[ImageData, ...]]:
    """A message's text and images: a string, null, or a list of text and image parts.

    Images: Chat Completions `image_url` and Responses `input_image` parts, as data URLs.
    """
    if content is None:
        return "", ()
    if isinstance(content, str):
        return content, ()
    if isinstance(content, list):
        parts: list[str] = []
        images: list[ImageData] = []
        for n, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if isinstance(part, str):
                parts.append(part)
            elif kind in ("text", "input_text", "output_text"):
                parts.append(str(part.get("text", "")))
            elif kind == "refusal":
                parts.append(str(part.get("refusal", "")))
            elif kind in ("image_url", "input_image"):
                if not images_ok:
                    raise ApiError(400, f"{where}: images are taken in user messages only", param=param)
                url = part.get("image_url")
                if kind == "image_url" and isinstance(url, dict):
                    url = url.get("url")
                if kind == "input_image" and url is None and part.get("file_id"):
                    raise ApiError(400, f"{where}.content[{n}]: file ids are not supported; "
                                   "send the image as a data URL", param=param)
                images.append(image_of_url(url, f"{where}.content[{n}]", param))
            else:
                kind = kind or type(part).__name__
                raise ApiError(400, f"{where}: content parts of type {kind!r} are not supported "
                               "(text and images only)", param="messages")
        return "".join(parts), tuple(images)
    raise ApiError(400, f"{where}: content must be a string or a list of parts", param="messages")


def messages_from_openai(items: Any) -> list[Message]:
    """OpenAI chat messages -> our Messages (tool calls, tool results and reasoning kept)."""
    if not isinstance(items, list) or not items:
        raise ApiError(400, "`messages` must be a non-empty list", param="messages")
    out: list[Message] = []
    names: dict[str, str] = {}
    for index, item in enumerate(items):
        where = f"messages[{index}]"
        if not isinstance(item, dict):
            raise ApiError(400, f"{where} must be an object", param="messages")
        role = _ROLES.get(str(item.get("role")))
        if role is None:
            raise ApiError(400, f"{where}: unknown role {item.get('role')!r}", param="messages")
        if role == "user":
            content, images = content_of(item.get("content"), where)
            out.append(Message("user", content, images=images))
            continue
        content = text_of(item.get("content"), where)
        if role == "system":
            if out and out[-1].role == "system" and len(out) == 1:
                out[0] = Message("system", out[0].content + "\n\n" + content)
                continue
            out.append(Message("system" if not out else "user", content))
        elif role == "model":
            raw_calls = item.get("tool_calls") or []
            if not isinstance(raw_calls, list):
                raise ApiError(400, f"{where}.tool_calls must be a list", param="messages")
            calls = tuple(_call_of(call, f"{where}.tool_calls[{n}]", names)
                          for n, call in enumerate(raw_calls))
            reasoning = item.get("reasoning_content") or item.get("reasoning") or ""
            out.append(Message("model", content, tool_calls=calls, reasoning=str(reasoning)))
        elif role == "tool":
            call_id = str(item.get("tool_call_id") or "")
            name = names.get(call_id) or str(item.get("name") or "unknown")
            out.append(Message("tool", content, name=name))
    return out


def _call_of(call: Any, where: str, names: dict[str, str]) -> ToolCall:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise ApiError(400, f"{where} must be an object with a `function`", param="messages")
    function = call["function"]
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, f"{where}: the function needs a name", param="messages")
    call_id = str(call.get("id") or "")
    names[call_id] = name
    return ToolCall(name, arguments_of(function.get("arguments"), where), call_id)


def tools_of(body: dict[str, Any]) -> list[ToolSpec]:
    """Function tools of the request; `tool_choice: "none"` declares none."""
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise ApiError(400, "`tools` must be a list", param="tools")
    if body.get("tool_choice") == "none":
        return []
    specs = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise ApiError(400, f"{where}: only function tools are supported", param="tools")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise ApiError(400, f"{where} needs a `function` object", param="tools")
        specs.append(tool_spec(function.get("name"), function.get("description"),
                               function.get("parameters"), where))
    return specs


def think_of(body: dict[str, Any], default: bool) -> bool:
    options = body.get("chat_template_kwargs")
    if isinstance(options, dict) and "enable_thinking" in options:
        return bool(options["enable_thinking"])
    effort = body.get("reasoning_effort")
    if isinstance(effort, str):
        return effort not in ("none", "minimal")
    return default


def job_of(body: dict[str, Any], served: Served) -> Job:
    served.check_model(body.get("model"))
    if body.get("n") not in (None, 1):
        raise ApiError(400, "`n` must be 1", param="n")
    tools = tools_of(body)
    messages = with_tools(messages_from_openai(body.get("messages")), tools)
    check_order(messages)
    check_vision(served.engine, messages)
    grammar = body.get("grammar")
    if grammar is not None and not isinstance(grammar, str):
        raise ApiError(400, "`grammar` must be a string (GBNF)", param="grammar")
    return Job(
        messages=messages,
        max_tokens=int_field(body, "max_completion_tokens", "max_tokens", default=served.max_tokens)
        or served.max_tokens,
        think=think_of(body, served.think), temperature=temperature_of(body), grammar=grammar,
        stop=stops_of(body.get("stop")), tool_names={t.name for t in tools} if tools else None,
    )


def finish_reason(outcome: Outcome) -> str:
    if outcome.reply.calls:
        return "tool_calls"
    return "length" if outcome.stats.stop_reason == "length" else "stop"


def usage(outcome: Outcome) -> dict[str, Any]:
    prompt, completion, reused = usage_numbers(outcome)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion, "prompt_tokens_details": {"cached_tokens": reused}}


def tool_calls(outcome: Outcome) -> list[dict[str, Any]]:
    return [
        {"id": new_id("call_"), "type": "function",
         "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)}}
        for call in outcome.reply.calls
    ]


async def chat_completions(request: Any, served: Served) -> Any:
    from fastapi.responses import JSONResponse, StreamingResponse

    body = await read_json(request)
    job = job_of(body, served)
    completion_id = new_id("chatcmpl-")
    created = int(time.time())
    if body.get("stream"):
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        first, rest = await first_piece(served.runner, job)
        events = _stream(served, chain(first, rest), completion_id, created, include_usage)
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    outcome = await collect(served.runner, job, request.is_disconnected)
    message: dict[str, Any] = {"role": "assistant", "content": outcome.reply.text or None}
    if outcome.reply.thought:
        message["reasoning_content"] = outcome.reply.thought
    calls = tool_calls(outcome)
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return JSONResponse({
        "id": completion_id, "object": "chat.completion", "created": created, "model": served.alias,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(outcome),
                     "logprobs": None}],
        "usage": usage(outcome),
    })


async def _stream(served: Served, pieces: AsyncIterator[Piece], completion_id: str, created: int,
                  include_usage: bool) -> AsyncIterator[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                    "model": served.alias,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                 "logprobs": None}]})

    yield chunk({"role": "assistant", "content": ""})
    try:
        async for piece in pieces:
            if piece.kind == "thought":
                yield chunk({"reasoning_content": piece.text})
            elif piece.kind == "text":
                yield chunk({"content": piece.text})
            elif piece.outcome is not None:
                outcome = piece.outcome
                for index, call in enumerate(tool_calls(outcome)):
                    yield chunk({"tool_calls": [{"index": index, **call}]})
                yield chunk({}, finish_reason(outcome))
                if include_usage:
                    yield sse({"id": completion_id, "object": "chat.completion.chunk",
                               "created": created, "model": served.alias, "choices": [],
                               "usage": usage(outcome)})
    except ApiError as exc:  # the status line is gone: the error travels as an event
        yield sse({"error": {"message": exc.message, "type": exc.kind or "server_error",
                             "param": exc.param, "code": None}})
    yield b"data: [DONE]\n\n"
