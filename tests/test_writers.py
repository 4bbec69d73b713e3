"""analyzer.writers: json, jsonl and csv output, written atomically."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from analyzer import writers
from analyzer.results import (
    ErrorInfo,
    FileResult,
    Prediction,
    Segment,
    SignalFacts,
    Timeline,
    error_result,
)

BAD_NAME = "bad\udcff.wav"  # the byte 0xff of a non-UTF-8 file name, as os.fsdecode gives it


def facts(**changes: Any) -> SignalFacts:
    values: dict[str, Any] = dict(
        duration=2.5,
        sample_rate=44100,
        channels=2,
        frames=110250,
        format="WAV",
        subtype="PCM_16",
        peak_dbfs=-3.2,
        rms_dbfs=-18.5,
        clipping=0.0,
        silence=0.1,
        dc_offset=0.0001,
    )
    values.update(changes)
    return SignalFacts(**values)


def ok(path: str, label: str = "music", **probabilities: float) -> FileResult:
    probs = probabilities or {"music": 0.7, "speech": 0.2, "noise": 0.1}
    return FileResult(
        path=path,
        status="ok",
        facts=facts(),
        prediction=Prediction(
            label=label,
            confidence=max(probs.values()),
            probabilities=probs,
            votes={"svm": label, "forest": label, "logreg": "speech"},
            agreement=2,
        ),
        model="default-1",
        content_hash="ab" * 20,
        seconds=0.25,
    )


def failed(path: str) -> FileResult:
    return error_result(
        path,
        "unsupported",
        f"{path}: not a readable audio file",
        model="default-1",
        content_hash="cd" * 20,
        seconds=0.01,
    )


RESULTS = [
    ok("b/song.wav"),
    failed("a/text.wav"),
    ok("c/talk.flac", label="speech", speech=0.9, music=0.05, noise=0.05),
]


def render(results: list[FileResult], fmt: str) -> str:
    stream = io.StringIO()
    writers.write(results, fmt, stream)
    return stream.getvalue()


def keys_in_order(text: str) -> list[list[str]]:
    """Every JSON object's keys, in the order they appear in ``text``."""
    seen: list[list[str]] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen.append([k for k, _ in pairs])
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return seen


# --- json ---------------------------------------------------------------------------------


def test_json_is_a_list_of_records_in_the_given_order() -> None:
    data = json.loads(render(RESULTS, "json"))
    assert isinstance(data, list)
    assert [d["path"] for d in data] == ["b/song.wav", "a/text.wav", "c/talk.flac"]
    assert data == [r.to_dict() for r in RESULTS]


def test_json_keys_are_sorted_at_every_level() -> None:
    objects = keys_in_order(render(RESULTS, "json"))
    assert len(objects) > len(RESULTS)  # nested signal/probabilities/votes/error were checked
    for keys in objects:
        assert keys == sorted(keys)


def test_json_records_read_back_as_results() -> None:
    data = json.loads(render(RESULTS, "json"))
    assert [FileResult.from_dict(d) for d in data] == RESULTS


def test_json_of_no_results_is_an_empty_list() -> None:
    assert json.loads(render([], "json")) == []


def test_json_output_is_byte_stable() -> None:
    assert render(RESULTS, "json") == render(list(RESULTS), "json")


# --- jsonl --------------------------------------------------------------------------------


def test_jsonl_is_one_object_per_line() -> None:
    text = render(RESULTS, "jsonl")
    assert text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) == len(RESULTS)
    for line, result in zip(lines, RESULTS, strict=True):
        obj = json.loads(line)
        assert isinstance(obj, dict)
        assert obj == result.to_dict()
        for keys in keys_in_order(line):
            assert keys == sorted(keys)


def test_jsonl_error_record() -> None:
    obj = json.loads(render([failed("x.wav")], "jsonl"))
    assert obj["status"] == "error"
    assert obj["label"] is None
    assert obj["error"] == {"kind": "unsupported", "message": "x.wav: not a readable audio file"}


def test_jsonl_of_no_results_is_empty() -> None:
    assert render([], "jsonl") == ""


def test_write_accepts_a_generator() -> None:
    text = render((r for r in RESULTS), "jsonl")  # type: ignore[arg-type]
    assert len(text.splitlines()) == len(RESULTS)


# --- csv ----------------------------------------------------------------------------------


def test_csv_has_a_header_and_one_row_per_result() -> None:
    text = render(RESULTS, "csv")
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    assert header == [
        *writers.CSV_FIELDS,
        "p_music",
        "p_noise",
        "p_speech",
        "vote_forest",
        "vote_logreg",
        "vote_svm",
    ]
    assert len(body) == len(RESULTS)
    assert all(len(row) == len(header) for row in body)


def test_csv_values() -> None:
    rows = list(csv.DictReader(io.StringIO(render(RESULTS, "csv"))))
    song, text, talk = rows
    assert song["path"] == "b/song.wav"
    assert song["status"] == "ok"
    assert song["label"] == "music"
    assert float(song["confidence"]) == pytest.approx(0.7)
    assert float(song["p_music"]) == pytest.approx(0.7)
    assert float(song["p_speech"]) == pytest.approx(0.2)
    assert song["vote_logreg"] == "speech"
    assert song["agreement"] == "2"
    assert song["members"] == "3"
    assert song["sample_rate"] == "44100"
    assert float(song["peak_dbfs"]) == pytest.approx(-3.2)
    assert song["error_kind"] == song["error_message"] == ""
    assert text["status"] == "error"
    assert text["label"] == text["p_music"] == text["vote_svm"] == text["duration"] == ""
    assert text["error_kind"] == "unsupported"
    assert text["error_message"] == "a/text.wav: not a readable audio file"
    assert float(talk["p_speech"]) == pytest.approx(0.9)


def test_csv_probability_columns_are_the_union_of_classes() -> None:
    one = ok("one.wav", label="bird", bird=0.6, car=0.4)
    two = ok("two.wav", label="rain", rain=1.0)
    rows = list(csv.DictReader(io.StringIO(render([one, two], "csv"))))
    assert [c for c in rows[0] if c.startswith("p_")] == ["p_bird", "p_car", "p_rain"]
    assert rows[0]["p_rain"] == ""
    assert rows[1]["p_bird"] == ""
    assert float(rows[1]["p_rain"]) == 1.0


def test_csv_of_errors_only_has_no_probability_columns() -> None:
    rows = list(csv.reader(io.StringIO(render([failed("x.wav")], "csv"))))
    assert rows[0] == writers.CSV_FIELDS
    assert len(rows) == 2


def test_csv_quotes_awkward_paths() -> None:
    path = 'a, "quoted"\nname.wav'
    rows = list(csv.DictReader(io.StringIO(render([failed(path)], "csv"))))
    assert rows[0]["path"] == path


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="xml"):
        render(RESULTS, "xml")


# --- atomic output ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_write_file_writes_the_same_as_write(tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"out.{fmt}"
    writers.write_file(RESULTS, fmt, str(target))
    assert target.read_bytes() == render(RESULTS, fmt).encode("utf-8")
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == [target.name]


def test_atomic_output_replaces_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    with writers.atomic_output(str(target)) as handle:
        handle.write("new\n")
        assert target.read_text() == "old\n"  # nothing visible until the block ends
    assert target.read_text() == "new\n"


def test_atomic_output_leaves_the_old_file_intact_when_the_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("[]\n")
    with pytest.raises(RuntimeError, match="halfway"), writers.atomic_output(str(target)) as h:
        h.write('[{"path": "half')
        raise RuntimeError("halfway")
    assert target.read_text() == "[]\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["out.json"]


def test_atomic_output_creates_nothing_when_the_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "new.jsonl"
    with pytest.raises(KeyboardInterrupt), writers.atomic_output(str(target)) as handle:
        handle.write("x")
        raise KeyboardInterrupt
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == []


def test_write_file_with_an_unknown_format_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.xml"
    target.write_text("keep me")
    with pytest.raises(ValueError):
        writers.write_file(RESULTS, "xml", str(target))
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["out.xml"]


def test_write_file_to_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    writers.write_file(RESULTS, "jsonl", "rel.jsonl")
    assert len((tmp_path / "rel.jsonl").read_text().splitlines()) == len(RESULTS)


def test_atomic_output_through_a_symlink_replaces_its_target(tmp_path: Path) -> None:
    target = tmp_path / "real.jsonl"
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    with writers.atomic_output(str(link)) as handle:
        handle.write("new\n")
    assert link.is_symlink() and target.read_text() == "new\n"


def test_atomic_output_writes_into_a_fifo_instead_of_replacing_it(tmp_path: Path) -> None:
    """A pipe (or a device such as /dev/stdout) is written to, never renamed over."""
    import threading

    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    received: list[str] = []
    # A daemon: were the FIFO renamed over, the reader would wait forever.
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    with writers.atomic_output(str(fifo)) as handle:
        handle.write("through the pipe\n")
    reader.join(timeout=10)
    assert received == ["through the pipe\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_atomic_output_keeps_the_permissions_of_the_file_it_replaces(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("[]\n")
    os.chmod(target, 0o644)
    writers.write_file(RESULTS, "json", str(target))
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644


# --- non-UTF-8 file names -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_a_non_utf8_path_is_written_as_valid_utf8(tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"out.{fmt}"
    writers.write_file([ok(BAD_NAME), ok("fine.wav")], fmt, str(target))
    raw = target.read_bytes()
    text = raw.decode("utf-8")  # strict: raises if the bytes are not UTF-8
    assert "bad\ufffd.wav" in text
    assert "fine.wav" in text


def test_printable_replaces_only_the_bad_bytes() -> None:
    assert writers.printable(BAD_NAME) == "bad\ufffd.wav"
    assert writers.printable("café/ünï.wav") == "café/ünï.wav"


def test_dumps_of_a_non_utf8_path_encodes() -> None:
    line = writers.dumps(ok(BAD_NAME))
    line.encode("utf-8")
    assert json.loads(line)["path"] == "bad\ufffd.wav"


def test_unicode_paths_are_written_as_they_are(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    writers.write_file([ok("música/日本.wav")], "jsonl", str(target))
    raw = target.read_bytes()
    assert "música/日本.wav".encode() in raw  # not \u-escaped
    assert json.loads(raw)["path"] == "música/日本.wav"


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_an_error_row_for_a_non_utf8_path_is_written_as_valid_utf8(
    tmp_path: Path, fmt: str
) -> None:
    target = tmp_path / f"out.{fmt}"
    result = FileResult(
        path=BAD_NAME, status="error", error=ErrorInfo("not_found", f"{BAD_NAME}: no such file")
    )
    writers.write_file([result], fmt, str(target))
    text = target.read_bytes().decode("utf-8")
    assert "bad\ufffd.wav: no such file" in text


# --- file names near NAME_MAX (255 bytes a name on Linux) -----------------------------------


def timed(path: str) -> FileResult:
    """A result with a one-segment timeline, as ``--segments`` gives."""
    line = Timeline(
        window=1.0,
        hop=0.5,
        smoothing=0.1,
        segments=(Segment(0.0, 3.0, "music", 0.9),),
        windows=(),
        fractions={"music": 1.0},
    )
    return dataclasses.replace(ok(path), timeline=line)


def size(name: str) -> int:
    """A file name's length as the file system counts it: bytes."""
    return len(os.fsencode(name))


def tag(path: str) -> str:
    return hashlib.blake2b(os.fsencode(path), digest_size=4).hexdigest()


def test_a_label_track_name_of_255_bytes_is_kept() -> None:
    base = "y" * 247 + ".wav"  # + ".txt": 255 bytes
    assert writers.label_file_names([timed(f"in/{base}")]) == {f"in/{base}": f"{base}.txt"}


def test_a_label_track_name_has_no_control_characters() -> None:
    # 'a\nb.wav' got a track named 'a\nb.wav.txt': a name that breaks every listing
    paths = ["in/a\nb.wav", "in/a\\x0ab.wav"]  # the second prints like the first
    names = writers.label_file_names([timed(p) for p in paths])
    assert names == {p: f"a\\x0ab.wav.{tag(p)}.txt" for p in paths}
    assert writers.label_file_names([timed(paths[0])]) == {paths[0]: "a\\x0ab.wav.txt"}


def test_label_track_names_one_file_system_takes_for_one_are_tagged() -> None:
    # café as one character and as two (macOS), Talk and talk (macOS, Windows)
    paths = ["a/caf\u00e9.wav", "b/cafe\u0301.wav", "a/Talk.wav", "b/talk.wav", "c/x.wav"]
    names = writers.label_file_names([timed(p) for p in paths])
    assert names["c/x.wav"] == "x.wav.txt"
    assert all(names[p] == f"{os.path.basename(p)}.{tag(p)}.txt" for p in paths[:4])


def test_a_label_track_name_beyond_255_bytes_is_cut_and_tagged() -> None:
    path = "in/" + "y" * 248 + ".wav"  # + ".txt": 256 bytes
    name = writers.label_file_names([timed(path)])[path]
    assert name == "y" * 242 + f".{tag(path)}.txt"
    assert size(name) == 255
    assert writers.label_file_names([timed(path)]) == {path: name}  # the same every time


def test_long_label_track_names_that_start_alike_stay_apart() -> None:
    paths = ["in/" + "y" * 300 + "a.wav", "in/" + "y" * 300 + "b.wav", "on/" + "y" * 300 + "a.wav"]
    names = writers.label_file_names([timed(p) for p in paths])
    assert len(set(names.values())) == 3
    for path, name in names.items():
        assert name == "y" * 242 + f".{tag(path)}.txt"


@pytest.mark.parametrize("char", ["é", "音", "\U0001f3b5"], ids=["2-byte", "3-byte", "4-byte"])
def test_a_long_multibyte_label_track_name_is_cut_between_characters(char: str) -> None:
    path = "in/" + char * 130 + ".wav"  # 264 bytes and more
    name = writers.label_file_names([timed(path)])[path]
    assert size(name) <= 255
    os.fsencode(name).decode("utf-8")  # strict: no character cut in two
    kept = 242 // len(char.encode("utf-8"))  # as many whole characters as fit
    assert name == char * kept + f".{tag(path)}.txt"


def test_a_long_non_utf8_label_track_name_is_cut_to_255_bytes() -> None:
    path = os.fsdecode(b"in/" + b"\xff" * 200 + b".wav")  # each byte prints as 3: U+FFFD
    name = writers.label_file_names([timed(path)])[path]
    assert name == "\ufffd" * 80 + f".{tag(path)}.txt"
    assert size(name) <= 255


def test_label_track_names_of_one_name_too_long_get_one_tag_each() -> None:
    paths = ["a/" + "y" * 260 + ".wav", "b/" + "y" * 260 + ".wav"]
    names = writers.label_file_names([timed(p) for p in paths])
    assert names == {p: "y" * 242 + f".{tag(p)}.txt" for p in paths}


def test_label_file_names_keep_to_a_smaller_limit() -> None:
    names = writers.label_file_names([timed("a/talk.wav"), timed("a/" + "x" * 40)], limit=32)
    assert names["a/talk.wav"] == "talk.wav.txt"
    assert names["a/" + "x" * 40] == "x" * 19 + f".{tag('a/' + 'x' * 40)}.txt"


def test_write_labels_asks_the_folder_for_its_name_max(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, str]] = []

    def pathconf(path: str, name: str) -> int:
        asked.append((str(path), name))
        return 40

    monkeypatch.setattr(os, "pathconf", pathconf)
    folder = tmp_path / "labels"
    [track] = writers.write_labels([timed("in/" + "y" * 60 + ".wav")], str(folder))
    assert (str(folder), "PC_NAME_MAX") in asked
    assert size(os.path.basename(track)) <= 40
    assert [p.name for p in folder.iterdir()] == [os.path.basename(track)]


def test_name_max_falls_back_to_255(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert writers.name_max(str(tmp_path)) == os.pathconf(tmp_path, "PC_NAME_MAX")
    assert writers.name_max(str(tmp_path / "missing")) == 255
    monkeypatch.setattr(os, "pathconf", lambda path, name: -1)  # "no limit"
    assert writers.name_max(str(tmp_path)) == 255
    monkeypatch.delattr(os, "pathconf")  # Windows
    assert writers.name_max(str(tmp_path)) == 255


@pytest.mark.parametrize(
    "audio",
    ["y" * 236 + ".wav", "y" * 248 + ".wav", "音" * 83 + ".wav"],
    ids=["track-fits", "track-too-long", "cjk-track-too-long"],
)
def test_write_labels_of_long_audio_names(tmp_path: Path, audio: str) -> None:
    path = str(tmp_path / "in" / audio)
    folder = tmp_path / "labels"
    [track] = writers.write_labels([timed(path)], str(folder))
    name = os.path.basename(track)
    assert size(name) <= 255
    if size(audio + ".txt") <= 255:
        assert name == audio + ".txt"
    else:
        assert name.startswith(audio[:50]) and name.endswith(f".{tag(path)}.txt")
    assert [p.name for p in folder.iterdir()] == [name]  # no temporary file left behind
    assert (folder / name).read_text() == "0.000000\t3.000000\tmusic\n"


@pytest.mark.parametrize(
    "name",
    ["z" * 245 + ".jsonl", "音" * 83 + ".jsonl", os.fsdecode(b"\xff" * 249 + b".jsonl")],
    ids=["ascii-251-bytes", "cjk-255-bytes", "non-utf8-255-bytes"],
)
def test_write_file_to_a_long_but_legal_name(tmp_path: Path, name: str) -> None:
    assert size(name) <= 255
    target = tmp_path / name
    target.write_text("old\n")
    writers.write_file(RESULTS, "jsonl", str(target))
    assert target.read_bytes() == render(RESULTS, "jsonl").encode("utf-8")
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == [name]


def test_the_temporary_file_of_a_long_name_is_hidden_unique_and_beside_it(tmp_path: Path) -> None:
    target = tmp_path / ("音" * 83 + ".jsonl")  # 255 bytes
    with (
        writers.replaced_when_done(str(target)) as one,
        writers.replaced_when_done(str(target)) as two,
    ):
        assert one != two
        for tmp in (one, two):
            base = os.path.basename(tmp)
            assert os.path.dirname(tmp) == os.path.realpath(tmp_path)
            assert base.startswith(".音音音") and base.endswith(".tmp")
            assert size(base) <= 255
            os.fsencode(base).decode("utf-8")  # cut between characters
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == [target.name]


@pytest.mark.parametrize("audio", ["y" * 236 + ".wav", "音" * 83 + ".wav"], ids=["ascii", "cjk"])
def test_scan_writes_tracks_and_output_of_long_names(tmp_path: Path, audio: str) -> None:
    """The report: a 236-character file with --labels-dir, and a 251-byte -o, exited 4."""
    from click.testing import CliRunner

    from cli import main

    from signals import chord
    from signals import write as write_audio

    write_audio(tmp_path / "in" / audio, chord(3.0))
    out = tmp_path / ("z" * 245 + ".jsonl")
    labels = tmp_path / "labels"
    args = ["scan", str(tmp_path / "in"), "-q", "-j", "1", "--segments", "2"]
    args += ["--labels-dir", str(labels), "-o", str(out)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["path"] for line in out.read_text().splitlines()] == [
        str(tmp_path / "in" / audio)
    ]
    [track] = list(labels.iterdir())
    assert size(track.name) <= 255 and track.name.startswith(audio[:50])
    assert track.read_text().count("\n") >= 1
