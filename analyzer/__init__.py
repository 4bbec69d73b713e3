"""harken's library: classify audio files with an ensemble over librosa features.

>>> import analyzer
>>> for result in analyzer.analyze(["recordings/"], jobs=2):
...     print(result.path, result.label, result.confidence)

Importing this package is cheap: librosa and scikit-learn are imported only
when a file is actually analyzed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from analyzer.analysis import DEFAULT_MAX_DURATION, Settings, Task, run_task
from analyzer.cache import hash_file
from analyzer.discover import DEFAULT_EXTENSIONS, discover
from analyzer.errors import HarkenError, ModelError, UsageError
from analyzer.featureconfig import FeatureConfig
from analyzer.modelfile import ModelRef, resolve_model
from analyzer.results import ErrorInfo, FileResult, Prediction, Segment, SignalFacts, Timeline
from analyzer.scan import Outcome, ScanConfig, scan
from analyzer.segments import SegmentSpec

__all__ = [
    "DEFAULT_EXTENSIONS",
    "ErrorInfo",
    "FeatureConfig",
    "FileResult",
    "HarkenError",
    "ModelError",
    "ModelRef",
    "Outcome",
    "Prediction",
    "ScanConfig",
    "Segment",
    "SegmentSpec",
    "SignalFacts",
    "Timeline",
    "UsageError",
    "analyze",
    "analyze_file",
    "discover",
    "resolve_model",
    "scan",
]


def analyze(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    include: str | tuple[str, ...] = (),
    exclude: str | tuple[str, ...] = (),
    **options: Any,
) -> Iterator[FileResult]:
    """Analyze every audio file under ``paths``; yield results as they finish.

    Parameters
    ----------
    paths : path-like, or an iterable of them
        Files and folders (walked recursively).
    include, exclude : str or tuple of str
        Glob filters, as ``harken scan --include/--exclude``.
    **options
        Fields of ``ScanConfig``: ``jobs``, ``cache_dir``, ``use_cache``,
        ``refresh``, ``retry_failed``, ``model``, ``trust_model``, ``max_duration``,
        ``segments`` (a ``SegmentSpec``: a timeline per file).
    """
    config = ScanConfig(**options)  # a bad option fails here, before any work
    files = discover(paths, include=include, exclude=exclude)
    for outcome in scan(files, config):
        yield outcome.result


def analyze_file(
    path: str | os.PathLike[str],
    *,
    model: str | None = None,
    trust_model: bool = False,
    max_duration: float = DEFAULT_MAX_DURATION,
    min_confidence: float | None = None,
    segments: SegmentSpec | None = None,
) -> FileResult:
    """Analyze one file in this process, without pool or cache.

    Parameters
    ----------
    path : path-like
    model : str, optional
        A ``.skops`` model file; the shipped default model when omitted.
    min_confidence : float, optional
        A result below it is labelled ``unknown``; by default the model
        card's threshold, as ``analyze`` and ``harken scan`` use.
    segments : SegmentSpec, optional
        Also give the file a timeline, ``result.timeline``
        (``SegmentSpec.make(2.0)``: 2 s windows every second).

    Returns
    -------
    FileResult
        ``status="ok"`` with a prediction, or ``"error"`` with the reason.
    """
    from analyzer.scan import precheck, read_error, thresholded, unknown_threshold

    # A bad argument fails here, not as every file's error or label:
    ScanConfig(
        segments=segments,
        max_duration=max_duration,
        min_confidence=min_confidence,
        trust_model=trust_model,
    )
    path = os.fsdecode(path)  # bytes too, as os functions take them
    ref = resolve_model(model)
    settings = Settings(
        ref,
        max_duration=max_duration,
        trust_model=trust_model,
        segments=segments,
    )
    _, failed = precheck(path)
    if failed is not None:
        return failed
    try:
        digest = hash_file(path)
    except OSError as exc:
        return read_error(path, exc)
    result = run_task(Task(0, path, digest), settings).result
    threshold = unknown_threshold(ref, min_confidence)
    return thresholded(Outcome(result, cached=False), threshold).result
