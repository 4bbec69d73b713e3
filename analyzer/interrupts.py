"""SIGINT and SIGTERM around work that must not be cut short.

A scan analyzes with both raised as exceptions (``signals_raised``), so it
stops and keeps what it finished, and holds them back around that
(``signals_held``): cut short after the last file, its outputs were lost.
Dask's cluster start is held too (cut short, it leaves a half-built cluster
behind). The caller answers a held signal afterwards.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(BaseException):
    """SIGTERM arrived: stop like Ctrl-C, but exit 143. (A ``BaseException``,
    like ``KeyboardInterrupt``: no per-file ``except Exception`` takes it for
    the file's failure.)"""


@contextlib.contextmanager
def signals_held(limit: float | None) -> Iterator[list[int]]:
    """Hold back SIGINT and SIGTERM for the duration: the list gets the first
    that arrives, which the caller delivers. A second, or the first after
    ``limit`` seconds (``None``: no limit), goes to the handler in place
    before (an escape if the body hangs). A signal ignored is left ignored;
    outside the main thread, where handlers cannot be set, nothing is held back."""
    arrived: list[int] = []
    previous: dict[int, Any] = {}  # (filled in place: hold may run before it is)
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

    previous.update(_install(hold))
    try:
        yield arrived
    finally:
        for late in timer:
            late.cancel()
        _restore(previous)


@contextlib.contextmanager
def signals_raised(held: list[int]) -> Iterator[None]:
    """While files are analyzed, Ctrl-C raises ``KeyboardInterrupt`` and SIGTERM
    ``Terminated``, so that the scan stops and keeps what it finished. Around
    it the scan holds both back (``signals_held``, whose list is ``held``):
    one held before this starts is raised at once, and one raised here is
    put on the list, so that a second, while the outputs are written, goes
    through. A signal ignored is left ignored."""

    def raising(signum: int, frame: object) -> None:
        if not held:
            held.append(signum)
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated

    previous = _install(raising)
    try:
        if held:
            signal.raise_signal(held[0])
        yield
    finally:
        _restore(previous)


def _install(handler: Callable[[int, Any], None]) -> dict[int, Any]:
    """Set ``handler`` for the signals not ignored, in the main thread; the
    handlers it replaced."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in HELD_SIGNALS:
            # (None: a handler set outside Python, which could not be put back)
            if signal.getsignal(signum) not in (signal.SIG_IGN, None):
                previous[signum] = signal.signal(signum, handler)
    return previous


def _restore(handlers: dict[int, Any]) -> None:
    """Put ``handlers`` back, all at once: a signal between two would find
    one of them replaced and the other not."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, set(handlers))
    try:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
