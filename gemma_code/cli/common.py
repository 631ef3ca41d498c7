"""What every command shares: option types, settings loading, and the one error handler."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer

from gemma_code.config import LoadedSettings, load_settings
from gemma_code.errors import ExitCode, GemmaCodeError

F = TypeVar("F", bound=Callable[..., Any])

# Shared options, defined once. None means "not given": the lower layers decide.
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Registry name (see `gemma-code models list`) or a .gguf path."),
]
EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="llamacpp (in-process, default), openai (a server), or scripted (replays the "
        "replies in the JSON file named by `script`; for tests and demos).",
    ),
]
BaseUrlOpt = Annotated[
    str | None, typer.Option("--base-url", help="OpenAI-compatible server URL, for --engine openai.")
]
ThinkOpt = Annotated[
    bool | None,
    typer.Option("--think/--no-think", help="Let the model reason before answering (Gemma 4)."),
]
ShowThoughtsOpt = Annotated[
    bool | None,
    typer.Option("--show-thoughts/--no-show-thoughts", help="Show the model's reasoning, dimmed."),
]
MaxTokensOpt = Annotated[
    int | None,
    typer.Option(
        "--max-tokens", min=1,
        help="Most tokens to generate (default 2048; on a CPU, sized to its speed).",
    ),
]
NCtxOpt = Annotated[
    int | None,
    typer.Option("--n-ctx", min=0, help="Context window in tokens (0: choose from free memory)."),
]
BudgetOpt = Annotated[
    int | None,
    typer.Option(
        "--budget", min=0,
        help="Most tokens of repository context to include (default 32768; on a CPU, sized to "
        "its speed).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
StatsOpt = Annotated[
    bool, typer.Option("--stats", help="Print tokens evaluated/reused and speeds to stderr.")
]
FilesOpt = Annotated[
    list[Path] | None,
    typer.Option("--file", "-f", help="A file to include in full (repeatable)."),
]
NoContextOpt = Annotated[bool, typer.Option("--no-context", help="Do not add repository context.")]


# Options given before the command; the root callback sets them on every invocation.
ROOT_FLAGS: dict[str, Any] = {}


def settings_from(**flags: Any) -> LoadedSettings:
    """Load the layered settings with command-line `flags` on top (None = not given).

    Options given before the command (`gemma-code --model M ask ...`) fill flags the command
    itself left unset.
    """
    for key, value in ROOT_FLAGS.items():
        if value is not None and flags.get(key) is None:
            flags[key] = value
    return load_settings(flags)


def command(app: typer.Typer, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """Register a command whose GemmaCodeErrors print one line (plus hint) and set the exit code."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> Any:
            with handle_errors():
                return fn(*args, **kw)

        app.command(name, **kwargs)(wrapper)
        return fn

    return decorate


class handle_errors:
    """Turn GemmaCodeError and Ctrl-C into a printed line and the documented exit code."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if exc is None:
            return False
        from gemma_code.ui import print_error

        if isinstance(exc, GemmaCodeError):
            print_error(exc.message, exc.hint)
            raise typer.Exit(int(exc.exit_code)) from None
        if isinstance(exc, KeyboardInterrupt):
            print_error("interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        if _is_bug(exc) and not os.environ.get("GEMMA_CODE_DEBUG"):
            print_error(
                f"internal error: {type(exc).__name__}: {exc}",
                "this is a bug in gemma-code; GEMMA_CODE_DEBUG=1 shows the traceback to report",
            )
            raise typer.Exit(int(ExitCode.FAILURE)) from None
        return False


def _is_bug(exc: BaseException) -> bool:
    """An unexpected exception, not the CLI framework's own exits and usage errors."""
    module = type(exc).__module__
    return isinstance(exc, Exception) and not module.startswith(("typer", "click"))
