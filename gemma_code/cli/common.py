"""What every command shares: option types, settings loading, and the one error handler."""

from __future__ import annotations

import errno
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
PagesOpt = Annotated[
    str | None,
    typer.Option("--pages", help="Pages of the -f PDFs to read: 3-10, 4, 1,5-7 or 8- (default: all)."),
]
NoContextOpt = Annotated[bool, typer.Option("--no-context", help="Do not add repository context.")]


# Options given before the command; the root callback sets them on every invocation.
ROOT_FLAGS: dict[str, Any] = {}
_NOTES_SHOWN: set[str] = set()


def settings_from(**flags: Any) -> LoadedSettings:
    """Load the layered settings with command-line `flags` on top (None = not given).

    Options given before the command (`gemma-code --model M ask ...`) fill flags the command
    itself left unset. An untrusted project file's restricted keys are asked about in a
    terminal (never in the hook or CI) and otherwise left out with a note on stderr.
    """
    from gemma_code.trust import can_ask

    for key, value in ROOT_FLAGS.items():
        if value is not None and flags.get(key) is None:
            flags[key] = value
    loaded = load_settings(flags, ask_trust=ask_trust if can_ask() else None)
    show_notes(loaded)
    return loaded


def show_notes(loaded: LoadedSettings) -> None:
    """Print the settings' notes (ignored project keys) on stderr, each once per process."""
    from gemma_code.ui import print_warning

    for note in loaded.notes:
        if note not in _NOTES_SHOWN:
            _NOTES_SHOWN.add(note)
            print_warning(note)


def show_redaction_notes() -> None:
    """Say on stderr which secret values were kept out of the prompt (once each)."""
    import sys

    if "gemma_code.engine.redacting" not in sys.modules:
        return  # no engine was loaded
    from gemma_code.engine.redacting import take_notes
    from gemma_code.ui import print_warning

    for note in take_notes():
        print_warning(note)


def check_named_secrets(paths: list[Path]) -> None:
    """Warn about -f files that look like secrets files; in a terminal, ask before sending them.

    Recognised key values in them are redacted anyway; the rest of such a file is not.
    """
    import click

    from gemma_code.context.files import has_private_key, is_secret_path
    from gemma_code.errors import UsageError
    from gemma_code.trust import can_ask
    from gemma_code.ui import print_warning

    for path in paths:
        try:
            with path.open("rb") as handle:
                head = handle.read(65536)
        except OSError:
            continue  # the task reports a missing or unreadable file itself
        if not (is_secret_path(path.as_posix()) or has_private_key(head)):
            continue
        message = (f"{path} looks like a secrets file: known key formats in it are redacted, "
                   "the rest of it goes into the prompt")
        if not can_ask():
            print_warning(message)
            continue
        print_warning(message)
        if not click.confirm(f"Send {path} to the model?", default=False, err=True):
            raise UsageError(f"{path} was not sent", "leave it out of -f/FILES, or answer y")


def ask_trust(project: Path, restricted: dict[str, Any]) -> bool:
    """Show what an untrusted project file would choose and ask whether to trust its folder."""
    import click
    from rich.markup import escape

    from gemma_code.ui import stderr_console

    err = stderr_console()
    err.print(f"[bold yellow]{escape(str(project))}[/] sets what only a trusted folder may:")
    for key, value in restricted.items():
        err.print(f"  {escape(key)} = {escape(repr(value))}")
    err.print("It chooses where your code and keys go, or what is loaded and run.")
    return click.confirm(f"Trust {project.parent} (this file as it is now)?", default=False, err=True)


def command(app: typer.Typer, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """Register a command whose GemmaCodeErrors print one line (plus hint) and set the exit code."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> Any:
            try:
                with handle_errors():
                    return fn(*args, **kw)
            finally:
                show_redaction_notes()

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
        if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
            message, hint = disk_error(exc)
            print_error(message, hint)
            raise typer.Exit(int(ExitCode.FAILURE)) from None
        if _is_bug(exc) and not os.environ.get("GEMMA_CODE_DEBUG"):
            print_error(
                f"internal error: {type(exc).__name__}: {exc}",
                "this is a bug in gemma-code; GEMMA_CODE_DEBUG=1 shows the traceback to report",
            )
            raise typer.Exit(int(ExitCode.INTERNAL)) from None
        return False


_DISK_ERRNOS = frozenset({
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
    errno.EISDIR, errno.EEXIST, errno.EFBIG, errno.EIO,
})


def disk_error(exc: OSError) -> tuple[str, str]:
    """A full, read-only or unwritable folder as one line and a hint (not an internal error)."""
    from gemma_code import paths

    where = f" {exc.filename}" if exc.filename else ""
    full = exc.errno in {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
    fix = "free some space" if full else "check that the folder exists and is writable"
    return (
        f"cannot write{where}: {exc.strerror or exc}",
        f"{fix}; gemma-code keeps its data in {paths.data_dir()} and caches in "
        f"{paths.cache_dir()} (GEMMA_CODE_HOME moves both)",
    )


def _is_bug(exc: BaseException) -> bool:
    """An unexpected exception, not the CLI framework's own exits and usage errors."""
    module = type(exc).__module__
    return isinstance(exc, Exception) and not module.startswith(("typer", "click"))
