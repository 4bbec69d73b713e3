"""``harken scan`` end to end: real files, the real pool, the real cache."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from cli.scan import EXIT_ERRORS, EXIT_USAGE

from signals import chord, noise, scan_in_fresh_process, silence, write

REPO = Path(__file__).resolve().parent.parent


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["scan", *args], input=input, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def comparable(rows: list[dict]) -> list[dict]:
    """Records without the one field that measures this run's machine: analysis time."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_table_lists_every_file(audio_dir: Path) -> None:
    code, out, err = run(str(audio_dir), "--jobs", "1")
    assert code == 0, err
    for name in ("tone.wav", "chord.flac", "noise-44k.ogg", "silence.wav", "stereo-22k.wav"):
        assert name in out
    assert "5 files in" in err and "(0 cached): 5 ok" in err


def test_jsonl_records_follow_the_schema(audio_dir: Path) -> None:
    code, out, _ = run(str(audio_dir), "--jobs", "1", "--format", "jsonl")
    assert code == 0
    rows = records(out)
    assert [Path(r["path"]).name for r in rows] == [
        "chord.flac",
        "noise-44k.ogg",
        "silence.wav",
        "stereo-22k.wav",
        "tone.wav",
    ]
    for row in rows:
        assert list(row) == sorted(row)
        assert row["status"] == "ok" and row["error"] is None
        assert set(row["probabilities"]) == {"music", "noise", "silence", "speech"}
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-3
        assert row["confidence"] == max(row["probabilities"].values())
        best = max(row["probabilities"], key=row["probabilities"].get)
        assert row["label"] in (best, "unknown")  # unknown: under the card's threshold
        assert row["members"] == len(row["votes"]) == 2  # extra_trees, gboost
        assert row["agreement"] == sum(v == row["label"] for v in row["votes"].values())
        assert row["model"].startswith("harken-default@")
        assert len(row["content_hash"]) == 40
    by_name = {Path(r["path"]).name: r for r in rows}
    stereo = by_name["stereo-22k.wav"]["signal"]
    assert stereo["channels"] == 2 and stereo["sample_rate"] == 22050
    assert stereo["subtype"] == "PCM_24" and stereo["duration"] == pytest.approx(3.0)
    assert by_name["noise-44k.ogg"]["signal"]["format"] == "OGG"
    assert by_name["silence.wav"]["label"] == "silence"
    assert by_name["silence.wav"]["signal"]["silence"] == 1.0


def test_output_file_json_and_csv(audio_dir: Path, tmp_path: Path) -> None:
    out_json = tmp_path / "out.json"
    code, out, _ = run(str(audio_dir), "-j", "1", "-o", str(out_json))
    assert code == 0 and out == ""
    data = json.loads(out_json.read_text())
    assert len(data) == 5 and all(r["status"] == "ok" for r in data)
    code, out, _ = run(str(audio_dir), "-j", "1", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 5
    assert {"p_music", "p_speech", "vote_gboost", "duration", "rms_dbfs"} <= set(rows[0])
    assert [r["path"] for r in rows] == [r["path"] for r in data]
    # The header is the model's, whatever the results: a night when every
    # file failed (or nothing was new) had no p_ and vote_ columns.
    header = out.splitlines()[0]
    code, failed, _ = run(str(tmp_path / "missing.wav"), "--format", "csv")
    assert code == EXIT_ERRORS and failed.splitlines()[0] == header
    code, _, _ = run(str(tmp_path / "missing.wav"), "-o", str(tmp_path / "out.csv"))
    assert tmp_path.joinpath("out.csv").read_text().splitlines()[0] == header


def test_jobs_one_and_two_give_identical_records(audio_dir: Path) -> None:
    _, one, _ = run(str(audio_dir), "--jobs", "1", "--no-cache", "-f", "jsonl")
    _, two, _ = run(str(audio_dir), "--jobs", "2", "--no-cache", "-f", "jsonl")
    assert comparable(records(one)) == comparable(records(two))


def test_cached_rerun_is_identical_and_analyzes_nothing(audio_dir: Path) -> None:
    code, first, err = run(str(audio_dir), "-j", "2", "-f", "jsonl")
    assert code == 0 and "0 cached" in err
    code, second, err = run(str(audio_dir), "-j", "2", "-f", "jsonl", "-v")
    assert code == 0 and "(5 cached): 5 ok" in err
    assert err.count("(cached)") == 5
    assert records(first) == records(second)  # identical, timing included


def test_cached_rerun_imports_neither_librosa_nor_sklearn(
    audio_dir: Path, isolated_cache: Path
) -> None:
    code, _, _ = run(str(audio_dir), "-j", "1")
    assert code == 0
    out, err = scan_in_fresh_process(
        [str(audio_dir), "-q", "-f", "jsonl"],
        isolated_cache,
        ("librosa", "sklearn", "numba", "joblib"),
    )
    assert "HEAVY [] CODE 0" in err, err
    assert len(records(out)) == 5


def test_broken_files_give_error_rows_and_exit_3(broken_dir: Path) -> None:
    code, out, err = run(str(broken_dir), "-j", "2", "-f", "jsonl")
    assert code == EXIT_ERRORS
    rows = {Path(r["path"]).name: r for r in records(out)}
    assert set(rows) == {"good.wav", "empty.wav", "text.wav", "truncated.flac", "random.mp3"}
    assert rows["good.wav"]["status"] == "ok"
    assert rows["empty.wav"]["error"]["kind"] == "empty"
    assert rows["text.wav"]["error"]["kind"] == "unsupported"
    for name in ("empty.wav", "text.wav", "truncated.flac", "random.mp3"):
        assert rows[name]["status"] == "error"
        assert name in rows[name]["error"]["message"]
    assert "4 error" in err
    code, _, _ = run(str(broken_dir), "-j", "1", "-f", "jsonl", "--allow-errors")
    assert code == 0


def test_cached_failures_and_retry_failed(broken_dir: Path) -> None:
    run(str(broken_dir), "-j", "1", "-q")
    _, out, err = run(str(broken_dir), "-j", "1", "-v")
    assert err.count("(cached)") == 5  # the good file, and the four cached failures
    assert "5 files in" in err and "(5 cached): 1 ok, 4 error" in err
    assert "unsupported" in out
    _, _, err = run(str(broken_dir), "-j", "1", "-v", "--retry-failed")
    assert err.count("(cached)") == 1  # the failures are analyzed again
    # A nightly -q --changed-only run writes none of them once they were
    # delivered (the first gives its new stream all), but says why it exits 3.
    code, out, err = run(str(broken_dir), "-j", "1", "-q", "--changed-only", "-f", "jsonl")
    assert code == EXIT_ERRORS and len(out.splitlines()) == 5
    code, out, err = run(str(broken_dir), "-j", "1", "-q", "--changed-only", "-f", "jsonl")
    assert code == EXIT_ERRORS and out == ""
    assert err.startswith("4 file(s) could not be analyzed:\n")
    assert f"  {broken_dir / 'empty.wav'}: empty\n" in err


def test_table_shows_reasons(broken_dir: Path) -> None:
    code, out, _ = run(str(broken_dir), "-j", "1")
    assert code == EXIT_ERRORS
    assert "empty" in out and "error" in out


def test_no_cache_and_refresh(audio_dir: Path, isolated_cache: Path) -> None:
    run(str(audio_dir), "-j", "1", "--no-cache", "-q")
    assert not isolated_cache.exists()
    run(str(audio_dir), "-j", "1", "-q")
    assert isolated_cache.exists()
    _, _, err = run(str(audio_dir), "-j", "1", "--refresh")
    assert "(0 cached): 5 ok" in err


def test_cache_dir_option(audio_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    run(str(audio_dir), "-j", "1", "-q", "--cache-dir", str(target))
    assert (target / "cache.db").exists()


def test_a_damaged_cache_is_reported_once_and_the_scan_goes_on(
    audio_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "damaged"
    target.mkdir()
    (target / "cache.db").write_bytes(b"not a database\n" * 100)
    code, stdout, stderr = run(
        str(audio_dir), "-j", "1", "-q", "-f", "jsonl", "--cache-dir", str(target)
    )
    assert code == 0 and len(records(stdout)) == len(list(audio_dir.iterdir()))
    assert stderr.count("cannot be used") == 1


def test_include_exclude_and_files_from(audio_dir: Path, tmp_path: Path) -> None:
    (audio_dir / "notes.txt").write_text("not audio")
    _, out, _ = run(str(audio_dir), "-j", "1", "-f", "jsonl", "--include", "*.wav")
    assert sorted(Path(r["path"]).name for r in records(out)) == [
        "silence.wav",
        "stereo-22k.wav",
        "tone.wav",
    ]
    _, out, _ = run(str(audio_dir), "-j", "1", "-f", "jsonl", "--exclude", "music/*")
    assert "chord.flac" not in out and len(records(out)) == 4
    code, out, _ = run(str(audio_dir), "-j", "1", "-f", "jsonl", "--include", "*")
    assert code == EXIT_ERRORS  # notes.txt is taken, and is not audio
    assert len(records(out)) == 6
    code, _, err = run(str(audio_dir), "--include", "")  # found nothing, and exited 0
    assert code == EXIT_USAGE and "an empty pattern matches no file" in err
    listing = f"{audio_dir / 'tone.wav'}\n\n{audio_dir / 'missing.wav'}\n"
    code, out, _ = run("--files-from", "-", "-j", "1", "-f", "jsonl", input=listing)
    rows = records(out)
    assert [r["status"] for r in rows] == ["ok", "error"]
    assert rows[1]["error"]["kind"] == "not_found"


def test_usage_errors_exit_2(tmp_path: Path, audio_dir: Path) -> None:
    assert run()[0] == EXIT_USAGE
    assert run("--files-from", str(tmp_path / "no-list.txt"))[0] == EXIT_USAGE
    assert run(str(audio_dir), "--jobs", "0")[0] == EXIT_USAGE
    assert run(str(audio_dir), "--timeout", "nan")[0] == EXIT_USAGE  # passes every bound
    assert run(str(audio_dir), "--max-duration", "nan")[0] == EXIT_USAGE
    assert run(str(audio_dir), "-o", str(tmp_path / "x.txt"))[0] == EXIT_USAGE
    code, _, err = run(str(audio_dir), "-o", str(tmp_path / "report.xml"))
    assert code == EXIT_USAGE and "a JUnit report goes to --junit FILE" in err
    code, out, _ = run(str(audio_dir / "tone.wav"), "-f", "jsonl", "-o", "-", "-j", "1")
    assert code == 0 and json.loads(out)["label"]  # was a file named '-'
    code, _, err = run("-")  # was a not_found row for '-'
    assert code == EXIT_USAGE and "give --files-from -" in err
    same = str(tmp_path / "same.json")
    code, _, err = run(str(audio_dir), "-o", same, "--junit", str(tmp_path / "." / "same.json"))
    assert code == EXIT_USAGE and "--output and --junit name the same file" in err  # was exit 0
    assert not Path(same).exists()  # refused before any work
    code, _, err = run(str(audio_dir), "--segments", "inf")
    assert code == EXIT_USAGE and "a finite number of seconds, not inf" in err
    assert run(str(audio_dir), "-f", "table", "-o", str(tmp_path / "x.json"))[0] == EXIT_USAGE
    pickle_model = tmp_path / "model.pkl"
    pickle_model.write_bytes(b"\x80\x04K\x01.")
    code, _, err = run(str(audio_dir), "--model", str(pickle_model))
    assert code == EXIT_USAGE and "never loads pickle" in err
    for name, data in (("empty.skops", b""), ("clip.wav", b"RIFF\x24\0\0\0WAVE")):
        (tmp_path / name).write_bytes(data)
        code, _, err = run(str(audio_dir), "--model", str(tmp_path / name))
        assert code == EXIT_USAGE and "pickle" not in err  # neither is one
        assert ("is empty" if not data else "not a skops model file") in err


def test_missing_path_is_a_row_not_a_crash(tmp_path: Path) -> None:
    code, out, _ = run(str(tmp_path / "nope.wav"), "-f", "jsonl")
    assert code == EXIT_ERRORS
    (row,) = records(out)
    assert row["status"] == "error" and row["error"]["kind"] == "not_found"


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, out, err = run(str(tmp_path / "empty"))
    assert code == 0 and out == "" and "no audio files found" in err
    # A CI job's broken model fails though its data folder is empty today.
    pickled = tmp_path / "model.skops"
    pickled.write_bytes(b"\x80\x04K\x01.")
    code, _, err = run(str(tmp_path / "empty"), "--model", str(pickled))
    assert code == EXIT_USAGE and "never loads pickle files" in err


def test_plain_progress_lines_when_not_a_terminal(
    audio_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cli.progress.PLAIN_INTERVAL", 0.0)
    _, _, err = run(str(audio_dir), "-j", "1")
    lines = [line for line in err.splitlines() if " done, " in line]
    assert len(lines) == 5 and lines[-1].split()[2] == "5/5"
    _, _, err = run(str(audio_dir), "-j", "1", "-q")
    assert err == ""


def test_the_eta_counts_from_the_first_result_not_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The pool's start and the model's load took 5 s: the first line said
    # "1/100 done, 0.2 files/s, ETA 521 s" for a scan over seconds later.
    from rich.console import Console

    from cli.progress import ScanProgress

    clock = [100.0]
    monkeypatch.setattr("cli.progress.time.monotonic", lambda: clock[0])
    progress = ScanProgress(Console(file=io.StringIO()), 100, enabled=True)
    clock[0] += 5.0
    progress.advance(cached=False, failed=False)
    assert "1/100 done" in progress.line() and "? files/s, ETA ?" in progress.line()
    for _ in range(6):  # six more over the next 3 s
        clock[0] += 0.5
        progress.advance(cached=False, failed=False)
    assert "2.0 files/s, ETA 46 s" in progress.line()


def test_examples_are_labeled_right() -> None:
    code, out, _ = run(str(REPO / "examples" / "audio"), "-j", "2", "-f", "jsonl")
    assert code == 0
    rows = records(out)
    assert len(rows) >= 8
    for row in rows:
        assert Path(row["path"]).name.split("-")[0] == row["label"], row


def test_examples_in_other_formats_rates_and_with_silent_ends(tmp_path: Path) -> None:
    """What users' files look like and the corpus's do not: another rate and
    container, an MP3 decoder's delay, digital silence before and after (the
    corpus's music never has any; a model that learned so called such music
    noise), and a clip padded with zeros to 10 s, most of it zeros (as data
    sets pad short clips; once called silence or noise)."""
    import soundfile as sf
    import soxr

    for clip in sorted((REPO / "examples" / "audio").glob("*.ogg")):
        signal, rate = sf.read(clip, dtype="float32")
        for name, out_rate, fmt, before, after in (
            ("padded", 44100, "WAV", 0.5, 0.5),
            ("mp3", 22050, "MP3", 0.0, 0.0),
            ("narrow", 8000, "FLAC", 0.2, 0.2),
            ("to-10-s", 16000, "WAV", 1.0, 9.0 - len(signal) / rate),
        ):
            converted = soxr.resample(signal, rate, out_rate)
            zeros = [np.zeros(int(pad * out_rate), dtype=np.float32) for pad in (before, after)]
            target = tmp_path / name / f"{clip.stem}.{fmt.lower()}"
            write(target, np.concatenate([zeros[0], converted, zeros[1]]), out_rate, format=fmt)
    code, out, _ = run(str(tmp_path), "-j", "2", "-f", "jsonl")
    rows = records(out)
    assert code == 0 and len(rows) == 4 * len(list((REPO / "examples" / "audio").glob("*.ogg")))
    wrong = [r["path"] for r in rows if Path(r["path"]).name.split("-")[0] != r["label"]]
    assert wrong == []


def test_synthetic_classes(tmp_path: Path) -> None:
    write(tmp_path / "a" / "zeros.wav", silence(3.0))
    write(tmp_path / "a" / "white.wav", noise(3.0, seed=5, level=0.1))
    write(tmp_path / "a" / "notes.wav", chord(4.0, seed=2))
    _, out, _ = run(str(tmp_path / "a"), "-j", "1", "-f", "jsonl")
    labels = {Path(r["path"]).stem: r["label"] for r in records(out)}
    assert labels["zeros"] == "silence"
    assert labels["white"] == "noise"


def test_a_reader_that_goes_away_is_exit_141_not_a_failed_rule(
    audio_dir: Path, tmp_path: Path
) -> None:
    """`harken scan ... | head` must not look like a failed --fail-on rule (1)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HARKEN_CACHE_DIR": str(tmp_path / "cache")}
    for args in (
        ["model", "show", "-f", "json"],
        ["scan", str(audio_dir), "-f", "jsonl"],
        ["scan", str(audio_dir)],  # a table: Rich would exit 1 on its own
    ):
        with (tmp_path / "err.txt").open("w+") as err:
            proc = subprocess.Popen(
                [sys.executable, "-c", "from cli import main; main()", *args],
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
            )
            assert proc.stdout is not None
            proc.stdout.close()  # the reader is gone before the first line
            assert proc.wait(timeout=120) == 141
            err.seek(0)
            assert "Traceback" not in err.read()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("format", ["table", "jsonl"])
def test_standard_output_that_cannot_be_written_is_exit_4(
    audio_dir: Path, tmp_path: Path, format: str
) -> None:
    """A full disk (/dev/full) or a closed standard output: exit 4 and one line, as for -o."""
    import os
    import subprocess
    import sys

    # Buffered, as a user's shell has it: an unflushed write must not wait for the exit.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["HARKEN_CACHE_DIR"] = str(tmp_path / "cache")
    harken = [sys.executable, "-c", "from cli import main; main()"]
    scan = [*harken, "scan", str(audio_dir), "-f", format, "-q", "--allow-errors"]
    # Every command that prints: results, a plan, a card, a list, the help.
    for command in (
        scan,
        [*harken, "scan", str(audio_dir), "--dry-run", "-q"],
        [*harken, "model", "show"],
        [*harken, "--help"],
        [*harken, "--version"],
    ):
        with open("/dev/full", "w") as full:
            done = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, env=env)
        assert done.returncode == 4, (command, done.stderr)
        assert done.stderr == "Error: cannot write to standard output: No space left on device\n"
    for command in (scan, [*harken, "config", "show", "-f", "json"]):
        closed = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=lambda: os.close(1),
        )
        assert closed.returncode == 4, (command, closed.stderr)
        assert closed.stderr == "Error: cannot write to standard output: it is closed\n"


def test_output_to_dev_stdout_through_a_pipe(audio_dir: Path, tmp_path: Path) -> None:
    """`-o /dev/stdout | ...`: /dev/stdout resolves to a pipe, which is written to."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HARKEN_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-c", "from cli import main; main()", "scan", str(audio_dir)]
    done = subprocess.run(
        [*command, "-f", "jsonl", "-o", "/dev/stdout", "-q", "--allow-errors"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert len(records(done.stdout)) == 5


# A command is over, and Python winds down: joining the pool's threads (loky's
# exit hook) took a Ctrl-C as a KeyboardInterrupt and printed its traceback.
# Here the Ctrl-C comes from an exit hook that runs after harken's, as loky's.
CTRL_C_WHILE_WINDING_DOWN = """
import os, signal, sys, threading, time
from cli import main

def ctrl_c_in_the_wind_down():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(10)
    print("still winding down", flush=True)

signal.signal(signal.SIGINT, signal.default_int_handler)
threading._register_atexit(ctrl_c_in_the_wind_down)
print("scanned", flush=True)
sys.argv = ["harken", "scan", sys.argv[1], "-q", "-f", "jsonl", "--no-cache"]
main()  # as the program runs it (a caller's main([...]) is left alone)
"""


def test_ctrl_c_after_the_work_is_done_keeps_the_exit_code_quietly(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.wav")  # exit 3, the code to keep
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_WHILE_WINDING_DOWN, missing],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - start < 8  # not the hook's 10 s
    assert done.returncode == EXIT_ERRORS, done.stderr
    assert "Traceback" not in done.stderr and "still winding down" not in done.stdout
    assert json.loads(done.stdout.splitlines()[1])["error"]["kind"] == "not_found"


def test_the_summary_line_counts_in_words() -> None:
    from analyzer.results import FileResult
    from cli.render import summary_line

    one = [FileResult("a.wav", "ok")]
    assert summary_line(one, cached=0, seconds=0.4).startswith("1 file in 0.4 s")  # "1 files"
    assert summary_line(one * 2, cached=0, seconds=0.4).startswith("2 files in 0.4 s")


def test_a_confidence_under_the_threshold_never_shows_as_the_threshold() -> None:
    from cli.render import confidence_shown

    assert confidence_shown("unknown", 0.988746) == "0.98"  # was 0.99, beside a 0.99 of music
    assert confidence_shown("unknown", 0.29) == "0.29"  # (0.29 * 100 is 28.999999999999996)
    assert confidence_shown("music", 0.988746) == "0.99"


def test_outputs_may_share_a_pipe_and_junit_dash_is_standard_output(
    audio_dir: Path, tmp_path: Path
) -> None:
    scan = [
        sys.executable,
        "-c",
        "from cli import main; main()",
        "scan",
        str(audio_dir / "tone.wav"),
    ]
    scan += ["-j", "1", "-q", "--no-cache"]
    both = subprocess.run(  # 2>&1: /dev/stdout and /dev/stderr are one pipe (was exit 2)
        [*scan, "-f", "jsonl", "-o", "/dev/stdout", "--junit", "/dev/stderr"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert both.returncode == 0 and '"label"' in both.stdout and "<testsuites" in both.stdout
    results = tmp_path / "r.jsonl"
    dash = subprocess.run(
        [*scan, "-o", str(results), "--junit", "-"], capture_output=True, text=True, timeout=120
    )
    assert dash.returncode == 0 and dash.stdout.startswith("<?xml")  # was a file named '-'
    assert results.read_text().count("\n") == 1
    code, _, err = run(str(audio_dir / "tone.wav"), "--junit", "-")
    assert code == EXIT_USAGE and "would both go to standard output" in err


def test_lists_given_twice_are_both_read(audio_dir: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "one.txt", tmp_path / "two.txt"
    first.write_text(f"{audio_dir / 'tone.wav'}\n")
    second.write_text(f"{audio_dir / 'silence.wav'}\n")
    args = ["-j", "1", "-f", "jsonl", "--no-cache"]
    code, out, _ = run("--files-from", str(first), "--files-from", str(second), *args)
    assert code == 0 and len(records(out)) == 2  # the last list only
    result = CliRunner(env={"HARKEN_SCAN_FILES_FROM": f"{first}\n{second}"}).invoke(
        main, ["scan", *args], catch_exceptions=False
    )
    assert result.exit_code == 0 and len(records(result.stdout)) == 2  # one a line, as --fail-on


def test_dev_stdout_that_is_a_file_keeps_what_the_shell_wrote(
    audio_dir: Path, tmp_path: Path
) -> None:
    """``-o /dev/stdout`` and ``--junit -`` opened the file behind standard
    output anew: ``>> log`` lost the log, and a ``{ ...; } > file`` group's
    next line was written over the results."""
    import shlex

    harken = f"{shlex.quote(sys.executable)} -c 'from cli import main; main()' scan"
    audio = shlex.quote(str(next(audio_dir.iterdir())))
    log = tmp_path / "log.txt"
    log.write_text("OLD LOG LINE\n")
    script = (
        f"{harken} {audio} -j 1 -q --junit - -o {tmp_path / 'res.jsonl'} >> {log};"
        f" {{ echo BEFORE; {harken} {audio} -j 1 -q -f jsonl -o /dev/stdout; echo AFTER; }}"
        f" > {tmp_path / 'group.txt'}"
    )
    subprocess.run(["sh", "-c", script], check=True, timeout=120)
    kept = log.read_text().splitlines()
    assert kept[0] == "OLD LOG LINE" and kept[1].startswith("<?xml")
    first, record, last = (tmp_path / "group.txt").read_text().splitlines()
    assert (first, last) == ("BEFORE", "AFTER") and json.loads(record)["status"] == "ok"
