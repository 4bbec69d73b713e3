"""Rendering results for people: the results table and the summary line."""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzer.results import FileResult
from analyzer.writers import displayed

#: The width of tables written to a pipe or a file.
PIPED_WIDTH = 1000

LABEL_STYLES = {"speech": "cyan", "music": "magenta", "noise": "yellow", "silence": "dim"}


def confidence_shown(label: str, confidence: float) -> str:
    """Two decimals; cut rather than rounded under an ``unknown`` (below
    --min-confidence): 0.9887 under 0.99 shows as 0.98, not as 0.99."""
    if label == "unknown":
        return f"{math.floor(confidence * 100 + 1e-9) / 100:.2f}"
    return f"{confidence:.2f}"


def results_table(results: Sequence[FileResult]) -> Table:
    """One row per file: label, confidence, agreement, duration, or the error;
    with ``--segments``, the segment count and each class's share of time too."""
    failures = any(r.prediction is None for r in results)
    timelines = any(r.timeline is not None for r in results)
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    table.add_column("file", overflow="fold", ratio=3 if failures else None)
    table.add_column("label", no_wrap=True)
    table.add_column("conf.", justify="right", no_wrap=True)
    table.add_column("agree", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    if timelines:
        table.add_column("segments", overflow="fold")
    if failures:  # the reason column only when there is a reason to show
        table.add_column("note", overflow="fold", ratio=2)
    for r in results:
        duration = f"{r.facts.duration:.1f} s" if r.facts else ""
        path = Text(displayed(r.path))
        if r.prediction is not None:
            p = r.prediction
            cells: list[Text | str] = [
                path,
                Text(p.label, style=LABEL_STYLES.get(p.label, "")),
                confidence_shown(p.label, p.confidence),
                f"{p.agreement}/{len(p.votes)}",
                duration,
            ]
            if timelines:
                cells.append(_shares(r))
            table.add_row(*cells, *([""] if failures else []))
        else:
            kind = r.error.kind if r.error else r.status
            message = r.error.message if r.error else ""
            note = message.removeprefix(f"{r.path}: ")
            table.add_row(
                path,
                Text(r.status, style="bold red"),
                "",
                "",
                duration,
                *([""] if timelines else []),
                Text(f"{kind}: {displayed(note)}", style="red"),
            )
    return table


def _shares(result: FileResult) -> str:
    """``7: music 32%, noise 31%, speech 28%, silence 9%`` (classes present, largest first)."""
    line = result.timeline
    if line is None:
        return ""
    shares = sorted(((t, c) for c, t in line.fractions.items() if t > 0), reverse=True)
    return f"{line.segment_count}: " + ", ".join(f"{c} {t:.0%}" for t, c in shares)


def summary_line(results: Sequence[FileResult], *, cached: int, seconds: float) -> str:
    """``12 files in 3.1 s (4 cached): 10 ok, 2 error; speech 6, music 4``.

    The cached count is of all files: a cached failure is cached too.
    """
    statuses = Counter(r.status for r in results)
    labels = Counter(r.label for r in results if r.label)
    parts = [f"{statuses.get('ok', 0)} ok"]
    parts += [f"{n} {s}" for s, n in sorted(statuses.items()) if s != "ok"]
    files = "1 file" if len(results) == 1 else f"{len(results)} files"
    line = f"{files} in {seconds:.1f} s ({cached} cached): " + ", ".join(parts)
    if labels:
        line += "; " + ", ".join(f"{label} {n}" for label, n in labels.most_common())
    return line


def make_console(*, stderr: bool) -> Console:
    """A console for results (stdout) or for log lines (stderr, never wrapped)."""
    # No markup on stderr, and no emoji codes anywhere: file names like
    # "[bold]x.wav" and ":warning:.wav" are printed as they are.
    console = Console(
        stderr=stderr, highlight=False, soft_wrap=stderr, markup=not stderr, emoji=False
    )
    console.on_broken_pipe = _broken_pipe  # type: ignore[method-assign]
    if not stderr and not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped (| cat, > file): Rich would cut tables to 80 columns; a table
        # is as wide as its content instead.
        console.width = PIPED_WIDTH
    return console


def _broken_pipe() -> None:
    """Rich would exit 1 (a failed rule, to a CI script); cli.HarkenGroup exits 141."""
    raise BrokenPipeError


def _scores_table(scores: dict[str, Any], title: str | None = None) -> Table:
    table = Table(
        title=title or ("cross-validated scores" if len(scores) > 1 else "scores"),
        show_edge=False,
        header_style="bold",
    )
    for column in ("", "accuracy", "balanced acc.", "macro-F1"):
        table.add_column(column, justify="right" if column else "left")
    for name, m in scores.items():
        table.add_row(
            name, f"{m['accuracy']:.3f}", f"{m['balanced_accuracy']:.3f}", f"{m['macro_f1']:.3f}"
        )
    return table


def _classes_table(m: dict[str, Any]) -> Table:
    classes = m["classes"]
    table = Table(
        title="ensemble per class; confusion (rows: truth)", show_edge=False, header_style="bold"
    )
    table.add_column("class")
    for column in ("precision", "recall", "n", *classes):
        table.add_column(column, justify="right")
    predicted = [sum(column) for column in zip(*m["confusion"], strict=True)]
    for i, (cls, row) in enumerate(zip(classes, m["confusion"], strict=True)):
        pc = m["per_class"][cls]
        # A class never predicted has no precision, one without clips no recall
        # (the JSON keeps scikit-learn's 0).
        table.add_row(
            cls,
            f"{pc['precision']:.3f}" if predicted[i] else "n/a",
            f"{pc['recall']:.3f}" if pc["support"] else "n/a",
            str(pc["support"]),
            *(str(v) for v in row),
        )
    return table


def training_report(console: Console, report: dict[str, Any]) -> None:
    """Scores, per-class table with the confusion matrix, worst mistakes."""
    console.print(_scores_table(report["scores"]))
    if "per_fold" in report:
        console.print(_folds_table(report["per_fold"]))
    console.print(_classes_table(report["scores"]["ensemble"]))
    if "narrowband_scores" in report:
        title = "the same, every test clip band-limited to 4 kHz"
        console.print(_scores_table(report["narrowband_scores"], title))
    if report.get("labels_the_model_does_not_know"):
        unknown = ", ".join(report["labels_the_model_does_not_know"])
        console.print(
            f"WARNING: the model does not know the label(s) {unknown}: those clips count"
            " as mistakes above",
            markup=False,
        )
        if "known_label_scores" in report:
            title = "clips of labels it knows"
            console.print(_scores_table(report["known_label_scores"], title))
    if "as_scanned" in report:
        scanned = report["as_scanned"]
        title = (
            f"as scanned: {scanned['unknown']} unknown"
            f" (confidence < {scanned['unknown_threshold']})"
        )
        console.print(_scores_table(scanned["scores"], title))
    if report.get("worst_mistakes"):
        table = Table(title="worst mistakes", show_edge=False, header_style="bold")
        for column in ("file", "truth", "predicted", "confidence"):
            table.add_column(column, overflow="fold")
        for w in report["worst_mistakes"]:
            table.add_row(
                Text(displayed(w["path"])), w["truth"], w["predicted"], f"{w['confidence']:.2f}"
            )
        console.print(table)
    notes = [f"{report['analyzed']} of {report['clips']} clips analyzed"]
    if "folds" in report:
        notes.append(
            f"{report['folds']} folds ({report['fold_source']}), {report['groups']} groups"
        )
    if "calibration" in report:
        notes.append(_calibration(report["calibration"]))
    if "calibration_error" in report:
        notes.append(f"calibration error {report['calibration_error']}")
    if "unknown_threshold" in report:
        notes.append("unknown " + _unknown(report["unknown_threshold"]))
    console.print("; ".join(notes), markup=False)


def _folds_table(per_fold: dict[str, Any], shown: int = 10) -> Table:
    """Accuracy on each test fold (up to ``shown`` of them), mean and spread."""
    names = per_fold["folds"]
    table = Table(title="accuracy per test fold", show_edge=False, header_style="bold")
    table.add_column("")
    if len(names) <= shown:
        for name, n in zip(names, per_fold["clips"], strict=True):
            table.add_column(f"{name} ({n})", justify="right")
    table.add_column(f"mean of {len(names)}", justify="right")
    table.add_column("std", justify="right")
    for member, values in per_fold["accuracy"].items():
        cells = [f"{v:.3f}" for v in values] if len(names) <= shown else []
        mean, std = per_fold["mean"][member], per_fold["std"][member]
        table.add_row(member, *cells, f"{mean:.3f}", f"{std:.3f}")
    return table


def failures(console: Console, report: dict[str, Any]) -> None:
    """The clips that could not be analyzed (the first 20), for standard error."""
    failed = report.get("failed", [])
    for failure in failed[:20]:
        console.print(
            f"warning: could not analyze {displayed(failure['path'])}: {failure['kind']}",
            markup=False,
        )
    if len(failed) > 20:
        console.print(f"warning: ... and {len(failed) - 20} more", markup=False)


def _unknown(threshold: float) -> str:
    if not threshold:
        return "off (no threshold met the rule; --min-confidence sets one)"
    return f"below confidence {threshold}"


def _calibration(calibration: dict[str, float]) -> str:
    if calibration["temperature"] == 1.0:
        return f"confidence as voted (calibration error {calibration['error_before']})"
    return (
        f"confidence calibrated (temperature {calibration['temperature']}):"
        f" calibration error {calibration['error_before']} -> {calibration['error']}"
    )


def _training_data(training: dict[str, Any]) -> str:
    """Counts per class, groups and augmentation on one line, then the note."""
    counts = training.get("clips_per_class", {})
    parts = [
        f"{sum(counts.values())} clips ("
        + ", ".join(f"{label} {n}" for label, n in counts.items())
        + ")",
        f"{training.get('groups', '?')} groups",
    ]
    if training.get("augmented_copies"):
        copies = training["augmented_copies"]
        parts.append(f"{copies} augmented cop{'y' if copies == 1 else 'ies'} of each clip")
    known = {"clips_per_class", "groups", "augmented_copies", "data"}
    parts += [f"{k} {json.dumps(v)}" for k, v in sorted(training.items()) if k not in known]
    line = "; ".join(parts)
    return f"{line}\n{training['data']}" if training.get("data") else line


def model_card(console: Console, card: dict[str, Any]) -> None:
    """The model card as a two-column table."""
    table = Table(show_header=False, show_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    cv = card.get("cross_validation", {})
    ensemble_cv = cv.get("ensemble") or cv.get("original") or {}
    cv_scores = [
        f"{k} {v}"
        for k, v in ensemble_cv.items()
        if k in ("accuracy", "balanced_accuracy", "macro_f1")
    ]
    if "mean_fold_accuracy" in cv:
        cv_scores.append(f"mean fold accuracy {cv['mean_fold_accuracy']}")
    rows = [
        ("model", card["id"]),
        ("file", card["path"]),
        ("fingerprint", card["fingerprint"]),
        ("classes", ", ".join(card["classes"])),
        ("members", ", ".join(card["members"])),
        ("features", ", ".join(f"{k}={v}" for k, v in card["feature_config"].items())),
        ("versions", ", ".join(f"{k} {v}" for k, v in card.get("versions", {}).items())),
        ("created", card.get("created", "")),
        ("training data", _training_data(card.get("training", {}))),
        ("cross-validation", ", ".join(cv_scores)),
        ("calibration", _calibration(card["calibration"]) if "calibration" in card else "none"),
        ("unknown", _unknown(card.get("unknown_threshold", 0.0))),
    ]
    for key, value in rows:
        table.add_row(key, Text(str(value)))
    console.print(table)
