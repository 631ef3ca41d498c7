"""Helpers (no tests): drive the chat REPL through prompt_toolkit's pipe input, as a user would."""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from gemma_code.config import Settings
from gemma_code.engine.base import Engine
from gemma_code.repl.loop import Repl, ReplIO
from gemma_code.repl.store import SessionInfo

ENTER = "\r"
ALT_ENTER = "\x1b\r"


class InterruptingFile(io.StringIO):
    """Console output that delivers a real SIGINT when `marker` is first written (Ctrl-C mid-answer)."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.fired = False

    def write(self, text: str) -> int:
        written = super().write(text)
        if not self.fired and self.marker in text:
            self.fired = True
            signal.raise_signal(signal.SIGINT)
        return written


def drive(
    keys: str,
    engine: Engine,
    cwd: Path,
    *,
    settings: Settings | None = None,
    resume: SessionInfo | None = None,
    out: io.StringIO | None = None,
    loader: Callable[[Settings], Engine] | None = None,
    debug: bool = True,
    **overrides: Any,
) -> tuple[str, Repl]:
    """Type `keys` into a chat in `cwd`; returns everything printed and the finished Repl.

    With `debug` (GEMMA_CODE_DEBUG=1) a crashing command fails the test instead of printing a
    one-line error: tests of that error path pass debug=False.
    """
    settings = settings or Settings(context=False, max_tokens=64)
    for key, value in overrides.items():
        setattr(settings, key, value)
    saved = os.environ.get("GEMMA_CODE_DEBUG")
    if debug:
        os.environ["GEMMA_CODE_DEBUG"] = "1"
    try:
        return _drive(keys, engine, cwd, settings, resume, out, loader)
    finally:
        if saved is None:
            os.environ.pop("GEMMA_CODE_DEBUG", None)
        else:
            os.environ["GEMMA_CODE_DEBUG"] = saved


def _drive(keys: str, engine: Engine, cwd: Path, settings: Settings, resume: SessionInfo | None,
           out: io.StringIO | None, loader: Callable[[Settings], Engine] | None,
           ) -> tuple[str, Repl]:
    out = out or io.StringIO()
    console = Console(file=out, width=120, force_terminal=False, color_system=None)
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        pipe.close()
        repl = Repl(
            settings,
            ReplIO(console=console, input=pipe, output=DummyOutput()),
            cwd=cwd,
            engine_loader=loader or (lambda _s: engine),
            resume=resume,
        )
        repl.run()
    return out.getvalue(), repl


def lines(*typed: str) -> str:
    """Each argument typed and sent with Enter."""
    return "".join(t + ENTER for t in typed)
