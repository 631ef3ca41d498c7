"""Tab completion: slash commands at the start, then file paths and symbol names."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

# Commands whose arguments are paths; every other word completes paths and symbols alike.
PATH_COMMANDS = {"/add", "/drop", "/explain", "/load"}


class ReplCompleter(Completer):
    """Completes `/commands`, repository paths and definition names.

    The file and symbol lists come from callables so they are computed once, on first use,
    not at start-up.
    """

    def __init__(
        self,
        commands: Callable[[], Iterable[tuple[str, str]]],
        files: Callable[[], list[str]],
        symbols: Callable[[], list[str]],
    ) -> None:
        self._commands = commands
        self._files = files
        self._symbols = symbols

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        word = document.get_word_before_cursor(WORD=True)
        if text.startswith("/") and " " not in text:
            for name, summary in self._commands():
                if name.startswith(text):
                    yield Completion(name, -len(text), display_meta=summary)
            return
        if not word or word.startswith("!"):
            return
        first = text.split(maxsplit=1)[0] if text.split() else ""
        yield from self._paths(word)
        if first not in PATH_COMMANDS or first == "/explain":
            yield from self._names(word.split("::")[-1])

    def _paths(self, word: str) -> Iterator[Completion]:
        shown = 0
        for path in self._files():
            if path.startswith(word) or ("/" not in word and path.rsplit("/", 1)[-1].startswith(word)):
                yield Completion(path, -len(word), display_meta="file")
                shown += 1
                if shown >= 50:
                    return

    def _names(self, word: str) -> Iterator[Completion]:
        if len(word) < 2:
            return
        shown = 0
        for name in self._symbols():
            if name.startswith(word) and name != word:
                yield Completion(name, -len(word), display_meta="symbol")
                shown += 1
                if shown >= 50:
                    return
