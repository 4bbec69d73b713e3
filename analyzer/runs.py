"""Run history: every scan leaves a record that can be listed and reprinted.

A run is a folder's worth of JSON next to the cache (``<cache>/runs/``):
``<id>.json`` holds the run's parameters, model, timing and counts per
status and label, rewritten every few seconds while the run goes on (so
another shell can follow a long cron run, as the old service's clients
polled a task), and ``<id>.jsonl`` holds its result records: appended as
they come, by the same thread, so a run killed on the way keeps what it
finished, then rewritten in the files' order when it ends. ``harken runs
show`` reprints those without analyzing anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from analyzer.errors import UsageError
from analyzer.guard import process_alive
from analyzer.results import FileResult
from analyzer.writers import atomic_output, dumps

#: Seconds between two rewrites of a running run's record.
UPDATE_INTERVAL = 1.0
#: Runs kept; older ones are deleted when a new run starts.
KEEP_RUNS = 200
#: Most bytes of run files kept (a record holds every result of its run: a
#: nightly scan of 100,000 files writes about 60 MB); older runs go first,
#: the newest is always kept.
KEEP_BYTES = 512 * 2**20


@dataclass
class RunRecord:
    """What a run was asked to do and what came of it."""

    id: str
    started: float
    arguments: dict[str, Any]
    model: str
    files: int
    state: str = "running"  # running | finished | interrupted
    ended: float | None = None
    done: int = 0
    cached: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    pid: int = field(default_factory=os.getpid)

    @property
    def wall(self) -> float:
        return (self.ended or time.time()) - self.started


def runs_dir(cache_dir: str) -> Path:
    return Path(cache_dir) / "runs"


class RunWarning(UserWarning):
    """A run record could not be written; the scan goes on."""


def _warn(message: str) -> None:
    warnings.warn(message, RunWarning, stacklevel=3)


def start_run(
    cache_dir: str, *, arguments: dict[str, Any], model: str, files: int
) -> RunLog | None:
    """A ``RunLog`` for a new run, or ``None`` (with a warning) if runs cannot be recorded."""
    try:
        return RunLog(cache_dir, arguments=arguments, model=model, files=files)
    except OSError as exc:
        _warn(f"runs cannot be recorded in {runs_dir(cache_dir)} ({exc.strerror or exc})")
        return None


class RunLog:
    """Records one run as it goes; written only by the process that runs it."""

    def __init__(
        self, cache_dir: str, *, arguments: dict[str, Any], model: str, files: int
    ) -> None:
        self.folder = runs_dir(cache_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        # Sortable, and distinct to the millisecond before the random part.
        stamp = (
            time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"{int(now * 1000) % 1000:03d}"
        )
        self.record = RunRecord(
            id=f"{stamp}-{secrets.token_hex(2)}",
            started=now,
            arguments=arguments,
            model=model,
            files=files,
        )
        self._statuses: Counter[str] = Counter()
        self._labels: Counter[str] = Counter()
        self._unwritten: list[FileResult] = []  # added, not yet appended to the .jsonl
        self._lines: dict[int, str] = {}  # id(result) -> its line, reused at the end
        self._cut = False  # the last append failed, maybe halfway through a line
        self._lock = threading.Lock()
        self._dirty = False
        self._stop = threading.Event()
        self._prune()
        self._write()
        # A thread rewrites the record while results come in, and also while
        # none do (a slow file), so a follower sees the counts so far.
        self._writer = threading.Thread(
            target=self._keep_writing, name="harken-runlog", daemon=True
        )
        self._writer.start()

    def add(self, result: FileResult, *, cached: bool) -> None:
        """Count one finished file; the record on disk follows within seconds."""
        with self._lock:
            self.record.done += 1
            self.record.cached += cached
            self._statuses[result.status] += 1
            if result.label:
                self._labels[result.label] += 1
            self._unwritten.append(result)
            self._dirty = True

    def finish(self, results: Iterable[FileResult], *, state: str) -> None:
        """Write the results and the final record."""
        self._stop.set()
        self._writer.join()
        try:
            with atomic_output(str(self.folder / f"{self.record.id}.jsonl")) as handle:
                for result in results:
                    handle.write(self._lines.get(id(result)) or dumps(result) + "\n")
            self._unwritten = []  # all of them are in the file now
        except OSError as exc:
            _warn(f"could not write the run's results ({exc.strerror or exc})")
        self.record.state = state
        self.record.ended = time.time()
        self._write()

    def _keep_writing(self) -> None:
        while not self._stop.wait(UPDATE_INTERVAL):
            if self._dirty:
                self._write()

    def _write(self) -> None:
        with self._lock:
            self.record.statuses = dict(self._statuses)
            self.record.labels = dict(self._labels)
            data = asdict(self.record)
            self._dirty = False
            unwritten, self._unwritten = self._unwritten, []
        self._append(unwritten)
        try:
            with atomic_output(str(self.folder / f"{self.record.id}.json")) as handle:
                json.dump(data, handle, sort_keys=True)
        except OSError as exc:  # the record is a convenience: never fail a scan for it
            _warn(f"could not update the run record ({exc.strerror or exc})")

    def _append(self, results: list[FileResult]) -> None:
        """Append results to the run's .jsonl (a line a kill cuts short is skipped on reading)."""
        if not results:
            return
        lines = [dumps(result) + "\n" for result in results]
        # (kept alive by the caller's outcomes until finish, so ids are unique)
        self._lines.update((id(r), line) for r, line in zip(results, lines, strict=True))
        try:
            with open(self.folder / f"{self.record.id}.jsonl", "a", encoding="utf-8") as handle:
                # After a failed append, a fresh line: a half one costs only itself.
                handle.writelines(["\n" * self._cut, *lines])
            self._cut = False
        except OSError as exc:
            self._cut = True
            _warn(f"could not write the run's results ({exc.strerror or exc})")

    def _prune(self) -> None:
        """Make room for this run: at most ``KEEP_RUNS`` and ``KEEP_BYTES``."""
        records = sorted(self.folder.glob("*.json"), reverse=True)  # ids sort by start time
        kept = used = 0
        for record in records:
            used += _size(record) + _size(record.with_suffix(".jsonl"))
            kept += 1
            if kept < KEEP_RUNS and (used <= KEEP_BYTES or kept == 1):
                continue
            with contextlib.suppress(OSError):  # another run may be pruning too
                record.unlink(missing_ok=True)
                record.with_suffix(".jsonl").unlink(missing_ok=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def history_size(cache_dir: str) -> tuple[int, int]:
    """How many runs are recorded, and their bytes."""
    files = list(runs_dir(cache_dir).glob("*.json*"))
    return sum(f.suffix == ".json" for f in files), sum(map(_size, files))


def list_runs(cache_dir: str) -> list[dict[str, Any]]:
    """Every recorded run, newest first. A ``running`` run whose process is
    gone is shown as ``interrupted``."""
    runs = []
    for path in runs_dir(cache_dir).glob("*.json"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if record.get("state") == "running" and not process_alive(record.get("pid", 0)):
            record["state"] = "interrupted"
        runs.append(record)
    return sorted(runs, key=lambda r: r.get("started", 0.0), reverse=True)


def find_run(cache_dir: str, run: str) -> dict[str, Any]:
    """The record of run ``run`` (an id, a unique prefix of one, or ``last``)."""
    runs = list_runs(cache_dir)
    if not runs:
        raise UsageError(f"no runs recorded in {cache_dir}")
    if run == "last":
        return runs[0]
    matches = [r for r in runs if r["id"].startswith(run)]
    if len(matches) != 1:
        what = "no run matches" if not matches else f"{len(matches)} runs match"
        raise UsageError(f"{what} {run!r}; see harken runs list")
    return matches[0]


def run_results(cache_dir: str, record: dict[str, Any]) -> list[FileResult]:
    """The results a run wrote: all of a finished run's, in the files' order;
    those a running or interrupted one finished, as they came."""
    path = runs_dir(cache_dir) / f"{record['id']}.jsonl"
    if not path.exists():
        raise UsageError(f"run {record['id']} has no results yet (state: {record['state']})")
    results = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                results.append(FileResult.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue  # blank, or cut short by a kill
    return results
