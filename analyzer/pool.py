"""The local process pool (joblib's loky backend); ``analyzer.cluster`` is its Dask twin.

Batches of tasks go to joblib's loky process pool and come back as they
finish (``return_as="generator_unordered"``); ``jobs=1`` runs in this
process with no pool at all.

A monitor thread kills a worker whose file runs past the timeout. A worker
that dies (a segfault, ``os._exit``, the OOM killer, or that monitor)
breaks loky's executor, and with it every task in
flight. The workers leave markers naming the file each is working on
(``analyzer.guard``), so after a break:

- a file marked ``timeout`` gets status ``timeout``, and the other files in
  flight are innocent;
- otherwise each file that was in flight is a suspect and is run again
  alone, in a fresh worker: the one that still kills its worker is
  ``crashed``, the others get their results;
- everything not yet answered goes to a fresh pool.

Finished results are never lost: they were yielded (and cached by the
caller) as they arrived.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import math
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace

from analyzer.analysis import Settings, Task, TaskOutput, run_batch
from analyzer.guard import exit_with_parent, kill_overdue, process_alive, read_markers
from analyzer.results import error_result

logger = logging.getLogger(__name__)

#: Most files in one pool task: the ensemble predicts a batch in one call.
MAX_BATCH = 16
#: Pool breaks in a row with no marker to explain them before giving up.
MAX_UNEXPLAINED_BREAKS = 3
#: Seconds between two looks at the in-flight markers for overdue files.
MONITOR_INTERVAL = 0.25
#: Seconds a worker may work outside any file of its batch in one step
#: (start-up with the model load, a prediction, a file's timeline: normally
#: seconds) before it counts as stuck, or the timeout if that is longer: a
#: short --timeout is for files, not for a busy machine's imports.
BUSY_TIMEOUT = 120.0
#: The in-flight markers' folder in the temporary folder: this, a tag of the
#: host and pid namespace, the scan's pid, and a random part.
STATE_PREFIX = "harken-inflight-"
#: What a row says when its worker got stuck outside the files.
STUCK = (
    "a worker stopped for over {limit:g} s outside any file"
    " (starting up, loading the model or predicting)"
)


def default_jobs() -> int:
    """All the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def make_batches(tasks: Sequence[Task], *, jobs: int) -> list[list[Task]]:
    """Split tasks into batches: big enough to amortise per-call costs, small
    enough that every worker gets several (for progress and load balance)."""
    size = max(1, min(MAX_BATCH, len(tasks) // (max(jobs, 1) * 4)))
    return [list(tasks[i : i + size]) for i in range(0, len(tasks), size)]


def run_tasks(tasks: Sequence[Task], settings: Settings, *, jobs: int) -> Iterator[TaskOutput]:
    """Run every task; yield exactly one output per task, as they finish.

    Parameters
    ----------
    tasks : sequence of Task
    settings : Settings
    jobs : int
        Worker processes; 1 runs in-process.
    """
    if jobs <= 1:
        for batch in make_batches(tasks, jobs=1):
            yield from run_batch(batch, replace(settings, state_dir=None))
        return
    _sweep_state_dirs()
    state_dir = tempfile.mkdtemp(prefix=f"{STATE_PREFIX}{_pid_space()}-{os.getpid()}-")
    stop = threading.Event()
    # (also with no --timeout: a worker stuck outside its files is still ended)
    monitor = threading.Thread(
        target=_monitor,
        args=(state_dir, settings.timeout or math.inf, stop),
        name="harken-timeouts",
        daemon=True,
    )
    monitor.start()
    try:
        with workers_deaf_to_ctrl_c():
            yield from _supervise(list(tasks), replace(settings, state_dir=state_dir), jobs)
    except BaseException:  # Ctrl-C, SIGTERM, or the caller walked away: no worker survives
        _kill_workers()
        raise
    finally:
        stop.set()
        monitor.join()
        shutil.rmtree(state_dir, ignore_errors=True)


def _sweep_state_dirs() -> None:
    """Remove the markers' folders of scans that ended without removing
    their own (``kill -9``, the OOM killer). Only folders of this host and
    pid namespace (a temporary folder may be shared with containers or other
    hosts, whose pids mean nothing here), of this user, whose scan's pid is
    gone; a reused pid keeps its folder. Housekeeping: it never ends a scan."""
    pattern = re.compile(rf"{STATE_PREFIX}{_pid_space()}-([0-9]{{1,10}})-[a-z0-9_]+")
    try:
        with os.scandir(tempfile.gettempdir()) as listing:
            for entry in listing:
                found = pattern.fullmatch(entry.name)
                if (
                    found
                    and entry.is_dir(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_uid == os.getuid()
                    and not process_alive(int(found[1]))
                ):
                    shutil.rmtree(entry.path, ignore_errors=True)
    except Exception as exc:  # housekeeping: nothing here is worth a scan
        logger.debug("could not sweep old markers' folders: %s", exc)


@functools.cache
def _pid_space() -> str:
    """A short tag of this host and pid namespace: where a pid means this process."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    material = f"{socket.gethostname()}:{namespace}".encode()
    return hashlib.blake2b(material, digest_size=4).hexdigest()


def _kill_workers() -> None:
    """End the pool's worker processes now (a hung worker would never finish).

    Only a pool that exists: asking loky for one would start it, and a Ctrl-C
    in the middle of importing joblib leaves its modules half made.
    """
    module = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(module, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)


def _monitor(state_dir: str, timeout: float, stop: threading.Event) -> None:
    """Kill workers stuck on one file past ``timeout``, or outside their files
    past ``BUSY_TIMEOUT``, until ``stop`` is set."""
    while not stop.wait(MONITOR_INTERVAL):
        try:
            kill_overdue(state_dir, timeout, _busy_limit(timeout))
        except OSError as exc:  # the folder went away (a cleaner): timeouts are lost, not the scan
            logger.debug("cannot read the in-flight markers: %s", exc)


def _busy_limit(timeout: float | None) -> float:
    return max(timeout, BUSY_TIMEOUT) if timeout and math.isfinite(timeout) else BUSY_TIMEOUT


def _supervise(queue: list[Task], settings: Settings, jobs: int) -> Iterator[TaskOutput]:
    assert settings.state_dir is not None
    unexplained = 0
    while queue:
        answered: set[int] = set()
        try:
            for output in _run_pool(queue, settings, jobs):
                answered.add(output.index)
                yield output
            return
        except _PoolBroke as broke:
            markers = read_markers(settings.state_dir)
            remaining = [t for t in queue if t.index not in answered]
            by_index = {t.index: t for t in remaining}
            timed_out = [
                by_index[i] for i, state in markers.items() if state == "timeout" and i in by_index
            ]
            for task in timed_out:
                yield _timeout(task, settings)
            # Files in flight are suspects, unless the break is explained (a
            # file timed out, a worker got stuck): then they go back in the queue.
            stuck = "stuck" in markers.values()
            running = [i for i, state in markers.items() if state == "running" and i in by_index]
            suspects = [] if timed_out or stuck else [by_index[i] for i in running]
            for task in suspects:
                yield _isolated(task, settings)
            settled = {t.index for t in timed_out + suspects}
            queue = [t for t in remaining if t.index not in settled]
            unexplained = 0 if settled or answered else unexplained + 1
            if unexplained >= MAX_UNEXPLAINED_BREAKS:
                why = STUCK.format(limit=_busy_limit(settings.timeout)) if stuck else str(broke)
                for task in queue:
                    yield _given_up(
                        task, settings, "crashed", f"the worker pool keeps failing ({why})"
                    )
                return


class _PoolBroke(Exception):
    """A worker died and took the pool's executor with it."""


#: Pools running now whose workers must start deaf to Ctrl-C (loky's
#: workers outlive them, and others' pools in the process are left alone).
_deaf_pools = 0
_deaf_lock = threading.Lock()


@contextlib.contextmanager
def workers_deaf_to_ctrl_c() -> Iterator[None]:
    """While it lasts, loky starts its workers with SIGINT blocked.

    Ctrl-C at a terminal reaches the whole process group, and a worker still
    starting Python died of it with a traceback (thirty lines on stderr for a
    Ctrl-C in a scan's first second). harken ends its workers itself
    (``_kill_workers``), so they need not hear it. Outside, spawns are left
    as they were (a caller's own joblib pool).
    """
    global _deaf_pools
    if "joblib" in sys.modules:  # (else the pool's start wraps it: a cached rerun never does)
        _deafen_spawns()
    with _deaf_lock:
        _deaf_pools += 1
    try:
        yield
    finally:
        with _deaf_lock:
            _deaf_pools -= 1


def _deafen_spawns() -> None:
    """Wrap loky's spawn, once, for ``workers_deaf_to_ctrl_c``. loky has no
    option for it; the signal mask, unlike a handler, survives the exec, and
    Python starts with it as it is. It works from whichever thread spawns."""
    from joblib.externals.loky.backend import fork_exec as module

    spawn = module.fork_exec
    if getattr(spawn, "deaf_to_ctrl_c", False) or not hasattr(signal, "pthread_sigmask"):
        return

    @functools.wraps(spawn)
    def deaf_spawn(*args: object, **kwargs: object) -> int:
        if not _deaf_pools:
            return spawn(*args, **kwargs)
        # (Only this thread blocks it: another, or this one after, takes a Ctrl-C.)
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return spawn(*args, **kwargs)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    deaf_spawn.deaf_to_ctrl_c = True  # type: ignore[attr-defined]
    module.fork_exec = deaf_spawn


def _run_pool(tasks: list[Task], settings: Settings, jobs: int) -> Iterator[TaskOutput]:
    from joblib import Parallel, delayed
    from joblib.externals.loky.process_executor import BrokenProcessPool

    _deafen_spawns()
    batches = make_batches(tasks, jobs=jobs)
    # At least two workers even for one batch: n_jobs=1 would run it in this
    # process, where a crash or the watchdog would end harken itself.
    parallel = Parallel(
        n_jobs=max(2, min(jobs, len(batches))),
        backend="loky",
        return_as="generator_unordered",
        # Each worker watches harken from its first moment, before its imports
        # and the model load: after a kill -9 in that second or two it would
        # otherwise wait out loky's idle timeout. (Before the memory cap, too:
        # the watch thread's stack and arena are not a file's budget.)
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )
    running = parallel(delayed(run_batch)(batch, settings) for batch in batches)
    try:
        for outputs in running:
            yield from outputs
    except BrokenProcessPool as exc:  # TerminatedWorkerError is one of these
        raise _PoolBroke(str(exc).splitlines()[0]) from None
    except GeneratorExit:  # the caller stopped early (broke out of analyze()): no warning
        # about the tasks cancelled or finished unused; the filter (process-wide
        # while it lasts) covers only joblib's warnings, and only this close.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"joblib\.parallel")
            running.close()
        raise


def _isolated(task: Task, settings: Settings) -> TaskOutput:
    """Run one suspect alone in a fresh worker: it either answers or is the culprit."""
    try:
        return next(iter(_run_pool([task], settings, 2)))
    except _PoolBroke as exc:
        markers = read_markers(settings.state_dir or "")
        if markers.get(task.index) == "timeout":
            return _timeout(task, settings)
        if markers.get(task.index) == "stuck":  # not the file's doing
            limit = _busy_limit(settings.timeout)
            return _given_up(
                task,
                settings,
                "crashed",
                f"no worker could analyze it: {STUCK.format(limit=limit)}",
            )
        return crashed_output(task, settings, f"its worker process died ({exc})")


def _timeout(task: Task, settings: Settings) -> TaskOutput:
    reason = f"gave up after {settings.timeout:g} s (--timeout); worker replaced"
    # It ran that long, as a timeout in the worker itself (``-j 1``) reports.
    return _given_up(task, settings, "timeout", reason, seconds=settings.timeout or 0.0)


def crashed_output(task: Task, settings: Settings, reason: str) -> TaskOutput:
    """The row of a file that killed its worker (``reason`` says how)."""
    return _given_up(task, settings, "crashed", f"analyzing this file crashed the worker: {reason}")


def _given_up(
    task: Task, settings: Settings, status: str, reason: str, *, seconds: float = 0.0
) -> TaskOutput:
    """The row of a file the pool gave up on; its error kind is its status."""
    result = error_result(
        task.path,
        status,
        f"{task.path}: {reason}",
        status=status,
        model=settings.model_id,
        content_hash=task.content_hash,
        seconds=seconds,
    )
    return TaskOutput(task.index, result)
