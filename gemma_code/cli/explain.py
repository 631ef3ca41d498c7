"""`gemma-code explain PATH[:L1-L2|::SYMBOL]`: an explanation with callers and callees as context."""

from __future__ import annotations

from typing import Annotated

import typer

from gemma_code.cli import app
from gemma_code.cli.common import (
    BaseUrlOpt,
    EngineOpt,
    MaxTokensOpt,
    ModelOpt,
    NCtxOpt,
    ShowThoughtsOpt,
    StatsOpt,
    ThinkOpt,
    command,
    settings_from,
)
from gemma_code.errors import Interrupted

EXPLAIN_HELP = """Explain a file, a line range or a symbol, with its callers and callees.

Examples:

  gemma-code explain src/app.py

  gemma-code explain src/app.py:40-80

  gemma-code explain src/app.py::Server.handle

  gemma-code explain util.py::retry "why the jitter?"

Symbols are found with tree-sitter; references to them and the definitions of what
they call go to the model as context.
"""


@command(app, "explain", help=EXPLAIN_HELP)
def explain_cmd(
    target: Annotated[str, typer.Argument(metavar="PATH[:L1-L2|::SYMBOL]", help="What to explain.")],
    question: Annotated[str | None, typer.Argument(help="A specific question (optional).")] = None,
    model: ModelOpt = None, engine: EngineOpt = None, base_url: BaseUrlOpt = None,
    think: ThinkOpt = None, show_thoughts: ShowThoughtsOpt = None, stats: StatsOpt = False,
    max_tokens: MaxTokensOpt = None, n_ctx: NCtxOpt = None,
) -> None:
    from pathlib import Path

    from gemma_code.engine import open_engine
    from gemma_code.tasks.ask import stream_ask
    from gemma_code.tasks.explain import explain_request
    from gemma_code.ui import (
        StreamPrinter,
        format_stats,
        prefill_progress,
        print_note,
        stderr_console,
        stdout_console,
        working,
    )

    settings = settings_from(model=model, engine=engine, base_url=base_url, think=think,
                             show_thoughts=show_thoughts, max_tokens=max_tokens, n_ctx=n_ctx).settings
    from gemma_code.gitops import repo_root

    root = repo_root(Path.cwd()) or Path.cwd()
    messages = explain_request(root, target, cwd=Path.cwd(), question=question)
    with open_engine(settings, while_loading=working(f"loading {settings.model} …")) as eng:
        chunks = stream_ask(eng, messages, max_tokens=settings.max_tokens, think=settings.think,
                            temperature=settings.temperature)
        if eng.info.sizing:
            print_note(eng.info.sizing)
        printer = StreamPrinter(stdout_console(), show_thoughts=settings.show_thoughts)
        with prefill_progress(eng):
            final, interrupted = printer.play(chunks)
        if interrupted:
            raise Interrupted("interrupted; the explanation above is incomplete")
        if stats and final is not None:
            stderr_console().print(format_stats(final), style="dim")
