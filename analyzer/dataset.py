"""Labeled audio for training and evaluation: a folder per class, or a CSV manifest.

A manifest has columns ``path,label`` and optionally ``group`` (clips cut
from one recording share a group) and ``fold`` (an official split, used as
given); paths are relative to the CSV. Without a ``group`` column, groups can
come from file names with ``--group-pattern``; without either, every file is
its own group, and clips of one recording may leak across folds.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.discover import DEFAULT_EXTENSIONS, discover
from analyzer.errors import UsageError


@dataclass(frozen=True)
class LabeledClip:
    """One labeled file, the recording it was cut from, and its manifest row."""

    path: str
    label: str
    group: str
    fold: str | None = None
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    """Labeled clips, and whether their groups and folds were given."""

    clips: list[LabeledClip]
    grouped: bool
    folded: bool
    #: What the user should know about the groups (shown before training).
    warnings: tuple[str, ...] = ()

    @property
    def classes(self) -> list[str]:
        return sorted({c.label for c in self.clips})

    def check_folds(self) -> None:
        """Refuse a ``fold`` column that gives some clips a fold and not others
        (for cross-validation; evaluation ignores folds)."""
        lacking = [c.path for c in self.clips if c.fold is None]
        if 0 < len(lacking) < len(self.clips):
            raise UsageError(
                f"{len(lacking)} of {len(self.clips)} clips have no fold ({lacking[0]}, ...);"
                " give every clip a fold, or none"
            )


def read_manifest(manifest: str | Path) -> list[LabeledClip]:
    """Clips listed in a CSV manifest (see the module notes)."""
    manifest = Path(manifest)
    try:
        handle = manifest.open(newline="", encoding="utf-8-sig")  # Excel writes a BOM
    except OSError as exc:
        raise UsageError(f"cannot read manifest {manifest}: {exc.strerror or exc}") from None
    try:
        with handle:
            return _clips_of(csv.DictReader(handle), manifest)
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{manifest} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8"
        ) from None
    except csv.Error as exc:
        raise UsageError(f"{manifest}: not a readable CSV ({exc})") from None


def _clips_of(reader: csv.DictReader[str], manifest: Path) -> list[LabeledClip]:
    base = manifest.parent
    missing = {"path", "label"} - set(reader.fieldnames or ())
    if missing:
        raise UsageError(f"{manifest}: missing column(s) {', '.join(sorted(missing))}")
    clips = []
    for line, row in enumerate(reader, start=2):
        if not (row.get("path") or "").strip() or not (row.get("label") or "").strip():
            raise UsageError(f"{manifest}, line {line}: empty path or label")
        path = str(base / row["path"])
        clips.append(
            LabeledClip(
                path=path,
                label=row["label"].strip(),
                group=(row.get("group") or "").strip() or path,
                fold=(row.get("fold") or "").strip() or None,
                meta=row,
            )
        )
    return clips


def read_folders(root: str | Path) -> tuple[list[LabeledClip], list[str]]:
    """Clips of a folder-per-class tree: ``root/<label>/**/*.wav``, and
    warnings about what it leaves out: audio files beside the class folders
    (they have no label), folders that hold none."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder; give a folder per class or --manifest CSV")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise UsageError(f"{root} has no class folders; give a folder with a subfolder per class")
    clips: list[LabeledClip] = []
    empty = []
    for label in classes:
        found = discover([root / label])
        clips.extend(LabeledClip(path=path, label=label, group=path) for path in found)
        if not found:
            empty.append(label)
    warnings = []
    if loose := sorted(
        f.name
        for f in root.iterdir()
        if f.is_file() and f.name.lower().endswith(DEFAULT_EXTENSIONS)
    ):
        shown = ", ".join(loose[:3]) + (f" and {len(loose) - 3} more" if len(loose) > 3 else "")
        warnings.append(
            f"{len(loose)} audio file(s) in {root} itself, outside any class folder, are"
            f" left out ({shown}): a clip's label is the name of the folder it is in"
        )
    if empty:
        warnings.append(
            f"no audio files in folder(s) {', '.join(empty)}: left out, no class of that name"
        )
    return clips, warnings


def load_dataset(
    data: str | None = None,
    *,
    manifest: str | None = None,
    group_pattern: str | None = None,
    min_classes: int = 2,
) -> Dataset:
    """Labeled clips from a folder tree or a manifest.

    Parameters
    ----------
    data : str, optional
        A folder with a subfolder per class.
    manifest : str, optional
        A CSV manifest instead.
    group_pattern : str, optional
        A regular expression searched in each file name; its first group (or
        the whole match) is the clip's group.
    min_classes : int
        Refuse data with fewer classes (2 to train, 1 to evaluate).
    """
    if (data is None) == (manifest is None):
        raise UsageError("give either a folder per class or --manifest CSV")
    warnings: list[str] = []
    if manifest:
        clips = read_manifest(manifest)
    else:
        clips, warnings = read_folders(data or "")
    if not clips:
        raise UsageError(f"no labeled audio files in {manifest or data}")
    with_group = sum(bool((c.meta.get("group") or "").strip()) for c in clips)
    grouped = bool(manifest) and with_group > 0
    if grouped and with_group < len(clips):
        warnings.append(
            f"{len(clips) - with_group} of {len(clips)} clips have no group in the manifest;"
            " each of them is a group of its own"
        )
    if group_pattern:
        clips, matched = _regroup(clips, group_pattern)
        grouped = matched > 0
        if matched == 0:
            warnings.append(
                f"--group-pattern {group_pattern!r} matched none of the {len(clips)} file"
                " names (or only empty groups), so no clip has a group"
            )
        elif matched < len(clips):
            warnings.append(
                f"--group-pattern matched {matched} of {len(clips)} file names;"
                " each of the others is a group of its own"
            )
    by_case: dict[str, set[str]] = {}
    for label in {c.label for c in clips}:
        by_case.setdefault(label.casefold(), set()).add(label)
    for spellings in by_case.values():
        if len(spellings) > 1:
            warnings.append(
                f"labels {', '.join(sorted(spellings))} differ only in case; they are"
                " separate classes"
            )
    if len({c.label for c in clips}) < min_classes:
        raise UsageError("training needs at least two classes")
    folded = all(c.fold is not None for c in clips)
    return Dataset(clips=clips, grouped=grouped, folded=folded, warnings=tuple(warnings))


def _regroup(clips: list[LabeledClip], group_pattern: str) -> tuple[list[LabeledClip], int]:
    """The clips grouped by ``group_pattern`` in their file names, and how many matched."""
    try:
        pattern = re.compile(group_pattern)
    except re.error as exc:
        raise UsageError(f"--group-pattern: {exc}") from None
    regrouped, matched = [], 0
    for clip in clips:
        match = pattern.search(os.path.basename(clip.path))
        group = (match.group(1) if match.groups() else match.group(0)) if match else None
        matched += bool(group)
        regrouped.append(
            LabeledClip(clip.path, clip.label, group or clip.path, clip.fold, clip.meta)
        )
    return regrouped, matched
