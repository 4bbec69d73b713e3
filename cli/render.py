"""Rendering results for people: the results table and the summary line."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzer.results import FileResult
from analyzer.writers import printable

LABEL_STYLES = {"speech": "cyan", "music": "magenta", "noise": "yellow", "silence": "dim"}


def results_table(results: Sequence[FileResult]) -> Table:
    """One row per file: label, confidence, agreement, duration, or the error."""
    failures = any(r.prediction is None for r in results)
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    table.add_column("file", overflow="fold", ratio=3 if failures else None)
    table.add_column("label", no_wrap=True)
    table.add_column("conf.", justify="right", no_wrap=True)
    table.add_column("agree", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    if failures:  # the reason column only when there is a reason to show
        table.add_column("note", overflow="fold", ratio=2)
    for r in results:
        duration = f"{r.facts.duration:.1f} s" if r.facts else ""
        path = Text(printable(r.path))
        if r.prediction is not None:
            p = r.prediction
            cells: list[Text | str] = [
                path,
                Text(p.label, style=LABEL_STYLES.get(p.label, "")),
                f"{p.confidence:.2f}",
                f"{p.agreement}/{len(p.votes)}",
                duration,
            ]
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
                Text(f"{kind}: {printable(note)}", style="red"),
            )
    return table


def summary_line(results: Sequence[FileResult], *, cached: int, seconds: float) -> str:
    """``12 files in 3.1 s: 10 ok (4 cached), 2 error; speech 6, music 4``."""
    statuses = Counter(r.status for r in results)
    labels = Counter(r.label for r in results if r.label)
    parts = [f"{statuses.get('ok', 0)} ok ({cached} cached)"]
    parts += [f"{n} {s}" for s, n in sorted(statuses.items()) if s != "ok"]
    line = f"{len(results)} files in {seconds:.1f} s: " + ", ".join(parts)
    if labels:
        line += "; " + ", ".join(f"{label} {n}" for label, n in labels.most_common())
    return line


def make_console(*, stderr: bool) -> Console:
    """A console for results (stdout) or for log lines (stderr, never wrapped)."""
    # No markup on stderr: file names like "[bold]x.wav" are printed as they are.
    return Console(stderr=stderr, highlight=False, soft_wrap=stderr, markup=not stderr)
