"""The `gemma-code` command line: Typer commands that turn flags into library calls.

Each command group lives in its own module and registers itself on `app` when imported.
Heavy libraries (llama_cpp, tree-sitter, numpy, git) are imported inside commands only, so
`gemma-code --help` stays fast.
"""

from __future__ import annotations

import typer

from gemma_code import __version__
from gemma_code.cli import common, helpfmt
from gemma_code.cli.common import (
    BaseUrlOpt,
    BudgetOpt,
    EngineOpt,
    MaxTokensOpt,
    ModelOpt,
    NCtxOpt,
    ThinkOpt,
)

app = typer.Typer(
    name="gemma-code",
    help=(
        "A private coding assistant: Gemma 4 on your own GPU through llama.cpp.\n\n"
        "Run with no command for the interactive chat. Examples:\n\n"
        "  gemma-code ask \"where is the retry logic?\"\n\n"
        "  git diff | gemma-code ask \"review this\"\n\n"
        "  gemma-code models pull gemma-4-26b-a4b"
    ),
    no_args_is_help=False,
    invoke_without_command=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gemma-code {__version__}")
        raise typer.Exit()


def _report_interrupted_writes() -> None:
    """An apply killed mid-way (power loss, kill -9) is reported by the next command, once."""
    import os
    from pathlib import Path

    from gemma_code.edits.journal import interrupted_notices

    try:
        here = Path(os.getcwd())
    except OSError:
        return
    notes = interrupted_notices(here)
    if notes:
        from gemma_code.ui import print_warning

        for note in notes:
            print_warning(note)


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    model: ModelOpt = None,
    engine: EngineOpt = None,
    base_url: BaseUrlOpt = None,
    think: ThinkOpt = None,
    max_tokens: MaxTokensOpt = None,
    n_ctx: NCtxOpt = None,
    budget: BudgetOpt = None,
    cont: bool = typer.Option(
        False, "--continue", "-c", help="With no command: continue the last chat in this folder."
    ),
) -> None:
    """A private coding assistant: Gemma 4 on your own GPU through llama.cpp."""
    # options given before the command apply to it: `gemma-code --model tiny ask "..."`
    common.ROOT_FLAGS = {
        "model": model, "engine": engine, "base_url": base_url, "think": think,
        "max_tokens": max_tokens, "n_ctx": n_ctx, "budget": budget,
    }
    _report_interrupted_writes()
    if ctx.invoked_subcommand is None:
        from gemma_code.cli.chat import chat

        with common.handle_errors():
            chat(cont=cont)
        raise typer.Exit()
    elif cont:
        raise typer.BadParameter("it goes with the chat: gemma-code --continue", param_hint="--continue")


# The one list of command modules: each registers its commands on `app` when imported here
# (and nowhere else).
from gemma_code.cli import ask as _ask  # noqa: E402,F401
from gemma_code.cli import bench as _bench  # noqa: E402,F401
from gemma_code.cli import cache as _cache  # noqa: E402,F401
from gemma_code.cli import chat as _chat  # noqa: E402,F401
from gemma_code.cli import config_cmd as _config_cmd  # noqa: E402,F401
from gemma_code.cli import context as _context  # noqa: E402,F401
from gemma_code.cli import doctor as _doctor  # noqa: E402,F401
from gemma_code.cli import edit as _edit  # noqa: E402,F401
from gemma_code.cli import explain as _explain  # noqa: E402,F401
from gemma_code.cli import models as _models  # noqa: E402,F401
from gemma_code.cli import review as _review  # noqa: E402,F401
from gemma_code.cli import run as _run  # noqa: E402,F401
from gemma_code.cli import serve as _serve  # noqa: E402,F401

# --help groups the commands into panels, in this order
PANELS: dict[str, tuple[str, ...]] = {
    "Ask and chat": ("chat", "ask", "context", "explain"),
    "Change code": ("run", "edit", "refactor", "apply", "undo"),
    "Review": ("review", "hook"),
    "Models and setup": ("models", "doctor", "config", "cache", "bench", "serve"),
}


def _arrange_help() -> None:
    order = [name for names in PANELS.values() for name in names]
    panel_of = {name: panel for panel, names in PANELS.items() for name in names}

    def key(name: str | None) -> int:
        return order.index(name) if name in order else len(order)

    for info in app.registered_commands:
        info.rich_help_panel = panel_of.get(info.name or "")
    for group in app.registered_groups:
        group.rich_help_panel = panel_of.get(group.name or "")
    app.registered_commands.sort(key=lambda info: key(info.name))
    app.registered_groups.sort(key=lambda group: key(group.name))


_arrange_help()


helpfmt.install()


def main() -> None:
    """Console-script entry point."""
    app()
