"""`gemma-code serve`: the configured model behind llama-cpp-python's OpenAI-compatible server.

The model is loaded here with our engine defaults (GPU offload, flash attention,
`swa_full=False`, KV type), which llama-cpp-python's own ModelSettings cannot express, and
handed to its FastAPI app. Prompts are rendered by gemma_code.engine.chat_templates, so a served
Gemma 3 base model (the small test model) keeps the system turn that llama-cpp-python's
"gemma" chat format drops.
"""

from __future__ import annotations

import ipaddress
import os
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemma_code.config import Settings
from gemma_code.engine.base import Message
from gemma_code.engine.chat_templates import STOP_STRINGS, detect_format, render
from gemma_code.errors import ConfigError, EngineError, GemmaCodeError, UsageError

DEFAULT_SERVE_N_CTX = 32768  # n_ctx 0 means "the model's length, at most this"
KV_TYPES = {"f16": 1, "q4_0": 2, "q8_0": 8}  # ggml type ids (llama_cpp.GGML_TYPE_*)
if TYPE_CHECKING:
    from fastapi import APIRouter

# a request's chat_template_kwargs.enable_thinking; None: the server's --think. Set by our
# chat route, read by the formatter (anyio copies the context into its worker threads)
REQUEST_THINK: ContextVar[bool | None] = ContextVar("gemma_code_request_think", default=None)
_ROLES = {"system": "system", "user": "user", "assistant": "model", "model": "model"}


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 or ::1; names other than localhost count as public."""
    if host.lower() in {"localhost", "localhost."}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None, api_key_env: str) -> None:
    """Refuse to serve beyond this machine without an API key."""
    if api_key or is_loopback(host):
        return
    raise UsageError(
        f"refusing to serve on {host} without an API key: anyone who can reach it could use the model",
        f"export {api_key_env}=$(openssl rand -hex 24) and run again (clients send the same "
        f"variable), or keep the default --host 127.0.0.1",
    )


def check_port_free(host: str, port: int) -> None:
    """Fail before the slow model load when the address is taken or not ours to bind."""
    import socket

    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                "choose another --port, stop the program using it, or fix --host",
            ) from None


def messages_from_openai(items: list[dict[str, Any]]) -> list[Message]:
    """OpenAI chat messages -> our Messages (text parts joined; tool turns as user text)."""
    out: list[Message] = []
    for item in items:
        content = item.get("content") or ""
        if isinstance(content, list):
            content = "".join(
                str(part.get("text", "")) for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            )
        role = _ROLES.get(str(item.get("role")), "user")
        if role == "system" and out:
            role = "user"  # our formats take one leading system turn only
        out.append(Message(role, str(content)))  # type: ignore[arg-type]
    return out


def chat_handler(fmt: str, think: bool) -> Any:
    """A llama-cpp-python chat handler rendering prompts exactly as our local engine does."""
    from llama_cpp.llama_chat_format import (
        ChatFormatterResponse,
        chat_formatter_to_chat_completion_handler,
    )

    def formatter(*, messages: Any, **_: Any) -> Any:
        asked = REQUEST_THINK.get()
        wanted = think if asked is None else asked
        prompt = render(messages_from_openai(messages), fmt, think=wanted)
        # our prompt starts with <bos> already (added_special), except the plain format
        return ChatFormatterResponse(
            prompt=prompt, stop=list(STOP_STRINGS[fmt]), added_special=fmt != "plain"
        )

    return chat_formatter_to_chat_completion_handler(formatter)


@dataclass(frozen=True)
class ServedModel:
    """What `serve` loaded, for the banner and the /props route."""

    alias: str
    path: Path
    n_ctx: int
    chat_format: str
    kv_type: str
    think: bool


def resolve_model_path(spec: str) -> Path:
    """A registry name or a path -> the GGUF file."""
    from gemma_code.models import resolve_model

    return Path(resolve_model(spec))


def serve_n_ctx(settings: Settings, path: Path) -> int:
    """n_ctx from the settings; 0 means the model's trained length, capped so it fits."""
    if settings.n_ctx > 0:
        return settings.n_ctx
    from gemma_code.models import inspect_gguf

    try:
        trained = inspect_gguf(path).context_length or 0
    except GemmaCodeError:  # an unreadable header: llama.cpp says why when it loads the file
        trained = 0
    return min(trained, DEFAULT_SERVE_N_CTX) if trained > 0 else DEFAULT_SERVE_N_CTX


def load_llama(settings: Settings, path: Path) -> tuple[Any, ServedModel]:
    """Load the GGUF with our defaults; llama_cpp is imported here only."""
    import llama_cpp

    kv = "f16" if settings.kv_type == "auto" else settings.kv_type
    if kv not in KV_TYPES:
        raise ConfigError(f"unknown kv_type {kv!r}", "choose auto, f16, q8_0 or q4_0")
    threads = settings.n_threads or max((os.cpu_count() or 2) // 2, 1)
    extra: dict[str, Any] = {"seed": settings.seed} if settings.seed >= 0 else {}
    try:
        llama = llama_cpp.Llama(
            str(path), n_gpu_layers=settings.n_gpu_layers, n_ctx=serve_n_ctx(settings, path),
            n_batch=settings.n_batch, n_threads=threads, n_threads_batch=threads,
            flash_attn=settings.flash_attn, swa_full=settings.swa_full,
            type_k=KV_TYPES[kv], type_v=KV_TYPES[kv], verbose=False, **extra,
        )
    except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
        raise EngineError(f"cannot load {path}: {exc}", "check the file with `gemma-code doctor`") from None
    meta = llama.metadata
    fmt = detect_format(meta.get("general.architecture", ""), meta.get("tokenizer.chat_template"))
    if fmt in ("gemma3", "gemma4"):
        llama.chat_handler = chat_handler(fmt, settings.think)
    served = ServedModel(
        alias=path.stem, path=path, n_ctx=llama.n_ctx(), chat_format=fmt, kv_type=kv,
        think=settings.think,
    )
    return llama, served


def create_app(llama: Any, served: ServedModel, *, api_key: str | None) -> Any:
    """llama-cpp-python's FastAPI app around an already loaded Llama, plus GET /props."""
    from fastapi import FastAPI
    from fastapi.middleware.cors import CORSMiddleware
    from llama_cpp.server import app as server_app
    from llama_cpp.server.model import LlamaProxy
    from llama_cpp.server.settings import ModelSettings, ServerSettings
    from starlette.middleware import Middleware
    from starlette_context.middleware import RawContextMiddleware
    from starlette_context.plugins import RequestIdPlugin

    class LoadedProxy(LlamaProxy):
        """Serves the one Llama we loaded instead of loading from ModelSettings."""

        @staticmethod
        def load_llama_from_model_settings(settings: ModelSettings) -> Any:
            return llama

    # interrupt_requests=False: with it, each new request cancels the one streaming now
    server_app.set_server_settings(ServerSettings(api_key=api_key, interrupt_requests=False))
    server_app._llama_proxy = LoadedProxy(
        [ModelSettings(model=str(served.path), model_alias=served.alias, verbose=False)]
    )
    app = FastAPI(
        middleware=[Middleware(RawContextMiddleware, plugins=(RequestIdPlugin(),))],
        title="gemma-code serve",
    )
    app.add_middleware(
        CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"]
    )
    app.include_router(our_routes(llama, served))
    app.include_router(server_app.router)  # after ours: the first matching route wins
    return app


def our_routes(llama: Any, served: ServedModel) -> APIRouter:
    """Routes added to or replacing llama-cpp-python's.

    - GET /props: llama-server's shape, so clients learn n_ctx and the prompt format.
    - GET /v1/models and POST /tokenize without the model lock: llama-cpp-python's own
      /v1/models and /extras/tokenize wait for it, so a client's start-up probes and prompt
      counting queued behind every answer in progress. Tokenizing reads only the vocabulary,
      which llama.cpp allows from any thread.
    - POST /v1/chat/completions: reads `chat_template_kwargs.enable_thinking`, which
      llama-cpp-python's request model drops, then hands over to its handler.
    """
    from fastapi import APIRouter, Body, Depends, Request
    from fastapi.exceptions import RequestValidationError
    from llama_cpp.server import app as server_app
    from llama_cpp.server.errors import RouteErrorHandler
    from llama_cpp.server.types import CreateChatCompletionRequest
    from pydantic import ValidationError

    router = APIRouter(route_class=RouteErrorHandler)  # OpenAI-style error bodies
    guarded = [Depends(server_app.authenticate)]

    @router.get("/props")
    def props() -> dict[str, Any]:
        return {
            "default_generation_settings": {"n_ctx": served.n_ctx},
            "model_path": str(served.path), "model_alias": served.alias,
            "chat_format": served.chat_format, "kv_type": served.kv_type,
            "thinking": served.think, "total_slots": 1,
        }

    @router.get("/v1/models", dependencies=guarded)
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": served.alias, "object": "model", "owned_by": "gemma-code",
                      "max_model_len": served.n_ctx}],
        }

    @router.post("/tokenize", dependencies=guarded)
    def tokenize(content: str = Body(..., embed=True)) -> dict[str, Any]:
        # llama-server's shape: no BOS added, special tokens parsed
        return {"tokens": llama.tokenize(content.encode("utf-8"), add_bos=False, special=True)}

    async def chat(request: Request) -> Any:
        raw = await request.json()
        options = raw.get("chat_template_kwargs") if isinstance(raw, dict) else None
        if isinstance(options, dict) and "enable_thinking" in options:
            # this request's own context: the streaming task and worker threads inherit it
            REQUEST_THINK.set(bool(options["enable_thinking"]))
        try:
            body = CreateChatCompletionRequest.model_validate(raw)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        return await server_app.create_chat_completion(request, body)

    # FastAPI reads the annotation to inject the request; under `from __future__ import
    # annotations` it is the string "Request", unresolvable outside this function
    chat.__annotations__["request"] = Request
    router.post("/v1/chat/completions", dependencies=guarded)(chat)
    return router


def run(app: Any, host: str, port: int) -> None:
    """Serve until Ctrl-C; uvicorn handles the signal and finishes open answers briefly."""
    import uvicorn

    uvicorn.run(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3,
    )
