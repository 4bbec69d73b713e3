"""``--lock``: one run at a time per cache, for cron.

An advisory ``flock`` on ``<cache>/harken.lock``, released by the kernel
when the process ends, however it ends: a crashed run never leaves a stale
lock behind. The file names the holder, for the message the next run prints.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from analyzer.errors import HarkenError


class LockHeld(HarkenError):
    """Another run holds the lock (and we were not asked to wait)."""


class RunLock:
    """Hold ``<cache_dir>/harken.lock`` for the duration of a ``with`` block.

    Parameters
    ----------
    cache_dir : str
    wait : bool
        Wait for the holder to finish instead of raising ``LockHeld``.
    on_wait : callable, optional
        Called with the holder's description before waiting for it.
    """

    def __init__(
        self,
        cache_dir: str,
        *,
        wait: bool = False,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(cache_dir) / "harken.lock"
        self.wait = wait
        self.on_wait = on_wait
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise HarkenError(
                f"cannot create the lock file {self.path}: {exc.strerror or exc};"
                " --lock needs a cache folder it can write to (--cache-dir)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another run"
            if not self.wait:
                os.close(fd)
                raise LockHeld(
                    f"{holder} holds the lock on {self.path.parent};"
                    " not starting (use --wait to wait for it)"
                ) from None
            try:
                if self.on_wait is not None:
                    self.on_wait(holder)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:  # Ctrl-C while waiting
                os.close(fd)
                raise
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"harken pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0
        )
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
