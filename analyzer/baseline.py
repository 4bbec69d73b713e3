"""``--baseline``: what changed since an earlier result file (JSON or JSONL).

Files are matched by their ``path``, made absolute from the current folder
(so ``./rec/a.wav``, ``rec//a.wav`` and ``$PWD/rec/a.wav`` are one file); a
file is ``new`` if the baseline does not list it, ``removed`` if this scan
did not see it, and ``changed`` if its label differs (status counts as the
label of a file that could not be analyzed). A removed file and a new one
with the same bytes (``content_hash``; empty files aside) are one file
``moved``: a rename is not a deletion. Reports keep each side's spelling.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.cache import hash_bytes
from analyzer.errors import UsageError
from analyzer.results import FileResult
from analyzer.writers import printable

#: Every empty file has these "same bytes"; two of them are not one file moved.
_EMPTY = hash_bytes(b"")


@dataclass(frozen=True)
class Entry:
    """What a result file says of one file: its outcome and its bytes' hash."""

    outcome: str
    content_hash: str | None = None


@dataclass(frozen=True)
class Move:
    """A file found under another name, with its outcome on both sides."""

    old_path: str  # as the baseline has it
    new_path: str  # as this scan has it
    old_label: str  # or status
    new_label: str


@dataclass(frozen=True)
class Changes:
    """Differences between a baseline and this scan."""

    new: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[tuple[str, str, str]] = field(default_factory=list)  # path, before, now
    moved: list[Move] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.new or self.removed or self.changed or self.moved)

    def notes(self) -> dict[str, str]:
        """``path -> what changed`` for the files this scan has (printable paths)."""
        notes = {path: "new since the baseline" for path in self.new}
        for move in self.moved:
            labels = f": {move.old_label} -> {move.new_label}"
            notes[move.new_path] = f"moved from {move.old_path} since the baseline" + (
                labels if move.old_label != move.new_label else ""
            )
        for path, old, now in self.changed:
            notes[path] = f"relabeled since the baseline: {old} -> {now}"
        return notes


def _entry(record: dict[str, object]) -> Entry:
    outcome = next(
        (v for v in (record.get("label"), record.get("status")) if isinstance(v, str) and v),
        "?",
    )
    digest = record.get("content_hash")
    return Entry(outcome, digest if isinstance(digest, str) and digest else None)


def load_baseline(path: str | Path) -> dict[str, Entry]:
    """``path -> Entry`` from an earlier JSON list or JSONL output."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read baseline {path}: {exc.strerror or exc}") from None

    def refused(why: str) -> UsageError:
        return UsageError(f"{path} is not a harken JSON or JSONL result file ({why})")

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise refused("it is not UTF-8 text") from None
    records: list[object] = []
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except ValueError as exc:
            raise refused(str(exc)) from None
    else:
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError as exc:
                    raise refused(f"line {number}: {exc}") from None
    entries = {}
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("path"), str):
            raise refused("a record has no path")
        entries[record["path"]] = _entry(record)
    return entries


def _pair_moves(
    removed: dict[str, tuple[str, Entry]], new: dict[str, tuple[str, Entry]]
) -> list[Move]:
    """Pair removed and new files with the same bytes (not none), and take
    them out of both; several copies pair in path order."""
    by_hash: dict[str, list[str]] = defaultdict(list)
    for key in sorted(removed):
        digest = removed[key][1].content_hash
        if digest and digest != _EMPTY:
            by_hash[digest].append(key)
    moves = []
    for key in sorted(new):
        candidates = by_hash.get(new[key][1].content_hash or "")
        if candidates:
            gone = candidates.pop(0)
            (old_path, old), (new_path, now) = removed.pop(gone), new.pop(key)
            moves.append(Move(old_path, new_path, old.outcome, now.outcome))
    return sorted(moves, key=lambda m: m.new_path)


def compare(baseline: dict[str, Entry], results: list[FileResult]) -> Changes:
    """What is new, removed, moved or labeled differently now."""
    before = {os.path.abspath(p): (p, entry) for p, entry in baseline.items()}
    now = {
        os.path.abspath(printable(r.path)): (
            printable(r.path),
            Entry(r.label or r.status, r.content_hash),
        )
        for r in results
    }
    new = {k: now[k] for k in now.keys() - before.keys()}
    removed = {k: before[k] for k in before.keys() - now.keys()}
    moved = _pair_moves(removed, new)
    return Changes(
        new=sorted(path for path, _ in new.values()),
        removed=sorted(path for path, _ in removed.values()),
        changed=sorted(
            (now[k][0], before[k][1].outcome, now[k][1].outcome)
            for k in now.keys() & before.keys()
            if before[k][1].outcome != now[k][1].outcome
        ),
        moved=moved,
    )
