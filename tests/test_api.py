"""The Python API, the pool and the cache, through ``analyzer`` directly."""

from __future__ import annotations

import os
import re
import signal
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import analyzer
from analyzer.scan import ScanConfig, scan

from signals import chord, noise, tone, write


def comparable(results: list[analyzer.FileResult]) -> list[dict]:
    rows = [r.to_dict() for r in results]
    return sorted(
        ({k: v for k, v in r.items() if k != "seconds"} for r in rows), key=lambda r: r["path"]
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("corpus")
    paths = [
        write(root / "tone.wav", tone(1.5)),
        write(root / "notes.flac", chord(2.0, seed=3), format="FLAC"),
        write(root / "hiss.ogg", noise(1.0, seed=4), format="OGG", subtype="VORBIS"),
        write(root / "short.wav", tone(0.01)),
    ]
    (root / "junk.wav").write_bytes(b"RIFF\x00\x00")
    return [str(p) for p in [*paths, root / "junk.wav"]]


def test_analyze_file_in_process(corpus: list[str]) -> None:
    result = analyzer.analyze_file(corpus[0])
    assert result.status == "ok" and result.label in {"music", "noise", "silence", "speech"}
    assert result.facts is not None and result.facts.duration == pytest.approx(1.5)
    assert result.model is not None and result.model.startswith("harken-default@")
    short = analyzer.analyze_file(corpus[3])  # shorter than one FFT frame
    assert short.status == "ok" and short.facts is not None and short.facts.frames == 160
    bad = analyzer.analyze_file(corpus[4])
    assert bad.status == "error" and bad.error is not None and bad.error.kind == "unsupported"
    missing = analyzer.analyze_file(Path(corpus[0]).with_name("gone.wav"))
    assert missing.error is not None and missing.error.kind == "not_found"


def test_analyze_yields_every_file(corpus: list[str], tmp_path: Path) -> None:
    folder = str(Path(corpus[0]).parent)
    results = list(analyzer.analyze([folder], jobs=2, cache_dir=str(tmp_path / "c")))
    assert sorted(r.path for r in results) == sorted(corpus)
    assert {r.path: r.status for r in results}[corpus[4]] == "error"


def test_one_path_is_a_path_not_its_characters(corpus: list[str], tmp_path: Path) -> None:
    folder = Path(corpus[0]).parent
    assert analyzer.discover(str(folder)) == analyzer.discover([folder])
    assert analyzer.discover(folder / "tone.wav") == [str(folder / "tone.wav")]
    results = list(analyzer.analyze(corpus[0], jobs=1, cache_dir=str(tmp_path / "c")))
    assert [r.path for r in results] == [corpus[0]]
    # bytes, as os.listdir(b".") gives them: a path too (was 'unsupported', and a TypeError)
    assert analyzer.discover(os.fsencode(folder)) == analyzer.discover(folder)
    assert analyzer.analyze_file(os.fsencode(corpus[0])).status == "ok"


def test_both_calls_label_alike_below_the_threshold(corpus: list[str], tmp_path: Path) -> None:
    """analyze_file applies the model card's unknown threshold, as analyze does."""
    one = analyzer.analyze_file(corpus[0], min_confidence=1.0)  # (a tone: never sure)
    assert one.label == "unknown" and one.prediction is not None and one.prediction.agreement == 0
    (many,) = analyzer.analyze(corpus[0], jobs=1, cache_dir=str(tmp_path / "c"), min_confidence=1.0)
    assert many.to_dict()["label"] == one.to_dict()["label"]
    default = analyzer.analyze_file(corpus[0])
    (scanned,) = analyzer.analyze(corpus[0], jobs=1, cache_dir=str(tmp_path / "c"))
    assert default.label == scanned.label and default.confidence == scanned.confidence


def test_bad_options_fail_before_any_work(corpus: list[str]) -> None:
    with pytest.raises(TypeError, match="segments must be a SegmentSpec"):
        analyzer.analyze_file(corpus[0], segments=2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="segments must be a SegmentSpec"):
        next(analyzer.analyze(corpus, segments=2.0))
    with pytest.raises(ValueError, match="jobs must be at least 1, not 0"):
        next(analyzer.analyze(corpus, jobs=0))
    # These were taken as given: every label unknown, every file too_long, 2.5 workers.
    for options, error, message in (
        ({"min_confidence": 2}, ValueError, "min_confidence must be at least 0 and at most 1"),
        ({"min_confidence": float("nan")}, ValueError, "min_confidence must be at least 0"),
        ({"max_duration": -5}, ValueError, "max_duration must be over 0, not -5"),
        ({"jobs": 2.5}, TypeError, "jobs must be a whole number, not 2.5"),
        ({"jobs": "2"}, TypeError, "jobs must be a whole number, not '2'"),
        ({"timeout": -1}, ValueError, "timeout must be at least 0"),  # (0: no limit)
        ({"refresh": 1}, TypeError, "refresh must be True or False, not 1"),
        ({"backend": "spark"}, ValueError, "backend must be 'local' or 'dask'"),
    ):
        with pytest.raises(error, match=re.escape(message)):
            next(analyzer.analyze(corpus, **options))
    for options, error, message in (
        ({"min_confidence": -1}, ValueError, "min_confidence must be at least 0"),
        ({"max_duration": 0}, ValueError, "max_duration must be over 0, not 0"),
        ({"trust_model": "yes"}, TypeError, "trust_model must be True or False"),
    ):
        with pytest.raises(error, match=re.escape(message)):
            analyzer.analyze_file(corpus[0], **options)
    with pytest.raises(ValueError, match=r"the window must be at least 0\.5 s"):
        analyzer.SegmentSpec(0.1, 0.01, 5)  # was a timeline, with numpy's warnings
    with pytest.raises(TypeError, match="the window must be a number, not '2'"):
        analyzer.SegmentSpec.make("2")  # type: ignore[arg-type]
    assert analyzer.SegmentSpec.make(2) == analyzer.SegmentSpec(2.0, 1.0)
    # What is fine stays fine: no limit, numpy's numbers.
    import numpy as np

    ScanConfig(timeout=0, jobs=np.int64(2), min_confidence=np.float32(0.5))
    assert analyzer.SegmentSpec.make(np.float32(2.0)) == analyzer.SegmentSpec(2.0, 1.0)


def test_one_glob_is_a_glob_not_its_characters(corpus: list[str]) -> None:
    folder = Path(corpus[0]).parent
    # '*' alone matched every file, and exclude="junk.wav" left out nothing.
    assert analyzer.discover(folder, include="*.wav") == [corpus[4], corpus[3], corpus[0]]
    assert corpus[4] not in analyzer.discover(folder, exclude="junk.wav")
    with pytest.raises(TypeError, match="include must be a string or strings"):
        analyzer.discover(folder, include=[1])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="include must be a string or strings, not 3"):
        analyzer.discover(folder, include=3)  # type: ignore[arg-type]  (was: 'int' object ...)
    with pytest.raises(ValueError, match="an empty pattern matches no file"):
        analyzer.discover(folder, include=["*.flac", ""])  # (it found nothing, quietly)
    assert analyzer.discover(folder, exclude="") == analyzer.discover(folder)  # harmless
    assert analyzer.discover(folder, include=None) == analyzer.discover(folder)  # type: ignore[arg-type]


def test_stopping_early_is_quiet(tmp_path: Path) -> None:
    """Breaking out of analyze() stops the pool without joblib's warning about
    cancelled tasks: the caller asked for it."""
    import time
    import warnings

    files = [str(write(tmp_path / f"n{i:02d}.wav", noise(0.5, seed=i))) for i in range(24)]
    results = analyzer.analyze(files, jobs=2, use_cache=False)
    assert next(results).status == "ok"
    time.sleep(3)  # more batches finish, unused: joblib words its warning otherwise
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results.close()


def test_public_api_is_listed() -> None:
    for name in ("analyze", "analyze_file", "scan", "ScanConfig", "FileResult", "discover"):
        assert name in analyzer.__all__ and hasattr(analyzer, name)


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(jobs=st.sampled_from([1, 2]), picks=st.sets(st.integers(0, 4), min_size=1))
def test_results_do_not_depend_on_cache_or_jobs(
    corpus: list[str], jobs: int, picks: set[int]
) -> None:
    files = [corpus[i] for i in sorted(picks)]
    plain = [o.result for o in scan(files, ScanConfig(jobs=1, use_cache=False))]
    with tempfile.TemporaryDirectory() as cache:
        config = ScanConfig(jobs=jobs, cache_dir=cache)
        cold = list(scan(files, config))
        warm = list(scan(files, config))
    assert not any(o.cached for o in cold)
    assert all(o.cached for o in warm if o.result.status == "ok")
    assert comparable(plain) == comparable([o.result for o in cold])
    assert [r.to_dict() for r in sorted((o.result for o in cold), key=lambda r: r.path)] == [
        r.to_dict() for r in sorted((o.result for o in warm), key=lambda r: r.path)
    ]


def test_changed_file_is_analyzed_again(tmp_path: Path) -> None:
    path = write(tmp_path / "a.wav", tone(1.0))
    config = ScanConfig(jobs=1, cache_dir=str(tmp_path / "c"))
    first = next(scan([str(path)], config))
    stat = path.stat()
    write(path, noise(1.0, seed=9))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime, new bytes
    second = next(scan([str(path)], config))
    assert not second.cached
    assert second.result.content_hash != first.result.content_hash


def _loky_workers() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                status = (entry / "status").read_text()
            except OSError:
                continue
            ppid = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
            if b"LokyProcess" in cmdline and int(ppid) == os.getpid():
                pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_worker_killed_from_outside_loses_nothing(tmp_path: Path) -> None:
    files = [str(write(tmp_path / "in" / f"n{i:03d}.wav", noise(0.5, seed=i))) for i in range(160)]
    config = ScanConfig(jobs=2, cache_dir=str(tmp_path / "c"))
    outcomes = []
    for outcome in scan(files, config):
        if not outcomes:  # the pool is up and working: kill one of its workers
            for pid in _loky_workers()[:1]:
                os.kill(pid, signal.SIGKILL)
        outcomes.append(outcome)
    # The killed worker's files were in flight: each is run again alone, and as
    # none of them is to blame, every file gets its real result, exactly once.
    assert sorted(o.result.path for o in outcomes) == files
    assert {o.result.status for o in outcomes} == {"ok"}
    rerun = list(scan(files, config))
    assert all(o.cached for o in rerun)
    assert all(o.result.status == "ok" for o in rerun)
