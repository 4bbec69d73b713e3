"""Scans on a Dask cluster, through joblib's dask backend.

``run_on_cluster`` is the cluster's twin of ``analyzer.pool.run_tasks``: the
same batches of cache misses, the same ``run_batch`` on the workers, one
output per task, yielded as they finish. The parent keeps the cache. What
differs from the local pool:

- The model reaches each worker once: the bytes of its file travel in a
  worker plugin, which the scheduler also gives to workers that join or
  restart later. Tasks carry only the model's fingerprint.
- With ``ship_audio`` the parent sends each file's bytes with its batch, for
  workers that cannot see the parent's files. The worker checks them
  against the content hash and analyzes a private temporary copy.
- A worker that dies has its tasks retried elsewhere by the scheduler. A
  task that keeps killing workers comes back as ``KilledWorker`` naming its
  key, which carries the batch's number: that batch's files are then run
  alone, and a file that still kills its workers, by itself on the cluster,
  is ``crashed``.
- A timeout is raised inside the worker's task thread (``analyzer.guard``),
  which stops Python code but not a decoder stuck in C. ``--max-memory``
  is checked against the file's header but not enforced by an address-space
  cap, which would cap the whole worker: Dask workers have ``--memory-limit``.
- Ctrl-C (or any early exit) cancels every task the scan submitted. A lost
  scheduler ends the scan with ``ClusterLost``; what finished is kept.
  harken's own LocalCluster then gives its workers ``STOP_TIMEOUT`` to stop:
  a task already running cannot be cancelled, and Dask's close would wait
  4 s for it. Its workers ignore SIGINT (``dask_setup``): a terminal's
  Ctrl-C reaches them too, and is harken's to handle. A signal while it
  starts waits for the start to finish (``_start_local``).
- A Dask nanny gives up on its worker when the worker dies again while it
  starts (a file that kills workers can do that), and a LocalCluster does
  not replace a nanny that gave up: harken's own LocalCluster is scaled
  back to its size. A cluster left with no worker for ``NO_WORKER_TIMEOUT``
  seconds ends the scan with ``ClusterLost``: its tasks would wait forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass, replace
from typing import Any

from distributed import Client, Future, KilledWorker, LocalCluster, SpecCluster, WorkerPlugin
from joblib import Parallel, delayed, parallel_config, register_parallel_backend
from joblib._dask import DaskDistributedBackend

from analyzer.analysis import SHIPPED_MODELS, Settings, Task, TaskOutput, run_batch
from analyzer.cache import hash_bytes
from analyzer.errors import ClusterError, ClusterLost
from analyzer.interrupts import signals_held
from analyzer.pool import MAX_UNEXPLAINED_BREAKS, crashed_output, make_batches
from analyzer.results import error_result

#: Seconds to wait for the scheduler to answer, and then for a worker.
CONNECT_TIMEOUT = 10.0
#: Most bytes of audio one batch carries with ``ship_audio``.
MAX_SHIPPED_BATCH = 64 << 20
#: Seconds a scan waits on a cluster with no worker at all before it ends.
NO_WORKER_TIMEOUT = 60.0
#: Seconds between two looks at the cluster's workers.
WATCH_INTERVAL = 1.0
#: Most seconds one look may take (a lost scheduler does not answer).
LOOK_TIMEOUT = 5.0
#: Seconds a worker of harken's own LocalCluster gets to stop after a scan was
#: cut short; the nanny kills it after 0.8 of that (Dask's own close: 4 s).
STOP_TIMEOUT = 1.0
#: Most seconds closing harken's own LocalCluster may take. (distributed
#: 2025.1 waits for ever on a nanny whose killed worker was not reaped within
#: 0.2 of the nanny's own timeout: its close failed half-way, and closes after
#: it wait for that one to finish.) Its workers are daemon processes, which
#: end with harken.
CLOSE_TIMEOUT = 15.0
#: The joblib backend name of ``_DaskBackend``.
BACKEND = "harken-dask"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cluster:
    """Where a scan runs: a scheduler's address, or ``None`` for a LocalCluster.

    ``workers`` sizes the LocalCluster (one thread each); a running cluster
    has the workers it has.
    """

    scheduler: str | None = None
    ship_audio: bool = False
    connect_timeout: float = CONNECT_TIMEOUT
    workers: int = 2


def run_on_cluster(
    tasks: Sequence[Task], settings: Settings, cluster: Cluster
) -> Iterator[TaskOutput]:
    """Run every task on the cluster; yield exactly one output per task.

    Raises
    ------
    ClusterError
        The scheduler cannot be reached, or has no worker, within
        ``cluster.connect_timeout`` seconds.
    ClusterLost
        The connection broke mid-scan; the outputs yielded so far stand.
    """
    if not tasks:
        return
    settings = replace(settings, state_dir=None, on_cluster=True)
    with _quiet_client(), _connect(cluster) as (client, local):
        plugin = _ModelPlugin(settings) if settings.model is not None else None
        if plugin is not None:
            client.register_plugin(plugin)
        watch = _WorkerWatch(client, local, cluster.workers)
        try:
            with watch:
                yield from _supervise(list(tasks), settings, client, cluster.ship_audio)
        except (CancelledError, OSError, TimeoutError) as exc:  # what a lost scheduler raises
            _cancel_everything(client)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ClusterLost(
                watch.gave_up or f"lost the Dask cluster at {client.scheduler.address} ({first})"
            ) from None
        except BaseException:  # Ctrl-C, SIGTERM, or the caller walked away
            _cancel_everything(client)
            raise
        finally:
            if plugin is not None:
                with contextlib.suppress(Exception):  # the cluster may be gone
                    client.unregister_worker_plugin(plugin.name)


@contextlib.contextmanager
def _quiet_client() -> Iterator[None]:
    """Keep the client's warnings about lost workers and rescheduled tasks off
    the terminal: harken reports what happened to each file itself."""
    logger = logging.getLogger("distributed.client")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _connect(cluster: Cluster) -> Iterator[tuple[Any, LocalCluster | None]]:
    """A client of the scheduler (or of a new LocalCluster, also given) with at
    least one worker."""
    local = _start_local(cluster.workers) if cluster.scheduler is None else None
    address = local.scheduler_address if local is not None else _checked(cluster.scheduler)
    wait = cluster.connect_timeout
    cut_short = False
    try:
        try:
            client = Client(address, timeout=wait, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {address} within {wait:g} s ({exc})"
            ) from None
        try:
            client.wait_for_workers(1, timeout=wait)
        except TimeoutError:
            client.close()
            raise ClusterError(
                f"the Dask scheduler at {address} has no worker after {wait:g} s;"
                f" start one with: dask worker {address}"
            ) from None
        try:
            yield client, local
        except BaseException:  # Ctrl-C, a lost cluster, the caller walked away
            cut_short = True
            raise
        finally:
            client.close()
    finally:
        if local is not None:
            _close_local(local, cut_short=cut_short)


def _start_local(workers: int) -> LocalCluster:
    """harken's own LocalCluster, started with Ctrl-C and SIGTERM held back.

    Interrupted while it starts, Dask leaves a half-built cluster that its
    exit hook fails to close, with a page of tracebacks; the scan never had
    a handle on it. A signal that arrives meanwhile is delivered once the
    start is over, and the cluster closed at once. A terminal's Ctrl-C also
    reaches the workers as they start (``dask_setup`` has not run yet) and
    fails the start: that cluster is left to end with the process.
    """
    before = set(SpecCluster._instances)  # Dask's own list, which its exit hook closes
    local = None
    with signals_held(HOLD_LIMIT) as arrived:
        try:
            local = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=":0",  # the HTTP server starts anyway: any free port
                # harken reports what went wrong with each file itself
                silence_logs=logging.CRITICAL,
                preload=[__name__],  # ``dask_setup``, in every worker, new ones too
            )
        except BaseException:
            if not arrived:
                raise
            _abandon(set(SpecCluster._instances) - before)
    if arrived:
        try:
            signal.raise_signal(arrived[0])  # to the handler it was held from
        except BaseException:
            if local is not None:
                _close_local(local, cut_short=True)
            raise
    if local is None:  # that handler let the scan go on
        raise ClusterError("harken's LocalCluster could not start: a signal stopped its workers")
    return local


def _abandon(clusters: set[Any]) -> None:
    """Leave half-built clusters to end with the process: Dask's exit hook
    cannot close them, and their workers are daemon processes. Their failed
    start leaves tasks whose errors nobody reads, which asyncio reports."""
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    for cluster in clusters:
        cluster.shutdown_on_close = False


#: Most seconds a signal is held back while the cluster starts: then it goes
#: through, as a second one does. (distributed 2025.1 waits for ever on a
#: worker killed as it starts.)
HOLD_LIMIT = 5.0


def dask_setup(worker: Any) -> None:
    """Run by every worker of harken's own LocalCluster as it starts: a
    Ctrl-C at the terminal reaches its processes too, and is harken's to
    handle (it stops the cluster); each worker printed a KeyboardInterrupt
    traceback of its own."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _close_local(local: LocalCluster, *, cut_short: bool) -> None:
    """Close harken's own LocalCluster; after a scan cut short, without
    waiting for the tasks its workers still run (their results are not wanted)."""
    closed = False
    try:
        if cut_short:
            local.sync(_stop_workers, local, callback_timeout=CLOSE_TIMEOUT)
        local.close(timeout=CLOSE_TIMEOUT)
        closed = True
    except Exception:
        # The scan is over: a failed or timed-out close must not lose it. (dask
        # 2025.1 can raise closing a nanny it lost while it restarted its worker.)
        logger.debug("closing the LocalCluster failed", exc_info=True)
    finally:
        if not closed:
            # A close that failed or was interrupted (Ctrl-C while it waits) leaves
            # the cluster closing for good: Dask's exit hook would wait 10 s on it.
            # Its workers are daemon processes, which multiprocessing ends at exit.
            local.shutdown_on_close = False


async def _stop_workers(local: LocalCluster) -> None:
    """Stop every worker of ``local`` within ``STOP_TIMEOUT``, killing one still busy."""
    nannies = list(local.workers.values())
    await asyncio.gather(*(n.close(timeout=STOP_TIMEOUT) for n in nannies), return_exceptions=True)


class _WorkerWatch:
    """Looks at the cluster's workers from a thread while a scan waits on them.

    Scales harken's own LocalCluster (``local``) back to ``workers`` when a
    nanny gave up; cancels the scan's tasks, with the reason in ``gave_up``,
    when the cluster had no worker for ``NO_WORKER_TIMEOUT`` seconds.
    """

    def __init__(self, client: Any, local: LocalCluster | None, workers: int) -> None:
        self.client = client
        self.local = local
        self.workers = workers
        self.gave_up: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="harken-worker-watch", daemon=True)

    def __enter__(self) -> _WorkerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * LOOK_TIMEOUT)

    def _watch(self) -> None:
        empty_since: float | None = None
        while not self._stop.wait(WATCH_INTERVAL):
            try:
                present = len(self.client.nthreads(callback_timeout=LOOK_TIMEOUT))
            except Exception:  # a lost scheduler is the scan's to report
                logger.debug("cannot look at the cluster's workers", exc_info=True)
                continue
            if self.local is not None and present < self.workers:
                try:
                    # a no-op until the LocalCluster forgets the nanny that gave up
                    # (distributed.deploy.lost-worker-timeout, 15 s), then a new nanny
                    self.local.scale(self.workers)
                except Exception:  # the clock below still runs
                    logger.debug("cannot scale the LocalCluster", exc_info=True)
            if present:
                empty_since = None
                continue
            now = time.monotonic()
            empty_since = now if empty_since is None else empty_since
            if now - empty_since >= NO_WORKER_TIMEOUT:
                self.gave_up = (
                    f"the Dask cluster at {self.client.scheduler.address} has had no worker"
                    f" for {NO_WORKER_TIMEOUT:g} s"
                )
                _cancel_everything(self.client)
                return


def _checked(address: str | None) -> str:
    """``address`` if it names a scheduler (``tcp://host:8786``, ``host:8786``)."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(address or "", strict=False)
        get_backend(scheme)  # http://...: refused now, not after the timeout and a traceback
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise ClusterError(
            f"{address!r} is not a Dask scheduler address ({exc}); give one like tcp://host:8786"
        ) from None
    if scheme in ("tls", "wss"):
        from distributed.security import Security

        if Security().get_connection_args("client").get("ssl_context") is None:
            # (else the client fails, and its __del__ prints a traceback 6 s later)
            raise ClusterError(
                f"{address}: {scheme}:// needs Dask's TLS settings (distributed.comm.tls in its"
                " configuration: a CA and this client's certificate), and there are none"
            )
    return str(address)


class _ModelPlugin(WorkerPlugin):
    """Gives every worker, present and future, the model file's bytes once."""

    def __init__(self, settings: Settings) -> None:
        assert settings.model is not None
        with open(settings.model.path, "rb") as handle:
            self.data = handle.read()
        self.fingerprint = settings.model.fingerprint
        self.name = f"harken-model-{self.fingerprint[:16]}"

    def setup(self, worker: Any) -> None:
        SHIPPED_MODELS[self.fingerprint] = self.data


def _supervise(
    queue: list[Task], settings: Settings, client: Any, ship_audio: bool
) -> Iterator[TaskOutput]:
    """Run batches until every task has its output, isolating files that kill workers.

    A worker's death counts against every task it held, so a file running
    beside the culprit can be named too: a file named while others ran gets
    a round of its own before it is called ``crashed``.
    """
    alone: set[int] = set()  # suspects of a killed batch: one file per batch now
    trial: Task | None = None  # a file named while others ran: next, it runs by itself
    unexplained = 0
    while queue:
        if trial is not None:
            batches = [[trial]]
        else:
            batches = _batches(queue, alone, sum(client.nthreads().values()), ship_audio)
        answered: set[int] = set()
        try:
            for output in _run_parallel(batches, settings, client, ship_audio):
                answered.add(output.index)
                yield output
        except KilledWorker as exc:
            _cancel_everything(client)  # joblib leaves the other batches running
            queue = [t for t in queue if t.index not in answered]
            culprit = _killed_batch(exc, batches)
            if culprit is None:  # a key we cannot read: every file of the round is a suspect
                unexplained += 1
                culprit = [t for batch in batches for t in batch if t.index not in answered]
            by_itself = len(batches) == 1
            if unexplained >= MAX_UNEXPLAINED_BREAKS or (len(culprit) == 1 and by_itself):
                reason = f"it killed {exc.allowed_failures + 1} Dask workers"
                for task in culprit:
                    yield crashed_output(task, settings, reason)
                gone = {t.index for t in culprit}
                queue = [t for t in queue if t.index not in gone]
                trial = None
            elif len(culprit) == 1:
                trial = culprit[0]
            else:
                alone |= {t.index for t in culprit}
                trial = None
            continue
        if trial is None:  # every batch answered
            return
        queue = [t for t in queue if t.index not in answered]
        trial = None


def _batches(
    tasks: list[Task], alone: set[int], workers: int, ship_audio: bool
) -> list[list[Task]]:
    """Batches as for the local pool; suspects alone; shipped batches bounded in bytes."""
    batches = [[t] for t in tasks if t.index in alone]
    together = [t for t in tasks if t.index not in alone]
    for batch in make_batches(together, jobs=workers):
        if not ship_audio:
            batches.append(batch)
            continue
        current: list[Task] = []
        size = 0
        for task in batch:
            if current and size + task.size > MAX_SHIPPED_BATCH:
                batches.append(current)
                current, size = [], 0
            current.append(task)
            size += max(task.size, 0)
        batches.append(current)
    return batches


def _killed_batch(exc: Any, batches: list[list[Task]]) -> list[Task] | None:
    """The batch whose task key ``KilledWorker`` names, if the key can be read."""
    found = re.search(r"harken_batch_(\d+)_", str(exc.task))
    number = int(found.group(1)) if found else -1
    return batches[number] if 0 <= number < len(batches) else None


def _run_parallel(
    batches: list[list[Task]], settings: Settings, client: Any, ship_audio: bool
) -> Iterator[TaskOutput]:
    calls = (
        delayed(_ClusterBatch(number))(batch, settings, _read_audio(batch) if ship_audio else None)
        for number, batch in enumerate(batches)
    )
    # wait_for_workers_timeout=0: a round that starts with no worker waits
    # for one (joblib's own 10 s wait would end the scan); _WorkerWatch decides
    with parallel_config(backend=BACKEND, client=client, wait_for_workers_timeout=0):
        # batch_size=1: one joblib call per dask task, so a task key names one batch
        parallel = Parallel(n_jobs=-1, batch_size=1, return_as="generator_unordered")
        for outputs in parallel(calls):
            yield from outputs


def _cancel_everything(client: Any) -> None:
    """Cancel every task this client still has on the cluster."""
    with contextlib.suppress(Exception):  # the cluster may be gone already
        futures: list[Any] = [Future(key, client) for key in list(client.futures)]
        if futures:
            client.cancel(futures)


def _read_audio(batch: list[Task]) -> list[bytes | None]:
    """The bytes of each file, to ship; ``None`` for a file that cannot be read now."""
    shipped: list[bytes | None] = []
    for task in batch:
        try:
            with open(task.path, "rb") as handle:
                shipped.append(handle.read())
        except OSError:
            shipped.append(None)
    return shipped


class _ClusterBatch:
    """A batch as a cluster task. Dask names a task after its function, so this
    function's name carries the batch's number into the task's key."""

    def __init__(self, number: int) -> None:
        self.__name__ = f"harken_batch_{number}"

    def __call__(
        self, tasks: list[Task], settings: Settings, audio: list[bytes | None] | None
    ) -> list[TaskOutput]:
        if audio is None:
            return run_batch(tasks, settings)
        return run_shipped(tasks, settings, audio)


def run_shipped(
    tasks: list[Task], settings: Settings, audio: list[bytes | None]
) -> list[TaskOutput]:
    """Analyze files from the bytes the parent sent, on a worker that cannot see them.

    Each file is written to a private temporary folder under a neutral name
    (its original name may not be valid here) and analyzed there; its results
    name the parent's path again.
    """
    outputs: list[TaskOutput] = []
    local: list[Task] = []
    originals: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="harken-shipped-") as folder:
        for number, (task, data) in enumerate(zip(tasks, audio, strict=True)):
            failure = _shipping_failure(task, data, settings)
            if failure is not None:
                outputs.append(failure)
                continue
            assert data is not None
            suffix = os.path.splitext(task.path)[1][:16]
            copy = os.path.join(folder, f"{number}{suffix}")
            with open(copy, "wb") as handle:
                handle.write(data)
            originals[task.index] = task.path
            local.append(replace(task, path=copy, size=-1, mtime_ns=-1))
        by_index = {t.index: t.path for t in local}
        for output in run_batch(local, settings):
            path = originals[output.index]
            outputs.append(_renamed(output, by_index[output.index], path))
    return outputs


def _shipping_failure(task: Task, data: bytes | None, settings: Settings) -> TaskOutput | None:
    common = {"model": settings.model_id, "content_hash": task.content_hash}
    if data is None:
        message = f"{task.path}: could not be read to ship it to the cluster"
        return TaskOutput(task.index, error_result(task.path, "unreadable", message, **common))
    if hash_bytes(data) != task.content_hash:
        message = f"{task.path}: the file changed while it was analyzed; run again"
        return TaskOutput(task.index, error_result(task.path, "changed", message, **common))
    return None


def _renamed(output: TaskOutput, copy: str, path: str) -> TaskOutput:
    """The output of a temporary copy, naming the original path instead."""
    result = replace(output.result, path=path)
    if result.error is not None:
        error = replace(result.error, message=result.error.message.replace(copy, path))
        result = replace(result, error=error)
    return replace(output, result=result)


class _DaskBackend(DaskDistributedBackend):
    """joblib's dask backend, with two fixes.

    - The stock backend (joblib 1.6) sets the exception of a task that failed
      on the scheduler's side (``KilledWorker``) but never calls joblib's
      callback, so ``Parallel`` waits for it forever. This copy of its
      ``_collect`` hands the exception to the callback, which raises it.
    - joblib runs every call in this process when the backend counts one
      worker thread, which a small cluster (or one whose other workers are
      restarting) does: a file that crashes its worker would end harken.
    """

    def effective_n_jobs(self, n_jobs: int) -> int:
        return max(2, int(super().effective_n_jobs(n_jobs)))

    async def _collect(self) -> None:
        while self._continue:
            async for future, result in self.waiting_futures:
                cf_future = self._results.pop(future)
                callback = self._callbacks.pop(future)
                if future.status == "error":
                    _, exc, _ = result
                    cf_future.set_exception(exc)
                    callback(exc)
                else:
                    cf_future.set_result(result)
                    callback(result)
            await asyncio.sleep(0.01)


register_parallel_backend(BACKEND, _DaskBackend)
