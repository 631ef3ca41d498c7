"""`gemma-code serve`: the configured engine behind OpenAI and Anthropic compatible APIs.

One module per API: openai_chat (Chat Completions), responses (the Responses API that Codex
CLI speaks), anthropic (the Messages API that Claude Code speaks). They share the engine
through runner.Runner (turns in arrival order, a KV slot per conversation) and the checks in
security (loopback by default, API key, Host header, body size, CORS only when configured).
Tool calls use Gemma 4's native format (gemma_code.engine.gemma_tools). Importing this
package needs the `serve` extra (fastapi, uvicorn).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request  # module level: FastAPI reads the routes' annotations from here

from gemma_code.config import Settings
from gemma_code.engine.base import Engine
from gemma_code.server.common import Served, read_json
from gemma_code.server.openai_chat import messages_from_openai
from gemma_code.server.runner import ApiError, Runner
from gemma_code.server.security import (
    Guard,
    check_bind,
    check_port_free,
    error_body,
    guard_middleware,
    is_loopback,
)

__all__ = [
    "check_bind", "check_port_free", "create_app", "is_loopback", "messages_from_openai",
    "run", "served_model",
]


def served_model(engine: Engine, settings: Settings) -> Served:
    """The names a client may ask for: the model's name, its file's stem, the setting."""
    info = engine.info
    alias = Path(info.path).stem if info.path else info.name
    names = {alias, info.name, settings.model, Path(settings.model).stem} - {""}
    return Served(
        engine=engine, runner=Runner(engine, slots=settings.serve_slots), alias=alias,
        names=frozenset(names), think=settings.think, max_tokens=settings.max_tokens,
    )


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in text.split(",") if w.strip())


def create_app(served: Served, settings: Settings, *, api_key: str | None, host: str) -> Any:
    """The ASGI app: the three APIs and llama-server's /props and /tokenize, all guarded."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    from gemma_code.server import anthropic, openai_chat, responses

    app = FastAPI(title="gemma-code serve", docs_url="/docs", redoc_url=None)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        body = error_body(request.url.path, exc.status, exc.message, exc.kind)
        if "error" in body and isinstance(body["error"], dict) and "param" in body["error"]:
            body["error"]["param"] = exc.param
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(request.url.path, exc.status_code, str(exc.detail)),
                            status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(request.url.path, 400, str(exc.errors())), status_code=400)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        message = f"internal error: {type(exc).__name__}: {exc}"
        return JSONResponse(error_body(request.url.path, 500, message, "api_error"),
                            status_code=500)

    @app.get("/props")
    async def props() -> dict[str, Any]:
        info = served.engine.info
        return {
            "default_generation_settings": {"n_ctx": info.n_ctx},
            "model_path": info.path, "model_alias": served.alias,
            "chat_format": info.chat_format, "kv_type": info.kv_type,
            "thinking": served.think, "total_slots": max(settings.serve_slots, 1),
        }

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{
            "id": served.alias, "object": "model", "created": 0, "owned_by": "gemma-code",
            "max_model_len": served.engine.info.n_ctx}]}

    @app.post("/tokenize")
    async def tokenize(request: Request) -> dict[str, Any]:
        body = await read_json(request)
        content = body.get("content")
        if not isinstance(content, str):
            raise ApiError(400, "`content` must be a string", param="content")
        tokenizer = getattr(served.engine, "tokenize", None)
        if not callable(tokenizer):
            raise ApiError(404, "this engine has no tokenizer to share")
        # llama-server's shape: no BOS added, special tokens parsed; the vocabulary is
        # read-only, so this does not wait for the model
        return {"tokens": list(tokenizer(content))}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        return await openai_chat.chat_completions(request, served)

    @app.post("/v1/responses")
    async def create_response(request: Request) -> Any:
        return await responses.create(request, served)

    @app.post("/v1/messages")
    async def messages(request: Request) -> Any:
        return await anthropic.create(request, served)

    @app.post("/v1/messages/count_tokens")
    async def count_tokens(request: Request) -> Any:
        return await anthropic.count_tokens(request, served)

    guard = Guard(
        api_key=api_key, max_body=max(settings.serve_max_body_mb, 1) << 20, bind_host=host,
        allowed_hosts=_words(settings.serve_allowed_hosts),
        cors_origins=_words(settings.serve_cors_origins),
    )
    return guard_middleware(app, guard)


def run(app: Any, host: str, port: int) -> None:
    """Serve until Ctrl-C; uvicorn handles the signal and finishes open answers briefly."""
    import uvicorn

    uvicorn.run(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3,
    )
