"""The prompt-reading progress line: tokens done/total, rate and time left, on stderr."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, Task, TaskID
    from rich.text import Text

MIN_TOKENS = 256  # shorter prompts are read in a blink: no line for them


def _rate_column() -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Tokens per second so far."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} tok/s" if speed else "… tok/s", style="dim")

    return RateColumn()


class PrefillProgress:
    """Called by the engine with (done, total) while it reads a prompt; draws a transient bar."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if total < MIN_TOKENS:
            return
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("reading the prompt"), BarColumn(), MofNCompleteColumn(),
                TextColumn("tokens"), _rate_column(), TimeRemainingColumn(),
                TextColumn("[dim](Ctrl-C stops)[/]"),
                console=self.console, transient=True, refresh_per_second=4,
            )
            self._progress.start()
            self._task = self._progress.add_task("prompt", total=total)
        assert self._task is not None
        self._progress.update(self._task, completed=done, total=total)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None


@contextmanager
def attached(engine: Any, reporter: PrefillProgress) -> Iterator[PrefillProgress]:
    """Point `engine.progress` at `reporter` for the block; the line is gone afterwards.

    Wrappers (the secret-redacting engine) read attributes through to the engine they wrap,
    but a write would land on the wrapper: the attribute is set where it lives.
    """
    target = engine
    while "progress" not in vars(target) and hasattr(target, "inner"):
        target = target.inner
    previous = target.progress
    target.progress = reporter
    try:
        yield reporter
    finally:
        target.progress = previous
        reporter.close()
