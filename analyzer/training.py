"""Labeled datasets, grouped cross-validation and metrics.

Clips cut from one recording share a group and never land on both sides of
a fold, so the scores say how the model does on recordings it has not heard.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.errors import UsageError


@dataclass(frozen=True)
class LabeledClip:
    """One training file: path, label and the recording it was cut from."""

    path: str
    label: str
    group: str
    meta: dict[str, str]


def read_manifest(manifest: str | Path) -> list[LabeledClip]:
    """Read a CSV manifest with columns ``path,label`` and optional ``group``.

    Paths are relative to the CSV's folder. Other columns are kept in ``meta``.
    """
    manifest = Path(manifest)
    base = manifest.parent
    clips = []
    with manifest.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "label"} - set(reader.fieldnames or ())
        if missing:
            raise UsageError(f"{manifest}: missing column(s) {', '.join(sorted(missing))}")
        for row in reader:
            path = str(base / row["path"])
            clips.append(
                LabeledClip(path=path, label=row["label"], group=row.get("group") or path, meta=row)
            )
    return clips


def metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro-F1, per-class precision/recall, confusion.

    The confusion matrix has true classes as rows and predictions as columns,
    in the order of ``classes``.
    """
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    precision, recall, _, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=0
    )
    return {
        "n": len(y_true),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "balanced_accuracy": round(float(balanced_accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(
            float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)), 4
        ),
        "per_class": {
            c: {"precision": round(float(p), 4), "recall": round(float(r), 4), "support": int(s)}
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
