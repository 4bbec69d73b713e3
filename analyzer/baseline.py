"""``--baseline``: what changed since an earlier result file (JSON or JSONL).

Files are matched by their ``path``, made absolute from the current folder
(so ``./rec/a.wav``, ``rec//a.wav`` and ``$PWD/rec/a.wav`` are one file); a
file is ``new`` if the baseline does not list it, ``removed`` if this scan
did not see it, and ``changed`` if its label differs (status counts as the
label of a file that could not be analyzed). Reports keep each side's
spelling.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.errors import UsageError
from analyzer.results import FileResult
from analyzer.writers import printable


@dataclass(frozen=True)
class Changes:
    """Differences between a baseline and this scan."""

    new: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[tuple[str, str, str]] = field(default_factory=list)  # path, before, now

    def __bool__(self) -> bool:
        return bool(self.new or self.removed or self.changed)


def _outcome(record: dict[str, object]) -> str:
    return str(record.get("label") or record.get("status") or "?")


def load_baseline(path: str | Path) -> dict[str, str]:
    """``path -> label`` (or status) from an earlier JSON list or JSONL output."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read baseline {path}: {exc.strerror or exc}") from None
    try:
        stripped = text.lstrip()
        if stripped.startswith("["):
            records = json.loads(text)
        else:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        return {str(r["path"]): _outcome(r) for r in records}
    except KeyError:
        raise UsageError(
            f"{path} is not a harken JSON or JSONL result file (a record has no path)"
        ) from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path} is not a harken JSON or JSONL result file ({exc})") from None


def compare(baseline: dict[str, str], results: list[FileResult]) -> Changes:
    """What is new, removed or labeled differently now."""
    before = {os.path.abspath(p): (p, label) for p, label in baseline.items()}
    now = {
        os.path.abspath(printable(r.path)): (printable(r.path), r.label or r.status)
        for r in results
    }
    return Changes(
        new=sorted(now[k][0] for k in now.keys() - before.keys()),
        removed=sorted(before[k][0] for k in before.keys() - now.keys()),
        changed=sorted(
            (now[k][0], before[k][1], now[k][1])
            for k in now.keys() & before.keys()
            if before[k][1] != now[k][1]
        ),
    )
