"""Bad input never breaks a scan: every file gets exactly one row.

One folder holds good files next to every kind of bad input we could think
of: empty and damaged files, files whose content is not what their name
says, headers that lie, file-system oddities (links, loops, FIFOs, odd and
very long names) and audio at the edges of what is valid (tiny clips,
extreme rates, many channels, every PCM width). It is scanned once with
``harken scan DIR -j 2 -f jsonl`` (the real loky pool) and once with
``-j 1`` (in-process); each case then checks its own row: one row, the right
status, an error kind, a message that names the file; never a traceback and
never a lost row. A rerun over the warm cache must give the same rows.
A few inputs need a folder of their own (permission denied, a file deleted
after hashing, names holding Rich markup for ``-v``), and a Hypothesis test
mutates valid WAV, FLAC and OGG files and checks that
``analyzer.analyze_file`` always answers with a result.

Everything is real files written into temporary folders; nothing is mocked.
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import analyzer
from analyzer.analysis import Settings, Task, run_task
from analyzer.cache import hash_file
from analyzer.modelfile import resolve_model
from analyzer.writers import printable
from cli import main
from cli.scan import EXIT_ERRORS

from signals import chord, noise, tone, unprivileged, write

RNG_SEED = 20240611
#: A name that is not valid UTF-8 (the byte 0xff), as Python spells it.
NON_UTF8_NAME = os.fsdecode(b"bad\xff.wav")
NON_ASCII_NAME = "café ünï 音.wav"
#: Nested folder names, each under 255 bytes, for a path over 1000 characters.
LONG_FOLDERS = [f"{i}-" + "d" * 220 for i in range(5)]

Row = dict
Make = Callable[[Path], None]


# --- Builders: each writes one file (or link, or folder) at the path given ----------------


def rng(salt: int) -> np.random.Generator:
    return np.random.default_rng([RNG_SEED, salt])


def pcm16(signal: np.ndarray) -> bytes:
    return (np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes()


def wav_header(
    data_bytes: int,
    *,
    rate: int = 16000,
    channels: int = 1,
    bits: int = 16,
    format_tag: int = 1,
) -> bytes:
    """A canonical 44-byte RIFF/WAVE header; the sizes are whatever we claim."""
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, rate * align, align, bits)
    riff_size = min(36 + data_bytes, 0xFFFFFFFF)
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def raw(data: bytes) -> Make:
    def make(path: Path) -> None:
        path.write_bytes(data)

    return make


def audio(signal: np.ndarray, rate: int = 16000, **kwargs: object) -> Make:
    def make(path: Path) -> None:
        write(path, signal, rate, **kwargs)

    return make


def encoded(signal: np.ndarray, fmt: str, subtype: str | None = None, rate: int = 16000) -> bytes:
    """The bytes of ``signal`` written as a ``fmt`` file."""
    buffer = io.BytesIO()
    sf.write(buffer, signal, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def truncated(blob: bytes, fraction: float = 0.5) -> Make:
    return raw(blob[: int(len(blob) * fraction)])


def flac_claiming_frames(blob: bytes, frames: int) -> bytes:
    """A FLAC file whose STREAMINFO claims ``frames`` samples (36 bits) it does not hold."""
    data = bytearray(blob)
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO comes first
    info = 8  # STREAMINFO body: 2+2+3+3 bytes of sizes, then 20 bits rate, 3 channels, 5 bps
    data[info + 13] = (data[info + 13] & 0xF0) | ((frames >> 32) & 0x0F)
    data[info + 14 : info + 18] = struct.pack(">I", frames & 0xFFFFFFFF)
    return bytes(data)


def float_wav_with(value: float) -> Make:
    signal = tone(0.5)
    signal[1234] = value
    return audio(signal, subtype="FLOAT")


def symlink_to(target: str) -> Make:
    def make(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)

    return make


def fifo(path: Path) -> None:
    os.mkfifo(path)


GOOD_WAV = encoded(chord(1.0, seed=1), "WAV", "PCM_16")
GOOD_FLAC = encoded(chord(2.0, seed=2), "FLAC")
GOOD_AIFF = encoded(chord(1.0, seed=6), "AIFF", "PCM_16")
GOOD_AU = encoded(chord(1.0, seed=7), "AU", "PCM_16")
GOOD_RF64 = encoded(chord(1.0, seed=9), "RF64", "PCM_24")


def rf64_sample_count(blob: bytes, count: int) -> bytes:
    """An RF64 file whose ds64 chunk gives ``count`` as its frame count: only
    a hint, which some writers leave at 0; the data size is what counts."""
    data = bytearray(blob)
    at = data.index(b"ds64") + 8 + 16  # after riffSize and dataSize
    data[at : at + 8] = struct.pack("<Q", count)
    return bytes(data)


GOOD_W64 = encoded(chord(1.0, seed=10), "W64", "FLOAT")
GOOD_MP3 = encoded(chord(2.0, seed=8), "MP3")
SHORT_OGG = encoded(noise(1.0, seed=3), "OGG", "VORBIS")
LONG_OGG = encoded(noise(3.0, seed=4), "OGG", "VORBIS")
ONE_SECOND_PCM = pcm16(tone(1.0))
PNG_LIKE = (
    b"\x89PNG\r\n\x1a\n"
    + struct.pack(">I", 13)
    + b"IHDR"
    + struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    + rng(1).bytes(2000)
)


# --- The cases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One input under the scanned folder and what its row must say.

    ``kinds`` are the accepted error kinds (empty for ``status="ok"``);
    ``signal`` the signal facts an ``ok`` row must report.
    """

    id: str
    rel: str
    make: Make
    status: str
    kinds: frozenset[str] = frozenset()
    signal: dict[str, object] = field(default_factory=dict)
    note: str = ""


def ok(id: str, rel: str, make: Make, note: str = "", **signal: object) -> Case:
    return Case(id, rel, make, "ok", signal=signal, note=note)


def error(id: str, rel: str, make: Make, *kinds: str, note: str = "") -> Case:
    return Case(id, rel, make, "error", frozenset(kinds), note=note)


GOOD = [
    ok("good-wav", "good.wav", raw(GOOD_WAV), format="WAV", frames=16000),
    ok("good-flac", "good.flac", raw(GOOD_FLAC), format="FLAC", frames=32000),
    ok("good-ogg", "good.ogg", raw(LONG_OGG), format="OGG", subtype="VORBIS"),
]

DAMAGED = [
    error("empty-0-bytes", "damaged/empty.wav", raw(b""), "empty"),
    # The same bytes under a second name: a cached failure must name each file.
    error("empty-0-bytes-again", "damaged/empty-again.wav", raw(b""), "empty"),
    error("one-byte", "damaged/one-byte.wav", raw(b"R"), "unsupported"),
    error("header-only-wav", "damaged/header-only.wav", raw(wav_header(0)), "empty"),
    # libsndfile trims a PCM container's data to the bytes present and logs
    # what the header declared: the shortfall is the reason.
    error("truncated-wav", "damaged/truncated.wav", truncated(GOOD_WAV), "truncated"),
    error("truncated-aiff", "damaged/truncated.aiff", truncated(GOOD_AIFF), "truncated"),
    error("wav-missing-its-last-ms", "damaged/last-ms.wav", raw(GOOD_WAV[:-200]), "truncated"),
    error("truncated-au", "damaged/truncated.au", truncated(GOOD_AU), "truncated"),
    # 64-bit containers log the shortfall in other words (ds64 frames; W64's
    # data size against the frames it holds).
    error("truncated-rf64", "damaged/truncated-rf64.wav", truncated(GOOD_RF64), "truncated"),
    error("truncated-w64", "damaged/truncated.w64", truncated(GOOD_W64), "truncated"),
    # Nothing but the header: all it declares is missing.
    error("header-only-au", "damaged/header-only.au", raw(GOOD_AU[:24]), "truncated"),
    ok("good-rf64", "damaged/complete-rf64.wav", raw(GOOD_RF64), format="RF64", frames=16000),
    ok(
        "rf64-odd-sample-count",
        "damaged/rf64-sample-count.wav",
        raw(rf64_sample_count(GOOD_RF64, 32000)),
        note="ds64's frame count is a hint: the data size says the file is whole",
        format="RF64",
        frames=16000,
    ),
    error(
        "truncated-rf64-zero-sample-count",
        "damaged/truncated-rf64-no-count.wav",
        truncated(rf64_sample_count(GOOD_RF64, 0)),
        "truncated",
    ),
    ok("good-w64", "damaged/complete.w64", raw(GOOD_W64), format="W64", frames=16000),
    ok(
        "wav-missing-pad-byte",
        "damaged/missing-pad-byte.wav",
        raw(wav_header(len(ONE_SECOND_PCM) + 1) + ONE_SECOND_PCM),
        note="an odd data size whose pad byte is missing loses nothing",
        frames=16000,
    ),
    error("truncated-flac", "damaged/truncated.flac", truncated(GOOD_FLAC), "truncated"),
    error(
        "flac-cut-between-frames",
        "damaged/cut-between-frames.flac",
        raw(flac_claiming_frames(GOOD_FLAC, 48000)),  # what a cut at a frame's start leaves
        "truncated",
    ),
    error(
        "flac-damaged-in-the-middle",
        "damaged/damaged-middle.flac",
        raw(GOOD_FLAC[: len(GOOD_FLAC) // 2] + bytes(200) + GOOD_FLAC[len(GOOD_FLAC) // 2 + 200 :]),
        "corrupt",
    ),
    ok(
        "flac-with-an-id3v1-tag",
        "damaged/id3v1-tag.flac",
        raw(GOOD_FLAC + b"TAG" + bytes(125)),
        note="libFLAC stumbles on the tag after the last frame; every sample is there",
        format="FLAC",
        frames=32000,
    ),
    # The complete pages before the cut decode, but the last page (flagged
    # end-of-stream) is missing.
    error("truncated-ogg", "damaged/truncated.ogg", truncated(LONG_OGG), "truncated"),
    error(
        "truncated-short-ogg",
        "damaged/truncated-short.ogg",
        truncated(SHORT_OGG),
        # No complete audio page survives the cut: libsndfile sees 0 frames
        # (was kind empty), and the last page is missing.
        "truncated",
    ),
    # Its Xing frame counts the frames, so the shortfall shows.
    error("truncated-mp3", "damaged/truncated.mp3", truncated(GOOD_MP3), "truncated"),
    ok("good-mp3", "damaged/complete.mp3", raw(GOOD_MP3), format="MP3", frames=32000),
]

WRONG_CONTENT = [
    ok(
        "wav-named-mp3",
        "content/wav-inside.mp3",
        raw(GOOD_WAV),
        note="libsndfile sniffs the content, not the name: a WAV named .mp3 is a WAV",
        format="WAV",
        subtype="PCM_16",
        frames=16000,
    ),
    error("text-named-wav", "content/text.wav", raw(b"this is not audio\n" * 20), "unsupported"),
    error("png-named-flac", "content/image.flac", raw(PNG_LIKE), "unsupported"),
    error("random-named-ogg", "content/random.ogg", raw(rng(2).bytes(5000)), "unsupported"),
]

LYING_HEADERS = [
    # Sizes a writer that cannot seek back leaves in the header: not a promise.
    *(
        ok(
            f"wav-placeholder-{writer}",
            f"headers/placeholder-{writer}.wav",
            raw(wav_header(size) + ONE_SECOND_PCM),
            note=f"{size:#x} declared, one second there: the second decodes",
            frames=16000,
        )
        for writer, size in (
            ("streamed", 0xFFFFFFFF),
            ("near-4-gib", 0xFFFFFFF0),
            ("gstreamer", 0x7FFF0000),  # sox's: 0x7FFFF000 rounded down, 0x7F000008
        )
    ),
    ok(
        "flac-length-not-given",
        "headers/streamed.flac",
        raw(flac_claiming_frames(GOOD_FLAC, 0)),
        note="an encoder writing to a pipe leaves the total at 0: libsndfile says 2^63 - 1"
        " frames, which was too_long (5.76e+14 s)",
        format="FLAC",
        frames=32000,
    ),
    error(
        "flac-claims-huge-frames",
        "headers/huge-total-samples.flac",
        raw(flac_claiming_frames(GOOD_FLAC, 2**36 - 1)),
        "too_long",
    ),
    error(
        "wav-at-1-hz",
        "headers/one-hertz.wav",
        raw(wav_header(len(ONE_SECOND_PCM), rate=1) + ONE_SECOND_PCM),  # 16000 s declared
        "too_long",
    ),
    error(
        "wav-zero-frames-then-data",
        "headers/zero-frames.wav",
        raw(wav_header(0) + ONE_SECOND_PCM),
        "empty",
    ),
    error(
        "zero-frames-flac", "headers/zero-frames.flac", raw(encoded(np.zeros(0), "FLAC")), "empty"
    ),
    error("float-wav-nan", "headers/nan.wav", float_wav_with(float("nan")), "invalid_samples"),
    error("float-wav-inf", "headers/inf.wav", float_wav_with(float("inf")), "invalid_samples"),
    error("float-wav-absurd", "headers/absurd.wav", float_wav_with(1e30), "invalid_samples"),
    error(
        "unknown-format-tag",
        "headers/codec-0x1234.wav",
        raw(wav_header(len(ONE_SECOND_PCM), format_tag=0x1234) + ONE_SECOND_PCM),
        "unsupported",
    ),
    error(
        "zero-channels",
        "headers/zero-channels.wav",
        raw(wav_header(len(ONE_SECOND_PCM), channels=0) + ONE_SECOND_PCM),
        "unsupported",
        "corrupt",
    ),
    error("raw-pcm-named-wav", "headers/raw-pcm.wav", raw(ONE_SECOND_PCM), "unsupported"),
]

FILE_SYSTEM = [
    ok(
        "folder-named-wav-holding-a-file",
        "fs/folder.wav/inner.wav",
        raw(GOOD_WAV),
        note="a folder named x.wav is walked, not analyzed; its file gets the row",
    ),
    error("broken-symlink", "fs/broken-link.wav", symlink_to("no-such-target.wav"), "not_found"),
    error("self-symlink", "fs/self-loop.wav", symlink_to("self-loop.wav"), "unreadable"),
    ok("symlink-to-good-file", "fs/link-to-good.wav", symlink_to("../good.wav"), frames=16000),
    error("fifo", "fs/fifo.wav", fifo, "not_a_file"),
    error("symlink-to-dev-zero", "fs/dev-zero.wav", symlink_to("/dev/zero"), "not_a_file"),
    ok("newline-in-name", "fs/new\nline.wav", raw(GOOD_WAV), frames=16000),
    ok(
        "non-utf8-name",
        f"fs/{NON_UTF8_NAME}",
        raw(encoded(chord(1.0, seed=21), "WAV")),  # content of its own: no cache hit hides it
        frames=16000,
    ),
    ok("non-ascii-name", f"fs/{NON_ASCII_NAME}", raw(GOOD_WAV), frames=16000),
    ok(
        "very-long-path",
        "/".join(["fs", *LONG_FOLDERS, "long.wav"]),
        raw(encoded(chord(1.0, seed=22), "WAV")),
        frames=16000,
    ),
]

EXTREME = [
    ok("50-samples", "extreme/fifty-samples.wav", audio(tone(1.0)[:50]), frames=50),
    ok("1-sample", "extreme/one-sample.wav", audio(tone(1.0)[:1]), frames=1),
    *(
        ok(
            f"rate-{rate}",
            f"extreme/rate-{rate}.wav",
            audio(chord(0.25, rate=rate, seed=rate), rate),
            sample_rate=rate,
            channels=1,
            frames=int(0.25 * rate),
        )
        for rate in (8000, 11025, 22050, 44100, 48000, 96000, 192000, 384000)
    ),
    *(
        ok(
            f"channels-{n}",
            f"extreme/channels-{n}.wav",
            audio(np.stack([chord(0.5, seed=10 + c) for c in range(n)], axis=1)),
            channels=n,
            sample_rate=16000,
            frames=8000,
        )
        for n in range(1, 9)
    ),
    *(
        ok(
            f"subtype-{subtype}",
            f"extreme/subtype-{subtype}.wav",
            audio(chord(0.5, seed=5), subtype=subtype),
            subtype=subtype,
            format="WAV",
            frames=8000,
        )
        for subtype in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")
    ),
]

CASES = GOOD + DAMAGED + WRONG_CONTENT + LYING_HEADERS + FILE_SYSTEM + EXTREME
assert len({c.rel for c in CASES}) == len({c.id for c in CASES}) == len(CASES)


def build_tree(root: Path) -> None:
    """Every case under ``root``, plus folders that must give no row at all."""
    for case in CASES:
        path = root / case.rel
        path.parent.mkdir(parents=True, exist_ok=True)
        case.make(path)
    (root / "fs" / "empty-folder.wav").mkdir()  # a folder, walked: nothing in it
    os.symlink("..", root / "fs" / "loop")  # back to root: must not be walked twice
    os.symlink(".", root / "fs" / "self")


# --- Running the CLI ----------------------------------------------------------------------


@dataclass(frozen=True)
class Scan:
    code: int
    rows: list[Row]
    stderr: str

    def row(self, path: str) -> Row:
        found = [r for r in self.rows if r["path"] == printable(path)]
        assert len(found) == 1, f"{len(found)} rows for {printable(path)!r}"
        return found[0]


def run_scan(*args: str) -> Scan:
    result = CliRunner().invoke(main, ["scan", *args, "-f", "jsonl"], catch_exceptions=False)
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    return Scan(result.exit_code, rows, result.stderr)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad-input") / "in"
    root.mkdir()
    build_tree(root)
    return root


MODES = {
    "j2": ("-j", "2"),
    "j1": ("-j", "1"),
}


@pytest.fixture(scope="module")
def scans(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Scan]:
    """``scans(mode)``: the scan of ``tree`` in that mode, run once per module.

    Each mode gets its own cache folder (passed explicitly: the autouse
    fixture that isolates the cache is per test, this is per module);
    ``j2-cached`` reruns ``j2`` over its warm cache.
    """
    done: dict[str, Scan] = {}
    caches = {"j2": tmp_path_factory.mktemp("cache-j2"), "j1": tmp_path_factory.mktemp("cache-j1")}

    def get(mode: str) -> Scan:
        if mode not in done:
            base = mode.removesuffix("-cached")
            if mode != base:
                get(base)
            done[mode] = run_scan(str(tree), *MODES[base], "--cache-dir", str(caches[base]), "-q")
        return done[mode]

    return get


def case_path(tree: Path, case: Case) -> str:
    return os.path.join(str(tree), case.rel)


def expected_paths(tree: Path) -> list[str]:
    return [printable(case_path(tree, case)) for case in CASES]


# --- Tests: the scan as a whole -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["j2", "j1", "j2-cached"])
def test_every_input_gets_exactly_one_row(
    tree: Path, scans: Callable[[str], Scan], mode: str
) -> None:
    result = scans(mode)
    assert result.code == EXIT_ERRORS, result.stderr
    paths = [r["path"] for r in result.rows]
    assert len(paths) == len(set(paths)), "a file got two rows"
    assert sorted(paths) == sorted(expected_paths(tree))
    # Folders give no row: the empty one named like audio, and the loops back up.
    assert not any("empty-folder.wav" in p for p in paths)
    assert not any("/loop/" in p or "/self/" in p for p in paths)
    for row in result.rows:
        assert row["status"] in {"ok", "error"}, row
        if row["status"] == "ok":
            assert row["error"] is None and row["label"] is not None
        else:
            assert row["error"]["kind"] and row["label"] is None
            assert row["path"] in row["error"]["message"], row
    assert sum(r["status"] == "ok" for r in result.rows) >= len(GOOD + EXTREME)


def test_rows_come_in_discovery_order_whatever_the_jobs(scans: Callable[[str], Scan]) -> None:
    j2, j1 = scans("j2"), scans("j1")
    assert [r["path"] for r in j2.rows] == [r["path"] for r in j1.rows]


def test_rerun_from_the_cache_gives_the_same_rows(scans: Callable[[str], Scan]) -> None:
    def essence(rows: list[Row]) -> list[tuple]:
        return [
            (r["path"], r["status"], r["label"], r["signal"], r["error"] and r["error"]["kind"])
            for r in rows
        ]

    assert essence(scans("j2-cached").rows) == essence(scans("j2").rows)


# --- Tests: each case ---------------------------------------------------------------------


def as_param(case: Case) -> object:
    return pytest.param(case, id=case.id)


def check_row(row: Row, case: Case) -> None:
    assert row["status"] == case.status, row
    if case.status == "ok":
        assert row["error"] is None
        assert row["label"] is not None and row["confidence"] is not None
        facts = row["signal"]
        assert facts is not None and facts["frames"] > 0 and facts["duration"] > 0
        for key, value in case.signal.items():
            assert facts[key] == value, (key, facts)
    else:
        assert row["label"] is None
        kind, message = row["error"]["kind"], row["error"]["message"]
        assert kind in case.kinds, row["error"]
        assert row["path"] in message, "the message must name the file"


@pytest.mark.parametrize("mode", ["j2", "j1"])
@pytest.mark.parametrize("case", [as_param(c) for c in CASES])
def test_case_row(tree: Path, scans: Callable[[str], Scan], case: Case, mode: str) -> None:
    result = scans(mode)
    check_row(result.row(case_path(tree, case)), case)


def test_non_utf8_name_is_shown_with_a_replacement_character(
    tree: Path, scans: Callable[[str], Scan]
) -> None:
    row = scans("j2").row(str(tree / "fs" / NON_UTF8_NAME))
    assert row["path"].endswith("/fs/bad\ufffd.wav")
    row = scans("j2").row(str(tree / "fs" / NON_ASCII_NAME))
    assert row["path"].endswith("/fs/café ünï 音.wav")


def test_the_long_path_is_long(tree: Path) -> None:
    path = os.path.join(str(tree), "fs", *LONG_FOLDERS, "long.wav")
    assert len(path) > 1000 and all(len(name) < 255 for name in LONG_FOLDERS)
    assert os.path.isfile(path)


def test_specific_messages(tree: Path, scans: Callable[[str], Scan]) -> None:
    result = scans("j2")
    row = result.row(str(tree / "fs" / "broken-link.wav"))
    assert "broken symbolic link" in row["error"]["message"]
    row = result.row(str(tree / "headers" / "huge-total-samples.flac"))
    assert "--max-duration" in row["error"]["message"]
    row = result.row(str(tree / "fs" / "fifo.wav"))
    assert "not a regular file" in row["error"]["message"]
    row = result.row(str(tree / "damaged" / "truncated.wav"))
    assert "declares 1.00 s of audio, it holds 0.50 s" in row["error"]["message"]
    row = result.row(str(tree / "damaged" / "last-ms.wav"))
    assert "declares 1.0000 s of audio, it holds 0.9938 s" in row["error"]["message"]
    row = result.row(str(tree / "damaged" / "cut-between-frames.flac"))
    assert "declares 3.00 s of audio, it holds 2.00 s" in row["error"]["message"]
    row = result.row(str(tree / "damaged" / "damaged-middle.flac"))
    assert "decoding failed after 0.77 s" in row["error"]["message"]


# --- Tests: outside the shared folder -----------------------------------------------------


@pytest.mark.parametrize("jobs", ["2", "1"])
def test_what_harken_may_not_read_gets_its_row_and_the_batch_goes_on(
    tmp_path: Path, jobs: str
) -> None:
    root = tmp_path / "locked"
    write(root / "good.wav", chord(1.0))
    denied = write(root / "denied.wav", chord(1.0, seed=9))
    write(root / "closed" / "inside.wav", chord(1.0, seed=10))
    denied.chmod(0)
    (root / "closed").chmod(0)
    try:
        harken = [*unprivileged(), sys.executable, "-c", "from cli import main; main()", "scan"]
        options = ["-j", jobs, "--cache-dir", str(tmp_path / "cache")]
        # Named on the command line (click refused it, and nothing was
        # scanned), and found in a folder; a folder it may not list.
        paths = [str(denied), str(root)]
        done = subprocess.run(
            [*harken, *paths, *options, "-f", "jsonl"], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == EXIT_ERRORS, done.stderr
        rows = {row["path"]: row for row in map(json.loads, done.stdout.splitlines())}
        assert sorted(rows) == sorted([str(denied), str(root / "closed"), str(root / "good.wav")])
        assert rows[str(root / "good.wav")]["status"] == "ok"
        for path in (denied, root / "closed"):
            row = rows[str(path)]
            assert row["status"] == "error" and row["error"]["kind"] == "permission"
            assert str(path) in row["error"]["message"]
        dry = subprocess.run(
            [*harken, *paths, *options, "--dry-run"], capture_output=True, text=True, timeout=120
        )
        listed = dict(line.split("\t")[::-1] for line in dry.stdout.splitlines())
        assert listed[str(denied)] == listed[str(root / "closed")] == "permission"  # as the scan
        (root / "link").symlink_to(root / "closed")  # the same folder: one row
        for exclude in ("closed", "closed/*"):  # the folder, or what it holds
            excluded = subprocess.run(
                [*harken, str(root), *options, "--dry-run", "--exclude", exclude],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert str(root / "closed") not in excluded.stdout
            assert str(root / "good.wav") in excluded.stdout
        again = subprocess.run(
            [*harken, str(root), *options, "--dry-run"], capture_output=True, text=True, timeout=120
        )
        assert again.stdout.count("permission") == 2  # denied.wav, and closed once
    finally:
        denied.chmod(stat.S_IRUSR | stat.S_IWUSR)
        (root / "closed").chmod(stat.S_IRWXU)


def test_folder_named_like_audio_via_analyze_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    result = analyzer.analyze_file(folder)
    assert result.status == "error" and result.error is not None
    assert result.error.kind == "not_a_file" and str(folder) in result.error.message


def test_file_deleted_after_hashing_is_not_found(tmp_path: Path) -> None:
    path = write(tmp_path / "gone.wav", chord(1.0))
    digest = hash_file(str(path))
    st_ = path.stat()
    path.unlink()
    task = Task(0, str(path), digest, size=st_.st_size, mtime_ns=st_.st_mtime_ns)
    result = run_task(task, Settings(resolve_model())).result
    assert result.status == "error" and result.error is not None
    assert result.error.kind == "not_found" and str(path) in result.error.message
    assert result.content_hash == digest


def test_a_failure_caused_by_the_name_is_not_cached_with_the_content(tmp_path: Path) -> None:
    root = tmp_path / "renamed"
    root.mkdir()
    odd = root / NON_UTF8_NAME
    odd.write_bytes(encoded(chord(1.0, seed=31), "WAV"))
    run_scan(str(root), "-j", "1")
    plain = odd.rename(root / "plain.wav")
    result = run_scan(str(root), "-j", "1")
    assert result.row(str(plain))["status"] == "ok", result.row(str(plain))["error"]


def test_verbose_lines_survive_markup_in_names(tmp_path: Path) -> None:
    root = tmp_path / "markup"
    (root / "[").mkdir(parents=True)
    (root / "[" / "oops].wav").write_bytes(GOOD_WAV)  # the path holds "[/oops]"
    result = CliRunner().invoke(main, ["scan", str(root), "-j", "1", "-v", "-f", "jsonl"])
    assert result.exception is None and result.exit_code == 0, repr(result.exception)
    assert len(result.stdout.splitlines()) == 1


def test_verbose_lines_show_names_literally(tmp_path: Path) -> None:
    root = tmp_path / "markup"
    (root / "[bold]loud.wav").parent.mkdir(parents=True)
    (root / "[bold]loud.wav").write_bytes(GOOD_WAV)
    result = CliRunner().invoke(main, ["scan", str(root), "-j", "1", "-v", "-f", "jsonl"])
    assert result.exit_code == 0
    assert "[bold]loud.wav: " in result.stderr


# --- Hypothesis: mutated files never raise ------------------------------------------------


@cache
def seed_file(fmt: str) -> bytes:
    """A small valid file of each format to mutate.

    The Ogg file is longer: its Vorbis headers alone take about 3 kB, and
    mutations should land in audio pages too.
    """
    if fmt == "WAV":
        return encoded(chord(0.3, rate=8000, seed=7), "WAV", "PCM_16", rate=8000)
    if fmt == "FLAC":
        return encoded(chord(1.0, rate=8000, seed=7), "FLAC", rate=8000)
    return encoded(chord(3.0, rate=8000, seed=7), "OGG", "VORBIS", rate=8000)


def mutate(data: st.DataObject, blob: bytes) -> bytes:
    """Flip, insert or delete bytes, or truncate; a quarter of the edits hit the header."""
    buf = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]), label="op")
        top = len(buf) if data.draw(st.integers(0, 3), label="region") else min(len(buf), 64)
        where = data.draw(st.integers(0, 2**32 - 1), label="at") % (top + 1)  # not small-biased
        if op == "flip" and where < len(buf):
            buf[where] ^= data.draw(st.integers(1, 255), label="xor")
        elif op == "insert":
            buf[where:where] = data.draw(st.binary(min_size=1, max_size=16), label="bytes")
        elif op == "delete":
            del buf[where : where + data.draw(st.integers(1, 64), label="length")]
        elif op == "truncate":
            del buf[where:]
    return bytes(buf)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one file, rewritten
)
@given(data=st.data())
def test_mutated_files_never_raise(tmp_path: Path, fmt: str, data: st.DataObject) -> None:
    path = tmp_path / f"mutated.{fmt.lower()}"
    path.write_bytes(mutate(data, seed_file(fmt)))
    result = analyzer.analyze_file(path)
    assert isinstance(result, analyzer.FileResult)
    assert result.status in {"ok", "error"}
    if result.status == "ok":
        assert result.error is None and result.prediction is not None
        assert result.facts is not None and result.facts.frames > 0
    else:
        assert result.error is not None and result.error.kind
        assert result.error.kind != "internal", result.error.message
        assert str(path) in result.error.message


def test_a_folder_that_fails_to_list_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Discovery gives the scan a folder it could not list; its row said "is a
    directory, not an audio file" for an I/O error."""
    import errno

    from analyzer.scan import precheck

    broken = tmp_path / "broken"
    broken.mkdir()
    listing = os.scandir

    def failing(path: object = ".") -> object:
        if str(path) == str(broken):
            raise OSError(errno.EIO, "Input/output error", str(broken))
        return listing(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", failing)
    _, row = precheck(str(broken))
    assert row is not None and row.error is not None
    assert row.error.kind == "unreadable"
    assert row.error.message == f"{broken}: a folder harken cannot list: Input/output error"
