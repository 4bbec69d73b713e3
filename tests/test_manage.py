"""Cron and CI helpers: run history, cache management, --lock, --dry-run, --changed-only."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.lock import RunLock
from cli import main
from cli.scan import EXIT_LOCKED, EXIT_USAGE

from signals import chord, default_sigint, noise, tone, unprivileged, write


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for i in range(4):
        write(tmp_path / "in" / f"n{i}.wav", noise(0.5, seed=i))
    write(tmp_path / "in" / "notes.flac", chord(1.0), format="FLAC")
    return tmp_path / "in"


def test_runs_are_recorded_and_reprinted(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)  # (a width the user asks for wins)
    _, first, _ = invoke("scan", str(folder), "-j", "1", "-f", "jsonl")
    _, _, _ = invoke("scan", str(folder), "-j", "1", "-q")
    code, out, _ = invoke("runs", "list", "-f", "json")
    assert code == 0
    runs = json.loads(out)
    assert len(runs) == 2 and runs[0]["started"] >= runs[1]["started"]
    assert [r["state"] for r in runs] == ["finished", "finished"]
    assert runs[0]["cached"] == 5 and runs[1]["cached"] == 0
    assert runs[0]["statuses"] == {"ok": 5} and runs[0]["files"] == 5
    assert runs[1]["arguments"]["paths"] == [str(folder)]
    assert runs[1]["arguments"]["jobs"] == 1 and runs[1]["arguments"]["format"] == "jsonl"
    prefix = runs[1]["id"][:-5]  # up to the millisecond: a unique prefix picks the run
    code, again, _ = invoke("runs", "show", prefix, "-f", "jsonl")
    assert code == 0 and again == first
    code, out, err = invoke("runs", "show", "last")
    assert code == 0 and "n0.wav" in out and "(5 cached): 5 ok" in err
    assert invoke("runs", "show", "nonsense")[0] == EXIT_USAGE
    code, out, _ = invoke("runs", "list")
    assert code == 0 and "finished" in out
    # Piped, the table is as wide as its content, not cut to 80 columns.
    assert "statuses" in out and "ok 5" in out and "…" not in out
    # The history keeps its own limits: a byte cap drops older runs, never the newest.
    from analyzer import runs as history
    from analyzer.cache import default_cache_dir

    two_runs = sum(f.stat().st_size for f in history.runs_dir(default_cache_dir()).iterdir())
    monkeypatch.setattr(history, "KEEP_BYTES", two_runs // 4)
    invoke("scan", str(folder), "-j", "1", "-q")
    assert len(json.loads(invoke("runs", "list", "-f", "json")[1])) == 2  # the newest, and this
    monkeypatch.setattr(history, "KEEP_BYTES", 10 * two_runs)
    invoke("scan", str(folder), "-j", "1", "-q")
    assert len(json.loads(invoke("runs", "list", "-f", "json")[1])) == 3


def test_a_running_scan_can_be_followed(folder: Path, isolated_cache: Path) -> None:
    write(folder / "stuck.wav", tone(0.3))
    env = {**os.environ, "HARKEN_CACHE_DIR": str(isolated_cache), "HARKEN_FAULT": "hang:stuck*"}
    cmd = [
        sys.executable,
        "-c",
        "from cli import main; main()",
        "scan",
        str(folder),
        "-j",
        "2",
        "-v",
        "--timeout",
        "600",
        "-f",
        "jsonl",
    ]
    proc = subprocess.Popen(
        cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stderr is not None
        done = 0
        for line in proc.stderr:
            done += ".wav: " in line or ".flac: " in line
            if done >= 5:
                break
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            runs = json.loads(invoke("runs", "list", "-f", "json")[1])
            if runs and runs[0]["done"] >= 5:
                break
            time.sleep(0.5)
        assert runs[0]["state"] == "running" and runs[0]["done"] >= 5 and runs[0]["files"] == 6
        code, out, _ = invoke("runs", "show", "last", "-f", "jsonl")  # what it finished so far
        assert code == 0 and len(out.splitlines()) >= 5
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    runs = json.loads(invoke("runs", "list", "-f", "json")[1])
    assert runs[0]["state"] == "interrupted"  # its process is gone


def test_cache_info_clear_and_prune(folder: Path) -> None:
    invoke("scan", str(folder), "-j", "1", "-q")
    invoke("scan", str(folder), "-j", "1", "-q")
    code, out, _ = invoke("cache", "info", "-f", "json")
    info = json.loads(out)
    assert code == 0 and info["usable"] and info["entries"] > 0 and info["bytes"] > 0
    assert info["hits"] >= 5 and 0 < info["hit_rate"] < 1
    assert info["runs"] == 2 and info["runs_bytes"] > 0  # beside the cache, not in its size
    code, out, _ = invoke("cache", "info")
    assert code == 0 and "hit rate" in out and "entries" in out and "2 recorded" in out
    code, out, _ = invoke("cache", "prune", "--older-than", "30d")
    assert code == 0 and out.startswith("removed 0 ")
    time.sleep(1.1)
    code, out, _ = invoke("cache", "prune", "--older-than", "1s")
    assert code == 0 and int(out.split()[1]) == info["entries"]
    invoke("scan", str(folder), "-j", "1", "-q")
    code, out, _ = invoke("cache", "clear")
    assert code == 0 and int(out.split()[1]) > 0
    assert json.loads(invoke("cache", "info", "-f", "json")[1])["entries"] == 0
    assert invoke("cache", "prune", "--older-than", "soon")[0] == EXIT_USAGE
    # A bare number was seconds: "30", meant as days, emptied the cache.
    invoke("scan", str(folder), "-j", "1", "-q")
    code, _, err = invoke("cache", "prune", "--older-than", "0")
    assert code == EXIT_USAGE and "with a unit" in err
    assert json.loads(invoke("cache", "info", "-f", "json")[1])["entries"] > 0


def test_cache_commands_on_a_folder_that_does_not_exist(tmp_path: Path) -> None:
    """A mistyped --cache-dir made an empty cache there and reported success."""
    typo = tmp_path / "typo" / "cache"
    for command in (["info"], ["clear"], ["prune", "--older-than", "1d"]):
        code, _, err = invoke("cache", *command, "--cache-dir", str(typo))
        assert code == EXIT_USAGE and "no such folder" in err and "nothing was done" in err
    assert not (tmp_path / "typo").exists()


def test_cache_commands_before_the_first_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default folder, not made yet: an empty cache, and nothing made."""
    monkeypatch.delenv("HARKEN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    from analyzer.cache import default_cache_dir

    assert default_cache_dir().startswith(str(tmp_path / "xdg"))
    code, out, _ = invoke("cache", "info", "-f", "json")
    assert code == 0 and json.loads(out)["entries"] == 0
    assert invoke("cache", "info")[0] == 0
    for command in (["clear"], ["prune", "--older-than", "1d"]):
        code, out, _ = invoke("cache", *command)
        assert code == 0 and out.startswith("removed 0 entries") and "yet" in out
    assert not (tmp_path / "xdg").exists()


def test_a_damaged_cache_is_reset_by_clear(folder: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "cache.db").write_text("not a database")
    (damaged / "runs").mkdir()  # the run history beside it stays
    (damaged / "cache.db.bak").write_text("the user's")  # and so does what is not diskcache's
    where = ("--cache-dir", str(damaged))
    for args in (("info",), ("prune", "--older-than", "1d")):
        code, _, err = invoke("cache", *args, *where)
        assert code == EXIT_USAGE and "'harken cache clear' resets it" in err
        assert "Warning" not in err
    code, out, _ = invoke("cache", "clear", *where)
    assert code == 0 and "reset" in out
    assert (damaged / "runs").is_dir() and (damaged / "cache.db.bak").exists()
    assert not (damaged / "cache.db").exists()
    assert invoke("scan", str(folder), "-j", "1", "-q", *where)[0] == 0
    info = json.loads(invoke("cache", "info", "-f", "json", *where)[1])
    assert info["usable"] and info["entries"] > 0


def test_a_cache_harken_may_not_write_is_not_called_damaged(folder: Path, tmp_path: Path) -> None:
    # It was: "cannot be opened; 'harken cache clear' resets it", and clear then
    # failed ("nor reset"); the cache was never damaged.
    cache = tmp_path / "cache"
    assert invoke("scan", str(folder), "-j", "1", "-q", "--cache-dir", str(cache))[0] == 0
    saved = sorted(p.name for p in cache.iterdir())
    for path in (cache, *cache.iterdir()):
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        harken = [*unprivileged(), sys.executable, "-c", "from cli import main; main()"]
        for command in (["info"], ["prune", "--older-than", "1d"], ["clear"]):
            done = subprocess.run(
                [*harken, "cache", *command, "--cache-dir", str(cache)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == EXIT_USAGE, done.stderr
            assert "harken may not write there" in done.stderr
            assert "resets" not in done.stderr and "nor reset" not in done.stderr
    finally:
        cache.chmod(0o755)
    assert sorted(p.name for p in cache.iterdir()) == saved


def test_a_cache_removed_during_the_run_is_said_once(folder: Path, tmp_path: Path) -> None:
    # The run went on writing to the deleted database without an error, and
    # printed the run record's failure every second.
    cache = tmp_path / "cache"
    env = {**os.environ, "HARKEN_FAULT": "hang:n3*"}  # time to remove it mid-run
    args = [str(folder), "-j", "1", "-v", "--timeout", "3", "--cache-dir", str(cache)]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cli import main; main()", "scan", *args, "-f", "jsonl"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if ".wav: " in line:  # the first file is done; n3.wav will hang
            break
    cache.rename(tmp_path / "elsewhere")  # (rmtree could race the run's own writes)
    _, err = proc.communicate(timeout=60)
    assert "was removed or replaced during the run" in err
    assert err.count("could not update the run record") <= 1, err


def test_the_cache_says_when_it_was_removed_or_replaced(tmp_path: Path) -> None:
    from analyzer.cache import CacheWarning, ResultCache

    folder = tmp_path / "cache"
    kept = ResultCache(str(folder))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept.close()  # still in place: nothing to say
    for swap in (shutil.rmtree, lambda f: f.rename(tmp_path / "elsewhere")):
        cache = ResultCache(str(folder))
        swap(folder)
        ResultCache(str(folder)).close()  # another run makes a new one there
        with pytest.warns(CacheWarning, match="removed or replaced during the run"):
            cache.close()
        shutil.rmtree(folder)


def test_size_limit_evicts_and_says_so(folder: Path) -> None:
    code, _, err = invoke("scan", str(folder), "-j", "1", "--cache-size", "1")
    assert code == 0 and "cache: evicted" in err


def test_lock_refuses_a_second_run_and_wait_waits(folder: Path, isolated_cache: Path) -> None:
    with RunLock(str(isolated_cache)):
        code, out, err = invoke("scan", str(folder), "--lock", "-j", "1")
        assert code == EXIT_LOCKED and out == ""
        assert "holds the lock" in err and f"pid {os.getpid()}" in err
    holder = RunLock(str(isolated_cache))
    holder.__enter__()
    threading.Timer(1.0, holder.__exit__, (None, None, None)).start()
    start = time.monotonic()
    code, _, err = invoke("scan", str(folder), "--lock", "--wait", "-j", "1")
    assert code == 0 and time.monotonic() - start >= 0.9
    # It waited without a word: a log could not tell a wait from a hang.
    waiting = rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d waiting: harken pid {os.getpid()} since "
    assert re.search(waiting, err, re.M), err


def test_a_run_that_waited_names_itself_in_the_lock_file(tmp_path: Path) -> None:
    # It wrote its name after as many NUL bytes as it had read of the holder's.
    holder = RunLock(str(tmp_path))
    holder.__enter__()
    threading.Timer(0.5, holder.__exit__, (None, None, None)).start()
    told: list[str] = []
    with RunLock(str(tmp_path), wait=True, on_wait=told.append):
        assert (tmp_path / "harken.lock").read_bytes().startswith(b"harken pid ")
    assert told and told[0].startswith(f"harken pid {os.getpid()} since ")


def test_lock_that_cannot_be_created_is_a_usage_error(folder: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, out, err = invoke("scan", str(folder), "--lock", "--cache-dir", str(blocker / "c"))
    assert code == EXIT_USAGE and out == ""
    assert f"cannot create the lock file {blocker / 'c' / 'harken.lock'}" in err
    assert "--lock needs a cache folder it can write to" in err


def open_files(pid: int) -> set[str]:
    fds = Path(f"/proc/{pid}/fd")
    try:
        return {os.readlink(fd) for fd in fds.iterdir()}
    except OSError:  # gone, or between listing and reading
        return set()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_ctrl_c_while_waiting_for_the_lock_is_exit_130(folder: Path, isolated_cache: Path) -> None:
    env = {**os.environ, "HARKEN_CACHE_DIR": str(isolated_cache)}
    with RunLock(str(isolated_cache)):
        waiter = subprocess.Popen(
            [sys.executable, "-c", "from cli import main; main()", "scan", str(folder), "--wait"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=default_sigint,
        )
        lock = str(isolated_cache / "harken.lock")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and lock not in open_files(waiter.pid):
            time.sleep(0.1)
        time.sleep(0.3)  # from opening the lock file to waiting on it
        waiter.send_signal(signal.SIGINT)
        out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 130, err
    assert out == "" and err.strip().endswith("interrupted") and "Aborted" not in err


def test_dry_run_says_what_would_happen(folder: Path, tmp_path: Path) -> None:
    (folder / "bad.wav").write_bytes(b"not audio")
    code, out, err = invoke("scan", str(folder), "--dry-run")
    assert code == 0 and "dry run, nothing analyzed: 6 new" in err
    invoke("scan", str(folder), "-j", "1", "-q")
    write(folder / "n0.wav", tone(0.5))  # rewritten
    write(folder / "added.wav", tone(0.7))
    code, out, _ = invoke("scan", str(folder), "--dry-run")
    states = {Path(line.split("\t")[1]).name: line.split("\t")[0] for line in out.splitlines()}
    assert states == {
        "added.wav": "new",
        "bad.wav": "previously failed",
        "n0.wav": "changed",
        "n1.wav": "cached",
        "n2.wav": "cached",
        "n3.wav": "cached",
        "notes.flac": "cached",
    }
    code, out, _ = invoke("scan", str(folder / "bad.wav"), "--dry-run", "--retry-failed")
    assert out.startswith("retry failed\t")  # was "previously failed" either way
    other = tmp_path / "other.skops"
    other.write_bytes(
        Path(__import__("analyzer").modelfile.DEFAULT_MODEL_PATH).read_bytes() + b""
    )  # same bytes: same fingerprint, still cached
    code, out, _ = invoke("scan", str(folder / "n1.wav"), "--dry-run", "--model", str(other))
    assert out.startswith("cached\t")
    code, out, _ = invoke("scan", str(folder / "missing.wav"), "--dry-run")
    assert out.startswith("not_found\t")  # what the scan would report
    for option, value in (("-o", "plan.csv"), ("--junit", "-"), ("--labels-dir", "labels")):
        target = value if value == "-" else str(tmp_path / value)
        code, _, err = invoke("scan", str(folder), "--dry-run", option, target)
        assert code == EXIT_USAGE and f"{option} does not apply" in err
    assert not (tmp_path / "labels").exists()
    # Outputs from harken.toml or the environment are the real runs' own.
    env = {"HARKEN_SCAN_JUNIT": str(tmp_path / "nightly.xml")}
    result = CliRunner().invoke(main, ["scan", str(folder), "--dry-run"], env=env)
    assert result.exit_code == 0 and not (tmp_path / "nightly.xml").exists()
    assert invoke("scan", str(folder), "--dry-run", "-o", "-")[0] == 0  # standard output


def _delivered(folder: Path) -> list[str]:
    """The names a nightly ``--changed-only`` run outputs."""
    code, out, _ = invoke("scan", str(folder), "-j", "1", "-q", "-f", "jsonl", "--changed-only")
    assert code == 0
    return sorted(Path(json.loads(line)["path"]).name for line in out.splitlines())


def test_changed_only_outputs_just_the_new_files(folder: Path) -> None:
    invoke("scan", str(folder), "-j", "1", "-q")  # a person tries it out first
    # A new stream is given every result: the try-out's went to a terminal.
    assert _delivered(folder) == sorted(p.name for p in folder.iterdir())
    write(folder / "added.wav", tone(0.7))
    code, out, err = invoke("scan", str(folder), "-j", "1", "-f", "jsonl", "--changed-only")
    assert code == 0
    assert [Path(json.loads(line)["path"]).name for line in out.splitlines()] == ["added.wav"]
    assert "6 files in" in err
    assert _delivered(folder) == []


def test_changed_only_outputs_files_copied_or_renamed_into_the_archive(folder: Path) -> None:
    """Their content is cached under another name, so they were answered from
    the cache, and never output."""
    _delivered(folder)
    first = sorted(folder.iterdir())[0]
    shutil.copy(first, folder / "copy.wav")
    first.rename(folder / "renamed.wav")
    assert _delivered(folder) == ["copy.wav", "renamed.wav"]
    assert _delivered(folder) == []


def test_a_copy_seen_by_a_run_stopped_before_listing_it_is_still_delivered(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stopped after hashing a copied file, before listing it where
    --changed-only looks: had its path been remembered, the copy was never
    new again, so never written out."""
    from analyzer.delivery import Undelivered

    _delivered(folder)
    shutil.copy(sorted(folder.iterdir())[0], folder / "copy.wav")

    def stopped(self: Undelivered, paths: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(Undelivered, "add", stopped)
        assert invoke("scan", str(folder), "-j", "1", "-q")[0] == 130
    assert _delivered(folder) == ["copy.wav"]


def test_a_copy_first_seen_by_training_is_still_delivered(folder: Path) -> None:
    """Training on the archive's files on the same cache hashes them too: had
    it remembered the copy's path unlisted, the copy was never new to a scan."""
    from analyzer.cache import default_cache_dir
    from analyzer.dataset import LabeledClip
    from analyzer.featureconfig import FeatureConfig
    from analyzer.training import featurize

    _delivered(folder)
    copy = folder / "copy.wav"
    shutil.copy(sorted(folder.iterdir())[0], copy)
    clip = LabeledClip(path=str(copy), label="tone", group="copy")
    features = featurize([clip], config=FeatureConfig(), jobs=1, cache_dir=default_cache_dir())
    assert features.kept == [0]
    assert _delivered(folder) == ["copy.wav"]


def test_changed_only_matches_paths_however_they_are_spelled(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person's scan from another folder lists a new file by another
    spelling than the nightly run's: it was never written out."""
    _delivered(folder)
    write(folder / "added.wav", tone(0.7))
    monkeypatch.chdir(folder.parent)
    assert invoke("scan", folder.name, "-j", "1", "-q")[0] == 0
    assert _delivered(folder) == ["added.wav"]


def test_an_interrupted_first_run_leaves_everything_undelivered(folder: Path) -> None:
    from analyzer.cache import default_cache_dir
    from analyzer.delivery import Undelivered

    invoke("scan", str(folder), "-j", "1", "-q")
    Undelivered(default_cache_dir()).start()  # as a first run killed before its output
    assert len(_delivered(folder)) == 5


def recorded_results(cache: Path) -> int:
    """How many whole result records the run records in ``cache`` hold so far."""
    count = 0
    for path in (cache / "runs").glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                json.loads(line)
            except ValueError:  # being appended
                continue
            count += 1
    return count


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_changed_only_delivers_what_an_interrupted_run_analyzed(
    tmp_path: Path, isolated_cache: Path, signum: int
) -> None:
    """The nightly job is stopped mid-run (its finished results are cached);
    rerun to the same file, --changed-only must still output every file."""
    root = tmp_path / "archive"
    for i in range(12):
        write(root / f"n{i:02d}.wav", noise(0.3, seed=i))
    day = tmp_path / "day.jsonl"
    env = {**os.environ, "HARKEN_CACHE_DIR": str(isolated_cache), "HARKEN_FAULT": "hang:n1*"}
    command = [sys.executable, "-c", "from cli import main; main()", "scan", str(root)]
    nightly = [*command, "--lock", "--changed-only", "-o", str(day)]
    proc = subprocess.Popen(
        [*nightly, "-j", "2", "-v", "--timeout", "600"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    done = 0
    for line in proc.stderr:  # some files finished (and cached), n10/n11 hang
        done += ".wav: " in line
        if done >= 4:
            break
    # The run record's writer (every second) has appended what finished.
    deadline = time.monotonic() + 30
    while recorded_results(isolated_cache) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signum)
    proc.wait(timeout=60)
    proc.stderr.close()
    # The run's record keeps what it finished, however it ended.
    shown = subprocess.run(
        [*command[:3], "runs", "show", "last", "-f", "jsonl"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert 4 <= len(shown.stdout.splitlines()) < 12
    env.pop("HARKEN_FAULT")
    again = subprocess.run([*nightly, "-q"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    rows = [json.loads(line) for line in day.read_text().splitlines()]
    assert sorted(Path(r["path"]).name for r in rows) == [f"n{i:02d}.wav" for i in range(12)]
    # Delivered now: the next night has nothing new to say.
    third = subprocess.run([*nightly, "-q"], env=env, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0 and day.read_text() == ""


def test_the_undelivered_list_keeps_any_name(tmp_path: Path) -> None:
    from analyzer.delivery import Undelivered, _encode

    names = ["plain.wav", "new\nline.wav", "latin1-\udce9.wav", 'q"uote.wav']
    names = [os.path.abspath(name) for name in names]  # (kept absolute)
    here = os.path.abspath("other.wav")
    listed = Undelivered(str(tmp_path / "cache"))
    listed.add(names)  # not kept until a --changed-only run starts it
    assert listed.listed().paths == set() and here not in listed.listed()
    listed.start()
    assert here in listed.listed()  # everything, until a run has finished
    listed.remove([], [])
    assert here in listed.listed()  # (a run of no files delivered nothing)
    listed.remove([], [here])  # its folder is covered now
    assert here not in listed.listed()
    listed.add(names[:2])
    with open(listed.path, "ab") as handle:
        handle.write(b'\n"cut sho')  # a crash mid-record costs only that record
    listed.add(names[2:])
    assert listed.listed().paths == set(names)
    listed.start()  # a later run's start keeps the list
    listed.remove(names[:2], names[:2])
    assert listed.listed().paths == set(names[2:]) and all(n in listed.listed() for n in names[2:])
    assert here not in Undelivered(str(tmp_path / "nowhere")).listed()
    # A folder covers its own files, not its subfolders' (a --files-from run).
    below = os.path.join(os.path.dirname(here), "sub", "x.wav")
    assert below in listed.listed()
    # A list from before folders were kept: every folder is covered, and stays so.
    listed.path.write_bytes(_encode([names[0]]))
    assert listed.listed().paths == {names[0]} and below not in listed.listed()
    listed.remove([names[0]], [here])
    assert listed.listed().paths == set() and below not in listed.listed()


def test_a_folder_that_joins_the_changed_only_job_is_written_out_once(
    folder: Path, tmp_path: Path
) -> None:
    """Its files were cached by a manual scan before any --changed-only run:
    the first run that included it wrote none of them, nor did any later one."""
    other = tmp_path / "arD"
    write(other / "d.wav", tone(0.6))
    assert invoke("scan", str(other), "-j", "1", "-q")[0] == 0  # someone looks at arD once
    nightly = ("scan", "-j", "1", "-q", "--changed-only", "-f", "jsonl")
    assert len(invoke(*nightly, str(folder))[1].splitlines()) == 5  # nights of the archive
    assert invoke(*nightly, str(folder))[1] == ""
    for expected in (["d.wav"], []):  # arD joins the job
        code, out, _ = invoke(*nightly, str(folder), str(other))
        assert code == 0
        assert [Path(json.loads(line)["path"]).name for line in out.splitlines()] == expected


def test_an_unusable_list_is_a_warning_and_the_scan_goes_on(folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "undelivered.lock").mkdir(parents=True)  # cannot be opened as a file
    code, out, err = invoke(
        "scan", str(folder), "-j", "1", "-f", "jsonl", "--changed-only", "--cache-dir", str(cache)
    )
    assert code == 0 and len(out.splitlines()) == 5
    assert err.count("warning: cannot keep the list of undelivered results") == 1


def test_changed_only_also_outputs_what_another_run_analyzed(folder: Path) -> None:
    """A manual scan analyzes a new file first: the nightly --changed-only run
    must still write it out (once), though it comes from the cache."""
    invoke("scan", str(folder), "-j", "1", "-q", "--changed-only", "-f", "jsonl")
    write(folder / "added.wav", tone(0.7))
    assert invoke("scan", str(folder), "-j", "1", "-q")[0] == 0  # a person looks first
    for expected in (["added.wav"], []):
        code, out, _ = invoke("scan", str(folder), "-j", "1", "-q", "--changed-only", "-f", "jsonl")
        assert code == 0
        assert [Path(json.loads(line)["path"]).name for line in out.splitlines()] == expected
