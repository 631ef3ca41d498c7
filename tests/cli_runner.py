"""The CliRunner every CLI test uses: an unexpected exception fails the test instead of passing
as an exit status.

`GEMMA_CODE_DEBUG=1` makes the CLI's error handler re-raise bugs (it still turns GemmaCodeErrors
into their documented exit codes), and `catch_exceptions=False` lets them out of the runner.
A test of the internal-error path itself uses typer's own runner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import IO, Any

import typer.testing
from click.testing import Result


class CliRunner(typer.testing.CliRunner):
    def invoke(  # type: ignore[override]
        self,
        app: typer.Typer,
        args: str | Sequence[str] | None = None,
        input: bytes | str | IO[Any] | None = None,
        env: Mapping[str, str | None] | None = None,
        catch_exceptions: bool = False,
        **extra: Any,
    ) -> Result:
        merged = {"GEMMA_CODE_DEBUG": "1", **(env or {})}
        return super().invoke(app, args, input=input, env=merged,
                              catch_exceptions=catch_exceptions, **extra)
