"""Ctrl-C inside a long llama_decode: llama.cpp's abort callback, fed by a SIGINT flag.

Python runs signal handlers only between bytecodes, so Ctrl-C during a C call that
evaluates hundreds of prompt tokens on a CPU would wait for the whole slice (many seconds).
llama.cpp asks an abort callback between graph nodes; while a prefill runs we point SIGINT
at a flag that callback reads, so the decode stops within one node. The default handler
would raise inside the ctypes callback, where the exception is printed and lost.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class AbortFlag:
    """Set by SIGINT while a decode runs; read by llama.cpp through the abort callback."""

    def __init__(self) -> None:
        self.requested = False

    def handler(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def __call__(self, data: Any) -> bool:
        return self.requested


@contextmanager
def sigint_to_flag() -> Iterator[AbortFlag | None]:
    """While the block runs, SIGINT sets the yielded flag instead of raising.

    Yields None (and changes nothing) off the main thread or when someone else owns SIGINT;
    on exit the old handler is back, and a Ctrl-C that came meanwhile raises KeyboardInterrupt.
    """
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield None
        return
    flag = AbortFlag()
    signal.signal(signal.SIGINT, flag.handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if flag.requested:
        raise KeyboardInterrupt


@contextmanager
def abortable(lc: Any, ctx: Any) -> Iterator[AbortFlag | None]:
    """`sigint_to_flag`, with llama.cpp's abort callback on `ctx` reading the flag meanwhile."""
    with sigint_to_flag() as flag:
        if flag is None:
            yield None
            return
        callback = lc.ggml_abort_callback(flag)  # referenced here until it is unset
        lc.llama_set_abort_callback(ctx, callback, None)
        try:
            yield flag
        finally:
            lc.llama_set_abort_callback(ctx, lc.ggml_abort_callback(), None)
