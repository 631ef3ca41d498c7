"""Terminal output: consoles, streamed markdown, errors, stats lines and diffs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console, Group
    from rich.live import Live

    from gemma_code.engine.base import Chunk, GenerationStats


def stdout_console(file: IO[str] | None = None) -> Console:
    from rich.console import Console

    return Console(file=file or sys.stdout, highlight=False, soft_wrap=True)


def stderr_console() -> Console:
    from rich.console import Console

    return Console(file=sys.stderr, stderr=True, highlight=False, soft_wrap=True)


def working(message: str) -> AbstractContextManager[object]:
    """A spinner with `message` on stderr while slow work runs; nothing when stderr is piped."""
    console = stderr_console()
    if not console.is_terminal:
        return nullcontext()
    return console.status(message, spinner="dots")


def prefill_progress(engine: object, *, enabled: bool = True) -> AbstractContextManager[object]:
    """While the block runs, a long prompt read by `engine` shows its progress on stderr.

    Tokens done/total, rate and time left; only on a terminal, never with --json or a pipe,
    and only for engines that report it (the llama.cpp engine's `progress` attribute).
    """
    from gemma_code.ui_progress import PrefillProgress, attached

    console = stderr_console()
    if not enabled or not console.is_terminal or not hasattr(engine, "progress"):
        return nullcontext()
    return attached(engine, PrefillProgress(console))


def print_error(message: str, hint: str | None = None) -> None:
    """One-line error on stderr, with an optional hint line."""
    from rich.markup import escape

    err = stderr_console()
    err.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        err.print(f"[yellow]hint:[/] {escape(hint)}")


def print_note(message: str) -> None:
    """A dim note on stderr, on a terminal only (scripts and pipes get the answer alone)."""
    from rich.markup import escape

    console = stderr_console()
    if console.is_terminal:
        console.print(f"[dim]note: {escape(message)}[/]")


def print_warning(message: str) -> None:
    from rich.markup import escape

    stderr_console().print(f"[bold yellow]warning:[/] {escape(message)}")


def format_stats(stats: GenerationStats) -> str:
    """One line: tokens evaluated vs reused, time to first token, prefill and decode speed."""
    images = f", {stats.image_tokens:,} of images" if stats.image_tokens else ""
    return (
        f"prompt {stats.prompt_tokens:,} tok ({stats.prompt_tokens_evaluated:,} evaluated, "
        f"{stats.prompt_tokens_reused:,} reused{images}) · first token {stats.time_to_first_token_s:.2f} s"
        f" · prefill {stats.prefill_tok_s:,.1f} tok/s · decode {stats.decode_tok_s:,.1f} tok/s"
        f" · {stats.completion_tokens:,} tokens ({stats.stop_reason})"
    )


class StreamPrinter:
    """Shows a streamed reply: live markdown on a terminal, plain text when piped.

    Thoughts are shown dimmed above the answer on a terminal and go to stderr when piped,
    so piped stdout holds the answer alone.
    """

    def __init__(
        self, console: Console, *, show_thoughts: bool = True, markdown: bool | None = None
    ) -> None:
        self.console = console
        self.show_thoughts = show_thoughts
        self.markdown = console.is_terminal if markdown is None else markdown
        self.answer = ""
        self.thoughts = ""
        self._live: Live | None = None

    def __enter__(self) -> StreamPrinter:
        return self

    def _start_live(self) -> None:
        """Start the live view at the first text, so the prompt's progress line has ended."""
        from rich.live import Live

        live = Live(
            self._renderable(), console=self.console, refresh_per_second=8,
            vertical_overflow="visible", transient=False,
        )
        live.start()
        self._live = live

    def _renderable(self) -> Group:
        from rich.console import Group
        from rich.markdown import Markdown
        from rich.text import Text

        parts: list[Text | Markdown] = []
        if self.thoughts and self.show_thoughts:
            parts.append(Text(self.thoughts.strip() + "\n", style="dim italic"))
        parts.append(Markdown(self.answer))
        return Group(*parts)

    def add(self, chunk: Chunk) -> None:
        if chunk.kind == "text":
            self.answer += chunk.text
            if not self.markdown:
                self.console.file.write(chunk.text)
                self.console.file.flush()
        elif chunk.kind == "thought":
            self.thoughts += chunk.text
            if not self.markdown and self.show_thoughts:
                sys.stderr.write(chunk.text)
                sys.stderr.flush()
        else:
            return
        if self.markdown and self._live is None:
            self._start_live()
        if self._live is not None:
            self._live.update(self._renderable())

    def play(self, chunks: Iterator[Chunk]) -> tuple[GenerationStats | None, bool]:
        """Show a whole stream; Ctrl-C closes it (the engine stops decoding) instead of raising.

        Returns the final stats (None if the stream ended early) and whether it was interrupted.
        """
        stats: GenerationStats | None = None
        with self:
            try:
                for chunk in chunks:
                    self.add(chunk)
                    if chunk.stats is not None:
                        stats = chunk.stats
            except KeyboardInterrupt:
                close = getattr(chunks, "close", None)  # engines stream from generators
                if close is not None:
                    close()
                return stats, True
        return stats, False

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.update(self._renderable(), refresh=True)
            self._live.stop()
        elif self.answer and not self.answer.endswith("\n"):
            self.console.file.write("\n")
            self.console.file.flush()
