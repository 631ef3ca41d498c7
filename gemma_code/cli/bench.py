"""`gemma-code bench`: our engine's speed next to llama.cpp's own loop, on this machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gemma_code.cli import app
from gemma_code.cli.common import JsonOpt, ModelOpt, command, settings_from

if TYPE_CHECKING:
    from gemma_code.benchmark.speed import BenchReport

BENCH_HELP = """Speed of gemma-code next to llama.cpp's own loop, measured in one run.

Examples:

  gemma-code bench

  gemma-code bench --quick --model ~/models/gemma-3-270m-Q4_K_M.gguf

  gemma-code bench --json > bench.json

Figures: load time; prefill tok/s at 1K, 8K, 32K and up to --n-ctx (GPU); \
decode tok/s at depth 0 and 32K; first-token time, cold and with the prefix reused; \
the speculative speed-up on a copy-heavy edit. --quick and CPU runs use small sizes.

The reference is llama-bench when it is on PATH, else a minimal C-API loop. \
Ratio: ours relative to llama.cpp, above 1.00x we are faster.
"""


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.1f} tok/s"


def render_report(report: BenchReport) -> None:
    """A rich table of every figure, with the ratio to llama.cpp."""
    from rich.table import Table

    from gemma_code.ui import stdout_console

    table = Table(title=f"{report.model} · {report.device} · {report.backend}", title_justify="left")
    table.add_column("measure")
    table.add_column("gemma-code", justify="right")
    table.add_column(f"llama.cpp ({report.reference})", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("note", style="dim")
    for fig in report.figures:
        ratio = "" if fig.ratio is None or fig.unit == "x" else f"{fig.ratio:.2f}x"
        table.add_row(fig.label, _fmt(fig.ours, fig.unit), _fmt(fig.reference, fig.unit), ratio, fig.note)
    console = stdout_console()
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}", style="dim")


@command(app, "bench", help=BENCH_HELP)
def bench(
    model: ModelOpt = None,
    json_out: JsonOpt = False,
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes: a run of a minute or two.")] = False,
    n_ctx: Annotated[
        int | None, typer.Option("--n-ctx", min=0, help="Largest prefill size to try on a GPU.")
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", min=0, help="CPU threads for both sides (0: auto).")
    ] = None,
    save: Annotated[
        Path | None, typer.Option("--save", help="Also write the JSON report to this file.")
    ] = None,
) -> None:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from gemma_code.benchmark.speed import run_bench
    from gemma_code.engine.llamacpp import resolve_model_path
    from gemma_code.ui import stderr_console

    settings = settings_from(model=model, n_ctx=n_ctx, n_threads=threads).settings
    path = resolve_model_path(settings.model)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=stderr_console(), transient=True) as bar:
        task = bar.add_task("starting", total=None)
        report = run_bench(path, settings, quick=quick,
                           progress=lambda step: bar.update(task, description=step))
    if save is not None:
        from gemma_code.atomic import write_text_atomic

        write_text_atomic(save, json.dumps(report.to_dict(), indent=2) + "\n")
    if json_out:
        typer.echo(json.dumps(report.to_dict()))
        return
    render_report(report)
