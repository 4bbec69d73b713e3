"""A scan: the parent's side of the data flow.

The parent stats each file and looks up the cache; hits are answered at
once, files whose features are cached but not their prediction (a new model)
are predicted here in one batch, and only the rest go to the pool. As results
stream back the parent writes them to the cache, so an interrupted scan keeps
everything it finished.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from analyzer.analysis import (
    DEFAULT_MAX_DURATION,
    DEFAULT_TIMEOUT,
    Settings,
    Task,
    TaskOutput,
    predict,
)
from analyzer.arguments import flag, number
from analyzer.cache import Identities, ResultCache, default_cache_dir, hash_file
from analyzer.delivery import Undelivered
from analyzer.modelfile import ModelRef, resolve_model
from analyzer.results import (
    TIMELINE_KEYS,
    ErrorInfo,
    FileResult,
    SignalFacts,
    Timeline,
    error_result,
)
from analyzer.segments import SegmentSpec

#: Error kinds that depend only on the file's bytes, so they are cached with it.
CACHEABLE_ERRORS = frozenset({"empty", "unsupported", "truncated", "corrupt", "invalid_samples"})


@dataclass(frozen=True)
class ScanConfig:
    """How to scan: pool size, cache, model and limits.

    ``timeout`` is per file, in seconds (``None``: no limit); ``max_memory``
    is what one worker may allocate for one file, in bytes. ``cache_dir=None``
    means the default location; ``use_cache=False`` keeps nothing. ``refresh``
    ignores cached results (and overwrites them); ``retry_failed`` analyzes
    again files whose failure was cached. ``segments`` adds a timeline to
    every file (``analyzer.segments``).

    ``backend="dask"`` runs the misses on a Dask cluster (``analyzer.cluster``):
    the one at ``scheduler``, or a LocalCluster of ``jobs`` workers;
    ``ship_audio`` sends the files' bytes to workers that cannot read them.
    """

    jobs: int | None = None
    timeout: float | None = DEFAULT_TIMEOUT
    max_memory: int | None = None
    cache_dir: str | None = None
    use_cache: bool = True
    refresh: bool = False
    retry_failed: bool = False
    model: str | None = None
    trust_model: bool = False
    max_duration: float = DEFAULT_MAX_DURATION
    min_confidence: float | None = None
    segments: SegmentSpec | None = None
    backend: str = "local"
    scheduler: str | None = None
    ship_audio: bool = False
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        # What the command line's option types check, for the Python API's callers.
        if self.jobs is not None:
            number("jobs", self.jobs, low=1, whole=True)
        if self.timeout is not None:
            number("timeout", self.timeout, low=0)  # (0: no limit, as on the command line)
        if self.max_memory is not None:
            number("max_memory", self.max_memory, low=0, low_open=True, whole=True)
        number("max_duration", self.max_duration, low=0, low_open=True)
        if self.min_confidence is not None:
            number("min_confidence", self.min_confidence, low=0, high=1)
        number("connect_timeout", self.connect_timeout, low=0, low_open=True)
        for name in ("use_cache", "refresh", "retry_failed", "trust_model", "ship_audio"):
            flag(name, getattr(self, name))
        if self.backend not in ("local", "dask"):
            raise ValueError(f"backend must be 'local' or 'dask', not {self.backend!r}")
        if self.segments is not None and not isinstance(self.segments, SegmentSpec):
            raise TypeError(
                f"segments must be a SegmentSpec (SegmentSpec.make(2.0)), not {self.segments!r}"
            )


@dataclass(frozen=True)
class Outcome:
    """One finished file, and whether its answer came from the cache; an
    ``arrived`` one came from it for content new at its path (a file copied
    or renamed there, whose content was analyzed under another name)."""

    result: FileResult
    cached: bool
    arrived: bool = False


def precheck(path: str) -> tuple[os.stat_result | None, FileResult | None]:
    """Stat the file; a missing, unreadable or non-regular path gets its row here."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        kind = "not_found"
        message = (
            f"{path}: broken symbolic link" if os.path.islink(path) else f"{path}: no such file"
        )
        return None, error_result(path, kind, message)
    except OSError as exc:
        return None, read_error(path, exc)
    if stat.S_ISDIR(st.st_mode):
        if not os.access(path, os.R_OK | os.X_OK):  # discovery could not look inside
            return None, error_result(
                path, "permission", f"{path}: a folder harken may not list: permission denied"
            )
        try:  # or could not for another reason (an I/O error, maybe midway)
            with os.scandir(path) as listing:
                for _ in listing:
                    pass
        except OSError as exc:
            reason = exc.strerror or str(exc)
            return None, error_result(
                path, "unreadable", f"{path}: a folder harken cannot list: {reason}"
            )
        return None, error_result(path, "not_a_file", f"{path}: is a directory, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        return None, error_result(
            path, "not_a_file", f"{path}: not a regular file (a FIFO, socket or device)"
        )
    return st, None


def read_error(path: str, exc: OSError) -> FileResult:
    """The row for a file that exists but cannot be read."""
    return error_result(path, read_error_kind(exc), f"{path}: {exc.strerror or exc}")


def read_error_kind(exc: OSError) -> str:
    return "permission" if isinstance(exc, PermissionError) else "unreadable"


def _from_analysis(path: str, entry: dict[str, Any], model_id: str, digest: str) -> FileResult:
    facts = SignalFacts(**entry["facts"]) if entry.get("facts") else None
    error = ErrorInfo(**entry["error"])
    # The message names the path the file had when it failed; name today's.
    error = ErrorInfo(error.kind, error.message.replace(entry.get("path", path), path, 1))
    return FileResult(
        path=path,
        status="error",
        facts=facts,
        error=error,
        model=model_id,
        content_hash=digest,
        seconds=entry.get("seconds", 0.0),
    )


def scan(files: Sequence[str], config: ScanConfig | None = None) -> Iterator[Outcome]:
    """Analyze ``files``; yield each one's outcome as soon as it is known.

    Cached answers come first, then pool results in the order they finish.

    Raises
    ------
    ModelError
        The model cannot be used; raised before any file is analyzed (with
        a pool, by the first batch), and only when some file needs the model.
    ClusterError
        With ``backend="dask"``: the cluster cannot be reached, has no
        worker, or dask is not installed.
    """
    from analyzer.analysis import ensemble_for
    from analyzer.pool import default_jobs, run_tasks

    config = config or ScanConfig()
    model = resolve_model(config.model)
    settings = Settings(
        model=model,
        max_duration=config.max_duration,
        trust_model=config.trust_model,
        timeout=config.timeout,
        max_memory=config.max_memory,
        segments=config.segments,
    )
    feature_key = settings.feature_config.cache_key()
    directory = (config.cache_dir or default_cache_dir()) if config.use_cache else None
    cache = ResultCache(directory)
    try:
        known: list[Outcome] = []
        tasks: list[Task] = []
        reuse: list[tuple[Task, dict[str, Any]]] = []  # features cached, prediction not
        seen: Identities = []  # what each path holds, remembered once listed below
        for index, path in enumerate(files):
            answer = _lookup(index, path, cache, config, settings, feature_key, seen)
            if isinstance(answer, Outcome):
                known.append(answer)
            elif isinstance(answer, tuple):
                reuse.append(answer)
            else:
                tasks.append(answer)
        fresh = [t.path for t in tasks] + [t.path for t, _ in reuse]
        list_then_remember(cache, fresh + [o.result.path for o in known if o.arrived], seen)
        jobs = config.jobs or default_jobs()
        # A model that cannot be loaded is a usage error, found before any file
        # is analyzed: here when this process predicts, else by the first worker
        # (its ModelError comes back through the pool), which saves loading
        # scikit-learn and the model in this process on a cold run.
        local = config.backend != "dask"
        if reuse or (tasks and jobs <= 1 and local):
            ensemble_for(model, trust=config.trust_model)
        elif not tasks and not config.trust_model and any(o.result.prediction for o in known):
            # Nothing loads the model, which would refuse untrusted types: a
            # run from the cache must refuse them too (results cached by a
            # --trust-model run made the same command pass or fail by cache).
            refuse_untrusted(model, cache)
        threshold = unknown_threshold(model, config.min_confidence)
        for outcome in known:
            yield thresholded(outcome, threshold)
        if reuse:
            for outcome in _predict_cached(reuse, settings, cache, feature_key):
                yield thresholded(outcome, threshold)
        outputs = (
            run_tasks(tasks, settings, jobs=jobs)
            if local
            else _on_cluster(tasks, settings, config, jobs)
        )
        for output in outputs:
            store(cache, output, feature_key, model.fingerprint)
            yield thresholded(Outcome(output.result, cached=False), threshold)
    finally:
        cache.close()


def refuse_untrusted(model: ModelRef, cache: ResultCache) -> None:
    """Raise ``ModelError`` if ``model`` holds types beyond the allow-list.
    What skops does not trust in the file is found once per model file,
    skops version and cache (it imports skops), and held against the
    allow-list of this harken; the shipped model is harken's own."""
    from importlib.metadata import version

    from analyzer.modelfile import DEFAULT_MODEL_PATH, TRUSTED_TYPES, unaudited_types, untrusted

    if model.path == str(DEFAULT_MODEL_PATH.resolve()):
        return
    key = f"{model.fingerprint}/skops-{version('skops')}"
    types = cache.get_unaudited(key)
    if types is None:
        types = unaudited_types(model)
        cache.put_unaudited(key, types)
    if beyond := sorted(set(types) - TRUSTED_TYPES):
        raise untrusted(model, beyond)


def _on_cluster(
    tasks: list[Task], settings: Settings, config: ScanConfig, jobs: int
) -> Iterator[TaskOutput]:
    """The tasks' outputs from a Dask cluster."""
    from analyzer.errors import ClusterError

    try:
        from analyzer.cluster import Cluster, run_on_cluster
    except ImportError as exc:
        raise ClusterError(
            f"--backend dask needs dask.distributed ({exc}); install it with:"
            " pip install 'harken[dask]'"
        ) from None
    cluster = Cluster(
        scheduler=config.scheduler,
        ship_audio=config.ship_audio,
        connect_timeout=config.connect_timeout,
        workers=jobs,
    )
    outputs = run_on_cluster(tasks, settings, cluster)
    return outputs if config.ship_audio else _missing_on_the_worker(outputs)


def _missing_on_the_worker(outputs: Iterator[TaskOutput]) -> Iterator[TaskOutput]:
    """Say so when a worker did not find a file that this machine has (it read
    "no such file" of a file the user can see)."""
    for output in outputs:
        error = output.result.error
        if error and error.kind == "not_found" and os.path.exists(output.result.path):
            path = output.result.path
            error = replace(
                error,
                message=f"{path}: no such file on the Dask worker, though this machine has"
                " it; the workers need the files at the same path (shared storage; absolute"
                " paths), or --ship-audio",
            )
            output = replace(output, result=replace(output.result, error=error))
        yield output


UNKNOWN = "unknown"


def unknown_threshold(model: ModelRef, min_confidence: float | None) -> float:
    """``min_confidence`` if given, else the model card's threshold (0: none)."""
    if min_confidence is not None:
        return min_confidence
    return float(model.card.data.get("unknown_threshold", 0.0))


def thresholded(outcome: Outcome, threshold: float) -> Outcome:
    """Label a prediction ``unknown`` when its confidence is below ``threshold``.

    The cache keeps the real label; the threshold applies on the way out.
    Probabilities and votes stay, so the top class can still be seen.
    """
    pred = outcome.result.prediction
    if pred is None or pred.confidence >= threshold:
        return outcome
    unknown = replace(pred, label=UNKNOWN, agreement=0)
    return replace(outcome, result=replace(outcome.result, prediction=unknown))


def list_then_remember(cache: ResultCache, fresh: Iterable[str], seen: Identities) -> None:
    """List ``fresh`` (to be analyzed, or new at their paths) where
    ``--changed-only`` looks, then remember what each path holds: in that
    order, so a run stopped in between has not remembered a path it never
    listed (``analyzer.delivery``). A cache that did not open caches
    nothing, so nothing is undelivered."""
    if cache.enabled and cache.directory is not None:
        Undelivered(cache.directory).add(fresh)
    cache.remember(seen)


def _lookup(
    index: int,
    path: str,
    cache: ResultCache,
    config: ScanConfig,
    settings: Settings,
    feature_key: str,
    seen: Identities,
) -> Outcome | tuple[Task, dict[str, Any]] | Task:
    """What the parent knows of one file: an answer, cached features, or work
    to do. What the path holds goes on ``seen``, for the cache to remember."""
    st, failed = precheck(path)
    if failed is not None:
        return Outcome(failed, cached=False)
    assert st is not None
    try:
        digest, new_here = cache.identify(path, st, seen)
    except OSError as exc:
        return Outcome(read_error(path, exc), cached=False)
    task = Task(index, path, digest, size=st.st_size, mtime_ns=st.st_mtime_ns)
    if config.refresh:
        return task
    model = settings.model
    assert model is not None
    record = cache.get_prediction(digest, feature_key, model.fingerprint)
    if record is not None:
        duration = (record.get("signal") or {}).get("duration", 0.0)
        if duration > config.max_duration:  # the limit may be lower than when it was cached
            message = (
                f"{path}: {duration:.6g} s, over the limit of {config.max_duration:g} s"
                " (raise it with --max-duration)"
            )
            return Outcome(
                error_result(path, "too_long", message, model=model.model_id, content_hash=digest),
                cached=False,
            )
        if config.segments is None:
            result = FileResult.from_dict({**record, "path": path})
            return Outcome(result, cached=True, arrived=new_here)
        line = cache.get_segments(digest, feature_key, model.fingerprint, config.segments.key())
        if line is None:
            return task  # the windows' features are not cached: the worker computes them
        result = FileResult.from_dict({**record, **line, "path": path})
        return Outcome(result, cached=True, arrived=new_here)
    entry = cache.get_analysis(digest, feature_key)
    if entry is not None and "error" in entry and not config.retry_failed:
        result = _from_analysis(path, entry, model.model_id, digest)
        return Outcome(result, cached=True, arrived=new_here)
    if entry is not None and "features" in entry and config.segments is None:
        return task, entry
    return task


def _predict_cached(
    reuse: list[tuple[Task, dict[str, Any]]],
    settings: Settings,
    cache: ResultCache,
    feature_key: str,
) -> Iterator[Outcome]:
    """Predict, in this process, files whose features are cached (a new model)."""
    import numpy as np

    model = settings.model
    assert model is not None
    vectors = np.stack([np.frombuffer(entry["features"], dtype=np.float32) for _, entry in reuse])
    for (task, entry), prediction in zip(reuse, predict(vectors, settings), strict=True):
        result = FileResult(
            path=task.path,
            status="ok",
            facts=SignalFacts(**entry["facts"]),
            prediction=prediction,
            model=model.model_id,
            content_hash=task.content_hash,
            seconds=entry.get("seconds", 0.0),
        )
        record = result.to_dict()
        del record["path"]
        cache.put_prediction(task.content_hash, feature_key, model.fingerprint, record)
        yield Outcome(result, cached=False)  # a new prediction, from cached features


def store(
    cache: ResultCache, output: TaskOutput, feature_key: str, fingerprint: str | None
) -> None:
    """Write a fresh result to the cache, if it is the kind that keeps."""
    result = output.result
    digest = result.content_hash
    if digest is None:
        return
    record = result.to_dict()
    facts = record["signal"]
    del record["path"]
    for key in TIMELINE_KEYS:  # the prediction entry is the same with or without --segments
        record.pop(key, None)
    if result.status == "ok" and output.features is not None:
        cache.put_analysis(
            digest,
            feature_key,
            {"facts": facts, "features": output.features, "seconds": result.seconds},
        )
        if fingerprint is not None and result.prediction is not None:
            cache.put_prediction(digest, feature_key, fingerprint, record)
        if fingerprint is not None and result.timeline is not None:
            cache.put_segments(
                digest,
                feature_key,
                fingerprint,
                _spec_key(result.timeline),
                result.timeline.to_dict(),
            )
    elif result.error is not None and result.error.kind in CACHEABLE_ERRORS:
        cache.put_analysis(
            digest,
            feature_key,
            {
                "facts": facts,
                "seconds": result.seconds,
                "path": result.path,
                "error": {"kind": result.error.kind, "message": result.error.message},
            },
        )


def _spec_key(timeline: Timeline) -> str:
    return SegmentSpec(timeline.window, timeline.hop, timeline.smoothing).key()


def plan(files: Sequence[str], config: ScanConfig | None = None) -> Iterator[tuple[str, str]]:
    """What a scan would do with each file, without analyzing or caching anything.

    Yields ``(path, state)``: ``cached``, ``new``, ``changed`` (bytes differ
    from what was cached for this path), ``model changed`` (features cached,
    not this model's prediction), ``new segments`` (cached, but not the
    timeline ``segments`` asks for), ``previously failed`` (its failure is
    cached, and answers), ``retry failed`` (that, with ``retry_failed``:
    analyzed again), ``refresh`` (with
    ``refresh``: analyzed again whatever the cache holds) or ``unreadable``.
    """
    config = config or ScanConfig()
    model = resolve_model(config.model)
    feature_key = model.card.feature_config.cache_key()
    directory = (config.cache_dir or default_cache_dir()) if config.use_cache else None
    cache = ResultCache(directory)
    try:
        for path in files:
            st, failed = precheck(path)
            if failed is not None or st is None:
                # The kind the scan would report: not_found, permission, not_a_file, ...
                yield path, failed.error.kind if failed and failed.error else "unreadable"
                continue
            before, same = cache.known_hash(path, st)
            try:
                digest = before if same and before else hash_file(path)
            except OSError as exc:
                yield path, read_error_kind(exc)
                continue
            if config.refresh:
                yield path, "refresh"
            elif cache.get_prediction(digest, feature_key, model.fingerprint) is not None:
                spec = config.segments
                fresh = spec is not None and (
                    cache.get_segments(digest, feature_key, model.fingerprint, spec.key()) is None
                )
                yield path, "new segments" if fresh else "cached"
            elif (entry := cache.get_analysis(digest, feature_key)) is not None:
                if "error" in entry:
                    yield path, "retry failed" if config.retry_failed else "previously failed"
                else:
                    yield path, "model changed"
            else:
                yield path, "new" if before is None or before == digest else "changed"
    finally:
        cache.close()
