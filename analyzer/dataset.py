"""Labeled audio for training and evaluation: a folder per class, or a CSV manifest.

A manifest has columns ``path,label`` and optionally ``group`` (clips cut
from one recording share a group) and ``fold`` (an official split, used as
given); paths are relative to the CSV. Without a ``group`` column, groups can
come from file names with ``--group-pattern``; without either, every file is
its own group, and clips of one recording may leak across folds. A file
is one row: a row repeating an earlier one for the same file (its path
normalised) is left out with a warning, and one that gives it another
label, group, fold or other value is refused.
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
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


def read_manifest(manifest: str | Path) -> tuple[list[LabeledClip], list[str]]:
    """Clips listed in a CSV manifest (see the module notes), and warnings
    about rows left out: a row that repeats an earlier one for the same file.
    A file listed twice with another label (or group, fold, any column) is
    refused: it would be trained on as both."""
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


@dataclass(frozen=True)
class _Row:
    """A manifest row as read: its line, the path as written, and its other cells."""

    line: int
    written: str
    cells: tuple[tuple[str, str], ...]


def _cells(row: dict[str | None, str | list[str] | None]) -> tuple[tuple[str, str], ...]:
    """A row's cells but its path, stripped (cells past the header are one more)."""
    return tuple(
        (key or "", (", ".join(value) if isinstance(value, list) else value or "").strip())
        for key, value in row.items()
        if key != "path"
    )


#: The columns harken reads (a column named twice in the header would be read
#: from its last one without a word: two annotators' labels).
COLUMNS = ("path", "label", "group", "fold")


def _clips_of(reader: csv.DictReader[str], manifest: Path) -> tuple[list[LabeledClip], list[str]]:
    base = manifest.parent
    if reader.fieldnames:  # "path, label": a space after the comma is not in the name
        reader.fieldnames = [name.strip() for name in reader.fieldnames]
    names = list(reader.fieldnames or ())
    twice = sorted({name for name in COLUMNS if names.count(name) > 1})
    if twice:
        raise UsageError(
            f"{manifest}: column(s) {', '.join(twice)} more than once in the header;"
            " keep one, or rename the others"
        )
    missing = {"path", "label"} - set(names)
    if missing:
        raise UsageError(f"{manifest}: missing column(s) {', '.join(sorted(missing))}")
    clips: list[LabeledClip] = []
    rows: dict[str, list[_Row]] = {}  # one file (its normalised path): its rows
    repeated: list[tuple[_Row, _Row]] = []  # a row the same as an earlier one, and that one
    for row in reader:
        line = reader.line_num  # (of the row's last line: a quoted cell may hold newlines)
        if not (row.get("path") or "").strip() or not (row.get("label") or "").strip():
            raise UsageError(f"{manifest}, line {line}: empty path or label")
        path = str(base / row["path"])
        this = _Row(line, row["path"], _cells(row))
        earlier = rows.setdefault(os.path.normcase(os.path.abspath(path)), [])
        same = next((r for r in earlier if r.cells == this.cells), None)
        earlier.append(this)
        if same is not None:  # counted twice, it would weigh twice in training
            repeated.append((this, same))
            continue
        clips.append(
            LabeledClip(
                path=path,
                label=class_name(row["label"]),
                group=(row.get("group") or "").strip() or path,
                fold=(row.get("fold") or "").strip() or None,
                meta=row,
            )
        )
    conflicts = [listed for listed in rows.values() if len({r.cells for r in listed}) > 1]
    if conflicts:
        raise UsageError(_conflict(manifest, conflicts))
    warnings = []
    if repeated:
        shown = ", ".join(
            f"line {r.line} ({r.written}) repeats line {same.line}" for r, same in repeated[:3]
        )
        more = f" and {len(repeated) - 3} more" if len(repeated) > 3 else ""
        warnings.append(
            f"{manifest}: {len(repeated)} row(s) repeat an earlier row for the same file and"
            f" are left out, so no clip counts twice: {shown}{more}"
        )
    return clips, warnings


def _conflict(manifest: Path, conflicts: list[list[_Row]]) -> str:
    """The error for files listed more than once with another label, group, fold..."""
    listed = conflicts[0]
    cells = [dict(r.cells) for r in listed]
    keys = dict.fromkeys(["label", "group", "fold", *(key for row in cells for key in row)])
    differ = [key for key in keys if len({row.get(key, "") for row in cells}) > 1]
    names = {key: key or "extra cells" for key in differ}  # (cells past the header)
    rows = ", ".join(
        f"line {r.line}"
        + (f" ({r.written})" if r.written != listed[0].written else "")
        + " has "
        + " and ".join(f"{names[key]} {row.get(key, '')!r}" for key in differ)
        for r, row in zip(listed, cells, strict=True)
    )
    more = f" (and {len(conflicts) - 1} more such file(s))" if len(conflicts) > 1 else ""
    return (
        f"{manifest}: {listed[0].written} is listed more than once with a different"
        f" {' and '.join(names.values())}: {rows}{more}; give each file one row"
    )


def class_name(text: str) -> str:
    """A label as a class: stripped, in Unicode's NFC form, so that "café"
    with a combining accent (as macOS names folders) and with "é" are one
    class, and a rule's ``label == café`` finds it."""
    return unicodedata.normalize("NFC", text.strip())


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
    for folder in classes:
        found = discover([root / folder])
        label = class_name(folder)
        clips.extend(LabeledClip(path=path, label=label, group=path) for path in found)
        if not found:
            empty.append(folder)
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
        clips, warnings = read_manifest(manifest)
    else:
        clips, warnings = read_folders(data or "")
    if not clips:
        raise UsageError(_with(f"no labeled audio files in {manifest or data}", warnings))
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
                f"--group-pattern '{group_pattern}' matched none of the {len(clips)} file"
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
        raise UsageError(_with("training needs at least two classes", warnings))
    folded = all(c.fold is not None for c in clips)
    return Dataset(clips=clips, grouped=grouped, folded=folded, warnings=tuple(warnings))


def _with(message: str, warnings: list[str]) -> str:
    """``message``, then the warnings that may say why (a refusal ends the
    command before they are printed)."""
    return "\n".join([message, *(f"  {w}" for w in warnings)])


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
