"""harken's benchmark harness: ``nox -s bench`` (or ``python benchmarks/run.py``).

Every figure is a ratio against a baseline measured in the same run, as the
median of several runs, because shared machines are noisy. Writes
``benchmarks/RESULTS.md``. Needs nothing outside the repository: the audio is
made from the example clips (real recordings) cut and re-levelled to mixed
lengths, plus a long generated file for the memory and segment cases.

    python benchmarks/run.py            # everything (about 12 minutes on 2 cores)
    python benchmarks/run.py --quick    # fewer files, for a smoke test
    python benchmarks/run.py --only memory   # one case (memory, throughput, dask), printed
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "audio"
RATES = (16000, 22050, 44100, 48000)


def harken(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from cli import main; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_clips(folder: Path, count: int, *, seed: int, short: bool = False) -> float:
    """``count`` WAV/FLAC/OGG clips of 0.5-30 s (0.5 s if ``short``); returns total seconds."""
    rng = np.random.default_rng(seed)
    sources = [sf.read(p, dtype="float32")[0] for p in sorted(EXAMPLES.glob("*.ogg"))]
    total = 0.0
    for i in range(count):
        rate = int(rng.choice(RATES))
        seconds = 0.5 if short else float(np.exp(rng.uniform(np.log(0.5), np.log(30.0))))
        src = sources[i % len(sources)]
        n = int(seconds * 16000)
        reps = int(np.ceil((n + 16000) / src.size))
        start = int(rng.integers(0, src.size))
        clip = np.tile(src, reps + 1)[start : start + n] * rng.uniform(0.3, 1.0)
        clip = clip + rng.normal(0, 1e-4, clip.size)  # every file's bytes differ
        if rate != 16000:
            import soxr

            clip = soxr.resample(clip, 16000, rate)
        fmt = ("WAV", "FLAC", "OGG")[i % 3]
        sub = folder / f"d{i // 500:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        suffix = {"WAV": "wav", "FLAC": "flac", "OGG": "ogg"}[fmt]
        sf.write(sub / f"c{i:05d}.{suffix}", clip.astype(np.float32), rate, format=fmt)
        total += seconds
    return total


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_throughput(work: Path, count: int, repeat: int) -> dict[str, float]:
    """Cold-cache scan with 2 jobs against a serial loop over analyze_file.

    Audio per CPU-second is given end to end (start-up included) and per
    file: the CPU of the same command on two 0.5 s clips (start-up, imports,
    the model in each worker) is taken off, which is what a large set sees.
    """
    folder = work / "mixed"
    audio_seconds = make_clips(folder, count, seed=1)
    tiny = work / "tiny"
    make_clips(tiny, 2, seed=2, short=True)
    serial_code = (
        "import sys, analyzer\n"
        "files = analyzer.discover([sys.argv[1]])\n"
        "for f in files: analyzer.analyze_file(f)\n"
    )

    def serial() -> None:
        subprocess.run([sys.executable, "-c", serial_code, str(folder)], check=True)

    def pooled() -> None:
        done = harken("scan", str(folder), "--jobs", "2", "--no-cache", "-q", "-f", "jsonl")
        assert done.returncode == 0, done.stderr

    cpu0 = cpu_children()
    serial_time = timed(serial, repeat)
    cpu1 = cpu_children()
    pooled_time = timed(pooled, repeat)
    cpu2 = cpu_children()
    for _ in range(repeat):
        done = harken("scan", str(tiny), "--jobs", "2", "--no-cache", "-q", "-f", "jsonl")
        assert done.returncode == 0, done.stderr
    fixed = (cpu_children() - cpu2) / repeat
    per_run = (cpu2 - cpu1) / repeat
    return {
        "files": count,
        "audio_seconds": round(audio_seconds, 1),
        "serial_s": round(serial_time, 2),
        "pool2_s": round(pooled_time, 2),
        "speedup": round(serial_time / pooled_time, 2),
        "realtime_per_cpu_serial": round(audio_seconds * repeat / (cpu1 - cpu0), 1),
        "realtime_per_cpu_pool": round(audio_seconds * repeat / (cpu2 - cpu1), 1),
        "fixed_cpu_s_per_run": round(fixed, 2),
        "realtime_per_cpu_pool_per_file": round(audio_seconds / max(per_run - fixed, 1e-9), 1),
    }


def bench_dask(work: Path, repeat: int) -> dict[str, float]:
    """The Dask backend's overhead against the local pool, same machine, same files.

    The cluster (2 worker processes of one thread, on loopback) is started
    once, as a user's would be; the files are those of the throughput case.
    The first scan on it pays for loading scikit-learn and the model in its
    workers; later scans find them loaded, which the local pool's workers,
    started anew by every run, never do.
    """
    import logging

    from distributed import Client, LocalCluster

    folder = work / "mixed"
    base = ["scan", str(folder), "--no-cache", "-q", "-f", "jsonl"]

    def run(*extra: str) -> Callable[[], None]:
        def go() -> None:
            done = harken(*base, *extra)
            assert done.returncode == 0, done.stderr

        return go

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    )
    try:
        with Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(2)
        address = cluster.scheduler_address
        local = timed(run("--jobs", "2"), repeat)
        first = timed(run("--backend", "dask", "--scheduler", address), 1)
        dask = timed(run("--backend", "dask", "--scheduler", address), repeat)
        shipped = timed(run("--backend", "dask", "--scheduler", address, "--ship-audio"), repeat)
    finally:
        cluster.close()
    own = timed(run("--backend", "dask", "--jobs", "2"), repeat)
    return {
        "local_pool_s": round(local, 2),
        "dask_first_s": round(first, 2),
        "dask_s": round(dask, 2),
        "dask_ship_audio_s": round(shipped, 2),
        "dask_own_localcluster_s": round(own, 2),
        "dask_first_over_local": round(first / local, 2),
        "dask_over_local": round(dask / local, 2),
        "ship_audio_over_local": round(shipped / local, 2),
        "own_localcluster_over_local": round(own / local, 2),
    }


def bench_peer(work: Path, repeat: int) -> dict[str, object]:
    """pyAudioAnalysis's shipped 4-class SVM (``file_classification``) against
    ``harken scan --jobs 1`` on the same 16-bit WAV files: CPU per audio
    second, and labels on the example clips (its ``other`` counts as noise).

    The peer gets its own virtual environment (``benchmarks/peer``); when it
    does not install, the case says why and the rest goes on.
    """
    peer_dir = REPO / "benchmarks" / "peer"
    venv = work / "peer-venv"
    python = venv / "bin" / "python"
    if sys.version_info >= (3, 13):
        return {"status": "not run: pyAudioAnalysis needs Python 3.12 or older"}
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(peer_dir / "requirements.txt")],
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        return {"status": f"not installed: {(exc.stderr or str(exc)).strip()[-300:]}"}

    def as_wav(sources: list[Path], folder: Path) -> float:
        folder.mkdir(parents=True, exist_ok=True)
        seconds = 0.0
        for i, path in enumerate(sources):
            data, rate = sf.read(path, dtype="float32")
            sf.write(folder / f"{i:05d}-{path.stem}.wav", data, rate, subtype="PCM_16")
            seconds += len(data) / rate
        return seconds

    wavs = work / "peer-wavs"
    audio_seconds = as_wav(sorted((work / "mixed").rglob("c*.*")), wavs)

    def peer(folder: Path) -> dict[str, Any]:
        done = subprocess.run(
            [str(python), str(peer_dir / "peer.py"), str(folder)],
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(done.stdout)

    try:
        peer_cpu = statistics.median(peer(wavs)["cpu_seconds"] for _ in range(repeat))
    except (subprocess.CalledProcessError, ValueError) as exc:
        return {"status": f"failed: {str(exc)[-300:]}"}

    def ours() -> None:
        done = harken("scan", str(wavs), "--jobs", "1", "--no-cache", "-q", "-f", "jsonl")
        assert done.returncode == 0, done.stderr

    cpu0 = cpu_children()
    timed(ours, repeat)
    ours_cpu = (cpu_children() - cpu0) / repeat
    examples = work / "peer-examples"
    as_wav(sorted(EXAMPLES.glob("*.ogg")), examples)
    truth = {p.name: p.name.split("-")[1] for p in examples.glob("*.wav")}
    answers = peer(examples)["labels"].items()
    theirs = {name: {"other": "noise"}.get(label or "", label) for name, label in answers}
    done = harken("scan", str(examples), "--no-cache", "-q", "-f", "jsonl")
    mine = {Path(r["path"]).name: r["label"] for r in map(json.loads, done.stdout.splitlines())}
    return {
        "status": "ran",
        "files": len(list(wavs.glob("*.wav"))),
        "audio_seconds": round(audio_seconds, 1),
        "peer_cpu_s_classification_loop": round(peer_cpu, 2),
        "harken_cpu_s_whole_command": round(ours_cpu, 2),
        "harken_speed_over_peer": round(peer_cpu / ours_cpu, 2),
        "example_clips": len(truth),
        "peer_right_on_examples": sum(theirs[n] == t for n, t in truth.items()),
        "harken_right_on_examples": sum(mine.get(n) == t for n, t in truth.items()),
    }


def bench_warm(work: Path, count: int, repeat: int) -> dict[str, object]:
    """Rerun over unchanged files: all cached, no heavy imports."""
    folder = work / f"warm{count}"
    make_clips(folder, count, seed=2, short=True)
    env = {**os.environ, "HARKEN_CACHE_DIR": str(work / f"cache{count}")}
    cold_start = time.perf_counter()
    cold = harken("scan", str(folder), "-q", "-f", "jsonl", env=env)
    cold_time = time.perf_counter() - cold_start
    assert cold.returncode == 0, cold.stderr
    time.sleep(2.5)  # past the racy window: files now trusted by stat
    harken("scan", str(folder), "-q", "-f", "jsonl", env=env)  # settle the stat entries
    probe = (
        "import sys\nfrom cli import main\n"
        "try:\n    main(['scan', sys.argv[1], '-q', '-f', 'jsonl'])\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('librosa', 'sklearn') if m in sys.modules]\n"
        "print(' '.join(heavy) or 'none', file=sys.stderr)\n"
    )
    imports = subprocess.run(
        [sys.executable, "-c", probe, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stderr.strip()
    warm_time = timed(lambda: harken("scan", str(folder), "-q", "-f", "jsonl", env=env), repeat)
    baseline = timed(lambda: harken("--help"), repeat)
    return {
        "files": count,
        "cold_s": round(cold_time, 2),
        "warm_s": round(warm_time, 3),
        "warm_per_file_ms": round(1000 * warm_time / count, 3),
        "help_s": round(baseline, 3),
        "heavy_imports_on_warm_run": imports,
    }


def bench_startup(work: Path, repeat: int) -> dict[str, float]:
    empty = work / "empty"
    empty.mkdir(exist_ok=True)
    python = timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), repeat)
    help_time = timed(lambda: harken("--help"), repeat)
    scan_empty = timed(lambda: harken("scan", str(empty), "-q"), repeat)
    imports, load = model_load(repeat)
    return {
        "python_s": round(python, 3),
        "help_s": round(help_time, 3),
        "scan_empty_s": round(scan_empty, 3),
        "help_over_python": round(help_time / python, 2),
        "model_imports_s": round(imports, 3),
        "model_load_s": round(load, 3),
    }


#: Times, in a fresh interpreter, the imports a worker needs for the model and
#: then the default model's load (which every pool worker does once).
MODEL_LOAD = (
    "import time; t = time.perf_counter()\n"
    "from analyzer.modelfile import load_ensemble, resolve_model\n"
    "import sklearn.ensemble, skops.io\n"
    "ref = resolve_model(None); u = time.perf_counter()\n"
    "load_ensemble(ref); v = time.perf_counter()\n"
    "print(u - t, v - u)\n"
)


def model_load(repeat: int) -> tuple[float, float]:
    """Median seconds of the model's imports and of the default model's load."""
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", MODEL_LOAD], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
        runs.append((float(out[0]), float(out[1])))
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def write_long(path: Path, seconds: int, rate: int = 48000) -> None:
    """A long stereo WAV of music-like tones and noise, written in blocks."""
    rng = np.random.default_rng(3)
    with sf.SoundFile(path, "w", rate, 2, subtype="PCM_16") as out:
        t = np.arange(rate * 10) / rate
        for i in range(seconds // 10):
            f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
            tone = 0.2 * np.sin(2 * np.pi * f0 * t) * np.exp(-(t % 1))
            block = np.stack([tone, tone * 0.8], axis=1) + rng.normal(0, 0.01, (t.size, 2))
            out.write(block.astype(np.float32))
            del i


def peak_worker(path: Path, segments: float | None = None) -> tuple[float, float]:
    """Peak RSS (MB) and wall time of one process analyzing ``path``
    (with a timeline of ``segments``-second windows if given)."""
    code = (
        "import resource, sys, time, analyzer\n"
        "spec = analyzer.SegmentSpec.make(float(sys.argv[2])) if sys.argv[2] else None\n"
        "start = time.perf_counter()\n"
        "r = analyzer.analyze_file(sys.argv[1], max_duration=1e6, segments=spec)\n"
        "assert r.status == 'ok', r.error\n"
        "assert (r.timeline is not None) == (spec is not None)\n"
        "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    arg = "" if segments is None else str(segments)
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), arg], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[1]) / 1024, float(out[0])


def bench_memory(work: Path, hours: float) -> dict[str, float]:
    short = work / "short.wav"
    write_long(short, 10)
    half = work / "half.wav"
    write_long(half, int(hours * 1800))
    full = work / "long.wav"
    write_long(full, int(hours * 3600))
    base_mb, _ = peak_worker(short)
    half_mb, half_s = peak_worker(half)
    full_mb, full_s = peak_worker(full)
    # The same files with a timeline of 2 s windows every second.
    seg_half_mb, seg_half_s = peak_worker(half, 2.0)
    seg_full_mb, seg_full_s = peak_worker(full, 2.0)
    for p in (short, half, full):
        p.unlink()
    return {
        "hours": hours,
        "baseline_rss_mb": round(base_mb, 1),
        "half_rss_mb": round(half_mb, 1),
        "full_rss_mb": round(full_mb, 1),
        "growth_mb": round(full_mb - base_mb, 1),
        "half_s": round(half_s, 1),
        "full_s": round(full_s, 1),
        "time_ratio_full_over_half": round(full_s / half_s, 2),
        "realtime": round(hours * 3600 / full_s, 1),
        "segments_half_rss_mb": round(seg_half_mb, 1),
        "segments_full_rss_mb": round(seg_full_mb, 1),
        "segments_half_s": round(seg_half_s, 1),
        "segments_full_s": round(seg_full_s, 1),
        "segments_time_ratio": round(seg_full_s / full_s, 2),
    }


def bench_scaling(small: dict[str, object], large: dict[str, object]) -> dict[str, object]:
    per_small = float(small["cold_s"]) / float(small["files"])  # type: ignore[arg-type]
    per_large = float(large["cold_s"]) / float(large["files"])  # type: ignore[arg-type]
    warm_small = float(small["warm_per_file_ms"])  # type: ignore[arg-type]
    warm_large = float(large["warm_per_file_ms"])  # type: ignore[arg-type]
    return {
        "cold_ms_per_file": [round(1000 * per_small, 2), round(1000 * per_large, 2)],
        "cold_ratio_large_over_small": round(per_large / per_small, 2),
        "warm_ms_per_file": [warm_small, warm_large],
        "warm_ratio_large_over_small": round(warm_large / warm_small, 2),
    }


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libs = ", ".join(
        f"{p} {version(p)}"
        for p in ("numpy", "librosa", "scikit-learn", "soundfile", "soxr", "joblib")
    )
    return [
        f"- CPU: {cpu}; cores: {os.cpu_count()}; Python {platform.python_version()}",
        f"- libraries: {libs}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M')}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="harken benchmarks")
    parser.add_argument("--quick", action="store_true", help="smaller sets, one run each")
    parser.add_argument(
        "--only",
        choices=("memory", "throughput", "dask", "peer"),
        help="run one case (dask and peer run throughput first, for its files) and print it;"
        " RESULTS.md is untouched",
    )
    args = parser.parse_args()
    repeat = 1 if args.quick else 3
    if args.only:
        work = Path(tempfile.mkdtemp(prefix="harken-bench-"))
        os.environ["HARKEN_CACHE_DIR"] = str(work / "cache")
        try:
            if args.only == "memory":
                print(json.dumps(bench_memory(work, 0.25 if args.quick else 2.0), indent=2))
                return
            print(json.dumps(bench_throughput(work, 40 if args.quick else 200, repeat)))
            if args.only == "dask":
                print(json.dumps(bench_dask(work, repeat)))
            if args.only == "peer":
                print(json.dumps(bench_peer(work, repeat)))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    repeat = 1 if args.quick else 3
    work = Path(tempfile.mkdtemp(prefix="harken-bench-"))
    os.environ["HARKEN_CACHE_DIR"] = str(work / "cache")
    try:
        results: dict[str, object] = {"startup": bench_startup(work, 5)}
        print(json.dumps(results["startup"]))
        results["throughput"] = bench_throughput(work, 40 if args.quick else 200, repeat)
        print(json.dumps(results["throughput"]))
        results["dask"] = bench_dask(work, repeat)
        print(json.dumps(results["dask"]))
        results["peer"] = bench_peer(work, repeat)
        print(json.dumps(results["peer"]))
        small = bench_warm(work, 100 if args.quick else 1000, repeat)
        large = bench_warm(work, 1000 if args.quick else 10000, repeat)
        results["warm"], results["warm_large"] = small, large
        results["scaling"] = bench_scaling(small, large)
        print(json.dumps(results["scaling"]))
        results["memory"] = bench_memory(work, 0.25 if args.quick else 2.0)
        print(json.dumps(results["memory"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, quick=args.quick)


def peer_lines(peer: object) -> list[str]:
    """The peer's paragraph: its figures, or why it did not run."""
    assert isinstance(peer, dict)
    if peer.get("status") != "ran":
        return [f"Peer (pyAudioAnalysis 0.3.14, shipped 4-class SVM): {peer.get('status')}."]
    return [
        "Peer (pyAudioAnalysis 0.3.14, `file_classification` with its shipped 4-class SVM,"
        f" in its own venv), on the same {peer['files']} clips as 16-bit WAV"
        f" ({peer['audio_seconds']} s of audio): its classification loop used"
        f" {peer['peer_cpu_s_classification_loop']} CPU-s; the whole `harken scan --jobs 1`"
        f" command (start-up, imports and model included) {peer['harken_cpu_s_whole_command']}"
        f" CPU-s: harken is **{peer['harken_speed_over_peer']}x** faster per CPU-second."
        f" On the {peer['example_clips']} example clips (its `other` counted as noise):"
        f" peer {peer['peer_right_on_examples']} right, harken {peer['harken_right_on_examples']}.",
    ]


def report(results: dict[str, object], *, quick: bool) -> None:
    s, t, d = results["startup"], results["throughput"], results["dask"]
    assert isinstance(d, dict)
    w, wl, sc, m = results["warm"], results["warm_large"], results["scaling"], results["memory"]
    assert isinstance(s, dict) and isinstance(t, dict) and isinstance(w, dict)
    assert isinstance(wl, dict) and isinstance(sc, dict) and isinstance(m, dict)
    lines = [
        "# Benchmark results",
        "",
        *machine(),
        f"- mode: {'quick (one run each)' if quick else 'full (median of 3 runs)'}",
        "",
        "| case | baseline (same run) | harken | ratio | target |",
        "|---|---|---|---:|---|",
        f"| cold scan, {t['files']} clips of 0.5-30 s ({t['audio_seconds']} s of audio) |"
        f" serial `analyze_file` loop {t['serial_s']} s | `scan --jobs 2` {t['pool2_s']} s |"
        f" {t['speedup']}x | >= 1.8x |",
        f"| Dask backend, same files, 2 workers on this machine, first scan | `scan --jobs 2`"
        f" {d['local_pool_s']} s | `--backend dask --scheduler` {d['dask_first_s']} s |"
        f" {d['dask_first_over_local']}x | overhead only (more machines are the gain) |",
        f"| Dask backend, later scans (workers warm) | `scan --jobs 2` {d['local_pool_s']} s |"
        f" {d['dask_s']} s | {d['dask_over_local']}x | - |",
        f"| Dask backend with `--ship-audio` | `scan --jobs 2` {d['local_pool_s']} s |"
        f" {d['dask_ship_audio_s']} s | {d['ship_audio_over_local']}x | - |",
        f"| Dask backend, its own LocalCluster | `scan --jobs 2` {d['local_pool_s']} s |"
        f" `--backend dask -j 2` {d['dask_own_localcluster_s']} s |"
        f" {d['own_localcluster_over_local']}x | - |",
        f"| audio per CPU-second, end to end | - | serial {t['realtime_per_cpu_serial']}x,"
        f" pool {t['realtime_per_cpu_pool']}x real time | - | >= 300x per core |",
        f"| audio per CPU-second, per file (fixed {t['fixed_cpu_s_per_run']} CPU-s a run"
        f" taken off) | - | pool {t['realtime_per_cpu_pool_per_file']}x real time | - |"
        " >= 300x per core |",
        f"| warm rerun, {wl['files']} unchanged files | `harken --help` {wl['help_s']} s |"
        f" {wl['warm_s']} s | {wl['warm_s'] / wl['help_s']:.1f}x | <= 1.5 s;"
        f" heavy imports: {wl['heavy_imports_on_warm_run']} |",
        f"| warm rerun, {w['files']} unchanged files | `harken --help` {w['help_s']} s |"
        f" {w['warm_s']} s | {w['warm_s'] / w['help_s']:.1f}x | well under 1.5 s |",
        f"| start-up: `harken --help` | `python -c pass` {s['python_s']} s | {s['help_s']} s |"
        f" {s['help_over_python']}x | <= 0.3 s |",
        f"| default model load, once per worker | its imports {s['model_imports_s']} s |"
        f" {s['model_load_s']} s | {s['model_load_s'] / s['model_imports_s']:.1f}x |"
        " well under 1 s |",
        f"| start-up: `harken scan EMPTY` | `python -c pass` {s['python_s']} s |"
        f" {s['scan_empty_s']} s | {s['scan_empty_s'] / s['python_s']:.1f}x | <= 0.3 s |",
        f"| memory, {m['hours']} h of 48 kHz stereo | 10 s file {m['baseline_rss_mb']} MB |"
        f" {m['full_rss_mb']} MB peak RSS | +{m['growth_mb']} MB | <= 300 MB |",
        f"| time linear in duration | {m['hours'] / 2} h: {m['half_s']} s |"
        f" {m['hours']} h: {m['full_s']} s | {m['time_ratio_full_over_half']}x | 2.0x |",
        f"| memory, {m['hours']} h with `--segments 2` | without: {m['full_rss_mb']} MB;"
        f" {m['hours'] / 2} h with: {m['segments_half_rss_mb']} MB |"
        f" {m['segments_full_rss_mb']} MB peak RSS |"
        f" +{m['segments_full_rss_mb'] - m['full_rss_mb']:.1f} MB | flat in duration |",
        f"| time, {m['hours']} h with `--segments 2` | without: {m['full_s']} s |"
        f" {m['segments_full_s']} s | {m['segments_time_ratio']}x | <= 1.5x |",
        f"| scaling, cold, ms per file ({w['files']} vs {wl['files']}) |"
        f" {sc['cold_ms_per_file'][0]} | {sc['cold_ms_per_file'][1]} |"
        f" {sc['cold_ratio_large_over_small']}x | flat (1.0x) |",
        f"| scaling, warm, ms per file ({w['files']} vs {wl['files']}) |"
        f" {sc['warm_ms_per_file'][0]} | {sc['warm_ms_per_file'][1]} |"
        f" {sc['warm_ratio_large_over_small']}x | flat (1.0x) |",
        "",
        *peer_lines(results["peer"]),
        "",
        "Raw figures:",
        "",
        "```json",
        json.dumps(results, indent=2),
        "```",
        "",
    ]
    (REPO / "benchmarks" / "RESULTS.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
