"""`gemma-code apply`, `edit`, `refactor` and `undo`: model edits, previewed, confirmed, undoable."""

from __future__ import annotations

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
    ThinkOpt,
    check_named_secrets,
    command,
    settings_from,
)
from gemma_code.errors import EditRejectedError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from gemma_code.edits.model import Failure, FileChange
    from gemma_code.edits.parse import ParseProblem
    from gemma_code.tasks.apply import Written

APPLY_HELP = """Apply the edits in a saved model reply to the repository here.

Reads SEARCH/REPLACE blocks, unified diffs (sloppy ones too) and whole-file blocks; \
prose around them is ignored. Everything applies or nothing does.

Examples:

  gemma-code apply reply.md

  pbpaste | gemma-code apply -

  gemma-code apply reply.md --check    # validate only

Exit 0: every edit applied (or was already applied). Exit 6: an edit could not be \
applied; nothing was written and each failure is explained with the closest actual \
lines. Exit 2: usage. Exit 5: --commit outside a git repository, or the commit failed \
(the edits stay written; `gemma-code undo` reverts them). Undo with `gemma-code undo`.
"""

EDIT_HELP = """Ask the model to change code; preview the diff per file, confirm, apply.

Examples:

  gemma-code edit "add a --verbose flag" src/cli.py

  gemma-code edit "fix the off-by-one in paginate()" --dry-run

  gemma-code edit "use pathlib instead of os.path" src/*.py --yes --commit

At each file: y(es), n(o), a(ll remaining), q(uit). Edits that do not apply go back to \
the model with the reason and the closest lines (--retries times), then you are told \
exactly what did not apply; the model's reply is shown and saved, to fix and give to \
`gemma-code apply`. Undo with `gemma-code undo`.

Exit 0: the edits you chose were written (or there was nothing to change). Exit 6: \
nothing could be applied, the model proposed no edits, some edits failed, or the input \
ended before any answer (use --yes when nobody is there to confirm).

--commit commits exactly the applied edits; it is refused, before anything is written, \
outside git or when a file to change has uncommitted work (commit or stash it first).
"""

REFACTOR_HELP = """Refactor a symbol across the repository: its definition and every reference.

Examples:

  gemma-code refactor "rename to load_settings" --symbol read_config

  gemma-code refactor "make timeout a keyword-only argument" --symbol fetch src/net.py

Files that define or use the symbol (found with tree-sitter) go to the model in full. \
Preview, confirmation, retries and undo work as in `gemma-code edit`.
"""

UNDO_HELP = """Revert the last change set applied by gemma-code (apply, edit, refactor).

Works outside git too: previous contents are kept in a journal in gemma-code's data folder.

Examples:

  gemma-code undo

  gemma-code undo --list

  gemma-code undo --force     # even if the files changed since
"""

YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Only show the diffs; write nothing.")]
CommitOpt = Annotated[
    bool, typer.Option("--commit", help="Commit the applied files with a generated message.")
]
RetriesOpt = Annotated[
    int, typer.Option("--retries", min=0, max=5, help="Correction rounds for failed edits.")
]
NoContextOpt = Annotated[
    bool, typer.Option("--no-context", help="Send only the named files, no repository context.")
]
FormatOpt = Annotated[
    str, typer.Option("--format", help="Edit format asked of the model: search-replace, diff, whole-file.")
]


def _here() -> Path:
    """The repository holding the current folder (`gitops.repo_root`), else the folder itself."""
    from gemma_code.gitops import repo_root

    return repo_root(Path.cwd()) or Path.cwd()


def _err() -> Console:
    from gemma_code.ui import stderr_console

    return stderr_console()


def report_failures(failures: list[Failure], problems: list[ParseProblem] | None = None) -> None:
    """Every failure, with file, block, reason and the closest actual lines, on stderr."""
    from rich.markup import escape

    err = _err()
    for problem in problems or []:
        err.print(f"[red]malformed:[/] {escape(problem.explain())}")
    for failure in failures:
        err.print(f"[red]not applied:[/] {escape(failure.explain())}")


def report_written(done: Written) -> None:
    """What was written, how to undo it, and where earlier uncommitted work was kept."""
    from rich.markup import escape

    err = _err()
    names = ", ".join(f"{c.path} ({c.action})" for c in done.changes)
    err.print(f"[green]applied:[/] {escape(names)}")
    if done.dirty:
        keep = f"; also in git object {done.stash} (`git stash apply {done.stash}`)" if done.stash else ""
        err.print(f"your uncommitted changes in {', '.join(done.dirty)} were kept: "
                  f"`gemma-code undo` restores them{keep}", markup=False)
    if done.commit:
        err.print(f"committed {done.commit[:10]}")
    err.print("undo with `gemma-code undo`", style="dim")
    if done.commit_error is not None:
        from gemma_code.errors import GitError

        raise GitError(f"the edits were written but not committed: {done.commit_error.message}",
                       "`gemma-code undo` reverts them; or fix that and commit them yourself")


def show_saved_reply(reply: str) -> None:
    """Show the model's reply on stderr and save it, so it can be fixed and given to `apply`."""
    import time

    from gemma_code import paths
    from gemma_code.atomic import write_text_atomic

    err = _err()
    err.print("the model's reply:", style="bold")
    err.print(reply.strip() or "(empty)", style="dim", markup=False, highlight=False)
    path = paths.data_dir() / "replies" / time.strftime("reply-%Y%m%d-%H%M%S.md")
    try:
        write_text_atomic(path, reply)
    except OSError as exc:
        err.print(f"could not save the reply: {exc}", style="yellow")
        return
    err.print(f"saved to {path}; fix it and run `gemma-code apply {path}`", style="dim")


def _read_reply(source: str | None) -> str:
    if source in (None, "-"):
        stream = sys.stdin
        if source is None and (stream is None or stream.isatty()):
            raise UsageError("no reply given",
                             "gemma-code apply REPLY_FILE, or pipe it: ... | gemma-code apply -")
        return stream.read()
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise UsageError(f"no such file: {source}", "give the saved reply's path, or - for stdin") from None
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror}") from None


@command(app, "apply", help=APPLY_HELP)
def apply_cmd(
    reply: Annotated[
        str | None, typer.Argument(metavar="[REPLY_FILE|-]", help="Saved reply; - for stdin.")
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Validate only; write nothing.")] = False,
    commit: CommitOpt = False,
) -> None:
    from gemma_code.edits import EditsFailedError, MalformedReplyError, NoEditsError
    from gemma_code.tasks.apply import check_commit, commit_message, plan_reply, write_with_safety

    text = _read_reply(reply)
    root = _here()
    if commit:
        check_commit(root, [])
    outcome = plan_reply(root, text)
    edits = outcome.rounds[0].edits
    if outcome.problems:
        report_failures([], outcome.problems)
        raise MalformedReplyError(outcome.problems)
    if not edits:
        raise NoEditsError("no edits found in the reply",
                           "expected SEARCH/REPLACE blocks, a unified diff or a whole-file block")
    plan = outcome.plan
    if plan.failures:
        report_failures(plan.failures)
        raise EditsFailedError(plan.failures)
    changes = plan.changes()
    err = _err()
    for note in plan.notes:
        err.print(note, style="dim", markup=False)
    if plan.already_applied:
        err.print(f"{len(plan.already_applied)} edit(s) already applied", style="dim")
    from gemma_code.ui import stdout_console
    from gemma_code.ui_diff import print_change

    out = stdout_console()
    for change in changes:
        print_change(out, change)
    if check:
        names = ", ".join(f"{c.path} ({c.action})" for c in changes) or "nothing (already applied)"
        from rich.markup import escape

        err.print(f"[green]ok:[/] every edit applies; would change {escape(names)}")
        return
    if not changes:
        err.print("nothing to change: every edit is already applied")
        return
    message = commit_message(f"{len(edits)} edit(s)", changes, verb="apply") if commit else None
    report_written(write_with_safety(root, changes, label="apply", commit=message))


def _confirm(change: FileChange, state: dict[str, bool]) -> bool:
    """Ask y/n/a/q for one file; `state` remembers "all" and "quit"."""
    import click

    if state.get("all"):
        return True
    if state.get("quit"):
        return False
    while True:
        try:
            answer = click.prompt(f"Apply to {change.path}? [y]es/[n]o/[a]ll/[q]uit", default="y",
                                  show_default=False, err=True).strip().lower()
        except click.exceptions.Abort:  # Ctrl-D, or piped input that ran out
            state["eof"] = True
            answer = "q"
        if answer in {"y", "yes"}:
            return True
        if answer in {"n", "no"}:
            return False
        if answer in {"a", "all"}:
            state["all"] = True
            return True
        if answer in {"q", "quit"}:
            state["quit"] = True
            return False


def run_edit_command(
    instruction: str, files: list[Path], *, symbol: str | None, refactor: bool, yes: bool,
    dry_run: bool, commit: bool, retries: int, fmt: str, flags: dict[str, object],
) -> None:
    """The edit/refactor flow: context, model, retries, preview, confirm, write."""
    from gemma_code.engine import open_engine
    from gemma_code.tasks.apply import check_commit, commit_message, write_with_safety
    from gemma_code.tasks.edit import edit_messages, run_edit
    from gemma_code.tasks.edit_files import gather_files
    from gemma_code.tasks.edit_prompts import FORMATS
    from gemma_code.ui import prefill_progress, print_note, stdout_console, working
    from gemma_code.ui_diff import print_change

    if not instruction.strip():
        raise UsageError("no instruction given", 'try: gemma-code edit "add type hints" app.py')
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", f"choose one of: {', '.join(FORMATS)}")
    root = _here()
    settings = settings_from(**flags).settings
    check_named_secrets(files)
    named, sites = gather_files(root, files, symbol=symbol, refactor=refactor, instruction=instruction)
    if commit and not dry_run:  # before the model runs: it would be refused after
        check_commit(root, list(named))
    err = _err()
    with open_engine(settings, while_loading=working(f"loading {settings.model} …")) as engine:
        repo_context = None
        if settings.context:
            from gemma_code.tasks.ask import repo_context_for

            with working("packing the repository context …"):
                repo_context = repo_context_for(engine, instruction, [root / p for p in named],
                                                settings)
        messages = edit_messages(instruction, files=named, repo_context=repo_context, symbol=sites,
                                 refactor=refactor, fmt=fmt)
        if engine.info.sizing:
            print_note(engine.info.sizing)
        err.print("asking the model for edits...", style="dim")
        with prefill_progress(engine):
            outcome = run_edit(engine, root, messages, max_tokens=settings.max_tokens,
                               think=settings.think, temperature=settings.temperature,
                               retries=retries, fmt=fmt)
    if len(outcome.rounds) > 1:
        err.print(f"{len(outcome.rounds) - 1} correction round(s) with the model", style="dim")
    changes = outcome.changes()
    for note in outcome.plan.notes:
        err.print(note, style="dim", markup=False)
    out = stdout_console()
    for change in changes:
        print_change(out, change)
    failed = bool(outcome.failures or outcome.problems)
    if failed:
        report_failures(outcome.failures, outcome.problems)
    if (failed or not changes) and outcome.rounds and not outcome.plan.already_applied:
        show_saved_reply(outcome.rounds[-1].reply)
    if not changes:
        if failed:
            raise EditRejectedError("no edit could be applied; nothing was written",
                                    "rephrase the instruction or name the files to change")
        if outcome.plan.already_applied:
            err.print("nothing to change: the proposed edits are already applied")
            return
        raise EditRejectedError("the model proposed no edits", "rephrase the instruction")
    if dry_run:
        err.print("dry run: nothing was written", style="dim")
        if failed:
            raise EditRejectedError("some edits could not be applied (dry run)")
        return
    if failed and yes:
        raise EditRejectedError("some edits could not be applied; with --yes nothing was written",
                                "run without --yes to choose the files to apply anyway")
    state: dict[str, bool] = {}
    chosen = [c for c in changes if yes or _confirm(c, state)]
    if not chosen and state.get("eof"):
        raise EditRejectedError("nothing applied: the input ended before any answer",
                                "add --yes to apply without asking, or --dry-run to only look")
    if not chosen:
        err.print("nothing applied")
        return
    message = (commit_message(instruction, chosen, verb="refactor" if refactor else "edit")
               if commit else None)
    done = write_with_safety(root, chosen, label="refactor" if refactor else "edit",
                             extra={"instruction": instruction}, commit=message)
    report_written(done)
    if failed:
        raise EditRejectedError("some edits did not apply (listed above); the rest were written")


def _flags(model: str | None, engine: str | None, base_url: str | None, think: bool | None,
           max_tokens: int | None, n_ctx: int | None, budget: int | None,
           no_context: bool) -> dict[str, object]:
    return {"model": model, "engine": engine, "base_url": base_url, "think": think,
            "max_tokens": max_tokens, "n_ctx": n_ctx, "budget": budget,
            "context": False if no_context else None}


@command(app, "edit", help=EDIT_HELP)
def edit_cmd(
    instruction: Annotated[str, typer.Argument(help="What to change.")],
    files: Annotated[list[Path] | None, typer.Argument(help="Files to edit (sent in full).")] = None,
    yes: YesOpt = False, dry_run: DryRunOpt = False, commit: CommitOpt = False,
    retries: RetriesOpt = 2, fmt: FormatOpt = "search-replace",
    model: ModelOpt = None, engine: EngineOpt = None, base_url: BaseUrlOpt = None,
    think: ThinkOpt = None, max_tokens: MaxTokensOpt = None, n_ctx: NCtxOpt = None,
    budget: BudgetOpt = None, no_context: NoContextOpt = False,
) -> None:
    run_edit_command(instruction, list(files or []), symbol=None, refactor=False, yes=yes,
                     dry_run=dry_run, commit=commit, retries=retries, fmt=fmt,
                     flags=_flags(model, engine, base_url, think, max_tokens, n_ctx, budget,
                                  no_context))


@command(app, "refactor", help=REFACTOR_HELP)
def refactor_cmd(
    instruction: Annotated[str, typer.Argument(help="What to do with the symbol.")],
    files: Annotated[list[Path] | None, typer.Argument(help="More files to send in full.")] = None,
    symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="The symbol to refactor.")] = None,
    yes: YesOpt = False, dry_run: DryRunOpt = False, commit: CommitOpt = False,
    retries: RetriesOpt = 2, fmt: FormatOpt = "search-replace",
    model: ModelOpt = None, engine: EngineOpt = None, base_url: BaseUrlOpt = None,
    think: ThinkOpt = None, max_tokens: MaxTokensOpt = None, n_ctx: NCtxOpt = None,
    budget: BudgetOpt = None, no_context: NoContextOpt = False,
) -> None:
    run_edit_command(instruction, list(files or []), symbol=symbol, refactor=True, yes=yes,
                     dry_run=dry_run, commit=commit, retries=retries, fmt=fmt,
                     flags=_flags(model, engine, base_url, think, max_tokens, n_ctx, budget,
                                  no_context))


@command(app, "undo", help=UNDO_HELP)
def undo_cmd(
    force: Annotated[bool, typer.Option("--force", help="Restore even if the files changed since.")] = False,
    list_only: Annotated[
        bool, typer.Option("--list", help="List the change sets that can be undone.")
    ] = False,
) -> None:
    import time

    from gemma_code.edits.journal import list_entries, undo_last

    root = _here()
    if list_only:
        for entry in reversed(list_entries(root)):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.created))
            state = "" if entry.state == "done" else f"({entry.state})  "
            typer.echo(f"{when}  {entry.label:<8}  {state}{', '.join(entry.paths)}")
        return
    result = undo_last(root, force=force)
    err = _err()
    for path in result.restored:
        err.print(f"restored {path}", markup=False)
    for path in result.removed:
        err.print(f"removed {path} (it was created by the edit)", markup=False)
    err.print(f"[green]undone:[/] the last {result.entry.label}")

