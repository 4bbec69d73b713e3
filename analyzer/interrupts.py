"""Holding SIGINT and SIGTERM back while something must not be cut short.

Used where a signal's default (an exception, or the end of the process)
would lose work: Dask's cluster start (cut short, it leaves a half-built
cluster behind) and a scan's outputs (cut short after the last file, the
whole report was lost). The caller answers the held signal afterwards.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_held(limit: float | None) -> Iterator[list[int]]:
    """Hold back SIGINT and SIGTERM for the duration: the list gets the first
    that arrives, which the caller delivers. A second, or the first after
    ``limit`` seconds (``None``: no limit), goes to the handler in place
    before (an escape if the body hangs). A signal ignored is left ignored;
    outside the main thread, where handlers cannot be set, nothing is held back."""
    arrived: list[int] = []
    previous: dict[int, Any] = {}
    main = threading.main_thread().ident
    timer: list[threading.Timer] = []

    def hold(signum: int, frame: Any) -> None:
        if arrived:
            _restore(previous)
            signal.raise_signal(signum)
        else:
            arrived.append(signum)
            if limit is not None:
                # to the main thread itself, so that its wait is interrupted
                late = threading.Timer(limit, signal.pthread_kill, (main, signum))
                late.daemon = True
                late.start()
                timer.append(late)

    if threading.current_thread() is threading.main_thread():
        for signum in HELD_SIGNALS:
            # (None: a handler set outside Python, which could not be put back)
            if signal.getsignal(signum) not in (signal.SIG_IGN, None):
                previous[signum] = signal.signal(signum, hold)
    try:
        yield arrived
    finally:
        for late in timer:
            late.cancel()
        _restore(previous)


def _restore(handlers: dict[int, Any]) -> None:
    for signum, handler in handlers.items():
        signal.signal(signum, handler)
