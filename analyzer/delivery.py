"""``--changed-only``'s memory: results analyzed but not yet delivered.

A result is cached the moment it is analyzed, so the next run does not
analyze that file again, and ``--changed-only`` (the files analyzed now)
would never output it if the run that analyzed it did not finish: Ctrl-C,
SIGTERM, ``kill -9``, an output it could not write. So every file analyzed
is listed in ``<cache>/undelivered`` as its result arrives; a run that
finishes and writes its outputs takes its files off; and ``--changed-only``
also outputs the cached results of the files still listed. A file may then
reach two outputs (the interrupted run's partial one and the next), but
none is lost.

The list is small (what is in flight or was interrupted) and each change
holds an ``flock`` on it, so runs that share a cache do not lose each
other's lines; it is rewritten in place, never replaced, for the same
reason.
"""

from __future__ import annotations

import fcntl
import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path


class Undelivered:
    """The files of ``cache_dir`` analyzed by runs that did not deliver them."""

    def __init__(self, cache_dir: str) -> None:
        self.path = Path(cache_dir) / "undelivered"
        self._broken = False  # warned once; the scan goes on without the list

    def listed(self) -> set[str]:
        """The paths listed now."""
        try:
            with open(self.path, "rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_SH)
                return set(_lines(handle.read()))
        except FileNotFoundError:
            return set()
        except OSError as exc:
            self._warn(exc)
            return set()

    def add(self, path: str) -> None:
        """List ``path`` (its result was just analyzed and cached)."""
        line = json.dumps(path).encode("ascii") + b"\n"  # (names with newlines, non-UTF-8)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            self._warn(exc)

    def remove(self, paths: Iterable[str]) -> None:
        """Take ``paths`` off the list (a finished run delivered them)."""
        gone = set(paths)
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return
        except OSError as exc:
            self._warn(exc)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with os.fdopen(os.dup(fd), "rb") as handle:
                listed = _lines(handle.read())
            kept = [p for p in listed if p not in gone]
            if len(kept) < len(listed):
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, b"".join(json.dumps(p).encode("ascii") + b"\n" for p in kept))
        except OSError as exc:
            self._warn(exc)
        finally:
            os.close(fd)

    def _warn(self, exc: OSError) -> None:
        if not self._broken:
            self._broken = True
            warnings.warn(
                f"cannot keep the list of undelivered results ({self.path}:"
                f" {exc.strerror or exc}); --changed-only may miss results of an interrupted run",
                stacklevel=3,
            )


def _lines(data: bytes) -> list[str]:
    """The listed paths, in order, skipping a line a crash cut short."""
    paths = []
    for line in data.splitlines():
        try:
            path = json.loads(line)
        except ValueError:
            continue
        if isinstance(path, str):
            paths.append(path)
    return paths
