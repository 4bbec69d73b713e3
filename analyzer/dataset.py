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

from analyzer.discover import discover
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

    @property
    def classes(self) -> list[str]:
        return sorted({c.label for c in self.clips})


def read_manifest(manifest: str | Path) -> list[LabeledClip]:
    """Clips listed in a CSV manifest (see the module notes)."""
    manifest = Path(manifest)
    base = manifest.parent
    try:
        handle = manifest.open(newline="", encoding="utf-8-sig")  # Excel writes a BOM
    except OSError as exc:
        raise UsageError(f"cannot read manifest {manifest}: {exc.strerror or exc}") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = {"path", "label"} - set(reader.fieldnames or ())
        if missing:
            raise UsageError(f"{manifest}: missing column(s) {', '.join(sorted(missing))}")
        clips = []
        for line, row in enumerate(reader, start=2):
            if not row.get("path") or not row.get("label"):
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


def read_folders(root: str | Path) -> list[LabeledClip]:
    """Clips of a folder-per-class tree: ``root/<label>/**/*.wav``."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder; give a folder per class or --manifest CSV")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    clips = [
        LabeledClip(path=path, label=label, group=path)
        for label in classes
        for path in discover([root / label])
    ]
    return clips


def load_dataset(
    data: str | None = None, *, manifest: str | None = None, group_pattern: str | None = None
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
    """
    if (data is None) == (manifest is None):
        raise UsageError("give either a folder per class or --manifest CSV")
    clips = read_manifest(manifest) if manifest else read_folders(data or "")
    grouped = bool(manifest) and any(c.meta.get("group") for c in clips)
    if group_pattern:
        try:
            pattern = re.compile(group_pattern)
        except re.error as exc:
            raise UsageError(f"--group-pattern: {exc}") from None
        regrouped = []
        for clip in clips:
            match = pattern.search(os.path.basename(clip.path))
            group = (
                match.group(1)
                if match and match.groups()
                else match.group(0)
                if match
                else clip.path
            )
            regrouped.append(LabeledClip(clip.path, clip.label, group, clip.fold, clip.meta))
        clips, grouped = regrouped, True
    if len({c.label for c in clips}) < 2:
        raise UsageError("training needs at least two classes")
    folded = all(c.fold is not None for c in clips)
    return Dataset(clips=clips, grouped=grouped, folded=folded)
