"""`gemma-code serve`: the configured model as an OpenAI-compatible endpoint."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from gemma_code.cli import app
from gemma_code.cli.common import ModelOpt, NCtxOpt, ThinkOpt, command, settings_from
from gemma_code.errors import GemmaCodeError

SERVE_HELP = (
    "Serve the model as an OpenAI-compatible endpoint for other gemma-code clients.\n\n"
    "Examples:\n\n"
    "  gemma-code serve\n\n"
    '  gemma-code ask --engine openai --base-url http://127.0.0.1:8080/v1 "what does main() do?"\n\n'
    "  gemma-code serve --model ~/models/gemma-4-26B-A4B-it-Q4_K_M.gguf --port 9000 --n-ctx 65536\n\n"
    "  export TEAM_KEY=$(openssl rand -hex 24)\n"
    "  gemma-code serve --host 0.0.0.0 --api-key-env TEAM_KEY\n\n"
    # paragraphs as single lines: the help renderer keeps hard line breaks
    "Uses llama-cpp-python's server with gemma-code's engine settings (all layers on the GPU, "
    "flash attention, swa_full off, kv_type). It answers one request at a time; for many users "
    "or several GPUs run vLLM or llama-server instead (docs/serve.md).\n\n"
    "Binding beyond loopback needs an API key in the --api-key-env variable. Ctrl-C stops it.\n"
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
) -> None:
    from gemma_code import server
    from gemma_code.ui import stderr_console

    try:
        import fastapi  # noqa: F401
        import sse_starlette  # noqa: F401
        import starlette_context  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise GemmaCodeError(
            f"`serve` needs the server packages ({exc.name} is missing)",
            "rerun ./install.sh (it installs them), or: pip install fastapi uvicorn sse-starlette "
            "starlette-context pydantic-settings",
        ) from None
    settings = settings_from(model=model, api_key_env=api_key_env, n_ctx=n_ctx, think=think).settings
    key = os.environ.get(settings.api_key_env) or None
    server.check_bind(host, key, settings.api_key_env)
    server.check_port_free(host, port)
    path = server.resolve_model_path(settings.model)
    console = stderr_console()
    console.print(f"loading {path} ...", style="dim")
    llama, served = server.load_llama(settings, path)
    try:
        web = server.create_app(llama, served, api_key=key)
        shown = f"[{host}]" if ":" in host else host
        console.print(
            f"serving {served.alias} on http://{shown}:{port}/v1 (n_ctx {served.n_ctx:,}, "
            f"format {served.chat_format}, kv {served.kv_type}"
            + (f", key from ${settings.api_key_env}" if key else ", no API key")
            + ("" if not served.think else ", thinking on")
            + "); Ctrl-C stops"
        )
        console.print(
            f"clients: gemma-code ask --engine openai --base-url http://{shown}:{port}/v1 \"...\"",
            style="dim",
        )
        server.run(web, host, port)
    finally:
        llama.close()
    console.print("stopped", style="dim")
