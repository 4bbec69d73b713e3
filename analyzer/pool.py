"""The process pool: the only module that touches joblib.

Tasks go to joblib's loky process pool and come back as they finish
(``return_as="generator_unordered"``). ``jobs=1`` runs in this process with
no pool at all. If the pool itself breaks (a worker killed by a signal or the
OOM killer), the files not yet answered come back as ``crashed`` rather than
taking the finished results down with them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from analyzer.analysis import Settings, Task, TaskOutput, run_batch
from analyzer.results import error_result


def default_jobs() -> int:
    """All the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: Most files in one pool task: the ensemble predicts a batch in one call.
MAX_BATCH = 16


def make_batches(tasks: Sequence[Task], *, jobs: int) -> list[list[Task]]:
    """Split tasks into batches: big enough to amortise per-call costs, small
    enough that every worker gets several (for progress and load balance)."""
    size = max(1, min(MAX_BATCH, len(tasks) // (max(jobs, 1) * 4)))
    return [list(tasks[i : i + size]) for i in range(0, len(tasks), size)]


def run_tasks(tasks: Sequence[Task], settings: Settings, *, jobs: int) -> Iterator[TaskOutput]:
    """Run every task; yield outputs in the order they finish.

    Parameters
    ----------
    tasks : sequence of Task
    settings : Settings
    jobs : int
        Worker processes; 1 runs in-process.
    """
    batches = make_batches(tasks, jobs=jobs)
    if jobs <= 1 or len(batches) <= 1:
        for batch in batches:
            yield from run_batch(batch, settings)
        return

    from joblib import Parallel, delayed
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    pending = {task.index: task for task in tasks}
    parallel = Parallel(
        n_jobs=min(jobs, len(batches)), backend="loky", return_as="generator_unordered"
    )
    try:
        for outputs in parallel(delayed(run_batch)(batch, settings) for batch in batches):
            for output in outputs:
                pending.pop(output.index, None)
                yield output
    except TerminatedWorkerError as exc:
        reason = str(exc).splitlines()[0]
        for task in pending.values():
            message = (
                f"{task.path}: a worker process died while this file was in flight"
                f" ({reason}); rerun to retry"
            )
            yield TaskOutput(
                task.index,
                error_result(
                    task.path,
                    "crashed",
                    message,
                    status="crashed",
                    model=settings.model.model_id,
                    content_hash=task.content_hash,
                ),
            )
