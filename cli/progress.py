"""Progress on stderr: a Rich bar on a terminal, plain timestamped lines elsewhere."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

#: Seconds between plain progress lines when stderr is not a terminal.
PLAIN_INTERVAL = 5.0
#: Seconds of results (from the first analyzed file) before a rate is shown.
STEADY_SECONDS = 2.0


class ScanProgress:
    """Counts finished files and shows them: done/total, cached, failed, rate, ETA."""

    def __init__(self, console: Console, total: int, *, enabled: bool) -> None:
        self.console = console
        self.total = total
        self.done = self.cached = self.failed = 0
        self.enabled = enabled and total > 0
        self._last_line = time.monotonic()
        self._first_analyzed: float | None = None
        self._bar: Progress | None = None
        self._task: Any = None
        if self.enabled and console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]scanning"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    "{task.fields[cached]} cached, {task.fields[failed]} failed,"
                    " {task.fields[rate]}"
                ),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )

    def __enter__(self) -> ScanProgress:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task("scan", total=self.total, cached=0, failed=0, rate="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    @property
    def rate(self) -> float:
        """Files analyzed a second since the first one came back (the pool's
        start and the model's load before it are not the scan's pace, and
        made the first line's ETA minutes for seconds of work); 0 until
        ``STEADY_SECONDS`` have passed since then."""
        if self._first_analyzed is None:
            return 0.0
        elapsed = time.monotonic() - self._first_analyzed
        if elapsed < STEADY_SECONDS:
            return 0.0
        return (self.done - self.cached - 1) / elapsed

    def advance(self, *, cached: bool, failed: bool) -> None:
        self.done += 1
        self.cached += cached
        self.failed += failed
        if not cached and self._first_analyzed is None:
            self._first_analyzed = time.monotonic()
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(
                self._task,
                advance=1,
                cached=self.cached,
                failed=self.failed,
                rate=_per_second(self.rate),
            )
            return
        now = time.monotonic()
        if now - self._last_line >= PLAIN_INTERVAL:
            self._last_line = now
            self.console.print(self.line(), highlight=False, soft_wrap=True)

    def line(self) -> str:
        """A plain progress line for logs."""
        left = self.total - self.done
        rate = self.rate
        eta = f"{left / rate:.0f} s" if rate > 0 else "?"
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        return (
            f"{stamp} {self.done}/{self.total} done, {self.cached} cached,"
            f" {self.failed} failed, {_per_second(rate)}, ETA {eta}"
        )


def _per_second(rate: float) -> str:
    return f"{rate:.1f} files/s" if rate > 0 else "? files/s"
