"""`gemma-code review` and `gemma-code hook install|uninstall|status`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gemma_code.cli import app
from gemma_code.cli.common import (
    BaseUrlOpt,
    BudgetOpt,
    EngineOpt,
    MaxTokensOpt,
    ModelOpt,
    NCtxOpt,
    command,
    settings_from,
)
from gemma_code.errors import ExitCode, GemmaCodeError, ModelError, UsageError

if TYPE_CHECKING:
    from gemma_code.engine.base import Engine
    from gemma_code.review.report import Report

FORMATS = ("table", "text", "json", "sarif")

REVIEW_HELP = """Review a change for bugs before it is committed; exit 1 on blocking findings.

Examples:

  gemma-code review                      # what is staged (the default)

  gemma-code review --range main..HEAD   # the commits of a branch

  gemma-code review src/upload.py        # named files, whole

  gemma-code review --format json | jq '.findings[] | select(.severity=="critical")'

  gemma-code review --format sarif > review.sarif   # for code scanning

  gemma-code review --fail-on medium --timeout 120

Findings have a severity (critical, high, medium, low, info); exit 1 when one reaches \
--fail-on (default high), else 0.

When the model cannot run (missing model, engine error, out of memory, --timeout passed) \
the review fails open: a loud warning and exit 0. With --fail-closed it exits with the \
error's code (4) instead.

Results are cached by the exact content reviewed, so a re-run is instant. \
As a git hook: gemma-code hook install.
"""

HOOK_HELP = """Run `gemma-code review` as the repository's git pre-commit hook.

Examples:

  gemma-code hook install       # keeps and chains a hook that is already there

  gemma-code hook status

  gemma-code hook uninstall     # puts back the hook that was there before

  GEMMA_CODE_SKIP=1 git commit  # skip the review once (or: git commit --no-verify)
"""


def _emit(report: Report, fmt: str, root: Path | None) -> None:
    if fmt == "json":
        typer.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    elif fmt == "sarif":
        from gemma_code.review.sarif import to_sarif

        typer.echo(json.dumps(to_sarif(report, root if report.mode != "files" else None), indent=2))
    elif fmt == "text":
        typer.echo(report.to_text(), nl=False)
    else:
        from gemma_code.ui import stdout_console

        report.print_table(stdout_console())


@command(app, "review", help=REVIEW_HELP)
def review(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Files to review whole (default: the staged change).")
    ] = None,
    staged: Annotated[
        bool, typer.Option("--staged", help="Review exactly what is staged (the default).")
    ] = False,
    range_spec: Annotated[
        str | None, typer.Option("--range", help="Review the commits A..B (e.g. main..HEAD).")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="table (terminal default), text (piped default), json, sarif."),
    ] = None,
    fail_on: Annotated[
        str | None,
        typer.Option("--fail-on", help="Lowest blocking severity: critical|high|medium|low|info."),
    ] = None,
    fail_closed: Annotated[
        bool | None,
        typer.Option("--fail-closed/--fail-open", help="Block (exit 4) when the model cannot run."),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0, help="Time budget in seconds (0: none).")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ignore cached results.")] = False,
    no_context: Annotated[
        bool, typer.Option("--no-context", help="Send the diff alone, no surrounding code.")
    ] = False,
    model: ModelOpt = None,
    engine: EngineOpt = None,
    base_url: BaseUrlOpt = None,
    max_tokens: MaxTokensOpt = None,
    n_ctx: NCtxOpt = None,
    budget: BudgetOpt = None,
) -> None:
    import time

    started = time.monotonic()  # --timeout counts from here: reading a huge diff takes time too
    from gemma_code.engine import load_engine
    from gemma_code.review.findings import SEVERITIES
    from gemma_code.review.report import Report
    from gemma_code.tasks.review import (
        Deadline,
        ReviewResult,
        cached_review,
        collect_target,
        run_review,
    )
    from gemma_code.ui import prefill_progress, print_error, print_warning

    if os.environ.get("GEMMA_CODE_SKIP") == "1":  # also under the pre-commit framework
        print_warning("gemma-code review skipped (GEMMA_CODE_SKIP=1)")
        raise typer.Exit(int(ExitCode.OK))
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", f"choose one of: {', '.join(FORMATS)}")
    if staged and (range_spec or files):
        raise UsageError("--staged reviews the index; do not combine it with --range or FILES")
    loaded = settings_from(
        model=model, engine=engine, base_url=base_url, max_tokens=max_tokens, n_ctx=n_ctx,
        budget=budget, context=False if no_context else None, fail_on=fail_on,
        fail_closed=fail_closed, review_timeout=timeout,
    )
    settings = loaded.settings
    if settings.fail_on not in SEVERITIES:
        raise UsageError(
            f"--fail-on must be one of {', '.join(SEVERITIES)}, not {settings.fail_on!r}",
            "e.g. --fail-on critical blocks only on critical findings",
        )
    chosen = fmt or ("table" if sys.stdout.isatty() else "text")
    try:
        target = collect_target(range_spec=range_spec, files=files or ())
    except GemmaCodeError as exc:
        if chosen in ("json", "sarif"):  # a script reading stdout gets the error as a document
            mode = "range" if range_spec else "files" if files else "staged"
            failed = Report(mode, range_spec or "", settings.fail_on, model=settings.model)
            failed.complete = False
            failed.error = {"message": exc.message, "hint": exc.hint, "exit_code": int(exc.exit_code)}
            _emit(failed, chosen, None)
        raise
    report = Report(target.mode, target.spec, settings.fail_on, model=settings.model)
    failure: GemmaCodeError | None = None
    result: ReviewResult | None = None
    try:
        result = cached_review(target, settings, max_tokens=settings.max_tokens,
                               use_cache=not no_cache)
        if result is None:
            deadline = Deadline(settings.review_timeout or None, started=started)
            model_engine: Engine | None = None
            try:  # the time budget covers the load; the engine closes outside it
                with deadline.guard():
                    model_engine = load_engine(settings)
                    with prefill_progress(model_engine, enabled=chosen not in ("json", "sarif")):
                        result = run_review(model_engine, target, settings,
                                            max_tokens=settings.max_tokens, deadline=deadline,
                                            use_cache=not no_cache)
            finally:
                if model_engine is not None:
                    model_engine.close()
    except ModelError as exc:
        failure = exc
    except MemoryError:
        failure = ModelError("out of memory while running the model", "use a smaller model or --n-ctx")
    if failure is None:
        assert result is not None  # run_review returned, or cached_review had it
        report.take(result)
        _emit(report, chosen, target.root)
        raise typer.Exit(int(ExitCode.FAILURE if report.blocking else ExitCode.OK))
    report.complete = False
    report.error = {"message": failure.message, "hint": failure.hint, "exit_code": int(failure.exit_code)}
    if chosen in ("json", "sarif"):
        _emit(report, chosen, target.root)
    if settings.fail_closed:
        print_error(f"review could not run: {failure.message}", failure.hint)
        print_error("blocking because fail_closed is set (--fail-open or GEMMA_CODE_SKIP=1 to proceed)")
        raise typer.Exit(int(failure.exit_code))
    print_warning("!" * 60)
    print_warning(f"gemma-code review did NOT run: {failure.message}")
    if failure.hint:
        print_warning(f"hint: {failure.hint}")
    print_warning("the change was NOT reviewed; continuing (fail-open; --fail-closed blocks instead)")
    print_warning("!" * 60)
    raise typer.Exit(int(ExitCode.OK))


hook_app = typer.Typer(help=HOOK_HELP, no_args_is_help=True, rich_markup_mode="rich")
app.add_typer(hook_app, name="hook")

INSTALL_HELP = """Install the pre-commit hook into the repository's real hooks directory.

Examples:

  gemma-code hook install

  gemma-code hook install --force   # repoint a hook installed from another environment

Honours core.hooksPath and linked worktrees. A pre-commit hook already there is kept, \
renamed to pre-commit.gemma-code-chained, and run first. The hook runs the gemma-code of \
the Python environment that installed it.
"""


@command(hook_app, "install", help=INSTALL_HELP)
def hook_install(
    force: Annotated[
        bool, typer.Option("--force", help="Replace a gemma-code hook that runs another environment.")
    ] = False,
) -> None:
    from gemma_code.review.hook import install

    st = install(force=force)
    chained = f"; runs {st.chained} first" if st.chained else ""
    typer.echo(f"installed {st.hook} (python {st.python}){chained}")


@command(hook_app, "uninstall", help="Remove the hook and restore the one that was there before.")
def hook_uninstall() -> None:
    from gemma_code.review.hook import uninstall

    _status, done = uninstall()
    typer.echo(done)


@command(hook_app, "status", help="Say whether the hook is installed, where, and what it runs.")
def hook_status(
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    from gemma_code.review.hook import status

    st = status()
    data = {
        "hooks_dir": str(st.hooks_dir), "hook": str(st.hook), "state": st.state,
        "chained": str(st.chained) if st.chained else None, "python": st.python,
        "python_ok": st.python_ok,
    }
    if json_out:
        typer.echo(json.dumps(data, indent=2))
        return
    if st.state == "absent":
        typer.echo(f"not installed (hooks directory: {st.hooks_dir}); run: gemma-code hook install")
    elif st.state == "other":
        typer.echo(f"{st.hook} is another tool's hook; `gemma-code hook install` would chain it")
    else:
        typer.echo(f"installed: {st.hook}")
        typer.echo(f"python: {st.python}" + ("" if st.python_ok else " (missing: reinstall with --force)"))
        if st.chained:
            typer.echo(f"chained: {st.chained} (runs first)")
