"""Training and evaluation: features of labeled clips, grouped CV, metrics, fitting.

Clips cut from one recording share a group and never land on both sides of
a fold, so the scores say how the model does on recordings it has not heard.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from analyzer.analysis import DEFAULT_TIMEOUT, Settings, Task
from analyzer.cache import Identities, ResultCache
from analyzer.dataset import Dataset, LabeledClip, class_name
from analyzer.errors import UsageError
from analyzer.featureconfig import FeatureConfig
from analyzer.modelfile import ModelRef
from analyzer.pool import run_tasks
from analyzer.results import FileResult
from analyzer.scan import list_then_remember, precheck, read_error, store
from analyzer.writers import displayed

#: Decimals kept in reports: the table shows 3 of them, and a value rounded
#: to 4 first can round the wrong way (17/21: 0.8095, shown as 0.809).
DIGITS = 6


@dataclass(frozen=True)
class Features:
    """Feature rows of the clips that could be analyzed, and the ones that could not.

    With augmentation, ``variants[i]`` holds row ``i``'s clip band-limited to
    4 kHz (for checking only), then its augmented copies (for training).
    """

    X: np.ndarray  # [shape=(n_ok, n_features)]
    kept: list[int]  # index into the dataset's clips of every row of X
    failures: list[FileResult]
    variants: np.ndarray | None = None  # [shape=(n_ok, 1 + augment, n_features)]
    digests: list[str] = field(default_factory=list)  # content hash of every row of X


def join_duplicates(groups: np.ndarray, digests: list[str]) -> tuple[np.ndarray, int]:
    """Groups in which byte-identical clips share a group, and how many clips
    had a copy in another group: a file saved twice under two names must not
    land on both sides of a fold."""
    parent = {g: g for g in groups.tolist()}

    def root(g: str) -> str:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    first: dict[str, str] = {}
    for group, digest in zip(groups.tolist(), digests, strict=True):
        a, b = root(group), root(first.setdefault(digest, group))
        if a != b:
            parent[a] = b
    joined = np.array([root(g) for g in groups.tolist()], dtype=object)
    by_digest: dict[str, set[str]] = {}
    for group, digest in zip(groups.tolist(), digests, strict=True):
        by_digest.setdefault(digest, set()).add(group)
    moved = sum(len(by_digest[digest]) > 1 for digest in digests)
    return joined, moved


def copies_with_other_labels(paths: list[str], labels: np.ndarray, digests: list[str]) -> list[str]:
    """Every clip whose byte-identical copy carries another label, as
    ``path (label)``: one of the two labels is wrong, and training takes both."""
    labels_of: dict[str, set[str]] = {}
    for label, digest in zip(labels.tolist(), digests, strict=True):
        labels_of.setdefault(digest, set()).add(label)
    return [
        f"{path} ({label})"
        for path, label, digest in zip(paths, labels.tolist(), digests, strict=True)
        if len(labels_of[digest]) > 1
    ]


def copies_across_folds(folds: list[tuple[np.ndarray, np.ndarray]], digests: list[str]) -> int:
    """How many clips have a byte-identical copy in another test fold."""
    fold_of = {}
    for number, (_, test) in enumerate(folds):
        for i in test.tolist():
            fold_of[i] = number
    seen: dict[str, set[int]] = {}
    for i, digest in enumerate(digests):
        seen.setdefault(digest, set()).add(fold_of.get(i, -1))
    return sum(len(seen[digest]) > 1 for digest in digests)


def variants_key(config: FeatureConfig, augment: int, label: str) -> str:
    """The cache key of a clip's training variants (``analyzer.augment``):
    they depend on its label too (silence keeps its level)."""
    import hashlib

    from analyzer.augment import AUGMENT_VERSION

    tag = hashlib.blake2b(label.encode(), digest_size=6).hexdigest()
    return f"{config.cache_key()}/variants-{augment}-v{AUGMENT_VERSION}-{tag}"


@contextlib.contextmanager
def failures_named(failures: Sequence[FileResult], shown: int = 5) -> Iterator[None]:
    """A refusal raised in the body also names the clips that could not be
    analyzed: they may be why (a class left with too few clips, or none)."""
    try:
        yield
    except UsageError as exc:
        if not failures:
            raise
        named = "; ".join(
            f"{displayed(r.path)} ({r.error.kind if r.error else r.status})"
            for r in failures[:shown]
        )
        more = f"; and {len(failures) - shown} more" if len(failures) > shown else ""
        raise UsageError(
            f"{exc}\n{len(failures)} of the clips could not be analyzed: {named}{more}"
        ) from None


def featurize(
    clips: Sequence[LabeledClip],
    *,
    config: FeatureConfig,
    jobs: int,
    cache_dir: str | None,
    timeout: float | None = DEFAULT_TIMEOUT,
    augment: int = 0,
    on_done: Callable[[bool], None] | None = None,
) -> Features:
    """Feature vectors of labeled clips, through the same pool and cache as a scan;
    with ``augment``, their training variants too.

    ``on_done(cached)`` is called once per clip, for progress.
    """
    settings = Settings(model=None, features=config, timeout=timeout, augment=augment)
    key = config.cache_key()
    extras: dict[int, np.ndarray] = {}
    cache = ResultCache(cache_dir)
    vectors: dict[int, np.ndarray] = {}
    failures: list[FileResult] = []
    tasks: list[Task] = []
    digests: dict[int, str] = {}
    seen: Identities = []  # what each path holds, remembered once arrivals are listed
    arrived: list[str] = []
    try:
        for index, clip in enumerate(clips):
            st, failed = precheck(clip.path)
            if failed is None and st is not None:
                try:
                    digest, new_here = cache.identify(clip.path, st, seen)
                except OSError as exc:
                    failed = read_error(clip.path, exc)
                else:
                    if new_here:
                        arrived.append(clip.path)
            if failed is not None:
                failures.append(failed)
                _tick(on_done, True)
                continue
            assert st is not None
            entry = cache.get_analysis(digest, key)
            extra = (
                cache.get_analysis(digest, variants_key(config, augment, clip.label))
                if augment
                else {"features": b""}
            )
            digests[index] = digest
            if entry is not None and "features" in entry and extra and "features" in extra:
                vectors[index] = np.frombuffer(entry["features"], dtype=np.float32)
                extras[index] = np.frombuffer(extra["features"], dtype=np.float32)
                _tick(on_done, True)
                continue
            tasks.append(
                Task(
                    index,
                    clip.path,
                    digest,
                    size=st.st_size,
                    mtime_ns=st.st_mtime_ns,
                    label=clip.label,
                )
            )
        # A clip new at its path, though its content is cached, is news to a
        # --changed-only scan of the same folder on this cache.
        list_then_remember(cache, arrived, seen)
        for output in run_tasks(tasks, settings, jobs=jobs):
            store(cache, output, key, None)
            if output.variants is not None and output.result.content_hash:
                extra_key = variants_key(config, augment, clips[output.index].label)
                cache.put_analysis(
                    output.result.content_hash, extra_key, {"features": output.variants}
                )
            if output.features is not None:
                vectors[output.index] = np.frombuffer(output.features, dtype=np.float32)
                extras[output.index] = np.frombuffer(output.variants or b"", dtype=np.float32)
            else:
                failures.append(output.result)
            _tick(on_done, False)
    finally:
        cache.close()
    kept = sorted(vectors)
    X = np.stack([vectors[i] for i in kept]) if kept else np.zeros((0, config.n_features))
    variants = None
    if augment:
        shape = (len(kept), 1 + augment, config.n_features)
        variants = np.stack([extras[i] for i in kept]).reshape(shape) if kept else np.zeros(shape)
        variants = variants.astype(np.float64)
    return Features(
        X=X.astype(np.float64),
        kept=kept,
        failures=failures,
        variants=variants,
        digests=[digests[i] for i in kept],
    )


def _tick(callback: Callable[[bool], None] | None, cached: bool) -> None:
    if callback is not None:
        callback(cached)


def metrics(
    y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], *, abstain: str | None = None
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro-F1, per-class precision/recall, confusion.

    The confusion matrix has true classes as rows and predictions as columns,
    in the order of ``classes``. An ``abstain`` answer (``unknown``) is a
    miss, not a class: macro-F1 leaves it out, where it would count as a
    class with F1 0 and cost more than a wrong answer.
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    precision, recall, _, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0
    )
    present = [
        c for c in classes if c in set(y_true.tolist()) | set(y_pred.tolist()) and c != abstain
    ]
    return {
        "n": len(y_true),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), DIGITS),
        # scikit-learn's definition (mean recall over the classes present), without
        # its warning when a prediction names a class absent from y_true.
        "balanced_accuracy": round(float(np.mean(recall[support > 0])), DIGITS),
        # Over the classes that occur (as truth or answer): a model's other
        # classes would count as zeros on data that lacks them.
        "macro_f1": round(
            float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
            DIGITS,
        ),
        "per_class": {
            c: {
                "precision": round(float(p), DIGITS),
                "recall": round(float(r), DIGITS),
                "support": int(s),
            }
            for c, p, r, s in zip(classes, precision, recall, support, strict=True)
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
        "classes": classes,
    }


def grouped_folds(
    labels: np.ndarray, groups: np.ndarray, *, n_splits: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K folds in which no group is on both sides."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels, groups))


def format_metrics(title: str, m: dict[str, Any]) -> str:
    """A Markdown block: headline scores, per-class table, confusion matrix."""
    classes = m["classes"]
    lines = [
        f"### {title}",
        "",
        f"n = {m['n']}; accuracy {m['accuracy']:.3f}; balanced accuracy "
        f"{m['balanced_accuracy']:.3f}; macro-F1 {m['macro_f1']:.3f}",
        "",
        "| class | precision | recall | support |",
        "|---|---:|---:|---:|",
    ]
    for c in classes:
        pc = m["per_class"][c]
        lines.append(f"| {c} | {pc['precision']:.3f} | {pc['recall']:.3f} | {pc['support']} |")
    lines += [
        "",
        "| true \\ predicted | " + " | ".join(classes) + " |",
        "|---|" + "---:|" * len(classes),
    ]
    for c, row in zip(classes, m["confusion"], strict=True):
        lines.append(f"| {c} | " + " | ".join(str(v) for v in row) + " |")
    lines.append("")
    return "\n".join(lines)


def _natural(name: str) -> list[tuple[int, int | str]]:
    """A sort key that puts numbers in a name in numeric order."""
    # (isdecimal: int() reads every such digit; "²" is a digit it cannot read)
    return [(0, int(p)) if p.isdecimal() else (1, p) for p in re.split(r"(\d+)", name)]


def folds_for(
    labels: np.ndarray, groups: np.ndarray, given: list[str | None], *, n_splits: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The official folds when every clip has one, else stratified grouped K folds.

    Raises ``UsageError`` when given folds cannot be trained on: a single
    fold, or one whose training side lacks a class.
    """
    if all(f is not None for f in given):
        names = sorted({str(f) for f in given}, key=lambda n: (_natural(n), n))  # 1, 2, ..., 10
        column = np.array([str(f) for f in given])
        folds = [(np.flatnonzero(column != name), np.flatnonzero(column == name)) for name in names]
        classes = set(labels.tolist())
        for name, (train, _) in zip(names, folds, strict=True):
            missing = classes - set(labels[train].tolist())
            if len(names) < 2 or missing:
                raise UsageError(
                    f"fold {name!r} cannot be tested: without it there is no"
                    f" {', '.join(sorted(missing)) or 'data'} to train on; folds need"
                    " every class outside each of them (and at least two folds)"
                )
        return folds
    per_class = {c: len(set(groups[labels == c].tolist())) for c in sorted(set(labels.tolist()))}
    n_groups = min(per_class.values())
    if n_groups < 2:
        short = ", ".join(c for c, n in per_class.items() if n < 2)
        raise UsageError(
            "cross-validation needs at least two groups (recordings) of every class;"
            f" {short} has one. Add data, or check --group-pattern and the manifest's"
            " group column"
        )
    return grouped_folds(labels, groups, n_splits=min(n_splits, n_groups), seed=seed)


def check_class_sizes(
    y: np.ndarray,
    classes: list[str],
    folds: list[tuple[np.ndarray, np.ndarray]],
    fold_names: list[str],
    members: tuple[str, ...],
) -> None:
    """Raise ``UsageError`` when a fold leaves too few clips to fit ``members``
    on: clips of fewer than two classes, or fewer clips of a class than
    ``analyzer.ensemble.fewest_clips``. A class a fold leaves none of is
    left out of that fold's fit (recordings of several classes can do that)."""
    from analyzer.ensemble import fewest_clips

    need = fewest_clips(members)
    for name, (train, _) in zip(fold_names, folds, strict=True):
        counts = {c: int(np.sum(y[train] == c)) for c in classes}
        present = {c: n for c, n in counts.items() if n}
        if len(present) < 2:
            raise UsageError(
                f"without test fold {name}, only clips of {', '.join(map(repr, present))} are"
                " left to train on; add clips of the other classes, in more recordings (groups)"
            )
        short = min(present, key=present.__getitem__)
        if present[short] < need:
            left = f"{present[short]} is" if present[short] == 1 else f"{present[short]} are"
            others = ",".join(m for m in members if m != "svm")
            raise UsageError(
                f"too few clips of {short!r}: without test fold {name}, {left} left to"
                f" train on, and the svm member needs {need} of every class (it"
                " calibrates on clips it holds out); add clips"
                + (f", or leave svm out (--members {others})" if others else "")
            )


def _fit_fold(
    X: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    members: tuple[str, ...],
    seed: int,
    variants: np.ndarray | None,
) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    from analyzer.ensemble import build_ensemble

    X_fit, y_fit = X[train], y[train]
    tests = {"original": X[test]}
    if variants is not None:  # train on the copies too; check on the band-limited clips
        copies = variants[train, 1:]
        X_fit = np.concatenate([X_fit, copies.reshape(-1, X.shape[1])])
        y_fit = np.concatenate([y_fit, np.repeat(y[train], copies.shape[1])])
        tests["narrowband"] = variants[test, 0]
    model = build_ensemble(members, random_state=seed).fit(X_fit, y_fit)
    # Align to every class: a fold may lack a class in training.
    have, want = list(model.classes_), sorted(set(y.tolist()))
    return test, {
        condition: {
            name: _align(p, have, want) for name, p in model.member_probabilities(rows).items()
        }
        for condition, rows in tests.items()
    }


def _align(proba: np.ndarray, have: list[str], want: list[str]) -> np.ndarray:
    out = np.zeros((proba.shape[0], len(want)))
    for k, cls in enumerate(have):
        out[:, want.index(cls)] = proba[:, k]
    return out


def cross_validate(
    X: np.ndarray,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    members: tuple[str, ...],
    jobs: int,
    seed: int = 0,
    variants: np.ndarray | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Out-of-fold probabilities of every member and of the ensemble (their mean).

    Keyed by condition: ``original`` (the clips as they are) and, with
    ``variants`` (``Features.variants``), ``narrowband`` (every test clip
    band-limited to 4 kHz); training folds then include the augmented copies.
    """
    from joblib import Parallel, delayed

    from analyzer.pool import workers_deaf_to_ctrl_c

    classes = sorted(set(y.tolist()))
    with workers_deaf_to_ctrl_c():
        results = Parallel(n_jobs=min(jobs, len(folds)))(
            delayed(_fit_fold)(X, y, train, test, members, seed, variants) for train, test in folds
        )
    oof: dict[str, dict[str, np.ndarray]] = {}
    for test, conditions in results:
        for condition, per_member in conditions.items():
            for name, proba in per_member.items():
                table = oof.setdefault(condition, {})
                table.setdefault(name, np.zeros((len(y), len(classes))))[test] = proba
    for table in oof.values():
        table["ensemble"] = np.mean([table[name] for name in members], axis=0)
    return oof


def fold_accuracies(
    oof: dict[str, np.ndarray],
    y: np.ndarray,
    classes: list[str],
    folds: list[tuple[np.ndarray, np.ndarray]],
    names: list[str],
) -> dict[str, Any]:
    """Each member's and the ensemble's accuracy on each test fold, with the
    mean and standard deviation over folds (how ESC-50-style benchmarks report;
    the pooled accuracy equals the mean only when folds are of one size)."""
    labels = np.array(classes)
    accuracy = {
        name: [float(np.mean(labels[proba[test].argmax(axis=1)] == y[test])) for _, test in folds]
        for name, proba in oof.items()
    }
    return {
        "folds": names,
        "clips": [len(test) for _, test in folds],
        "accuracy": {name: [round(a, DIGITS) for a in values] for name, values in accuracy.items()},
        "mean": {name: round(float(np.mean(values)), DIGITS) for name, values in accuracy.items()},
        "std": {name: round(float(np.std(values)), DIGITS) for name, values in accuracy.items()},
    }


def calibrate(
    by_condition: dict[str, dict[str, np.ndarray]],
    codes: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
) -> dict[str, float]:
    """Fit the vote's temperature (``analyzer.calibration``) on the out-of-fold
    ensemble probabilities of the clips as they are, and apply it in place to
    the ensemble's rows of every condition.

    It is scored honestly first: each fold's clips are calibrated by a
    temperature fitted on the other folds' clips. Where that does not lower
    the calibration error (small data sets), the temperature stays 1.
    Returns the temperature and the error before and after.
    """
    from analyzer.calibration import calibration_error, fit_temperature, with_temperature

    raw = by_condition["original"]["ensemble"]
    held_out = raw.copy()
    for _, test in folds:
        rest = np.setdiff1d(np.arange(len(codes)), test)
        held_out[test] = with_temperature(raw[test], fit_temperature(raw[rest], codes[rest]))
    before, after = calibration_error(raw, codes), calibration_error(held_out, codes)
    if after >= before:
        return {"temperature": 1.0, "error_before": before, "error": before}
    temperature = fit_temperature(raw, codes)
    for table in by_condition.values():
        table["ensemble"] = with_temperature(table["ensemble"], temperature)
    return {"temperature": temperature, "error_before": before, "error": after}


def choose_threshold(
    proba: np.ndarray, y: np.ndarray, classes: list[str], *, max_rejected: float = 0.03
) -> float:
    """The highest confidence threshold that sends at most ``max_rejected`` of the
    clips to ``unknown`` and more wrong than right answers among them."""
    confidence = proba.max(axis=1)
    correct = np.array(classes)[proba.argmax(axis=1)] == y
    best = 0.0
    for threshold in np.arange(0.30, 0.71, 0.05):
        rejected = confidence < threshold
        if rejected.mean() > max_rejected:
            break
        if rejected.any() and correct[rejected].mean() < 0.5:
            best = float(round(threshold, 2))
    return best


def worst_mistakes(
    paths: list[str], y: np.ndarray, proba: np.ndarray, classes: list[str], *, limit: int = 10
) -> list[dict[str, Any]]:
    """The confidently wrong predictions, most confident first."""
    predicted = np.array(classes)[proba.argmax(axis=1)]
    wrong = np.flatnonzero(predicted != y)
    order = wrong[np.argsort(-proba.max(axis=1)[wrong])][:limit]
    return [
        {
            "path": paths[i],
            "truth": str(y[i]),
            "predicted": str(predicted[i]),
            "confidence": round(float(proba[i].max()), DIGITS),
        }
        for i in order
    ]


@dataclass(frozen=True)
class Trained:
    """A fitted ensemble, its model card, the cross-validation report, and every
    clip's out-of-fold prediction (``out_of_fold``)."""

    ensemble: Any
    card: dict[str, Any]
    report: dict[str, Any]
    predictions: list[dict[str, Any]]


def train(
    dataset: Dataset,
    *,
    members: tuple[str, ...],
    cv: int = 5,
    jobs: int,
    cache_dir: str | None,
    name: str = "harken-model",
    seed: int = 0,
    augment: int = 0,
    folds_from: str | None = None,
    contour_parts: int = 0,
    on_done: Callable[[bool], None] | None = None,
) -> Trained:
    """Featurize, cross-validate (grouped, or the given folds), then fit on everything.

    The report has, per member and for the ensemble, accuracy, balanced
    accuracy, macro-F1, per-class precision and recall and the confusion
    matrix; the card also records the vote's calibration (``calibrate``) and
    the chosen ``unknown_threshold``. Byte-identical clips share a group.

    ``augment`` adds that many augmented copies of every training clip
    (``analyzer.augment``) to every fit, and scores the models again on the
    test clips band-limited to 4 kHz (``narrowband``). ``folds_from`` names
    a manifest column whose every value is one test fold (``source``:
    leave-one-source-out). ``contour_parts`` cuts each clip's sound into
    that many parts in time for its contour (``analyzer.contour``); none by
    default here, as in the default model (``harken train`` asks for 3).
    """
    from importlib.metadata import version

    from analyzer.ensemble import build_ensemble

    config = FeatureConfig(contour_parts=contour_parts)
    feats = featurize(
        dataset.clips,
        config=config,
        jobs=jobs,
        cache_dir=cache_dir,
        augment=augment,
        on_done=on_done,
    )
    with failures_named(feats.failures):  # they may be why it cannot go on
        clips = [dataset.clips[i] for i in feats.kept]
        y = np.array([c.label for c in clips])
        if len(set(y.tolist())) < 2:
            raise UsageError("fewer than two classes could be analyzed; nothing to train on")
        classes = sorted(set(y.tolist()))
        groups, duplicates = join_duplicates(np.array([c.group for c in clips]), feats.digests)
        if folds_from is not None:
            given = [c.meta.get(folds_from) or None for c in clips]
            if all(g is None for g in given):
                raise UsageError(f"--folds-from {folds_from}: not a column of the manifest")
            if None in given:
                lacking = clips[given.index(None)].path
                raise UsageError(
                    f"--folds-from {folds_from}: {lacking} has no value in that column"
                )
        else:
            given = [c.fold for c in clips]
        folds = folds_for(y, groups, given, n_splits=cv, seed=seed)
        leaked = copies_across_folds(folds, feats.digests)
        # A given fold is named by its value (a source, an official fold); grouped ones by number.
        named = all(g is not None for g in given)  # else folds_for made grouped ones
        fold_names = [
            str(given[test[0]]) if named else str(i + 1) for i, (_, test) in enumerate(folds)
        ]
        check_class_sizes(y, classes, folds, fold_names, members)
    by_condition = cross_validate(
        feats.X, y, folds, members=members, jobs=jobs, seed=seed, variants=feats.variants
    )
    calibration = calibrate(by_condition, np.searchsorted(classes, y), folds)
    oof = by_condition["original"]
    scores = {
        name: metrics(y, np.array(classes)[p.argmax(axis=1)], classes) for name, p in oof.items()
    }
    per_fold = fold_accuracies(oof, y, classes, folds, fold_names)
    threshold = choose_threshold(oof["ensemble"], y, classes)
    X_fit, y_fit = feats.X, y
    if feats.variants is not None:
        copies = feats.variants[:, 1:]
        X_fit = np.concatenate([X_fit, copies.reshape(-1, X_fit.shape[1])])
        y_fit = np.concatenate([y_fit, np.repeat(y, copies.shape[1])])
    ensemble = build_ensemble(members, random_state=seed).fit(X_fit, y_fit)
    ensemble.calibrate(calibration["temperature"])
    fold_source = (
        f"column {folds_from}"
        if folds_from
        else "given"
        if dataset.folded
        else "grouped"
        if dataset.grouped
        else "files"
    )
    report = {
        "clips": len(dataset.clips),
        "analyzed": len(clips),
        "failed": [
            {"path": r.path, "kind": r.error.kind if r.error else r.status} for r in feats.failures
        ],
        "folds": len(folds),
        "fold_source": fold_source,
        "groups": len(set(groups.tolist())),
        # Byte-identical clips: joined into one group (grouped folds), or, with
        # folds given, counted where they still fall in different folds.
        "identical_clips_joined": duplicates if not (folds_from or dataset.folded) else 0,
        "identical_clips_across_folds": leaked,
        "identical_clips_with_other_labels": copies_with_other_labels(
            [c.path for c in clips], y, feats.digests
        ),
        "scores": scores,
        "per_fold": per_fold,
        "calibration": calibration,
        "unknown_threshold": threshold,
        "worst_mistakes": worst_mistakes([c.path for c in clips], y, oof["ensemble"], classes),
    }
    narrowband = {
        name: metrics(y, np.array(classes)[p.argmax(axis=1)], classes)
        for name, p in by_condition.get("narrowband", {}).items()
    }
    if narrowband:
        report["narrowband_scores"] = narrowband
    card: dict[str, Any] = {
        "name": name,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "classes": classes,
        "members": list(members),
        "feature_config": config.to_dict(),
        "versions": {p: version(p) for p in ("scikit-learn", "numpy", "scipy", "skops")},
        "training": {
            "clips_per_class": {c: int(np.sum(y == c)) for c in classes},
            "groups": report["groups"],
            "augmented_copies": augment,
        },
        "cross_validation": {
            "folds": len(folds),
            "fold_source": report["fold_source"],
            "ensemble": {
                k: scores["ensemble"][k] for k in ("accuracy", "balanced_accuracy", "macro_f1")
            },
            "members": {m: scores[m]["balanced_accuracy"] for m in members},
            "mean_fold_accuracy": per_fold["mean"]["ensemble"],
        },
        "calibration": calibration,
        "unknown_threshold": threshold,
    }
    if narrowband:
        balanced = narrowband["ensemble"]["balanced_accuracy"]
        card["cross_validation"]["narrowband_balanced_accuracy"] = balanced
    predictions = out_of_fold(clips, folds, fold_names, by_condition, classes)
    return Trained(ensemble=ensemble, card=card, report=report, predictions=predictions)


def out_of_fold(
    clips: list[LabeledClip],
    folds: list[tuple[np.ndarray, np.ndarray]],
    fold_names: list[str],
    by_condition: dict[str, dict[str, np.ndarray]],
    classes: list[str],
) -> list[dict[str, Any]]:
    """A row per clip: its test fold, named as in the report (the fold's value
    when folds were given), and the ensemble's answer when it was held out
    (and, with augmentation, the answer for its band-limited copy)."""
    fold_of = [""] * len(clips)
    for name, (_, test) in zip(fold_names, folds, strict=True):
        for i in test.tolist():
            fold_of[i] = name
    rows = []
    for i, clip in enumerate(clips):
        row: dict[str, Any] = {
            "path": clip.path,
            "label": clip.label,
            "group": clip.group,
            "fold": fold_of[i],
        }
        for condition, prefix in (("original", ""), ("narrowband", "narrowband_")):
            if condition in by_condition:
                proba = by_condition[condition]["ensemble"][i]
                row[prefix + "predicted"] = classes[int(proba.argmax())]
                row[prefix + "confidence"] = round(float(proba.max()), DIGITS)
        rows.append(row)
    return rows


def evaluate(
    dataset: Dataset,
    model: ModelRef,
    *,
    jobs: int,
    cache_dir: str | None,
    trust_model: bool = False,
    min_confidence: float | None = None,
    on_done: Callable[[bool], None] | None = None,
) -> dict[str, Any]:
    """Scores of ``model`` on labeled clips: the metrics and the worst mistakes;
    and, when there is an ``unknown`` threshold (``min_confidence``, else the
    card's), the scores of the answers as a scan gives them."""
    from analyzer.analysis import ensemble_for
    from analyzer.calibration import calibration_error
    from analyzer.scan import UNKNOWN, unknown_threshold

    ensemble = ensemble_for(model, trust=trust_model)
    feats = featurize(
        dataset.clips,
        config=model.card.feature_config,
        jobs=jobs,
        cache_dir=cache_dir,
        on_done=on_done,
    )
    if not feats.kept:
        with failures_named(feats.failures):
            raise UsageError("none of the clips could be analyzed; nothing to evaluate")
    clips = [dataset.clips[i] for i in feats.kept]
    # Labels are in NFC form; a model trained before they were may spell one otherwise.
    spelled = {class_name(c): c for c in model.card.classes}
    y = np.array([spelled.get(c.label, c.label) for c in clips])
    classes = sorted(set(model.card.classes) | set(y.tolist()))
    proba = _align(ensemble.predict_proba(feats.X), [str(c) for c in ensemble.classes_], classes)
    unknown = sorted(set(y.tolist()) - set(model.card.classes))
    known = ~np.isin(y, unknown)
    extra: dict[str, Any] = {}
    if unknown and known.any():
        predicted = np.array(classes)[proba[known].argmax(axis=1)]
        known_classes = sorted(set(model.card.classes))
        extra["known_label_scores"] = {"ensemble": metrics(y[known], predicted, known_classes)}
    if threshold := unknown_threshold(model, min_confidence):
        below = np.round(proba.max(axis=1), 6) < threshold  # as a scan's rounded confidence
        answers = np.where(below, UNKNOWN, np.array(classes)[proba.argmax(axis=1)])
        extra["as_scanned"] = {
            "unknown_threshold": threshold,
            "unknown": int(below.sum()),
            "scores": {
                "ensemble": metrics(y, answers, sorted({*classes, UNKNOWN}), abstain=UNKNOWN)
            },
        }
    return {
        "model": model.model_id,
        "clips": len(dataset.clips),
        "analyzed": len(clips),
        "failed": [
            {"path": r.path, "kind": r.error.kind if r.error else r.status} for r in feats.failures
        ],
        "labels_the_model_does_not_know": unknown,
        "scores": {"ensemble": metrics(y, np.array(classes)[proba.argmax(axis=1)], classes)},
        "calibration_error": calibration_error(proba, np.searchsorted(classes, y)),
        "worst_mistakes": worst_mistakes([c.path for c in clips], y, proba, classes),
        **extra,
    }
