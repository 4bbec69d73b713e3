"""The work done for one file: decode -> signal facts + features -> ensemble.

``run_task`` is what a worker process runs. It is a plain top-level function,
it loads the model once per process, and it never raises: every failure
becomes a result with a status and a reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from analyzer.errors import DecodeError
from analyzer.features import FeatureConfig
from analyzer.modelfile import ModelRef, load_ensemble
from analyzer.results import ErrorInfo, FileResult, Prediction, SignalFacts, error_result

#: Files longer than this (in seconds, from the header) are refused by default.
DEFAULT_MAX_DURATION = 2 * 3600.0


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs besides the file; small, sent with every task."""

    model: ModelRef
    max_duration: float = DEFAULT_MAX_DURATION
    trust_model: bool = False

    @property
    def feature_config(self) -> FeatureConfig:
        return self.model.card.feature_config


@dataclass(frozen=True)
class Task:
    """One file to analyze. ``index`` ties the answer back to the request."""

    index: int
    path: str
    content_hash: str


@dataclass(frozen=True)
class TaskOutput:
    """A worker's answer: the result, and the feature vector for the cache."""

    index: int
    result: FileResult
    features: bytes | None = None


#: Ensembles loaded in this process, by model fingerprint.
_ENSEMBLES: dict[str, Any] = {}


def ensemble_for(model: ModelRef, *, trust: bool = False) -> Any:
    """The fitted ensemble of ``model``, loaded once per process."""
    if model.fingerprint not in _ENSEMBLES:
        _ENSEMBLES[model.fingerprint] = load_ensemble(model, trust=trust)
    return _ENSEMBLES[model.fingerprint]


def extract_file(path: str, settings: Settings) -> tuple[SignalFacts, Any]:
    """Signal facts and feature vector of one file; raises ``DecodeError``."""
    from analyzer.decode import decode
    from analyzer.features import extract

    config = settings.feature_config
    decoded = decode(path, target_rate=config.sample_rate, max_duration=settings.max_duration)
    return decoded.facts, extract(decoded.signal, config)


def predict(features: Any, settings: Settings) -> list[Prediction]:
    """Ensemble predictions for feature rows ``[shape=(n, n_features)]``."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    ensemble = ensemble_for(settings.model, trust=settings.trust_model)
    rows = np.atleast_2d(np.asarray(features, dtype=np.float32))
    # One thread: for a few rows, OpenMP start-up costs more than it saves
    # (gradient boosting went from 9 ms to 150 ms per call with 2 busy cores).
    with threadpool_limits(limits=1):
        return list(ensemble.explain(rows))


def _extract_or_fail(task: Task, settings: Settings) -> tuple[Any, TaskOutput | None]:
    """``(vector, None)`` on success, ``(None, output)`` with the failure otherwise."""
    start = time.perf_counter()
    common = {"model": settings.model.model_id, "content_hash": task.content_hash}
    try:
        facts, vector = extract_file(task.path, settings)
    except DecodeError as exc:
        result = error_result(
            task.path, exc.kind, str(exc), **common, seconds=round(time.perf_counter() - start, 4)
        )
        return None, TaskOutput(task.index, result)
    except MemoryError:
        message = f"{task.path}: out of memory while decoding"
        return None, TaskOutput(task.index, error_result(task.path, "memory", message, **common))
    except Exception as exc:  # a bug or a library failure: report it, keep the batch going
        message = f"{task.path}: {type(exc).__name__}: {exc}"
        return None, TaskOutput(task.index, error_result(task.path, "internal", message, **common))
    partial = FileResult(
        path=task.path,
        status="ok",
        facts=facts,
        model=settings.model.model_id,
        content_hash=task.content_hash,
        seconds=time.perf_counter() - start,
    )
    return (partial, vector), None


def run_batch(tasks: list[Task], settings: Settings) -> list[TaskOutput]:
    """Analyze several files; the ensemble predicts them in one call.

    One call per file would spend more time in the members' per-call
    overhead than in the features. Never raises for a bad file.
    """
    import numpy as np

    outputs: list[TaskOutput] = []
    good: list[tuple[Task, FileResult, Any]] = []
    for task in tasks:
        extracted, failed = _extract_or_fail(task, settings)
        if failed is not None:
            outputs.append(failed)
        else:
            good.append((task, *extracted))
    if not good:
        return outputs
    start = time.perf_counter()
    try:
        predictions = predict(np.stack([vector for _, _, vector in good]), settings)
    except Exception as exc:
        for task, partial, _ in good:
            message = f"{task.path}: the model failed: {type(exc).__name__}: {exc}"
            outputs.append(
                TaskOutput(
                    task.index, replace(partial, status="error", error=ErrorInfo("model", message))
                )
            )
        return outputs
    share = (time.perf_counter() - start) / len(good)
    for (task, partial, vector), prediction in zip(good, predictions, strict=True):
        result = replace(partial, prediction=prediction, seconds=round(partial.seconds + share, 4))
        outputs.append(TaskOutput(task.index, result, vector.tobytes()))
    return outputs


def run_task(task: Task, settings: Settings) -> TaskOutput:
    """Analyze one file. Never raises for a bad file."""
    return run_batch([task], settings)[0]
