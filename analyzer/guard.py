"""Fault isolation around one file: in-flight markers, timeouts, a memory cap.

A pool worker writes ``running <index> <start>`` to a marker file named
after its pid in the scan's state folder when it starts a file, and ``busy
<index> <start>`` (the batch's first file) while it works on a batch outside
its files (``<start>``: when the worker itself started, so that a marker
left by a dead worker kills no process that was given its pid):
starting up, loading the model, predicting. The parent's monitor
(``analyzer.pool``) reads the markers: a file running past its timeout gets
its marker rewritten to ``timeout`` and its worker killed (a decoder stuck in
C code cannot be stopped any other way); a worker busy past its own limit
gets ``stuck`` and is killed too, and no file is blamed. After a worker dies,
the markers name the files that were in flight.
The memory cap is an address-space limit (``RLIMIT_AS``), so an allocation
that would pass it fails with ``MemoryError`` instead of waking the OOM
killer.

In-process runs (``--jobs 1``) have no one to kill them: there a timeout is
a ``SIGALRM`` that interrupts Python code and blocking system calls, but
not a loop inside C code. On a Dask worker, where the file runs in a worker
thread and no signal can reach it, a timer raises the timeout in that thread
instead: it interrupts Python code only.

``HARKEN_FAULT`` (read by the parent, passed to workers in their settings)
injects faults for the fault-injection tests:
``crash:GLOB`` (pool and cluster workers only), ``hang:GLOB`` or ``hog:GLOB`` (several
separated by ``;``), matched against the file's name; ``hang-start`` hangs a
pool worker before its first file (before its warm-up; it is ``busy``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fnmatch
import os
import signal
import threading
import time
from collections.abc import Iterator


class FileTimeout(Exception):
    """Raised in-process when one file runs past its timeout."""


_MEMORY_CAP_SET: set[int] = set()


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)


_OWN_START: dict[int, str | None] = {}  # pid -> its start (a forked child is new)


def _marker_text(state: str, index: int) -> str:
    """A worker's marker: its state, the file's index, and when it started."""
    pid = os.getpid()
    if pid not in _OWN_START:
        _OWN_START[pid] = _started(pid)
    started = _OWN_START[pid]
    return f"{state} {index}" if started is None else f"{state} {index} {started}"


def _parse(text: str) -> tuple[str, str, str | None]:
    """``(state, index, start or None)`` of a marker's text; ValueError if torn."""
    fields = text.split()
    if len(fields) not in (2, 3):
        raise ValueError(f"not a marker: {text!r}")
    return fields[0], fields[1], fields[2] if len(fields) == 3 else None


def read_markers(state_dir: str) -> dict[int, str]:
    """``index -> "running" | "busy" | "timeout" | "stuck"`` for every marker
    left in ``state_dir``."""
    found: dict[int, str] = {}
    for name in os.listdir(state_dir):
        try:
            with open(os.path.join(state_dir, name), encoding="ascii") as handle:
                state, index, _ = _parse(handle.read())
            found[int(index)] = state
        except (OSError, ValueError):  # a marker being written as its worker died
            continue
        finally:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(state_dir, name))
    return found


def kill_overdue(state_dir: str, timeout: float, busy_timeout: float) -> list[int]:
    """Kill every worker whose current file started more than ``timeout`` s
    ago, or that has been busy outside its files for ``busy_timeout`` s.

    Its marker is rewritten to ``timeout <index>`` (or ``stuck <index>``)
    first, so the parent knows why the worker died. Returns the indexes of
    the files (or the batches' first files) given up.
    """
    now = time.time()
    given_up = []
    for name in os.listdir(state_dir):
        marker = os.path.join(state_dir, name)
        try:
            started = os.stat(marker).st_mtime
            with open(marker, encoding="ascii") as handle:
                state, index, writer_start = _parse(handle.read())
        except (OSError, ValueError):  # gone (the file finished) or being written
            continue
        limit = {"running": timeout, "busy": busy_timeout}.get(state)
        if limit is None or now - started <= limit:
            continue
        try:
            if os.stat(marker).st_mtime != started:  # moved on to another file meanwhile
                continue
            # A dead worker's marker: its pid may be reused. The marker stays,
            # for the parent to read when it learns of the death.
            if not _is_my_worker(int(name), writer_start):
                continue
            _write(marker, f"{'timeout' if state == 'running' else 'stuck'} {index}")
            os.kill(int(name), signal.SIGKILL)
        except (OSError, ValueError):
            continue
        given_up.append(int(index))
    return given_up


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` from the state on (field 3 first);
    None where there is no /proc. FileNotFoundError if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            raise
        return None
    # "pid (name) state ppid ...": the name may hold spaces and parentheses
    return stat.rsplit(")", 1)[1].split()


def _started(pid: int) -> str | None:
    """When ``pid`` started, in clock ticks after boot (field 22 of its stat),
    as text; None where there is no /proc to ask."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return None
    return fields[19] if fields else None


def _is_my_worker(pid: int, started: str | None) -> bool:
    """Whether ``pid`` is the pool worker that wrote a marker saying it
    ``started`` then: a child of this process that started at that tick.
    A marker left by a worker that died names a pid the system may give to
    another process, or to a new worker of ours or one of its threads;
    neither may be killed for it. A marker without a start (written where
    there is no /proc) or no /proc here: every child, or every pid, is taken
    for the worker."""
    fields = _stat_fields(pid)
    if fields is None:
        return True
    return int(fields[1]) == os.getpid() and started in (None, fields[19])


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists here (another user's counts; a
    number that is no pid does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or past any pid
        return False
    except OSError:  # another user's
        return True
    return True


def limit_memory(max_memory: int | None) -> None:
    """Cap this process's address space at its current size plus ``max_memory``."""
    if not max_memory or os.getpid() in _MEMORY_CAP_SET:
        return
    import resource

    with open("/proc/self/statm", encoding="ascii") as handle:
        current = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = current + max_memory
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    _MEMORY_CAP_SET.add(os.getpid())


#: How often a pool worker checks that harken is still there.
PARENT_CHECK_INTERVAL = 1.0
WATCH_STACK = 256 * 1024
_WATCHED: set[int] = set()


def exit_with_parent(parent: int) -> None:
    """End this pool worker soon after harken itself (pid ``parent``) ends,
    however it ends.

    After ``kill -9`` nobody shuts the pool down, and loky's idle workers
    would live on for minutes, holding the caller's standard output and
    error open (a ``| tee`` in CI would wait for them). Harken's pid is
    given, not read here: a worker already orphaned when this runs would
    take init for its parent and watch it forever. Once per process.
    """
    if os.getpid() in _WATCHED:
        return
    _WATCHED.add(os.getpid())

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_INTERVAL)
        os._exit(1)  # adopted by init: the parent is gone

    default = threading.stack_size(WATCH_STACK)  # it sleeps and compares: a small stack
    try:
        threading.Thread(target=watch, name="harken-parent-watch", daemon=True).start()
    finally:
        threading.stack_size(default)


def fault_spec() -> str | None:
    """The ``HARKEN_FAULT`` injection spec of this (the parent) process."""
    return os.environ.get("HARKEN_FAULT") or None


def hang_at_start(spec: str | None) -> None:
    """The ``hang-start`` fault: never get to a pool worker's warm-up."""
    if spec and "hang-start" in spec.split(";"):
        while True:
            time.sleep(0.05)


def _inject_fault(path: str, spec: str | None, *, in_worker: bool) -> None:
    if not spec:
        return
    name = os.path.basename(path)
    for item in spec.split(";"):
        kind, _, pattern = item.partition(":")
        if pattern and fnmatch.fnmatchcase(name, pattern):
            if kind == "crash" and in_worker:
                os._exit(70)
            if kind == "hang":
                while True:
                    time.sleep(0.05)
            if kind == "hog":
                hog = [bytearray(64 << 20) for _ in range(1024)]  # 64 GiB, or MemoryError
                del hog


#: This worker's ``busy`` marker text while it works on a batch.
_between: list[str] = []


@contextlib.contextmanager
def busy(state_dir: str | None, index: int) -> Iterator[None]:
    """Mark a pool worker busy with the batch whose first file is ``index``
    (``state_dir`` set), so that hanging outside its files (imports, the model
    load, a prediction) ends too. Elsewhere it does nothing."""
    if state_dir is None:
        yield
        return
    marker = os.path.join(state_dir, str(os.getpid()))
    _between.append(_marker_text("busy", index))
    try:
        with contextlib.suppress(OSError):  # no folder: no stuck check, the batch goes on
            _write(marker, _between[-1])
        yield
    finally:
        _between.pop()
        with contextlib.suppress(OSError):
            os.unlink(marker)


def still_busy(state_dir: str | None) -> None:
    """Restart this worker's busy clock: each long step outside the files
    (predicting a batch, a file's timeline) gets the whole limit."""
    if state_dir is not None and _between:
        with contextlib.suppress(OSError):
            _write(os.path.join(state_dir, str(os.getpid())), _between[-1])


@contextlib.contextmanager
def guarded(
    path: str,
    index: int,
    *,
    state_dir: str | None,
    timeout: float | None,
    faults: str | None = None,
    in_worker: bool = False,
) -> Iterator[None]:
    """Run the body for one file under its marker (pool) or a timer (elsewhere).

    In a pool worker (``state_dir`` set) the parent kills a hung worker;
    elsewhere ``FileTimeout`` is raised instead. ``in_worker`` says this
    process is a worker that may die (a pool or a cluster worker), which is
    where a ``crash`` fault may strike.
    """
    if state_dir is not None:
        marker = os.path.join(state_dir, str(os.getpid()))
        with contextlib.suppress(OSError):  # no folder: no timeout, the file goes on
            _write(marker, _marker_text("running", index))
        try:
            _inject_fault(path, faults, in_worker=True)
            yield
        finally:
            with contextlib.suppress(OSError):
                if _between:  # back to the batch, whose clock starts again
                    _write(marker, _between[-1])
                else:
                    os.unlink(marker)
        return
    with _deadline(path, timeout):
        _inject_fault(path, faults, in_worker=in_worker)
        yield


@contextlib.contextmanager
def _deadline(path: str, timeout: float | None) -> Iterator[None]:
    """Raise ``FileTimeout`` in this thread once ``timeout`` seconds have passed."""
    if not timeout:
        yield
        return
    if threading.current_thread() is threading.main_thread():

        def expire(signum: int, frame: object) -> None:
            raise FileTimeout(path)

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, float(timeout))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return
    # Not the main thread (a Dask worker's task thread): no signal reaches it,
    # so a timer thread raises the exception in it, between two bytecodes.
    target = threading.get_ident()
    lock = threading.Lock()
    done = False

    def interrupt() -> None:
        with lock:
            if not done:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(target), ctypes.py_object(FileTimeout)
                )

    timer = threading.Timer(timeout, interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            done = True
        timer.cancel()
