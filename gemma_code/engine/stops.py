"""Stop strings in streamed text: cut at the first one, hold back what may become one."""

from __future__ import annotations

from collections.abc import Sequence


class StopScanner:
    """Feed text pieces; get back what is safe to show and whether a stop string was hit."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._longest = max((len(s) for s in self.stops), default=0)
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text to emit, stopped). After a stop, the rest of the text is dropped."""
        if not self._longest:
            return text, False
        held = self._held + text
        found = [i for i in (held.find(s) for s in self.stops) if i >= 0]
        if found:
            self._held = ""
            return held[: min(found)], True
        keep = self._prefix_len(held)
        self._held = held[len(held) - keep :]
        return held[: len(held) - keep], False

    def flush(self) -> str:
        """Whatever was held back, at the end of the stream."""
        held, self._held = self._held, ""
        return held

    def _prefix_len(self, text: str) -> int:
        """Length of the longest suffix of `text` that begins some stop string."""
        for size in range(min(len(text), self._longest - 1), 0, -1):
            tail = text[-size:]
            if any(s.startswith(tail) for s in self.stops):
                return size
        return 0
