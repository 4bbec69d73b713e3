"""Fault injection with real processes: hangs, crashing workers, memory, signals.

Faults are injected with ``HARKEN_FAULT`` (see ``analyzer.guard``), read by
the parent and passed to the real loky workers.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from analyzer.scan import ScanConfig, scan
from cli import main
from cli.scan import EXIT_ERRORS, EXIT_INTERRUPTED, EXIT_OUTPUT, EXIT_TERMINATED, EXIT_USAGE

from signals import default_sigint, noise, tone, write


def run(*args: str) -> tuple[int, list[dict], str]:
    result = CliRunner().invoke(main, ["scan", *args, "-f", "jsonl"], catch_exceptions=False)
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, rows, result.stderr


def status_of(rows: list[dict]) -> dict[str, tuple[str, str | None]]:
    return {Path(r["path"]).name: (r["status"], (r["error"] or {}).get("kind")) for r in rows}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    for i in range(24):
        write(root / f"f{i:02d}.wav", noise(0.4, seed=i))
    return root


def test_hung_file_times_out_and_the_batch_goes_on(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(folder / "stuck.wav", tone(0.5))
    monkeypatch.setenv("HARKEN_FAULT", "hang:stuck.wav")
    start = time.monotonic()
    code, rows, _ = run(str(folder), "-j", "2", "--timeout", "1")
    assert time.monotonic() - start < 60
    assert code == EXIT_ERRORS
    statuses = status_of(rows)
    assert statuses.pop("stuck.wav") == ("timeout", "timeout")
    assert set(statuses.values()) == {("ok", None)} and len(statuses) == 24
    stuck = next(r for r in rows if r["path"].endswith("stuck.wav"))
    assert stuck["seconds"] == 1.0  # the time it was given (was 0.0)


def test_hung_file_times_out_in_process(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(folder / "stuck.wav", tone(0.5))
    monkeypatch.setenv("HARKEN_FAULT", "hang:stuck.wav")
    code, rows, _ = run(str(folder), "-j", "1", "--timeout", "0.5")
    assert code == EXIT_ERRORS
    assert status_of(rows)["stuck.wav"] == ("timeout", "timeout")
    stuck = next(r for r in rows if r["path"].endswith("stuck.wav"))
    assert stuck["seconds"] >= 0.5  # the time it ran, as the pool reports it
    assert sum(r["status"] == "ok" for r in rows) == 24


def test_crashing_worker_names_the_culprit(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(folder / "boom.wav", tone(0.5))
    monkeypatch.setenv("HARKEN_FAULT", "crash:boom.wav")
    code, rows, _ = run(str(folder), "-j", "2")
    assert code == EXIT_ERRORS
    statuses = status_of(rows)
    assert statuses.pop("boom.wav") == ("crashed", "crashed")
    assert set(statuses.values()) == {("ok", None)} and len(statuses) == 24
    # The crash is not cached: the next run tries the file again (and the
    # others come from the cache).
    monkeypatch.delenv("HARKEN_FAULT")
    code, rows, _ = run(str(folder), "-j", "2")
    assert code == 0 and len(rows) == 25


def test_two_culprits_in_one_run(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(folder / "boom1.wav", tone(0.5))
    write(folder / "boom2.wav", tone(0.6))
    monkeypatch.setenv("HARKEN_FAULT", "crash:boom*")
    _, rows, _ = run(str(folder), "-j", "2")
    statuses = status_of(rows)
    assert statuses.pop("boom1.wav")[0] == statuses.pop("boom2.wav")[0] == "crashed"
    assert {s for s, _ in statuses.values()} == {"ok"}


def test_memory_hog_is_stopped_by_max_memory(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(folder / "hog.wav", tone(0.5))
    monkeypatch.setenv("HARKEN_FAULT", "hog:hog.wav")
    code, rows, _ = run(str(folder), "-j", "2", "--max-memory", "300M")
    assert code == EXIT_ERRORS
    statuses = status_of(rows)
    assert statuses.pop("hog.wav") == ("error", "memory")
    assert {s for s, _ in statuses.values()} == {"ok"}


def test_long_file_refused_before_decoding_by_max_memory(tmp_path: Path) -> None:
    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(8000 * 1800, dtype=np.float32), 8000, subtype="PCM_U8")  # 30 min
    code, rows, _ = run(str(long), "-j", "1", "--max-memory", "60M")
    assert code == EXIT_ERRORS
    assert rows[0]["error"]["kind"] == "memory" and "--max-memory" in rows[0]["error"]["message"]
    code, rows, _ = run(str(long), "-j", "1", "--max-duration", "600")
    assert rows[0]["error"]["kind"] == "too_long"


def test_bad_size_is_a_usage_error(folder: Path) -> None:
    assert run(str(folder), "--max-memory", "lots")[0] == EXIT_USAGE


def test_a_memory_cap_no_file_fits_under_is_a_usage_error(folder: Path) -> None:
    # Under it, a pool worker could not even load the resampler: every file
    # was an internal error.
    code, rows, err = run(str(folder), "--max-memory", "10M")
    assert code == EXIT_USAGE and not rows
    assert "10 MiB leaves no room for any file" in err


def test_file_changed_during_the_run(tmp_path: Path) -> None:
    path = write(tmp_path / "a.wav", tone(1.0))
    st = path.stat()
    from analyzer.analysis import Settings, Task, run_task
    from analyzer.modelfile import resolve_model

    task = Task(0, str(path), "stale", size=st.st_size, mtime_ns=st.st_mtime_ns - 1)
    result = run_task(task, Settings(resolve_model())).result
    assert result.status == "error" and result.error and result.error.kind == "changed"
    # Rewritten into something that no longer decodes: still a change, not damage.
    path.write_bytes(b"RIFF" + bytes(40))
    st = path.stat()
    task = Task(0, str(path), "stale", size=st.st_size, mtime_ns=st.st_mtime_ns - 1)
    result = run_task(task, Settings(resolve_model())).result
    assert result.error and result.error.kind == "changed"
    task = Task(0, str(path), "fresh", size=st.st_size, mtime_ns=st.st_mtime_ns)
    result = run_task(task, Settings(resolve_model())).result
    assert result.error and result.error.kind != "changed"  # unchanged: it is just broken


def _session_processes(sid: int) -> list[int]:
    """Live processes of a session (zombies are dead; reaping is init's job)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if os.getsid(int(entry.name)) == sid and state != "Z":
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


@pytest.mark.parametrize(
    ("signum", "expected"), [(signal.SIGINT, EXIT_INTERRUPTED), (signal.SIGTERM, EXIT_TERMINATED)]
)
@pytest.mark.parametrize(
    ("jobs", "hanging"),
    [
        ("2", "n3*"),  # a worker hangs on n03 early on
        # In this process: the signal lands while a file is being analyzed.
        # SIGTERM was caught there as that file's `internal` error, and the
        # scan went on to the end (exit 3).
        ("1", "n3[0-9]*"),
    ],
)
def test_signal_mid_run_keeps_finished_results(
    tmp_path: Path, signum: int, expected: int, jobs: str, hanging: str, isolated_cache: Path
) -> None:
    root = tmp_path / "many"
    for i in range(40):
        write(root / f"n{i:02d}.wav", noise(0.3, seed=i))
    out = tmp_path / "out.jsonl"
    env = {
        **os.environ,
        "HARKEN_CACHE_DIR": str(isolated_cache),
        "HARKEN_FAULT": f"hang:{hanging}",
    }
    cmd = [
        sys.executable,
        "-c",
        "from cli import main; main()",
        "scan",
        str(root),
        "-j",
        jobs,
        "-v",
        "--timeout",
        "600",
        "-o",
        str(out),
    ]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=default_sigint,
    )
    assert proc.stderr is not None
    done = 0
    for line in proc.stderr:  # wait until some files are finished, then signal
        done += ".wav: " in line
        if done >= 5:
            break
    time.sleep(0.5)
    proc.send_signal(signum)
    _, rest = proc.communicate(timeout=60)
    code = proc.returncode
    assert code == expected, rest
    assert "interrupted" in rest and "Traceback" not in rest
    rows = [json.loads(line) for line in out.read_text().splitlines()]  # complete lines only
    assert 5 <= len(rows) < 40
    assert all(row["status"] == "ok" for row in rows)  # none made `internal` by the signal
    time.sleep(0.5)
    assert _session_processes(proc.pid) == []  # no worker left behind
    # The next run resumes: what finished comes from the cache.
    env.pop("HARKEN_FAULT")
    again = subprocess.run(
        [*cmd[:-2], "-f", "jsonl"], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0
    assert again.stderr.count("(cached)") >= len(rows)


# The signal comes after the last file, as the outputs are about to be written
# (here from the writer itself, to time it exactly): the whole report was lost.
SIGNAL_AS_THE_OUTPUTS_ARE_WRITTEN = """
import os, signal, sys
import cli.scan
from cli import main

emit, signum = cli.scan._emit, int(sys.argv[1])

def emit_after_a_signal(*args, **kwargs):
    os.kill(os.getpid(), signum)
    emit(*args, **kwargs)

cli.scan._emit = emit_after_a_signal
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.argv = ["harken", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize(
    ("signum", "expected"), [(signal.SIGINT, EXIT_INTERRUPTED), (signal.SIGTERM, EXIT_TERMINATED)]
)
def test_a_signal_after_the_last_file_waits_for_the_outputs(
    tmp_path: Path, signum: int, expected: int, isolated_cache: Path
) -> None:
    for i in range(3):
        write(tmp_path / "in" / f"n{i}.wav", noise(0.3, seed=i))
    out, junit = tmp_path / "out.jsonl", tmp_path / "junit.xml"
    command = ["scan", str(tmp_path / "in"), "-j", "1", "-o", str(out), "--junit", str(junit)]
    done = subprocess.run(
        [sys.executable, "-c", SIGNAL_AS_THE_OUTPUTS_ARE_WRITTEN, str(int(signum)), *command],
        env={**os.environ, "HARKEN_CACHE_DIR": str(isolated_cache)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == expected, done.stderr
    assert "interrupted: 3 of 3 files done; the outputs are complete" in done.stderr
    assert len(out.read_text().splitlines()) == 3 and 'tests="3"' in junit.read_text()


def test_a_signal_before_the_loop_stops_it_and_a_second_is_not_held() -> None:
    from analyzer.interrupts import signals_held, signals_raised

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with signals_held(None) as held:
            os.kill(os.getpid(), signal.SIGINT)  # as the scan starts: held
            time.sleep(0.05)
            assert held == [signal.SIGINT]
            with pytest.raises(KeyboardInterrupt), signals_raised(held):
                time.sleep(10)  # the loop: not reached, the held signal stops it
            held_back = signal.getsignal(signal.SIGTERM)
            assert signal.getsignal(signal.SIGINT) is held_back  # both put back: the hold's
            # Writing the outputs: a second Ctrl-C is one the user insists on.
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(10)
    finally:
        signal.signal(signal.SIGINT, previous)


def _starting_worker(sid: int) -> bool:
    """Whether a loky worker of session ``sid`` has been started."""
    for pid in _session_processes(sid):
        try:
            if b"popen_loky_posix" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def test_a_terminals_ctrl_c_while_the_workers_start(tmp_path: Path, isolated_cache: Path) -> None:
    """Ctrl-C reaches the whole process group. A worker still starting Python
    died of it printing a traceback ("Could not import runpy module",
    "Fatal Python error: init_import_site"): 30 lines for a Ctrl-C in a
    scan's first second."""
    root = tmp_path / "many"
    for i in range(8):
        write(root / f"n{i:02d}.wav", noise(0.3, seed=i))
    env = {**os.environ, "HARKEN_CACHE_DIR": str(isolated_cache)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cli import main; main()", "scan", str(root), "-j", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 60
    while not _starting_worker(proc.pid) and proc.poll() is None:
        assert time.monotonic() < deadline, "no worker started"
        time.sleep(0.005)
    time.sleep(0.05)  # (past Python's first steps, where SIGINT still kills quietly)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and "Fatal Python error" not in err, err
    assert _left_behind(proc.pid) == []


def _left_behind(sid: int, wait: float = 30.0) -> list[int]:
    """Processes of session ``sid`` still alive ``wait`` seconds after its
    leader died (then killed, so as not to be left to the next test)."""
    deadline = time.monotonic() + wait
    while _session_processes(sid) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _session_processes(sid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def test_workers_end_soon_after_harken_is_killed(tmp_path: Path, isolated_cache: Path) -> None:
    """kill -9 leaves nobody to shut the pool down; its workers must not live on
    for loky's idle minutes, holding the caller's pipes open."""
    root = tmp_path / "many"
    for i in range(20):
        write(root / f"n{i:02d}.wav", noise(0.3, seed=i))
    env = {**os.environ, "HARKEN_CACHE_DIR": str(isolated_cache), "HARKEN_FAULT": "hang:n1*"}
    cmd = [sys.executable, "-c", "from cli import main; main()", "scan", str(root)]
    proc = subprocess.Popen(
        [*cmd, "-j", "2", "-v", "--timeout", "600", "-f", "jsonl"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # the pool is up and working
        if ".wav: " in line:
            break
    proc.kill()
    proc.wait()
    proc.stderr.close()
    assert _left_behind(proc.pid) == []


def test_workers_killed_in_their_warm_up_end_too(tmp_path: Path, isolated_cache: Path) -> None:
    """A harken killed while its workers start (imports, the model) must not
    leave them behind either: they watch it from their first moment."""
    root = tmp_path / "few"
    for i in range(4):
        write(root / f"n{i}.wav", noise(0.3, seed=i))
    env = {**os.environ, "HARKEN_CACHE_DIR": str(isolated_cache), "HARKEN_FAULT": "hang-start"}
    cmd = [sys.executable, "-c", "from cli import main; main()", "scan", str(root), "-j", "2"]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while len(_session_processes(proc.pid)) < 3 and time.monotonic() < deadline:  # and workers
        time.sleep(0.1)
    time.sleep(1.0)  # the workers start, or already hang before their warm-up
    assert proc.poll() is None
    proc.kill()
    proc.wait()
    assert _left_behind(proc.pid) == []


@contextmanager
def fails_after(seconds: int) -> Iterator[None]:
    """Fail the test, rather than hang the suite, if the body outlasts ``seconds``."""

    def overdue(signum: int, frame: object) -> None:
        raise AssertionError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, overdue)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_workers_stuck_outside_any_file_are_ended_too(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that hangs before its first file (in its imports, or loading
    the model: a deadlock there was seen with an old threadpoolctl) is killed
    like one stuck on a file, even with no --timeout, no file is blamed, and a
    pool that keeps doing so ends the run with a row for every file instead
    of waiting forever."""
    monkeypatch.setenv("HARKEN_FAULT", "hang-start")
    monkeypatch.setattr("analyzer.pool.BUSY_TIMEOUT", 1.0)
    with fails_after(120):
        code, rows, _ = run(str(folder), "-j", "2", "--timeout", "0")
    assert code == EXIT_ERRORS and len(rows) == 24
    assert set(status_of(rows).values()) == {("crashed", "crashed")}
    assert "1 s outside any file (starting up" in rows[0]["error"]["message"]


def test_a_suspect_whose_fresh_worker_gets_stuck_is_not_blamed(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analyzer.analysis import Settings, Task
    from analyzer.modelfile import resolve_model
    from analyzer.pool import _isolated, _monitor

    monkeypatch.setattr("analyzer.pool.BUSY_TIMEOUT", 1.0)
    state = tempfile.mkdtemp(dir=folder)
    stop = threading.Event()
    threading.Thread(target=_monitor, args=(state, 0.5, stop), daemon=True).start()
    settings = Settings(resolve_model(), timeout=0.5, state_dir=state, faults="hang-start")
    try:
        with fails_after(60):
            output = _isolated(Task(0, str(folder / "f00.wav"), "0" * 40), settings)
    finally:
        stop.set()
    assert output.result.status == "crashed" and output.result.error is not None
    message = output.result.error.message
    assert "no worker could analyze it: a worker stopped for over 1 s outside" in message


def test_markers_say_what_a_worker_does_and_overdue_ones_are_ended(tmp_path: Path) -> None:
    """The marker protocol: busy around a batch, running around a file and busy
    again after it (its clock restarted), and kill_overdue ending the workers
    past their limits, each marker saying why."""
    from analyzer.guard import _started, busy, guarded, kill_overdue, still_busy

    state = tmp_path / "state"
    state.mkdir()
    mine = state / str(os.getpid())
    me = _started(os.getpid())
    assert me is not None and me.isdigit()
    with busy(str(state), 7):
        assert mine.read_text() == f"busy 7 {me}"
        with guarded("a.wav", 3, state_dir=str(state), timeout=None):
            assert mine.read_text() == f"running 3 {me}"
        assert mine.read_text() == f"busy 7 {me}"
        os.utime(mine, (time.time() - 50, time.time() - 50))
        still_busy(str(state))
        assert time.time() - mine.stat().st_mtime < 5
    assert not mine.exists()

    sleepers = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(4)
    ]
    try:
        markers = {
            p.pid: f"{text} {_started(p.pid)}"
            for p, text in zip(
                sleepers, ["running 1", "busy 2", "busy 3", "running 4"], strict=True
            )
        }
        for pid, text in markers.items():
            (state / str(pid)).write_text(text)
        old = time.time() - 10
        for pid in list(markers)[:2]:
            os.utime(state / str(pid), (old, old))
        assert kill_overdue(str(state), math.inf, 60.0) == []  # no --timeout, busy 10 s
        assert sorted(kill_overdue(str(state), 5.0, 5.0)) == [1, 2]
        assert [p.wait(10) for p in sleepers[:2]] == [-signal.SIGKILL] * 2
        assert [p.poll() for p in sleepers[2:]] == [None, None]
        texts = [(state / str(p.pid)).read_text() for p in sleepers]
        assert texts == ["timeout 1", "stuck 2", *list(markers.values())[2:]]
    finally:
        for p in sleepers:
            p.kill()
            p.wait()


def test_an_overdue_marker_of_a_process_not_ours_kills_nothing(tmp_path: Path) -> None:
    """A marker left by a worker that died names a pid the system may give to
    another process: kill_overdue must not kill it (and leaves the marker for
    the parent, which reads it when it learns of the death)."""
    from analyzer.guard import _started, kill_overdue

    state = tmp_path / "state"
    state.mkdir()
    # Not our child but our child's (so also where this process is a subreaper).
    spawn = (
        "import subprocess, sys, time; print(subprocess.Popen([sys.executable, '-c',"
        " 'import time; time.sleep(60)'], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,"
        " stderr=subprocess.DEVNULL).pid, flush=True); time.sleep(60)"
    )
    with subprocess.Popen(
        [sys.executable, "-c", spawn], stdout=subprocess.PIPE, text=True
    ) as middle:
        assert middle.stdout is not None
        stranger = int(middle.stdout.readline())
        try:
            marker = state / str(stranger)
            marker.write_text(f"running 5 {_started(stranger)}")  # its own start: only not ours
            old = time.time() - 10
            os.utime(marker, (old, old))
            assert kill_overdue(str(state), 5.0, 5.0) == []
            assert marker.read_text() == f"running 5 {_started(stranger)}"
            os.kill(stranger, 0)  # still alive
        finally:
            os.kill(stranger, signal.SIGKILL)
            middle.kill()


def test_an_overdue_marker_of_a_pid_given_to_another_child_kills_nothing(
    tmp_path: Path,
) -> None:
    """A dead worker's pid given to a new worker of ours (or to a thread of
    one): a child, but not the process that wrote the marker, whose start
    differs; it must not be killed for the marker."""
    from analyzer.guard import _started, kill_overdue

    state = tmp_path / "state"
    state.mkdir()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as newcomer:
        try:
            started = _started(newcomer.pid)
            assert started is not None
            marker = state / str(newcomer.pid)
            marker.write_text(f"running 6 {int(started) - 500}")  # the dead worker's start
            old = time.time() - 10
            os.utime(marker, (old, old))
            assert kill_overdue(str(state), 5.0, 5.0) == []
            assert marker.read_text() == f"running 6 {int(started) - 500}"
            assert newcomer.poll() is None
            marker.write_text(f"running 6 {started}")  # its own: it is the worker
            os.utime(marker, (old, old))
            assert kill_overdue(str(state), 5.0, 5.0) == [6]
            assert newcomer.wait(10) == -signal.SIGKILL
        finally:
            newcomer.kill()


def test_a_scan_removes_the_markers_folders_of_killed_scans(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan killed with -9 leaves its markers' folder in the temporary
    folder; the next pool scan removes it, and nothing else: not a folder of
    a scan still running, nor of another host or container (its pids mean
    nothing here), nor of an older harken, nor odd names, and none of its own."""
    from analyzer.pool import _pid_space

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with subprocess.Popen([sys.executable, "-c", "pass"]) as gone:
        pass
    here = f"harken-inflight-{_pid_space()}"
    killed = temp / f"{here}-{gone.pid}-x1y2z3"
    kept = [
        temp / f"{here}-{os.getpid()}-a1b2c3",  # running
        temp / f"harken-inflight-0123abcd-{gone.pid}-x1y2z3",  # another pid space
        temp / "harken-inflight-0anajt4o",  # an older harken's: no pid
        temp / f"{here}-99999999999999999999-x",  # no pid at all
        temp / f"{here}-\u00b2-x",  # a digit, but not a pid
    ]
    for path in [killed, *kept]:
        path.mkdir()
        (path / "4242").write_text("running 3")
    kept.append(temp / f"{here}-{gone.pid}-afile")
    kept[-1].write_text("not a folder")
    code, rows, _ = run(str(folder), "-j", "2")
    assert code == 0 and len(rows) == 24
    assert sorted(p.name for p in temp.iterdir()) == sorted(p.name for p in kept)


def test_a_scan_whose_markers_folder_vanishes_goes_on(tmp_path: Path, isolated_cache: Path) -> None:
    """A cleaner (or another machine's harken sharing the temporary folder)
    removes the markers' folder mid-scan: timeouts are lost, not the scan."""
    root = tmp_path / "many"
    for i in range(30):  # (long enough that the scan is still going when the folder goes)
        write(root / f"n{i:02d}.wav", noise(2.0, seed=i))
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "HARKEN_CACHE_DIR": str(isolated_cache), "TMPDIR": str(temp)}
    cmd = [sys.executable, "-c", "from cli import main; main()", "scan", str(root)]
    with subprocess.Popen(
        [*cmd, "-j", "2", "-v", "-f", "jsonl"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:  # the pool is up and working
            if ".wav: " in line:
                break
        assert proc.poll() is None, "the scan ended before its folder could be removed"
        (folder,) = temp.glob("harken-inflight-*")
        # Workers go on writing markers while rmtree empties the folder, so
        # one pass can end in "Directory not empty": remove until it is gone.
        for _ in range(100):
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                break
        assert not folder.exists()
        out, err = proc.stdout.read(), proc.stderr.read()
        assert proc.wait(120) == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 30 and {r["status"] for r in rows} == {"ok"}
    assert "Traceback" not in err


def test_stopping_before_the_pool_exists_starts_no_pool() -> None:
    """Ctrl-C while joblib is still being imported: the clean-up must not start
    (or import) a pool, which gave a traceback and exit 1."""
    check = (
        "import sys; from analyzer.pool import _kill_workers; _kill_workers();"
        " assert 'joblib' not in sys.modules, 'imported joblib'"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_usage_error_before_any_work_for_unwritable_output(folder: Path, tmp_path: Path) -> None:
    code, rows, err = run(str(folder), "-o", str(tmp_path / "missing" / "out.json"))
    assert code == EXIT_USAGE and rows == [] and "does not exist" in err
    # A symlink's target is written: its folder counts (this was exit 4 after the scan).
    (tmp_path / "link.json").symlink_to(tmp_path / "nowhere" / "out.json")
    code, rows, err = run(str(folder), "-o", str(tmp_path / "link.json"))
    assert code == EXIT_USAGE and rows == [] and "nowhere' does not exist" in err


def test_scan_api_answers_every_file_under_faults(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(folder / "boom.wav", tone(0.5))
    write(folder / "stuck.wav", tone(0.5))
    monkeypatch.setenv("HARKEN_FAULT", "crash:boom.wav;hang:stuck.wav")
    files = sorted(str(p) for p in folder.iterdir())
    outcomes = list(scan(files, ScanConfig(jobs=2, timeout=1, use_cache=False)))
    assert sorted(o.result.path for o in outcomes) == files


def test_two_runs_at_once_on_one_cache(folder: Path, isolated_cache: Path) -> None:
    env = {**os.environ, "HARKEN_CACHE_DIR": str(isolated_cache)}
    cmd = [
        sys.executable,
        "-c",
        "from cli import main; main()",
        "scan",
        str(folder),
        "-j",
        "1",
        "-q",
        "-f",
        "jsonl",
    ]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    first, second = ([json.loads(line) for line in out.splitlines()] for out, _ in outputs)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in first]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in second]
    assert len(first) == 24


def test_corrupt_cache_warns_and_the_run_goes_on(folder: Path, isolated_cache: Path) -> None:
    isolated_cache.mkdir(parents=True)
    (isolated_cache / "cache.db").write_bytes(b"this is not a database" * 100)
    code, rows, err = run(str(folder), "-j", "1")
    assert code == 0 and len(rows) == 24
    assert "warning:" in err and "cache" in err and "Traceback" not in err


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a real full disk (needs root, else the test is skipped)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_keeps_the_previous_output(folder: Path, tiny_disk: Path) -> None:
    previous = tiny_disk / "out.json"
    previous.write_text('[{"path": "earlier.wav"}]\n')
    filler = tiny_disk / "filler"
    with filler.open("wb", buffering=0) as handle:  # fill what is left
        try:
            while True:
                handle.write(b"\0" * 1024)
        except OSError:
            pass
    result = CliRunner().invoke(main, ["scan", str(folder), "-j", "1", "-o", str(previous)])
    assert result.exit_code == EXIT_OUTPUT
    assert "cannot write" in result.stderr and "previous file is unchanged" in result.stderr
    assert previous.read_text() == '[{"path": "earlier.wav"}]\n'
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler", "out.json"]  # no temp left


def _blocked_signals() -> int:
    """This process's blocked signals (the SigBlk mask of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return int(line.split()[1], 16)
    raise AssertionError("no SigBlk line")


def test_only_harkens_own_workers_start_deaf_to_ctrl_c(folder: Path) -> None:
    """A program that scans with harken, then runs its own joblib pool: that
    pool's workers still hear Ctrl-C (the mask survives exec, and loky's
    spawn stays wrapped in the process)."""
    from joblib import Parallel, delayed

    from analyzer.pool import workers_deaf_to_ctrl_c

    sigint = 1 << (signal.SIGINT - 1)
    with workers_deaf_to_ctrl_c():
        inside = Parallel(n_jobs=2, backend="loky")(delayed(_blocked_signals)() for _ in range(2))
    outcomes = list(scan(sorted(str(p) for p in folder.iterdir()), ScanConfig(jobs=2)))
    assert outcomes and all(o.result.status == "ok" for o in outcomes)
    own = Parallel(n_jobs=2, backend="loky")(delayed(_blocked_signals)() for _ in range(2))
    assert all(mask & sigint for mask in inside)
    assert not any(mask & sigint for mask in own)
