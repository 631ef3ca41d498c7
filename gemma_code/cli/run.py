"""`gemma-code run`: the agent works on a task with tools until it answers."""

from __future__ import annotations

import sys
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
from gemma_code.errors import ExitCode, Interrupted, UsageError

RUN_HELP = """Let the agent do a task: it reads, searches, edits and runs commands in this \
repository until it can answer.

Examples:

  gemma-code run "make test_parse pass"

  gemma-code run --mode plan "how would you add a --verbose flag?"

  gemma-code run --mode full-auto --max-steps 40 "fix the failing tests"

  gemma-code run --json "list the TODOs" | jq -c 'select(.type=="tool_call")'

Modes: plan (read only), ask (default: each edit and command needs your y/n), auto-edit \
(edits apply, commands ask), full-auto (both without asking; commands run in a sandbox with \
no network that can only write inside the repository; needs bubblewrap on Linux). Without a \
terminal, anything that needs approval is refused.

--json prints JSON Lines: tool_call, tool_result, text, note, step, error, and done (last, \
with stats). Exit codes: 0 answered, 1 stopped by a guard (steps, repeated calls), 130 \
Ctrl-C; see the README for the rest. MCP servers come from your user config only \
(docs/agent.md).
"""

ModeOpt = Annotated[
    str | None,
    typer.Option("--mode", help="plan | ask | auto-edit | full-auto (default: agent_mode, ask)."),
]


def _read_task(task: str | None) -> str:
    if task and task.strip():
        return task
    stream = sys.stdin
    if stream is not None and not stream.closed and not stream.isatty():
        piped = stream.read()
        if piped.strip():
            return piped
    raise UsageError("no task given", 'try: gemma-code run "make the tests pass"')


@command(app, "run", help=RUN_HELP)
def run(
    task: Annotated[str | None, typer.Argument(help="What to do (or pipe it in).")] = None,
    mode: ModeOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON Lines events.")] = False,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Most model steps (default 30).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show whole tool results.")] = False,
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
    from gemma_code import gitops
    from gemma_code.engine import open_engine
    from gemma_code.tasks.agent import AgentOptions, AgentSession
    from gemma_code.tools.permissions import Permissions, check_mode
    from gemma_code.ui import stderr_console, stdout_console, working
    from gemma_code.ui_agent import EventPrinter, JsonEventWriter, terminal_approver

    loaded = settings_from(
        model=model, engine=engine, base_url=base_url, think=think, show_thoughts=show_thoughts,
        max_tokens=max_tokens, n_ctx=n_ctx, budget=budget, agent_mode=mode,
        agent_max_steps=max_steps, context=False if no_context else None,
    )
    settings = loaded.settings
    chosen = check_mode(settings.agent_mode)
    text = _read_task(task)
    root = gitops.repo_root(Path.cwd()) or Path.cwd()
    sandbox = None
    if chosen == "full-auto":
        from gemma_code.tools.sandbox import require_sandbox

        sandbox = require_sandbox()  # before loading a model: say at once why it cannot start
    interactive = sys.stdin is not None and not sys.stdin.closed and sys.stdin.isatty()
    err = stderr_console()
    approver = terminal_approver(err) if interactive else None
    from gemma_code.tools.mcp import open_mcp

    options = AgentOptions(
        mode=chosen, max_steps=settings.agent_max_steps, max_tokens=settings.max_tokens,
        think=settings.think, temperature=settings.temperature, context_budget=settings.budget,
        use_context=settings.context, command_timeout_s=settings.command_timeout,
    )
    printer = JsonEventWriter(sys.stdout) if json_out else EventPrinter(
        stdout_console(), err, show_thoughts=settings.show_thoughts, verbose=verbose)
    exit_code = ExitCode.OK
    loading = working(f"loading {settings.model} …")
    with open_mcp(root) as mcp, open_engine(settings, while_loading=loading) as eng:
        permissions = Permissions(chosen, approver, allowed_tools=mcp.allowed)
        session = AgentSession(eng, root, options, permissions=permissions, extra_tools=mcp.tools,
                               sandbox=sandbox)
        for note in mcp.notes:
            from gemma_code.tasks.agent_events import NoteEvent

            printer.show(NoteEvent(message=note))
        try:
            for event in session.run(text):
                printer.show(event)
                if event.type == "error":
                    exit_code = ExitCode(event.to_dict()["exit_code"])
        except KeyboardInterrupt:
            from gemma_code.tasks.agent_events import DoneEvent

            session.stats.stop_reason = "interrupted"
            if json_out:
                printer.show(DoneEvent(stats=session.stats.to_dict()))
            raise Interrupted("interrupted; the step was stopped") from None
    if exit_code != ExitCode.OK:
        raise typer.Exit(int(exit_code))
