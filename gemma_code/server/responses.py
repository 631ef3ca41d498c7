"""`POST /v1/responses`: the OpenAI Responses API (what Codex CLI speaks), streamed or not.

Input items: messages, `function_call`, `function_call_output`, `reasoning` (its text is
given back to the model on the call turn that follows it), and Codex's freeform `custom`
tools (declared to the model as a function with one string argument, `input`). Other
hosted tool types (web search, file search...) are not declared. `previous_response_id`
works for responses made by this process (the last 256 are remembered).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from gemma_code.engine.base import Message
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
    temperature_of,
    tool_spec,
    usage_numbers,
    with_tools,
)
from gemma_code.server.images import check_vision
from gemma_code.server.openai_chat import content_of, text_of
from gemma_code.server.runner import ApiError, Job, Outcome, collect

_CUSTOM_PARAMETERS = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's whole input, verbatim."}},
    "required": ["input"],
}
_CALLS = ("function_call", "custom_tool_call")
_OUTPUTS = ("function_call_output", "custom_tool_call_output")


def _reasoning_text(item: dict[str, Any]) -> str:
    parts = item.get("content") or item.get("summary") or []
    if not isinstance(parts, list):
        return ""
    return "\n".join(str(p.get("text", "")) for p in parts if isinstance(p, dict)).strip()


def messages_from_input(body: dict[str, Any], served: Served) -> list[Message]:
    """`instructions`, the previous response's conversation, and `input` as our Messages."""
    out: list[Message] = []
    previous = body.get("previous_response_id")
    if previous is not None and not isinstance(previous, str):
        raise ApiError(400, "`previous_response_id` must be a string", param="previous_response_id")
    if previous:
        if previous not in served.conversations:
            raise ApiError(404, f"previous response {previous!r} not found (this server keeps "
                           "the last 256 of this run); send the whole input instead",
                           "not_found_error", "previous_response_id")
        out = list(served.conversations[previous])
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions.strip():
        out = [m for m in out if m.role != "system"]
        out.insert(0, Message("system", instructions))
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise ApiError(400, "`input` must be a string or a list of items", param="input")
    names = {c.id: c.name for m in out for c in m.tool_calls}
    reasoning = ""
    for index, item in enumerate(items):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise ApiError(400, f"{where} must be an object", param="input")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            text, images = content_of(item.get("content"), where, images_ok=role == "user", param="input")
            if role in ("system", "developer"):
                if not out:
                    out.append(Message("system", text))
                elif len(out) == 1 and out[0].role == "system":
                    out[0] = Message("system", out[0].content + "\n\n" + text)
                else:
                    out.append(Message("user", text))
            elif role == "assistant":
                out.append(Message("model", text, reasoning=reasoning))
                reasoning = ""
            elif role == "user":
                out.append(Message("user", text, images=images))
            else:
                raise ApiError(400, f"{where}: unknown role {role!r}", param="input")
        elif kind in _CALLS:
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise ApiError(400, f"{where}: a call needs a name", param="input")
            call_id = str(item.get("call_id") or item.get("id") or "")
            arguments = ({"input": str(item.get("input", ""))} if kind == "custom_tool_call"
                         else arguments_of(item.get("arguments"), where))
            names[call_id] = name
            call = ToolCall(name, arguments, call_id)
            if out and out[-1].role == "model":
                last = out[-1]
                out[-1] = replace(last, tool_calls=(*last.tool_calls, call),
                                  reasoning=last.reasoning or reasoning)
            else:
                out.append(Message("model", "", tool_calls=(call,), reasoning=reasoning))
            reasoning = ""
        elif kind in _OUTPUTS:
            call_id = str(item.get("call_id") or "")
            output = item.get("output")
            text = output if isinstance(output, str) else text_of(output, where)
            out.append(Message("tool", text, name=names.get(call_id, "unknown")))
        elif kind == "reasoning":
            reasoning = _reasoning_text(item)
        else:
            raise ApiError(400, f"{where}: items of type {kind!r} are not supported", param="input")
    return out


def tools_of(body: dict[str, Any]) -> tuple[list[ToolSpec], set[str]]:
    """Declared tools, and which of them are freeform (`custom`) tools."""
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise ApiError(400, "`tools` must be a list", param="tools")
    if body.get("tool_choice") == "none":
        return [], set()
    specs: list[ToolSpec] = []
    custom: set[str] = set()
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise ApiError(400, f"{where} must be an object", param="tools")
        if tool.get("type") == "function":
            specs.append(tool_spec(tool.get("name"), tool.get("description"),
                                   tool.get("parameters"), where))
        elif tool.get("type") == "custom":
            specs.append(tool_spec(tool.get("name"), tool.get("description"),
                                   _CUSTOM_PARAMETERS, where))
            custom.add(str(tool.get("name")))
    return specs, custom


def job_of(body: dict[str, Any], served: Served) -> tuple[Job, set[str]]:
    served.check_model(body.get("model"))
    tools, custom = tools_of(body)
    messages = with_tools(messages_from_input(body, served), tools)
    check_order(messages)
    check_vision(served.engine, messages)
    effort = body.get("reasoning", {}).get("effort") if isinstance(body.get("reasoning"), dict) else None
    think = served.think if effort is None else effort not in ("none", "minimal")
    job = Job(
        messages=messages,
        max_tokens=int_field(body, "max_output_tokens", default=served.max_tokens) or served.max_tokens,
        think=think, temperature=temperature_of(body),
        tool_names={t.name for t in tools} if tools else None,
    )
    return job, custom


def call_item(call: ToolCall, custom: set[str], *, done: bool = True) -> dict[str, Any]:
    status = "completed" if done else "in_progress"
    if call.name in custom:
        return {"type": "custom_tool_call", "id": new_id("ctc_"), "call_id": new_id("call_"),
                "name": call.name, "input": str(call.arguments.get("input", "")) if done else "",
                "status": status}
    return {"type": "function_call", "id": new_id("fc_"), "call_id": new_id("call_"),
            "name": call.name, "status": status,
            "arguments": json.dumps(call.arguments, ensure_ascii=False) if done else ""}


def reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {"type": "reasoning", "id": item_id, "summary": [],
            "content": [{"type": "reasoning_text", "text": text}] if text else []}


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"type": "message", "id": item_id, "role": "assistant", "status": status,
            "content": content if status == "completed" else []}


class ResponseShell:
    """The response object around the output items, as each event and the result carry it."""

    def __init__(self, body: dict[str, Any], served: Served, job: Job) -> None:
        self.id = new_id("resp_")
        self.created = int(time.time())
        self.body = body
        self.served = served
        self.job = job

    def of(self, status: str, output: list[dict[str, Any]], outcome: Outcome | None) -> dict[str, Any]:
        usage = None
        if outcome is not None:
            prompt, completion, reused = usage_numbers(outcome)
            usage = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": reused},
                     "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
                     "total_tokens": prompt + completion}
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        return {
            "id": self.id, "object": "response", "created_at": self.created, "status": status,
            "error": None, "incomplete_details": incomplete, "model": self.served.alias,
            "output": output, "usage": usage, "instructions": self.body.get("instructions"),
            "max_output_tokens": self.job.max_tokens, "temperature": self.job.temperature,
            "top_p": None, "tools": self.body.get("tools") or [],
            "tool_choice": self.body.get("tool_choice") or "auto", "parallel_tool_calls": True,
            "previous_response_id": self.body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None}, "store": bool(self.body.get("store")),
            "text": {"format": {"type": "text"}}, "truncation": "disabled", "metadata": {},
        }


def status_of(outcome: Outcome) -> str:
    return "incomplete" if outcome.stats.stop_reason == "length" and not outcome.reply.calls else "completed"


def output_of(outcome: Outcome, custom: set[str]) -> list[dict[str, Any]]:
    output: list[dict[str, Any]] = []
    if outcome.reply.thought:
        output.append(reasoning_item(new_id("rs_"), outcome.reply.thought))
    if outcome.reply.text:
        output.append(message_item(new_id("msg_"), outcome.reply.text))
    output.extend(call_item(call, custom) for call in outcome.reply.calls)
    return output


async def create(request: Any, served: Served) -> Any:
    from fastapi.responses import JSONResponse, StreamingResponse

    body = await read_json(request)
    job, custom = job_of(body, served)
    shell = ResponseShell(body, served, job)
    if body.get("stream"):
        first, rest = await first_piece(served.runner, job)
        return StreamingResponse(_events(shell, chain(first, rest), custom),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    outcome = await collect(served.runner, job, request.is_disconnected)
    output = output_of(outcome, custom)
    _remember_output(served, shell, outcome, output)
    return JSONResponse(shell.of(status_of(outcome), output, outcome))


def _remember_output(served: Served, shell: ResponseShell, outcome: Outcome,
                     output: list[dict[str, Any]]) -> None:
    ids = [item["call_id"] for item in output if item["type"] in _CALLS]
    calls = tuple(replace(c, id=i) for c, i in zip(outcome.reply.calls, ids, strict=False))
    served.remember(shell.id, [*shell.job.messages, Message(
        "model", outcome.reply.text, tool_calls=calls, reasoning=outcome.reply.thought)])


async def _events(
    shell: ResponseShell, pieces: AsyncIterator[Piece], custom: set[str]
) -> AsyncIterator[bytes]:
    sequence = 0
    output: list[dict[str, Any]] = []

    def event(kind: str, **data: Any) -> bytes:
        nonlocal sequence
        sequence += 1
        return sse({"type": kind, "sequence_number": sequence - 1, **data}, kind)

    yield event("response.created", response=shell.of("in_progress", [], None))
    yield event("response.in_progress", response=shell.of("in_progress", [], None))
    open_item: dict[str, Any] | None = None
    text = ""

    def close_open() -> list[bytes]:
        nonlocal open_item, text
        if open_item is None:
            return []
        index, item = len(output), open_item
        open_item = None
        if item["type"] == "reasoning":
            done = reasoning_item(item["id"], text)
            events = [event("response.reasoning_text.done", item_id=item["id"], output_index=index,
                            content_index=0, text=text)]
        else:
            done = message_item(item["id"], text)
            part = done["content"][0]
            events = [
                event("response.output_text.done", item_id=item["id"], output_index=index,
                      content_index=0, text=text, logprobs=[]),
                event("response.content_part.done", item_id=item["id"], output_index=index,
                      content_index=0, part=part),
            ]
        output.append(done)
        text = ""
        return [*events, event("response.output_item.done", output_index=index, item=done)]

    try:
        async for piece in pieces:
            if piece.kind in ("thought", "text"):
                kind = "reasoning" if piece.kind == "thought" else "message"
                if open_item is not None and open_item["type"] != kind:
                    for chunk in close_open():
                        yield chunk
                if open_item is None:
                    if kind == "reasoning" and any(i["type"] == "message" for i in output):
                        continue  # a stray thought after the answer: kept out of the output
                    item_id = new_id("rs_" if kind == "reasoning" else "msg_")
                    open_item = (reasoning_item(item_id, "") if kind == "reasoning"
                                 else message_item(item_id, "", "in_progress"))
                    yield event("response.output_item.added", output_index=len(output), item=open_item)
                    if kind == "message":
                        yield event("response.content_part.added", item_id=item_id,
                                    output_index=len(output), content_index=0,
                                    part={"type": "output_text", "text": "", "annotations": []})
                text += piece.text
                delta_type = ("response.reasoning_text.delta" if kind == "reasoning"
                              else "response.output_text.delta")
                extra: dict[str, Any] = {} if kind == "reasoning" else {"logprobs": []}
                yield event(delta_type, item_id=open_item["id"], output_index=len(output),
                            content_index=0, delta=piece.text, **extra)
            elif piece.outcome is not None:
                for chunk in close_open():
                    yield chunk
                outcome = piece.outcome
                for call in outcome.reply.calls:
                    index = len(output)
                    started = call_item(call, custom, done=False)
                    done = {**started, "status": "completed"}
                    yield event("response.output_item.added", output_index=index, item=started)
                    if started["type"] == "custom_tool_call":
                        done["input"] = str(call.arguments.get("input", ""))
                        yield event("response.custom_tool_call_input.delta", item_id=started["id"],
                                    output_index=index, delta=done["input"])
                        yield event("response.custom_tool_call_input.done", item_id=started["id"],
                                    output_index=index, input=done["input"])
                    else:
                        done["arguments"] = json.dumps(call.arguments, ensure_ascii=False)
                        yield event("response.function_call_arguments.delta", item_id=started["id"],
                                    output_index=index, delta=done["arguments"])
                        yield event("response.function_call_arguments.done", item_id=started["id"],
                                    output_index=index, arguments=done["arguments"], name=call.name)
                    yield event("response.output_item.done", output_index=index, item=done)
                    output.append(done)
                _remember_output(shell.served, shell, outcome, output)
                status = status_of(outcome)
                final = "response.completed" if status == "completed" else "response.incomplete"
                yield event(final, response=shell.of(status, output, outcome))
    except ApiError as exc:  # the status line is gone: the failure travels as an event
        yield event("response.failed", response={
            **shell.of("failed", output, None),
            "error": {"code": "server_error", "message": exc.message}})
