"""`POST /v1/messages`: the Anthropic Messages API (what Claude Code speaks), streamed or not.

Content blocks: text, `tool_use` and `tool_result` (rendered as Gemma 4's native call and
response), `thinking` (given back to the model on the tool-call turn it belongs to).
`stop_reason` is `tool_use` when the model called a tool.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from gemma_code.engine.base import ImageData, Message
from gemma_code.engine.gemma_tools import ToolCall, ToolSpec
from gemma_code.server.common import (
    Piece,
    Served,
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
from gemma_code.server.images import check_vision, image_of_base64
from gemma_code.server.runner import ApiError, Job, Outcome, collect


def _text(content: Any, where: str) -> str:
    """Text of a string or of a list of text blocks (tool results, system prompts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            else:
                kind = block.get("type") if isinstance(block, dict) else type(block).__name__
                raise ApiError(400, f"{where}: blocks of type {kind!r} are not supported here "
                               "(text only)")
        return "\n".join(parts)
    raise ApiError(400, f"{where} must be a string or a list of blocks")


def messages_of(body: dict[str, Any]) -> list[Message]:
    out: list[Message] = []
    system = _text(body.get("system"), "system")
    if system.strip():
        out.append(Message("system", system))
    items = body.get("messages")
    if not isinstance(items, list) or not items:
        raise ApiError(400, "`messages` must be a non-empty list")
    names: dict[str, str] = {}
    for index, item in enumerate(items):
        where = f"messages.{index}"
        if not isinstance(item, dict) or item.get("role") not in ("user", "assistant"):
            raise ApiError(400, f"{where}: role must be 'user' or 'assistant'")
        blocks = item.get("content")
        if isinstance(blocks, str):
            blocks = [{"type": "text", "text": blocks}]
        if not isinstance(blocks, list):
            raise ApiError(400, f"{where}.content must be a string or a list of blocks")
        if item["role"] == "assistant":
            out.append(_assistant(blocks, where, names))
        else:
            out.extend(_user(blocks, where, names))
    return out


def _assistant(blocks: list[Any], where: str, names: dict[str, str]) -> Message:
    text: list[str] = []
    thinking: list[str] = []
    calls: list[ToolCall] = []
    for n, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text.append(str(block.get("text", "")))
        elif kind == "thinking":
            thinking.append(str(block.get("thinking", "")))
        elif kind == "redacted_thinking":
            continue
        elif kind == "tool_use":
            name, arguments = block.get("name"), block.get("input", {})
            if not isinstance(name, str) or not name or not isinstance(arguments, dict):
                raise ApiError(400, f"{where}.content.{n}: tool_use needs a name and an input object")
            names[str(block.get("id", ""))] = name
            calls.append(ToolCall(name, arguments, str(block.get("id", ""))))
        else:
            raise ApiError(400, f"{where}.content.{n}: assistant blocks of type {kind!r} are not supported")
    return Message("model", "".join(text), tool_calls=tuple(calls), reasoning="\n".join(thinking))


def _user(blocks: list[Any], where: str, names: dict[str, str]) -> list[Message]:
    results: list[Message] = []
    text: list[str] = []
    images: list[ImageData] = []
    for n, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text.append(str(block.get("text", "")))
        elif kind == "image":
            images.append(_image(block.get("source"), f"{where}.content.{n}"))
        elif kind == "tool_result":
            content = _text(block.get("content"), f"{where}.content.{n}.content")
            if block.get("is_error"):
                content = f"error: {content}"
            results.append(Message("tool", content, name=names.get(str(block.get("tool_use_id")), "unknown")))
        else:
            raise ApiError(400, f"{where}.content.{n}: user blocks of type {kind!r} are not supported "
                           "(text, image and tool_result only)")
    if text or images:
        results.append(Message("user", "\n".join(text), images=tuple(images)))
    return results


def _image(source: Any, where: str) -> ImageData:
    """An `image` block's base64 source; URL sources are refused (the server never fetches)."""
    if not isinstance(source, dict):
        raise ApiError(400, f"{where}: an image block needs a `source` object")
    if source.get("type") == "url":
        raise ApiError(400, f"{where}: this server never fetches image URLs; send the image as a "
                       "base64 source ({\"type\": \"base64\", \"media_type\": \"image/png\", \"data\": ...})")
    if source.get("type") != "base64":
        raise ApiError(400, f"{where}: image sources of type {source.get('type')!r} are not supported "
                       "(base64 only)")
    return image_of_base64(source.get("data"), source.get("media_type"), where)


def tools_of(body: dict[str, Any]) -> list[ToolSpec]:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise ApiError(400, "`tools` must be a list")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "none":
        return []
    specs = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise ApiError(400, f"tools.{index} must be an object")
        if "input_schema" not in tool:
            continue  # Anthropic's server tools (web search, ...) run on their side: none here
        specs.append(tool_spec(tool.get("name"), tool.get("description"), tool.get("input_schema"),
                               f"tools.{index}"))
    return specs


def job_of(body: dict[str, Any], served: Served) -> Job:
    served.check_model(body.get("model"), anthropic=True)
    max_tokens = int_field(body, "max_tokens")
    if max_tokens is None:
        raise ApiError(400, "max_tokens: field required")
    tools = tools_of(body)
    messages = with_tools(messages_of(body), tools)
    check_order(messages)
    check_vision(served.engine, messages)
    thinking = body.get("thinking")
    think = served.think
    if isinstance(thinking, dict):
        think = thinking.get("type") == "enabled"
    return Job(messages=messages, max_tokens=max_tokens, think=think,
               temperature=temperature_of(body), stop=stops_of(body.get("stop_sequences"), "stop_sequences"),
               tool_names={t.name for t in tools} if tools else None)


def stop_reason(outcome: Outcome) -> str:
    if outcome.reply.calls:
        return "tool_use"
    return "max_tokens" if outcome.stats.stop_reason == "length" else "end_turn"


def usage(outcome: Outcome | None) -> dict[str, Any]:
    prompt, completion, reused = usage_numbers(outcome) if outcome else (0, 0, 0)
    return {"input_tokens": prompt - reused, "output_tokens": completion,
            "cache_read_input_tokens": reused, "cache_creation_input_tokens": 0}


def content_of(outcome: Outcome) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if outcome.reply.thought:
        blocks.append({"type": "thinking", "thinking": outcome.reply.thought, "signature": ""})
    if outcome.reply.text:
        blocks.append({"type": "text", "text": outcome.reply.text})
    blocks.extend({"type": "tool_use", "id": new_id("toolu_"), "name": c.name, "input": c.arguments}
                  for c in outcome.reply.calls)
    return blocks


def _message(message_id: str, served: Served, content: list[dict[str, Any]], reason: str | None,
             outcome: Outcome | None) -> dict[str, Any]:
    return {"id": message_id, "type": "message", "role": "assistant", "model": served.alias,
            "content": content, "stop_reason": reason, "stop_sequence": None,
            "usage": usage(outcome)}


async def create(request: Any, served: Served) -> Any:
    from fastapi.responses import JSONResponse, StreamingResponse

    body = await read_json(request)
    job = job_of(body, served)
    message_id = new_id("msg_")
    if body.get("stream"):
        first, rest = await first_piece(served.runner, job)
        return StreamingResponse(_events(served, message_id, chain(first, rest)),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    outcome = await collect(served.runner, job, request.is_disconnected)
    return JSONResponse(_message(message_id, served, content_of(outcome), stop_reason(outcome), outcome))


async def count_tokens(request: Any, served: Served) -> Any:
    """`POST /v1/messages/count_tokens`: the prompt's tokens with the model's own tokenizer."""
    from gemma_code.engine.chat_templates import render

    body = await read_json(request)
    served.check_model(body.get("model"), anthropic=True)
    messages = with_tools(messages_of(body), tools_of(body))
    check_vision(served.engine, messages)
    own = getattr(served.engine, "prompt_tokens", None)
    if callable(own):  # content counted as text, exactly as the prompt will be evaluated
        return {"input_tokens": len(own(messages, think=False))}
    from gemma_code.tasks.attachments import can_see, image_budget

    text = render(messages, served.engine.info.chat_format)
    images = [i for m in messages for i in m.images]
    seen = image_budget(served.engine, images) if images and can_see(served.engine) else 0
    return {"input_tokens": served.engine.count_tokens(text) + seen}


async def _events(served: Served, message_id: str, pieces: AsyncIterator[Piece]) -> AsyncIterator[bytes]:
    yield sse({"type": "message_start", "message": _message(message_id, served, [], None, None)},
              "message_start")
    index = -1
    open_kind = ""

    def start(kind: str, block: dict[str, Any]) -> list[bytes]:
        nonlocal index, open_kind
        out = stop()
        index += 1
        open_kind = kind
        out.append(sse({"type": "content_block_start", "index": index, "content_block": block},
                       "content_block_start"))
        return out

    def stop() -> list[bytes]:
        nonlocal open_kind
        if not open_kind:
            return []
        out = []
        if open_kind == "thinking":
            out.append(sse({"type": "content_block_delta", "index": index,
                            "delta": {"type": "signature_delta", "signature": ""}},
                           "content_block_delta"))
        open_kind = ""
        out.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
        return out

    try:
        async for piece in pieces:
            if piece.kind in ("thought", "text"):
                kind = "thinking" if piece.kind == "thought" else "text"
                if open_kind != kind:
                    if kind == "thinking" and index >= 0 and open_kind != "thinking":
                        continue  # a stray thought after the answer stays out of the reply
                    block = ({"type": "thinking", "thinking": "", "signature": ""} if kind == "thinking"
                             else {"type": "text", "text": ""})
                    for chunk in start(kind, block):
                        yield chunk
                delta = ({"type": "thinking_delta", "thinking": piece.text} if kind == "thinking"
                         else {"type": "text_delta", "text": piece.text})
                yield sse({"type": "content_block_delta", "index": index, "delta": delta},
                          "content_block_delta")
            elif piece.outcome is not None:
                outcome = piece.outcome
                for chunk in stop():
                    yield chunk
                for call in outcome.reply.calls:
                    for chunk in start("tool_use", {"type": "tool_use", "id": new_id("toolu_"),
                                                    "name": call.name, "input": {}}):
                        yield chunk
                    yield sse({"type": "content_block_delta", "index": index, "delta": {
                        "type": "input_json_delta",
                        "partial_json": json.dumps(call.arguments, ensure_ascii=False)}},
                        "content_block_delta")
                for chunk in stop():
                    yield chunk
                yield sse({"type": "message_delta",
                           "delta": {"stop_reason": stop_reason(outcome), "stop_sequence": None},
                           "usage": usage(outcome)}, "message_delta")
                yield sse({"type": "message_stop"}, "message_stop")
    except ApiError as exc:  # the status line is gone: the failure travels as an event
        yield sse({"type": "error", "error": {"type": "api_error", "message": exc.message}}, "error")
