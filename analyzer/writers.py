"""Output writers: json, jsonl and csv, written atomically.

Every format carries the same record (``FileResult.to_dict``); with
``--segments``, CSV has a row per segment instead of a row per file. Files are
written to a temporary file beside the target and renamed over it, so a
reader never sees half a file and a failed write leaves the old one intact.
Audacity label tracks (``--labels-dir``) are written the same way.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import stat
import sys
import tempfile
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

from analyzer.results import FileResult

if TYPE_CHECKING:
    from analyzer.baseline import Changes

FORMATS = ("table", "json", "jsonl", "csv")

CSV_FIELDS = [
    "path",
    "status",
    "label",
    "confidence",
    "agreement",
    "members",
    "duration",
    "sample_rate",
    "channels",
    "frames",
    "format",
    "subtype",
    "peak_dbfs",
    "rms_dbfs",
    "clipping",
    "silence",
    "dc_offset",
    "model",
    "content_hash",
    "seconds",
    "error_kind",
    "error_message",
]
#: Columns added by ``--segments``: a row per segment (one, empty, for a file without).
SEGMENT_FIELDS = [
    "segment_count",
    "segment",
    "segment_start",
    "segment_end",
    "segment_label",
    "segment_confidence",
]


def printable(text: str) -> str:
    """``text`` with bytes that were not UTF-8 (surrogate escapes) shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def displayed(text: str) -> str:
    """``printable(text)`` for a person's screen: control characters shown as
    ``\\x1b`` (an escape sequence in a file name could recolour or rewrite the
    terminal, a newline fake a line of the log)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", printable(text))


def record(result: FileResult) -> dict[str, Any]:
    """The JSON record of a result, safe to encode as UTF-8."""
    data = result.to_dict()
    data["path"] = printable(data["path"])
    if data["error"]:  # messages name the path too
        data["error"]["message"] = printable(data["error"]["message"])
    return data


def dumps(result: FileResult) -> str:
    """One result as a JSON line (sorted keys)."""
    return json.dumps(record(result), sort_keys=True, ensure_ascii=False)


def csv_row(result: FileResult, classes: list[str], members: list[str]) -> dict[str, Any]:
    data = record(result)
    row = {k: data.get(k) for k in CSV_FIELDS}
    row.update(data["signal"] or {})
    if data["error"]:
        row["error_kind"], row["error_message"] = data["error"]["kind"], data["error"]["message"]
    for c in classes:
        row[f"p_{c}"] = (data["probabilities"] or {}).get(c)
    for m in members:
        row[f"vote_{m}"] = (data["votes"] or {}).get(m)
    return {k: ("" if v is None else v) for k, v in row.items()}


def segment_rows(result: FileResult, row: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The CSV rows of one file with ``--segments``: its row once per segment."""
    line = result.timeline
    if line is None:
        yield {**row, **dict.fromkeys(SEGMENT_FIELDS, "")}
        return
    for c, share in line.fractions.items():
        row[f"fraction_{c}"] = share
    for i, segment in enumerate(line.segments):
        yield {
            **row,
            "segment_count": line.segment_count,
            "segment": i,
            "segment_start": segment.start,
            "segment_end": segment.end,
            "segment_label": segment.label,
            "segment_confidence": segment.confidence,
        }


def write(
    results: Iterable[FileResult],
    fmt: str,
    stream: IO[str],
    *,
    segments: bool = False,
    columns: tuple[Sequence[str], Sequence[str]] = ((), ()),
) -> None:
    """Write results to ``stream`` in ``fmt`` (``json``, ``jsonl`` or ``csv``).

    ``segments`` makes CSV a row per segment (JSON records carry their
    timelines whatever it says). ``columns`` are the model's classes and
    members: CSV has their columns even when no result has (every file
    failed, or none was new), so files of one model share one header.
    """
    results = list(results)
    if fmt == "jsonl":
        for result in results:
            stream.write(dumps(result) + "\n")
    elif fmt == "json":
        json.dump(
            [record(r) for r in results], stream, sort_keys=True, indent=2, ensure_ascii=False
        )
        stream.write("\n")
    elif fmt == "csv":
        predictions = [r.prediction for r in results if r.prediction]
        classes = sorted({*columns[0], *(c for p in predictions for c in p.probabilities)})
        members = sorted({*columns[1], *(m for p in predictions for m in p.votes)})
        fields = CSV_FIELDS + [f"p_{c}" for c in classes] + [f"vote_{m}" for m in members]
        if segments:
            fields += SEGMENT_FIELDS + [f"fraction_{c}" for c in classes]
        writer = csv.DictWriter(stream, fieldnames=fields, lineterminator="\n", restval="")
        writer.writeheader()
        for result in results:
            row = csv_row(result, classes, members)
            writer.writerows(segment_rows(result, row) if segments else [row])
    else:
        raise ValueError(f"unknown format {fmt!r}")


def _output_mode(path: str) -> int:
    """The mode of the file being replaced, else what ``open`` would give."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def is_special_output(path: str) -> bool:
    """Whether ``path`` is a device, a FIFO or a descriptor (``/dev/stdout``,
    ``/proc/self/fd/1``), to be written to as it is, never replaced."""
    if os.path.abspath(path).startswith(("/dev/", "/proc/")):
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)  # a symlink: its target
    except OSError:
        return False


_DESCRIPTOR = re.compile(r"/(?:dev|proc/self)/fd/([0-9]+)")


def _own_descriptor(path: str) -> int | None:
    """The descriptor of this process that ``path`` names, if it names one."""
    named = {"/dev/stdout": 1, "/dev/stderr": 2}.get(path)
    if named is None and (found := _DESCRIPTOR.fullmatch(path)):
        named = int(found[1])
    return named


def name_max(folder: str) -> int:
    """The longest file name, in bytes, that ``folder``'s file system takes
    (``NAME_MAX``: 255 on most), 255 where it will not say."""
    try:
        limit = os.pathconf(folder or ".", "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows), no such folder
        return 255
    return limit if limit > 0 else 255


def cut_to_bytes(name: str, limit: int) -> str:
    """The longest start of ``name`` that is at most ``limit`` bytes as a file
    name (``os.fsencode``: a byte of a non-UTF-8 name is one character, its
    surrogate escape), cut between characters, never inside one."""
    size = 0
    for i, char in enumerate(name):
        size += len(os.fsencode(char))
        if size > limit:
            return name[:i]
    return name


#: The bytes ``replaced_when_done`` adds to a name: ``.`` before it, then ``.``,
#: ``tempfile``'s 8 random characters and ``.tmp`` after.
_TMP_EXTRA = len(".") + len(".") + 8 + len(".tmp")


@contextlib.contextmanager
def replaced_when_done(path: str) -> Iterator[str]:
    """The name of a new file beside ``path``: what is written to it replaces
    ``path`` once the block ends, and is removed if the block fails (a full
    disk keeps the old file, and no half-written one).

    A symlink's target is what gets replaced, not the link.
    """
    path = os.path.realpath(path)
    folder, base = os.path.split(path)
    # ".<name>.XXXXXXXX.tmp": the name cut short enough that the temporary
    # file's name is legal whenever the final one is.
    room = name_max(folder) - _TMP_EXTRA
    fd, tmp = tempfile.mkstemp(prefix=f".{cut_to_bytes(base, room)}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        os.chmod(tmp, _output_mode(path))
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # on disk before it takes the old file's place
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[IO[str]]:
    """A text stream whose content replaces ``path`` only once it is complete
    (see ``replaced_when_done``).

    A device or a FIFO (``/dev/stdout``, a pipe) is written to directly:
    renaming over it would replace the device node itself. A descriptor of
    this process (``/dev/stdout``, ``/dev/fd/3``) is written through, not
    opened anew: it may be a regular file (``>> log``, a ``{ ...; } > log``
    group), which a new open would truncate, or write at its own offset over
    what the shell writes next.
    """
    if (fd := _own_descriptor(path)) is not None:
        if fd == 1:
            with contextlib.suppress(Exception):  # (what this process wrote goes first)
                sys.stdout.flush()
        with os.fdopen(os.dup(fd), "w", encoding="utf-8", newline="") as handle:
            yield handle
        return
    if is_special_output(path):
        with open(path, "w", encoding="utf-8", newline="") as handle:
            yield handle
        return
    with replaced_when_done(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        yield handle


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids (control characters, say)."""
    return _NOT_XML.sub("\ufffd", printable(text))


def junit_xml(
    results: Iterable[FileResult],
    failed_rules: dict[str, list[str]],
    *,
    seconds: float,
    changes: Changes | None = None,
) -> bytes:
    """JUnit XML: a testcase per file (classname: its folder, name: its file name);
    a rule violation is a ``failure``, a file that could not be analyzed an ``error``.
    With ``changes`` (``--fail-on-change``), a file new, moved or relabeled
    since the baseline is a ``failure`` too, and one removed a testcase that fails."""
    import xml.etree.ElementTree as ET

    results = list(results)
    notes = changes.notes() if changes else {}
    removed = changes.removed if changes else []
    suite = ET.Element(
        "testsuite",
        name="harken scan",
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"),
        time=f"{seconds:.3f}",
        skipped="0",
    )
    failures = errors = 0

    def testcase(path: str, seconds: float) -> ET.Element:
        path = xml_text(path)
        # The folder as it is: with its slashes turned into dots, a/b.c/d.wav and
        # a/b/c/d.wav would be one test to a CI server.
        folder = os.path.dirname(path) or "."
        return ET.SubElement(
            suite,
            "testcase",
            classname=folder,
            name=os.path.basename(path),
            file=path,
            time=f"{seconds:.3f}",
        )

    for result in results:
        case = testcase(result.path, result.seconds)
        note = notes.get(printable(result.path))
        if result.error is not None:
            errors += 1
            element = ET.SubElement(
                case,
                "error",
                type=result.error.kind,
                message=f"{result.status}: {result.error.kind}" + (f"; {note}" if note else ""),
            )
            element.text = xml_text(result.error.message)
        elif failed_rules.get(result.path) or note:
            failures += 1
            rules = failed_rules.get(result.path, [])
            reasons = (["failed: " + "; ".join(rules)] if rules else []) + ([note] if note else [])
            element = ET.SubElement(
                case,
                "failure",
                type="rule" if rules else "baseline",
                message=xml_text("; ".join(reasons)),
            )
            # The record without its windows and segments: a 2 h file's would be 1 MB.
            data = {k: v for k, v in record(result).items() if k not in ("windows", "segments")}
            element.text = xml_text(json.dumps(data, sort_keys=True, ensure_ascii=False))
    for path in removed:  # in the baseline, gone now
        failures += 1
        ET.SubElement(
            testcase(path, 0.0), "failure", type="baseline", message="removed since the baseline"
        )
    tests = len(results) + len(removed)
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    root = ET.Element(
        "testsuites",
        name="harken",
        tests=str(tests),
        failures=str(failures),
        errors=str(errors),
        time=f"{seconds:.3f}",
    )
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(
    results: Iterable[FileResult],
    failed_rules: dict[str, list[str]],
    path: str,
    *,
    seconds: float,
    changes: Changes | None = None,
) -> None:
    """Write the JUnit report to ``path`` atomically (``junit_xml``'s arguments)."""
    data = junit_xml(results, failed_rules, seconds=seconds, changes=changes).decode("utf-8")
    with atomic_output(path) as handle:
        handle.write(data)


def write_file(
    results: Iterable[FileResult],
    fmt: str,
    path: str,
    *,
    segments: bool = False,
    columns: tuple[Sequence[str], Sequence[str]] = ((), ()),
) -> None:
    """Write results to ``path`` atomically (``write``'s arguments)."""
    with atomic_output(path) as handle:
        write(results, fmt, handle, segments=segments, columns=columns)


def label_file_names(results: Iterable[FileResult], limit: int = 255) -> dict[str, str]:
    """``path -> label file name`` for the results with a timeline.

    The name is the audio file's name as ``displayed`` (a newline as
    ``\\x0a``) plus ``.txt`` (``talk.wav.txt``); when several files would
    get one name (files of one name in different folders, or names that
    print alike, or that differ only in case or Unicode form), each of them
    gets the start of a hash of its path too (``talk.wav.3fa4c2d1.txt``), so
    no track overwrites another. A name longer than ``limit`` bytes (the
    folder's ``NAME_MAX``) is cut short and gets the hash as well
    (``yyyy…yy.9b0c51e2.txt``, ``limit`` bytes at most), so two long names
    that start alike still get tracks of their own.
    """
    import hashlib
    from collections import Counter

    with_line = [r for r in results if r.timeline is not None]
    bases = {r.path: displayed(os.path.basename(r.path)) for r in with_line}
    # Names one file system may take for one: é as one character or two
    # (macOS), and letters in another case (macOS, Windows).
    alike = {base: unicodedata.normalize("NFC", base).casefold() for base in bases.values()}
    counts = Counter(alike[base] for base in bases.values())
    names = {}
    for path, base in bases.items():
        name = f"{base}.txt"
        if counts[alike[base]] > 1 or len(os.fsencode(name)) > limit:
            tag = hashlib.blake2b(os.fsencode(path), digest_size=4).hexdigest()
            start = cut_to_bytes(base, limit - len(f".{tag}.txt"))
            name = f"{start}.{tag}.txt" if start else f"{tag}.txt"
        names[path] = name
    return names


def write_labels(results: Iterable[FileResult], folder: str) -> list[str]:
    """Write an Audacity label track per file with a timeline into ``folder``
    (created if needed), atomically; returns the paths written."""
    from analyzer.segments import audacity_labels

    results = list(results)
    os.makedirs(folder, exist_ok=True)
    names = label_file_names(results, name_max(folder))
    written = []
    for result in results:
        name = names.get(result.path)
        if name is None or result.timeline is None:
            continue
        target = os.path.join(folder, name)
        with atomic_output(target) as handle:
            handle.write(audacity_labels(result.timeline))
        written.append(target)
    return written
