"""A time budget that also interrupts long C calls (a model load, a prompt prefill).

Polling the clock between steps cannot stop one llama.cpp call that runs for a minute; a
SIGALRM handler raises in the main thread as soon as the running call returns (llama.cpp
evaluates a prompt in n_batch slices, so that is within one slice). It re-fires every quarter
second until the exception lands, in case the first one is swallowed by a C callback.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

REPEAT_S = 0.25


@contextlib.contextmanager
def alarm(seconds: float | None, error: Callable[[], BaseException]) -> Iterator[None]:
    """Raise `error()` in this thread once `seconds` have passed (None: never).

    Only armed in the main thread of a POSIX process; elsewhere callers rely on their own
    checks between steps.
    """
    usable = (seconds is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return
    assert seconds is not None

    def fire(_signum: int, _frame: FrameType | None) -> None:
        raise error()

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001), REPEAT_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
