"""llama.cpp (and numpy) load only when a model does: the CLI's start-up stays light."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("llama_cpp", "numpy", "gguf")


def test_cli_help_does_not_import_llama_cpp() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from gemma_code.cli import app\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
        "assert CliRunner().invoke(app, ['doctor', '--help']).exit_code == 0\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_engine_package_and_planner_do_not_import_llama_cpp() -> None:
    code = (
        "import sys\n"
        "import gemma_code.engine, gemma_code.engine.fit, gemma_code.models.gguf_header\n"
        "import gemma_code.engine.hardware, gemma_code.cli.doctor\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
