"""The work done for files: decode -> signal facts + features -> ensemble.

``run_batch`` is what a pool worker runs. It is a plain top-level function,
it loads the model once per process, and it never raises for a bad file:
every failure becomes a result with a status and a reason.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from analyzer.errors import DecodeError
from analyzer.featureconfig import FeatureConfig
from analyzer.guard import (
    FileTimeout,
    busy,
    fault_spec,
    guarded,
    hang_at_start,
    limit_memory,
    still_busy,
)
from analyzer.modelfile import ModelRef, load_ensemble
from analyzer.results import (
    ErrorInfo,
    FileResult,
    Prediction,
    SignalFacts,
    Timeline,
    error_result,
)
from analyzer.segments import SegmentSpec

#: Files longer than this (in seconds, from the header) are refused by default.
DEFAULT_MAX_DURATION = 2 * 3600.0
#: Seconds one file may take before it is given up as ``timeout``.
DEFAULT_TIMEOUT = 300.0


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs besides the file; small, sent with every task.

    Without a ``model`` the work stops at the features (for training); then
    ``augment`` asks for training variants of every clip too
    (``analyzer.augment.training_variants``). With ``segments``, every file
    also gets a timeline (``analyzer.segments``).

    ``state_dir`` is set by the pool for its workers (in-flight markers);
    ``None`` means the work runs in the caller's process, or on a Dask
    worker when ``on_cluster`` is set.
    """

    model: ModelRef | None
    max_duration: float = DEFAULT_MAX_DURATION
    trust_model: bool = False
    timeout: float | None = DEFAULT_TIMEOUT
    max_memory: int | None = None
    state_dir: str | None = None
    faults: str | None = field(default_factory=fault_spec)
    features: FeatureConfig | None = None
    on_cluster: bool = False
    segments: SegmentSpec | None = None
    augment: int = 0

    @property
    def feature_config(self) -> FeatureConfig:
        """The model's feature config, or ``features`` when there is no model."""
        if self.features is not None:
            return self.features
        assert self.model is not None, "Settings needs a model or a feature config"
        return self.model.card.feature_config

    @property
    def model_id(self) -> str | None:
        return self.model.model_id if self.model is not None else None


@dataclass(frozen=True)
class Task:
    """One file to analyze. ``index`` ties the answer back to the request;
    ``size`` and ``mtime_ns`` are what the parent hashed, to notice a rewrite;
    ``label`` is a training clip's class (its augmented copies depend on it)."""

    index: int
    path: str
    content_hash: str
    size: int = -1
    mtime_ns: int = -1
    label: str | None = None


@dataclass(frozen=True)
class TaskOutput:
    """A worker's answer: the result, the feature vector for the cache and,
    for training with ``augment``, its variants' vectors (float32 rows)."""

    index: int
    result: FileResult
    features: bytes | None = None
    variants: bytes | None = None


#: Ensembles loaded in this process, by model fingerprint and trust.
_ENSEMBLES: dict[tuple[str, bool], Any] = {}
#: Model files sent to this process (a cluster worker), by fingerprint.
SHIPPED_MODELS: dict[str, bytes] = {}


_LOADING = threading.Lock()


def ensemble_for(model: ModelRef, *, trust: bool = False) -> Any:
    """The fitted ensemble of ``model``, loaded once per process: from the
    bytes the parent shipped to this cluster worker, else from its path."""
    key = (model.fingerprint, trust)
    with _LOADING:  # a load already started by ``warm_up`` is waited for, not repeated
        if key not in _ENSEMBLES:
            data = SHIPPED_MODELS.get(model.fingerprint)
            _ENSEMBLES[key] = load_ensemble(model, trust=trust, data=data)
        return _ENSEMBLES[key]


def _load_quietly(model: ModelRef, trust: bool) -> None:
    """Load in the background; a failure is raised again by the next ``ensemble_for``."""
    with contextlib.suppress(Exception):
        ensemble_for(model, trust=trust)


_WARM: set[str] = set()


def warm_up(settings: Settings) -> None:
    """Import the libraries and run one tiny extraction once per process, so
    that none of it counts against the first file's timeout.

    The model (scikit-learn's import and the file, about 2 s) loads in a
    thread meanwhile: the first batch's files are decoded and featurised while
    it loads (numpy releases the GIL), and ``predict`` waits for it.
    """
    key = settings.model.fingerprint if settings.model else "features"
    if key in _WARM:
        return
    import numpy as np

    import analyzer.decode  # noqa: F401  (soxr too: under --max-memory its mapping could fail)
    from analyzer.features import FeatureStream

    if settings.model is not None:
        loader = threading.Thread(
            target=_load_quietly,
            args=(settings.model, settings.trust_model),
            name="harken-model-loader",
            daemon=True,
        )
        loader.start()
    stream = FeatureStream(settings.feature_config)
    stream.push(np.zeros(settings.feature_config.n_fft, dtype=np.float32))
    stream.vector()
    _WARM.add(key)


def extract_file(
    path: str, settings: Settings, *, seed: str = "", label: str | None = None
) -> tuple[SignalFacts, Any, Any, Any]:
    """Signal facts, feature vector, window vectors and variant vectors of one file.

    The window vectors ``[shape=(n_windows, n_features)]`` come with
    ``settings.segments``, the variants' ``[shape=(1 + augment, n_features)]``
    with ``settings.augment`` (which keeps the clip's signal in memory; its
    copies are seeded with ``seed`` and follow ``label``); else they are ``None``.

    Raises ``DecodeError``.
    """
    from analyzer.decode import decode
    from analyzer.features import FeatureStream
    from analyzer.segments import WindowVectors

    config = settings.feature_config
    windows = WindowVectors(settings.segments, config) if settings.segments else None
    stream = FeatureStream(config, windows=windows.push if windows else None)
    pieces: list[Any] = []

    def sink(block: Any) -> None:
        stream.push(block)
        if settings.augment:
            pieces.append(block)

    facts = decode(
        path,
        target_rate=config.sample_rate,
        sink=sink,
        max_duration=settings.max_duration,
        max_memory=settings.max_memory,
    )
    vector = stream.vector()
    variants = _variant_vectors(pieces, settings, seed, label) if settings.augment else None
    return facts, vector, windows.finish(stream.samples) if windows else None, variants


def _variant_vectors(pieces: list[Any], settings: Settings, seed: str, label: str | None) -> Any:
    import numpy as np

    from analyzer.augment import training_variants
    from analyzer.features import extract

    config = settings.feature_config
    signal = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    copies = training_variants(signal, config.sample_rate, settings.augment, seed, label)
    return np.stack([extract(copy, config) for copy in copies])


def predict(features: Any, settings: Settings) -> list[Prediction]:
    """Ensemble predictions for feature rows ``[shape=(n, n_features)]``."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    assert settings.model is not None, "predict needs a model"
    ensemble = ensemble_for(settings.model, trust=settings.trust_model)
    # float64 rows: in float32 some members' sums depend on how many rows
    # share a call, and so results would depend on --jobs.
    rows = np.atleast_2d(np.asarray(features, dtype=np.float64))
    with threadpool_limits(limits=1):  # see run_batch
        return list(ensemble.explain(rows))


def timeline(windows: Any, duration: float, settings: Settings) -> Timeline:
    """The timeline of one file from its window vectors: one ``predict_proba`` call."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from analyzer.segments import build_timeline

    assert settings.model is not None and settings.segments is not None
    ensemble = ensemble_for(settings.model, trust=settings.trust_model)
    with threadpool_limits(limits=1):
        probabilities = ensemble.predict_proba(np.asarray(windows, dtype=np.float64))
    classes = [str(c) for c in ensemble.classes_]
    rate = settings.feature_config.sample_rate
    return build_timeline(probabilities, classes, settings.segments, duration, rate)


def _changed(task: Task) -> bool:
    """Whether the file is no longer the one the parent hashed."""
    if task.size < 0:
        return False
    try:
        st = os.stat(task.path)
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns) != (task.size, task.mtime_ns)


def _extract_or_fail(task: Task, settings: Settings) -> tuple[Any, TaskOutput | None]:
    """``((partial result, vector), None)`` on success, ``(None, output)`` on failure."""
    start = time.perf_counter()
    common = {"model": settings.model_id, "content_hash": task.content_hash}

    def failed(kind: str, message: str, status: str = "error") -> tuple[None, TaskOutput]:
        seconds = round(time.perf_counter() - start, 4)
        return None, TaskOutput(
            task.index,
            error_result(task.path, kind, message, status=status, seconds=seconds, **common),
        )

    try:
        with guarded(
            task.path,
            task.index,
            state_dir=settings.state_dir,
            timeout=settings.timeout,
            faults=settings.faults,
            in_worker=settings.on_cluster,
        ):
            facts, vector, windows, variants = extract_file(
                task.path, settings, seed=task.content_hash, label=task.label
            )
    except DecodeError as exc:
        problem: tuple[str, str, str] | None = (exc.kind, str(exc), "error")
    except FileTimeout:
        message = f"{task.path}: gave up after {settings.timeout:g} s (--timeout)"
        problem = ("timeout", message, "timeout")
    except MemoryError:
        message = f"{task.path}: needs more memory than --max-memory allows"
        problem = ("memory", message, "error")
    except Exception as exc:  # a bug or a library failure: report it, keep the batch going
        problem = ("internal", f"{task.path}: {type(exc).__name__}: {exc}", "error")
    else:
        problem = None
    changed = _changed(task)
    # A file rewritten while it was read may fail to decode: that is a change,
    # not damage. A file deleted meanwhile keeps its own answer (not_found).
    if problem is not None and not (changed and os.path.exists(task.path)):
        return failed(*problem)
    if changed:
        return failed("changed", f"{task.path}: the file changed while it was analyzed; run again")
    partial = FileResult(
        path=task.path,
        status="ok",
        facts=facts,
        model=settings.model_id,
        content_hash=task.content_hash,
        seconds=time.perf_counter() - start,
    )
    return (partial, vector, windows, variants), None


def run_batch(tasks: list[Task], settings: Settings) -> list[TaskOutput]:
    """Analyze several files; the ensemble predicts them in one call.

    One call per file would spend more time in the members' per-call
    overhead than in the features. Never raises for a bad file.
    """
    from threadpoolctl import threadpool_limits

    # (a pool worker stuck outside its files is ended too: see analyzer.guard)
    with busy(settings.state_dir, tasks[0].index if tasks else -1):
        if settings.state_dir is not None:  # a pool worker (it watches harken from its start)
            hang_at_start(settings.faults)
        warm_up(settings)
        if settings.state_dir is not None:  # cap a pool worker, never the caller
            limit_memory(settings.max_memory)
        # One BLAS/OpenMP thread: for these small products, thread start-up costs
        # more than it saves (gradient boosting: 9 ms a call alone, 150 ms with
        # both cores busy; extraction ran 3x slower in-process).
        with threadpool_limits(limits=1):
            return _run_batch(tasks, settings)


def _run_batch(tasks: list[Task], settings: Settings) -> list[TaskOutput]:
    import numpy as np

    outputs: list[TaskOutput] = []
    good: list[tuple[Task, FileResult, Any, Any, Any]] = []  # + vector, windows, variants
    for task in tasks:
        extracted, failure = _extract_or_fail(task, settings)
        if failure is not None:
            outputs.append(failure)
        else:
            good.append((task, *extracted))
    if not good:
        return outputs
    if settings.model is None:  # features only
        for task, partial, vector, _, variants in good:
            result = replace(partial, seconds=round(partial.seconds, 4))
            extra = variants.astype(np.float32).tobytes() if variants is not None else None
            outputs.append(TaskOutput(task.index, result, vector.tobytes(), extra))
        return outputs
    # An unusable model is the caller's error, not the files': raise it (it
    # waits for the load ``warm_up`` started).
    ensemble_for(settings.model, trust=settings.trust_model)
    start = time.perf_counter()
    try:
        still_busy(settings.state_dir)
        predictions = predict(np.stack([vector for _, _, vector, _, _ in good]), settings)
        # One call per file for its windows: a file's windows are many rows already.
        timelines: list[Timeline | None] = []
        for _, partial, _, windows, _ in good:
            facts = partial.facts
            if windows is None or facts is None:
                timelines.append(None)
                continue
            still_busy(settings.state_dir)  # (a 2 h file's timeline takes seconds)
            timelines.append(timeline(windows, facts.duration, settings))
    except Exception as exc:
        for task, partial, _, _, _ in good:
            message = f"{task.path}: the model failed: {type(exc).__name__}: {exc}"
            error = ErrorInfo("model", message)
            outputs.append(TaskOutput(task.index, replace(partial, status="error", error=error)))
        return outputs
    share = (time.perf_counter() - start) / len(good)
    for (task, partial, vector, _, _), prediction, line in zip(
        good, predictions, timelines, strict=True
    ):
        seconds = round(partial.seconds + share, 4)
        result = replace(partial, prediction=prediction, seconds=seconds, timeline=line)
        outputs.append(TaskOutput(task.index, result, vector.tobytes()))
    return outputs


def run_task(task: Task, settings: Settings) -> TaskOutput:
    """Analyze one file. Never raises for a bad file."""
    return run_batch([task], settings)[0]
