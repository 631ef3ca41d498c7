"""`gemma-code config`: show the layered settings and where each value came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gemma_code.cli import app
from gemma_code.cli.common import JsonOpt, command

CONFIG_HELP = """Inspect and edit settings.

Layers, lowest first: built-in defaults, the user config.toml, the repository's \
.gemma-code.toml, GEMMA_CODE_<KEY> environment variables, command-line flags. A \
repository's file cannot set engine, base_url, api_key_env, model paths, tokenizer or \
script unless you trust its folder (`gemma-code config trust`, docs/security.md).

Examples:

  gemma-code config show                  # every key, its value and where it came from

  gemma-code config edit                  # create (with every key, commented) and edit

  gemma-code config path                  # where the user config file lives

  gemma-code config trust                 # let this repository's file choose the engine

  echo 'model = "gemma3-270m"' >> "$(gemma-code config path)"   # a CPU-sized default model
"""

config_app = typer.Typer(help=CONFIG_HELP, no_args_is_help=True, rich_markup_mode="rich")
app.add_typer(config_app, name="config")

SHOW_HELP = """Show every setting, its value and the layer it came from.

Examples:

  gemma-code config show

  GEMMA_CODE_MAX_TOKENS=512 gemma-code config show --json
"""


@command(config_app, "show", help=SHOW_HELP)
def show(json_out: JsonOpt = False) -> None:
    from rich.markup import escape
    from rich.table import Table

    from gemma_code import paths
    from gemma_code.cli.common import ask_trust
    from gemma_code.config import as_dict, load_settings
    from gemma_code.trust import can_ask
    from gemma_code.ui import stdout_console

    loaded = load_settings(ask_trust=ask_trust if can_ask() else None)
    values = as_dict(loaded.settings)
    if json_out:
        payload = {
            "settings": {k: {"value": v, "source": loaded.sources[k]} for k, v in values.items()},
            "files": [str(p) for p in loaded.files],
            "user_config": str(paths.user_config_file()),
            "ignored": loaded.ignored,
            "notes": loaded.notes,
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table(title="gemma-code settings", title_justify="left")
    table.add_column("key")
    table.add_column("value")
    table.add_column("from", style="dim")
    for key, value in values.items():
        shown = repr(value) if isinstance(value, str) else str(value)
        table.add_row(key, escape(shown), escape(loaded.sources[key]))
    console = stdout_console()
    console.print(table)
    console.print(escape(f"user config file: {paths.user_config_file()}"), style="dim")
    for note in loaded.notes:
        console.print(escape(f"note: {note}"), style="yellow")


TRUST_HELP = """Trust a folder's .gemma-code.toml to set engine, base_url, api_key_env, model \
paths, tokenizer and script.

A repository's config file cannot choose where your code and keys go unless you trust it. \
This records the folder with the exact bytes of its .gemma-code.toml: if the file changes \
(a pull), it is not trusted until you run this again. To trust a folder whatever its file \
says, list it in your own config.toml: trusted_folders = ["~/src/work"].

Examples:

  gemma-code config trust            # the current repository's file

  gemma-code config trust ~/src/app

  gemma-code config trust --forget ~/src/app
"""


@command(config_app, "trust", help=TRUST_HELP)
def trust_folder(
    folder: Annotated[
        Path | None, typer.Argument(help="A folder with a .gemma-code.toml (default: the current one's).")
    ] = None,
    forget: Annotated[bool, typer.Option("--forget", help="Stop trusting the folder.")] = False,
) -> None:
    from gemma_code.config import PROJECT_FILE, project_file
    from gemma_code.errors import UsageError
    from gemma_code.trust import forget_trust, record_trust

    start = (folder or Path.cwd()).expanduser()
    if forget:
        if not forget_trust(start):
            raise UsageError(f"{start} was not trusted with `config trust`",
                             "folders listed in trusted_folders live in your config.toml")
        typer.echo(f"no longer trusted: {start.resolve()}")
        return
    found = project_file(start) if folder is None else start / PROJECT_FILE
    if found is None or not found.is_file():
        raise UsageError(f"no {PROJECT_FILE} in {start}", "name the folder that holds it")
    store = record_trust(found)
    typer.echo(f"trusted {found.parent} (as {found.name} is now; recorded in {store})")


PATH_HELP = """Print the user config file's path (it may not exist yet).

Examples:

  gemma-code config path

  $EDITOR "$(gemma-code config path)"
"""


@command(config_app, "path", help=PATH_HELP)
def path_cmd() -> None:
    from gemma_code import paths

    typer.echo(str(paths.user_config_file()))


EDIT_HELP = """Open the user config file in $VISUAL or $EDITOR, creating it first if needed.

A new file lists every key with its default, commented out: uncomment what you change. \
The file is checked when the editor closes; an error names the key and the fix.

Examples:

  gemma-code config edit

  EDITOR=nano gemma-code config edit
"""


@command(config_app, "edit", help=EDIT_HELP)
def edit_cmd() -> None:
    import os
    import shlex
    import subprocess

    from gemma_code import paths
    from gemma_code.atomic import write_text_atomic
    from gemma_code.config import load_settings, template
    from gemma_code.errors import ConfigError
    from gemma_code.ui import stderr_console

    path = paths.user_config_file()
    err = stderr_console()
    if not path.exists():
        write_text_atomic(path, template())
        err.print(f"created {path}", style="dim")
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        typer.echo(str(path))
        err.print("set $EDITOR (or $VISUAL) to open it here; the path is printed above", style="dim")
        return
    try:
        code = subprocess.call([*shlex.split(editor), str(path)])
    except OSError as exc:
        raise ConfigError(f"cannot run the editor {editor!r}: {exc.strerror}",
                          "set $EDITOR to an editor on your PATH") from None
    if code != 0:
        raise ConfigError(f"the editor exited with {code}; {path} may be unsaved")
    load_settings()  # a mistake is reported now, naming the file and the key
    err.print(f"{path}: ok", style="dim")
