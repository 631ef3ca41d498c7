"""`gemma-code serve`: the configured model as an OpenAI-compatible endpoint."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from gemma_code.cli import app
from gemma_code.cli.common import ModelOpt, NCtxOpt, ThinkOpt, command, settings_from
from gemma_code.errors import GemmaCodeError

SERVE_HELP = (
    "Serve the model to coding agents and SDKs: OpenAI Chat Completions and Responses, and "
    "Anthropic Messages, with tool calls.\n\n"
    "Examples:\n\n"
    "  gemma-code serve\n\n"
    '  gemma-code ask --engine openai --base-url http://127.0.0.1:8080/v1 "what does main() do?"\n\n'
    "  gemma-code serve --model ~/models/gemma-4-26B-A4B-it-Q4_K_M.gguf --port 9000 --n-ctx 65536\n\n"
    "  export TEAM_KEY=$(openssl rand -hex 24)\n"
    "  gemma-code serve --host 0.0.0.0 --api-key-env TEAM_KEY\n\n"
    # paragraphs as single lines: the help renderer keeps hard line breaks
    "Endpoints: /v1/chat/completions (OpenCode, Aider, Continue, the openai SDK), /v1/responses "
    "(Codex CLI), /v1/messages (Claude Code, the anthropic SDK), /v1/models, /props, /tokenize. "
    "Tool calls use Gemma 4's native format. Requests take turns in arrival order; each "
    "conversation keeps its KV cache (serve_slots of them), so an agent's next step reuses its "
    "prefix. For many users or several GPUs run vLLM or llama-server instead (docs/serve.md).\n\n"
    "Binding beyond loopback needs an API key (16+ characters) in the --api-key-env variable; "
    "with a key every endpoint checks it. Ctrl-C stops it.\n"
)


@command(app, "serve", help=SERVE_HELP)
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8080,
    model: ModelOpt = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            "--api-key-env",
            help="Environment variable holding the key clients must send (default: api_key_env).",
        ),
    ] = None,
    n_ctx: NCtxOpt = None,
    think: ThinkOpt = None,
    slots: Annotated[
        int | None,
        typer.Option("--slots", min=0, help="Conversations whose KV cache is kept (serve_slots)."),
    ] = None,
) -> None:
    from gemma_code.engine import load_engine
    from gemma_code.ui import stderr_console

    try:  # the serve extra; a missing one of our own modules stays an internal error
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise GemmaCodeError(
            f"`serve` needs the server packages ({exc.name} is missing)",
            "rerun ./install.sh (it installs them), or: pip install fastapi uvicorn",
        ) from None
    from gemma_code import server

    settings = settings_from(
        model=model, api_key_env=api_key_env, n_ctx=n_ctx, think=think, serve_slots=slots
    ).settings
    key = os.environ.get(settings.api_key_env) or None
    server.check_bind(host, key, settings.api_key_env)
    server.check_port_free(host, port)
    console = stderr_console()
    console.print(f"loading {settings.model} ...", style="dim")
    engine = load_engine(settings)
    try:
        served = server.served_model(engine, settings)
        web = server.create_app(served, settings, api_key=key, host=host)
        info = engine.info
        shown = f"[{host}]" if ":" in host else host
        console.print(
            f"serving {served.alias} on http://{shown}:{port}/v1 (n_ctx {info.n_ctx:,}, "
            f"format {info.chat_format}, kv {info.kv_type}, {settings.serve_slots} slots"
            + (f", key from ${settings.api_key_env}" if key else ", no API key")
            + ("" if not settings.think else ", thinking on")
            + "); Ctrl-C stops"
        )
        console.print(
            f"clients: gemma-code ask --engine openai --base-url http://{shown}:{port}/v1 \"...\"",
            style="dim",
        )
        server.run(web, host, port)
    finally:
        engine.close()
    console.print("stopped", style="dim")
