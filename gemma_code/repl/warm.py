"""Re-reads the conversation while the user types, so the next turn starts from a warm KV cache.

Gemma 4's template renders earlier model turns without their thought channel (even the empty
one the prompt pre-fills), so the next prompt differs from the KV cache right after
`<|turn>model\\n`. Cutting the cache back that far is cheap, unless the sliding-window layers
(`swa_full = false`) no longer hold the positions: then llama.cpp must evaluate the whole
prompt again. Doing that evaluation now, in the background, moves the cost off the next
turn's time to first token. With engines that cannot evaluate a bare prefix it does nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from gemma_code.engine.base import Engine, KVCacheEngine, Message, as_kv_engine
from gemma_code.engine.segments import evaluated_tokens


@dataclass
class WarmResult:
    """What the last background re-read did."""

    tokens: int = 0  # evaluated in the background
    seconds: float = 0.0
    error: str | None = None


class Warmer:
    """One background evaluation at a time, while the chat waits for input.

    The chat calls `wait()` before it uses the engine again, so the engine is never used by
    two threads at once.
    """

    def __init__(self) -> None:
        self.last = WarmResult()
        self._thread: threading.Thread | None = None

    def start(self, engine: Engine, messages: Sequence[Message], *, think: bool) -> None:
        """Evaluate `messages` (no generation prompt) once the engine is free (KV engines only)."""
        kv = as_kv_engine(engine)
        if kv is None:
            return
        messages = list(messages)
        self._thread = threading.Thread(target=self._run, args=(kv, messages, think), daemon=True,
                                        name="gemma-code-warm")
        self._thread.start()

    def _run(self, engine: KVCacheEngine, messages: list[Message], think: bool) -> None:
        start = time.perf_counter()
        try:
            # the tokens the next turn's prompt starts with, as the engine will evaluate them
            target = evaluated_tokens(engine, messages, think=think, add_generation_prompt=False)
            cached = list(engine.kv_tokens())
            if len(target) < 2 or cached[: len(target)] == target:
                return
            stats = None
            for chunk in engine.generate_tokens(target, max_tokens=0, temperature=0.0):
                stats = chunk.stats or stats
            evaluated = stats.prompt_tokens_evaluated if stats is not None else 0
            self.last = WarmResult(evaluated, time.perf_counter() - start)
        except Exception as exc:  # the next turn evaluates what is missing itself
            self.last = WarmResult(error=f"{type(exc).__name__}: {exc}")

    def take(self) -> WarmResult:
        """The last result (once), after the background work has finished."""
        self.wait()
        result, self.last = self.last, WarmResult()
        return result

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
