"""`gemma-code config`: show the layered settings and where each value came from."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

from gemma_code.cli import app
from gemma_code.cli.common import JsonOpt, command

config_app = typer.Typer(
    help="Inspect settings. Layers, lowest first: defaults, the user config.toml, "
    "./.gemma-code.toml, GEMMA_CODE_<KEY> environment variables, command-line flags.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")

SHOW_HELP = """Show every setting, its value and the layer it came from.

Examples:

  gemma-code config show

  GEMMA_CODE_MAX_TOKENS=512 gemma-code config show --json
"""


@command(config_app, "show", help=SHOW_HELP)
def show(json_out: JsonOpt = False) -> None:
    from rich.table import Table

    from gemma_code import paths
    from gemma_code.config import load_settings
    from gemma_code.ui import stdout_console

    loaded = load_settings()
    values = asdict(loaded.settings)
    if json_out:
        payload = {
            "settings": {k: {"value": v, "source": loaded.sources[k]} for k, v in values.items()},
            "files": [str(p) for p in loaded.files],
            "user_config": str(paths.user_config_file()),
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table(title="gemma-code settings", title_justify="left")
    table.add_column("key")
    table.add_column("value")
    table.add_column("from", style="dim")
    for key, value in values.items():
        table.add_row(key, repr(value) if isinstance(value, str) else str(value), loaded.sources[key])
    console = stdout_console()
    console.print(table)
    console.print(f"user config file: {paths.user_config_file()}", style="dim")
