"""`gemma-code chat` (and `gemma-code` alone): the interactive chat."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gemma_code.cli import app
from gemma_code.cli.common import (
    BaseUrlOpt,
    BudgetOpt,
    EngineOpt,
    MaxTokensOpt,
    ModelOpt,
    NCtxOpt,
    NoContextOpt,
    ShowThoughtsOpt,
    ThinkOpt,
    command,
    settings_from,
)
from gemma_code.errors import UsageError

CHAT_HELP = """Chat about your code; answers stream, edits are previewed before they are applied.

Examples:

  gemma-code                          (same as `gemma-code chat`)

  gemma-code chat --think

  gemma-code chat --continue          (the last session started in this folder)

  gemma-code chat --resume            (list saved sessions)

  gemma-code chat --resume 20261128-0455

Inside: /help lists the commands (/add FILE, /edit ..., /apply, /undo, /stats ...); \
!CMD runs a shell command after asking. Enter sends, Alt-Enter (or Esc Enter) starts a new \
line, Ctrl-C stops an answer, Ctrl-D quits. Sessions are saved as you go.
"""


@command(app, "chat", help=CHAT_HELP)
def chat(
    session_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="With --resume: the session id or name.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", "-r", help="Resume a saved session: ID, or none to list them.")
    ] = False,
    cont: Annotated[
        bool, typer.Option("--continue", "-c", help="Continue the last session started in this folder.")
    ] = False,
    model: ModelOpt = None,
    engine: EngineOpt = None,
    base_url: BaseUrlOpt = None,
    think: ThinkOpt = None,
    show_thoughts: ShowThoughtsOpt = None,
    max_tokens: MaxTokensOpt = None,
    n_ctx: NCtxOpt = None,
    budget: BudgetOpt = None,
    no_context: NoContextOpt = False,
) -> None:
    from gemma_code.engine import load_engine
    from gemma_code.repl.loop import Repl, ReplIO
    from gemma_code.repl.store import find_session, latest_session, list_sessions
    from gemma_code.ui import stdout_console

    if session_id and not resume:
        raise UsageError(f"unexpected argument {session_id!r}",
                         "to resume a session: gemma-code chat --resume ID")
    if resume and cont:
        raise UsageError("give --resume or --continue, not both")
    cwd = Path.cwd()
    previous = None
    if cont:
        previous = latest_session(cwd)
        if previous is None:
            raise UsageError(f"no earlier session in {cwd}", "start one with `gemma-code chat`")
    elif resume and session_id:
        previous = find_session(session_id)
    elif resume:
        sessions = list_sessions()
        if not sessions:
            typer.echo("no saved sessions")
            return
        for s in sessions[:30]:
            label = f" [{s.name}]" if s.name else ""
            typer.echo(f"{s.id}{label}  {len(s.messages) // 2} exchanges  {s.cwd}  {s.title}")
        typer.echo("resume one with: gemma-code chat --resume ID")
        return
    loaded = settings_from(
        model=model, engine=engine, base_url=base_url, think=think, show_thoughts=show_thoughts,
        max_tokens=max_tokens, n_ctx=n_ctx, budget=budget, context=False if no_context else None,
    )
    repl = Repl(loaded.settings, ReplIO(console=stdout_console()), cwd=cwd,
                engine_loader=load_engine, resume=previous)
    raise typer.Exit(repl.run())
