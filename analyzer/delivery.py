"""``--changed-only``'s memory: results analyzed but not yet delivered.

``--changed-only`` outputs the files whose results are new to its stream.
"Analyzed now" is not enough: a result is cached the moment it is analyzed,
so one analyzed by a run that never wrote it out (Ctrl-C, SIGTERM,
``kill -9``, a full disk) or by another run (a manual scan of the same
folder) would never reach the stream. So once a ``--changed-only`` run has
used a cache, ``<cache>/undelivered`` lists every file any scan analyzes
there (just before its result is cached), and every file whose content is
new at its path though cached under another name (a copy, a rename;
``harken train`` lists these too, as it hashes the same files), by absolute
path; a ``--changed-only`` run that finishes takes off the files it wrote
out. A new list starts as "everything": until a ``--changed-only``
run has finished, every result is undelivered. A finished run then marks
the folders of its files as covered: a result cached before the list was
made is delivered only under a covered folder, so a folder that joins the
job later (``harken scan arC arD`` after nights of ``arC``) has its files
written out once, though a manual scan cached them before any of this. A
file may reach two outputs (an interrupted run's partial one and the
next), never none. Caches that never see ``--changed-only`` never get the list.

Changes hold an ``flock`` on ``undelivered.lock``; the list is replaced
whole (a temporary file, then a rename), so a crash leaves the old list or
the new one, and each record starts on a fresh line, so a record a crash
cut short costs only itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


class Undelivered:
    """The files analyzed in ``cache_dir`` that ``--changed-only`` has not written out."""

    def __init__(self, cache_dir: str) -> None:
        self.path = Path(cache_dir) / "undelivered"
        self._lock_path = Path(cache_dir) / "undelivered.lock"
        self._broken = False  # warned once; the scan goes on without the list

    def start(self) -> None:
        """Keep the list from now on (a ``--changed-only`` run uses this cache).
        A new list starts with every result undelivered: the stream has been
        given nothing yet, though a manual scan may have cached much."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked():
                if not self.path.exists():  # (an empty one is all delivered)
                    _replace(self.path, _EVERYTHING)
        except OSError as exc:
            self._warn(exc)

    def listed(self) -> Pending:
        """What is undelivered now (nothing when the list is not kept)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return Pending(frozenset(), None)
        except OSError as exc:
            self._warn(exc)
            return Pending(frozenset(), None)
        paths, covered = _read(data)
        return Pending(frozenset(paths), None if covered is None else frozenset(covered))

    def add(self, paths: Iterable[str]) -> None:
        """List ``paths``, whose results are about to be cached, if the list is kept."""
        data = _encode(dict.fromkeys(map(os.path.abspath, paths)))
        if not data or not self.path.exists():
            return
        try:
            with self._locked(), open(self.path, "ab") as handle:
                handle.write(data)
        except OSError as exc:
            self._warn(exc)

    def remove(self, paths: Iterable[str], scanned: Iterable[str]) -> None:
        """Take ``paths`` off the list (a finished run wrote them out), and
        mark the folders of the files it ``scanned`` covered."""
        gone = set(map(os.path.abspath, paths))
        folders = {os.path.dirname(os.path.abspath(path)) for path in scanned}
        if not self.path.exists():
            return
        try:
            with self._locked():
                listed, covered = _read(self.path.read_bytes())
                kept = [p for p in listed if p not in gone]
                more = None if covered is None else covered | folders
                if len(kept) < len(listed) or more != covered:
                    _replace(self.path, _encode_covered(more) + _encode(kept))
        except OSError as exc:
            self._warn(exc)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the list's lock (``OSError`` if it cannot be had)."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
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


@dataclass(frozen=True)
class Pending:
    """The files a ``--changed-only`` run must write out though cached: those
    listed, and any outside the covered folders (``path in pending``)."""

    paths: frozenset[str]  # absolute (a scan from another folder names them otherwise)
    #: The folders whose files a finished run wrote out, each itself and not
    #: its subfolders (a run of --files-from or --exclude may leave those
    #: out); ``None``: every folder (no list, or one from before folders were kept).
    covered: frozenset[str] | None

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        path = os.path.abspath(path)
        if path in self.paths:
            return True
        return self.covered is not None and os.path.dirname(path) not in self.covered


#: The first line of a new list: every result is undelivered (nothing is covered).
_EVERYTHING = b"true"
#: The record of a list that covers every folder: one from before folders were kept.
_ALL = {"covered": None}


def _read(data: bytes) -> tuple[list[str], set[str] | None]:
    """The listed paths and the covered folders (``None``: all) of a list."""
    paths, covered, everything = _records(data)
    if data.startswith(_EVERYTHING):
        return paths, covered
    if everything or not covered:  # (no records of folders: a list from before them)
        return paths, None
    return paths, covered


def _replace(path: Path, data: bytes) -> None:
    """Write ``path`` whole: a temporary file beside it, then a rename."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".undelivered-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _encode(paths: Iterable[str]) -> bytes:
    """A record per path: a newline, then the path as a JSON string (any name fits)."""
    return b"".join(b"\n" + json.dumps(p).encode("ascii") for p in paths)


def _encode_covered(folders: set[str] | None) -> bytes:
    """A record per covered folder (``{"covered": folder}``), the first line
    ``true`` for none, or one record for all."""
    if not folders:
        return _EVERYTHING if folders is not None else b"\n" + json.dumps(_ALL).encode("ascii")
    records = (json.dumps({"covered": f}).encode("ascii") for f in sorted(folders))
    return b"".join(b"\n" + record for record in records)


def _records(data: bytes) -> tuple[list[str], set[str], bool]:
    """The listed paths, in order, the covered folders, and whether every
    folder is, skipping a record a crash cut short."""
    paths: list[str] = []
    covered: set[str] = set()
    everything = False
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # blank, or cut short
            continue
        if isinstance(record, str):
            paths.append(record)
        elif record == _ALL:
            everything = True
        elif isinstance(record, dict) and isinstance(record.get("covered"), str):
            covered.add(record["covered"])
    return paths, covered, everything
