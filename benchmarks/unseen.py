"""Score a model on sources the corpus never saw: ``python benchmarks/unseen.py``.

Issue 3 asks for 0.95 balanced accuracy on real recordings from sources that
are not in the corpus. Leave-one-source-out cross-validation estimates that
from inside the corpus; this is a second, outside estimate. It fetches
freely licensed Debian *main* packages that the corpus did not use (games
and educational programs with voice packs, music and sound effects), labels
their files by folder (``SOURCES``), cuts clips like users' files (0.5 to
10 s, three in ten under 1.5 s, any level), writes each at a random rate from 8
to 44.1 kHz as WAV, FLAC, Ogg Vorbis or MP3, and runs ``harken evaluate``
on them. ``silence`` clips are pauses found in the voice recordings and
effects turned down to -75..-60 dBFS RMS.

Needs ``apt-get download`` from a Debian archive (Debian 12 here) and
``unzip``; the packages (about 900 MB) are kept in ``--work`` for reruns,
and nothing is committed. Labels by folder are not perfect: effects folders
hold jingles, and some game voices are processed (robots, radios), which is
part of why this set is harder than the issue's. pyAudioAnalysis's SVM, which
reaches 0.86 on the issue's set, can be scored on the same files with
``--peer PYTHON`` (a Python with pyAudioAnalysis, see ``benchmarks/peer``).

    python benchmarks/unseen.py [--work DIR] [--model M] [--peer PYTHON]

The last run's figures, beside the previous default model's: ``benchmarks/UNSEEN.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import soundfile as sf
import soxr

from analyzer.training import metrics

REPO = Path(__file__).resolve().parent.parent
PACKAGES = [
    "fillets-ng-data",
    "fillets-ng-data-cs",
    "fillets-ng-data-nl",
    "ktuberling-data",
    "kajongg",
    "gcin-voice",
    "warzone2100-data",
    "supertux-data",
    "frozen-bubble-data",
    "xmoto-data",
    "solarwolf",
    "chromium-bsu-data",
    "tuxtype-data",
    "tuxmath-data",
    "ri-li-data",
    "trackballs-data",
    "freedroidrpg-data",
    "lbreakout2-data",
    "granatier",
    "kapman",
]
#: source -> (label, glob patterns under the unpacked packages). Names in
#: ``NOT_THEIR_FOLDER`` are left out: spoken words or jingles among effects.
SOURCES: dict[str, tuple[str, list[str]]] = {
    "fillets-cs": ("speech", ["fillets-ng-data-cs/**/sound/**/cs/*"]),
    "fillets-nl": ("speech", ["fillets-ng-data-nl/**/sound/**/nl/*"]),
    "ktuberling": ("speech", ["ktuberling-data/**/ktuberling/sounds/*/*"]),
    "kajongg": ("speech", ["kajongg/**/kajongg/voices/**/*"]),
    "gcin-voice": ("speech", ["gcin-voice/**/gcin-voice/ogg/*/*"]),
    "supertux-speech": ("speech", ["supertux-data/**/supertux2/speech/*"]),
    "wz2100-voice": (
        "speech",
        [
            "wz/audio/tutorial/*",
            "wz/audio/memressp/**/*",
            "wz/audio/countdown/*",
            "wz/*/vtoltalk/*",
        ],
    ),
    "supertux-music": ("music", ["supertux-data/**/supertux2/music/**/*"]),
    "fillets-music": ("music", ["fillets-ng-data/**/fillets-ng/music/*"]),
    "frozen-bubble-music": ("music", ["frozen-bubble-data/**/snd/*zik*"]),
    "xmoto-music": ("music", ["xmoto-data/**/Musics/*"]),
    "trackballs-music": ("music", ["trackballs-data/**/trackballs/music/*"]),
    "freedroidrpg-music": ("music", ["freedroidrpg-data/**/sound/music/*"]),
    "small-games-music": (
        "music",
        [
            "solarwolf/**/data/music/*",
            "chromium-bsu-data/**/music_*",
            "tuxtype-data/**/sounds/amidst*",
            "tuxtype-data/**/sounds/chiptune*",
            "tuxmath-data/**/sounds/0*",
        ],
    ),
    "supertux-sfx": ("noise", ["supertux-data/**/supertux2/sounds/*"]),
    "frozen-bubble-sfx": ("noise", ["frozen-bubble-data/**/snd/*"]),
    "fillets-sfx": ("noise", ["fillets-ng-data/**/sound/share/*"]),
    "wz2100-sfx": ("noise", ["wz/audio/sfx/**/*"]),
    "trackballs-sfx": ("noise", ["trackballs-data/**/trackballs/sfx/*"]),
    "freedroidrpg-sfx": (
        "noise",
        [
            "freedroidrpg-data/**/sound/effects/*",
            "freedroidrpg-data/**/effects/item_sounds/*",
            "freedroidrpg-data/**/effects/bullets/*",
        ],
    ),
    "lbreakout2-sfx": ("noise", ["lbreakout2-data/**/lbreakout2/sounds/*"]),
    "kde-games-sfx": ("noise", ["granatier/**/granatier/sounds/*", "kapman/**/sounds/kapman/*"]),
    "small-games-sfx": (
        "noise",
        [
            "solarwolf/**/data/audio/*",
            "chromium-bsu-data/**/wav/*",
            "tuxtype-data/**/sounds/*",
            "ri-li-data/**/Sounds/*",
        ],
    ),
}
NOT_THEIR_FOLDER = {
    *("excellent", "welldone", "tada", "grunts", "yeti_finish", "noh", "hurry", "excuseme"),
    *("harp", "tuxi", "chimein", "chimeout", "levelfinish", "gameover", "startup", "lifeup"),
    *("savebell2", "savebell_low", "invincible_start", "win", "winfinal", "lose", "end"),
    *("life_add", "life_lose", "live", "vaauw", "dammit", "damn", "verygood", "wontgiveup"),
}
PER_SOURCE = 80
RATES = (8000, 11025, 16000, 22050, 32000, 44100)
#: format -> (extension, subtype)
FORMATS = {
    "WAV": ("wav", "PCM_16"),
    "FLAC": ("flac", "PCM_16"),
    "OGG": ("ogg", "VORBIS"),
    "MP3": ("mp3", "MPEG_LAYER_III"),
}


class Job(NamedTuple):
    """One file to cut a clip from."""

    source: str
    label: str
    number: int
    path: Path
    seed: float
    out: Path


def fetch(work: Path) -> dict[str, str]:
    """Download and unpack ``PACKAGES`` into ``work``; their versions."""
    debs, root = work / "debs", work / "x"
    debs.mkdir(parents=True, exist_ok=True)
    root.mkdir(exist_ok=True)
    versions = {}
    for name in PACKAGES:
        found = sorted(debs.glob(f"{name}_*.deb"))
        if not found:
            subprocess.run(["apt-get", "download", "-q", name], cwd=debs, check=True)
            found = sorted(debs.glob(f"{name}_*.deb"))
        if not (root / name).exists():  # unpacked beside, then renamed: never half there
            partial = root / f"{name}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            subprocess.run(["dpkg-deb", "-x", str(found[-1]), str(partial)], check=True)
            partial.rename(root / name)
        versions[name] = found[-1].name.split("_")[1].replace("%3a", ":")
    if not (root / "wz").exists():  # Warzone 2100 keeps its audio in a zip
        archives = sorted(root.glob("warzone2100-data/**/base.wz"))
        if not archives:
            sys.exit("warzone2100-data holds no base.wz: its layout changed")
        partial = root / "wz.partial"
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run(["unzip", "-q", str(archives[0]), "audio/*", "-d", str(partial)], check=True)
        partial.rename(root / "wz")
    return versions


def files_of(root: Path, patterns: list[str]) -> list[Path]:
    """The audio files the patterns match, but for ``NOT_THEIR_FOLDER``."""
    found = {p for pattern in patterns for p in root.glob(pattern)}
    return sorted(
        p
        for p in found
        if p.suffix.lower() in (".ogg", ".wav") and p.stem not in NOT_THEIR_FOLDER and p.is_file()
    )


def write(signal: np.ndarray, rate: int, base: Path, rng: random.Random) -> dict[str, Any]:
    """``signal`` at a random rate and format; the manifest fields of the file."""
    to_rate, kind = rng.choice(RATES), rng.choice(sorted(FORMATS))
    if to_rate != rate:
        signal = soxr.resample(signal, rate, to_rate)
    ext, subtype = FORMATS[kind]
    path = base.with_suffix(f".{ext}")
    sf.write(path, np.clip(signal, -1, 1), to_rate, format=kind, subtype=subtype)
    return {"path": path, "rate": to_rate, "format": kind, "duration_s": len(signal) / to_rate}


def quietest_stretch(signal: np.ndarray, rate: int) -> np.ndarray | None:
    """The longest run (at least 0.6 s) of 50 ms frames under -50 dBFS RMS."""
    hop = rate // 20
    power = np.convolve(np.mean(signal**2, axis=1), np.ones(hop) / hop, mode="valid")[::hop]
    best, start, run = 0, 0, 0
    for j, quiet in enumerate(power < 1e-5):
        run = run + 1 if quiet else 0
        if run > best:
            best, start = run, j - run + 1
    return signal[start * hop : (start + best) * hop] if best >= 12 else None


def clips_of(job: Job) -> list[dict[str, Any]]:
    """One file's clip, and maybe a silence clip made from it."""
    source, label, number, path, seed, out = job
    rng = random.Random(seed)
    signal, rate = sf.read(path, dtype="float32", always_2d=True)
    seconds = len(signal) / rate
    if seconds < 0.3 or np.sqrt(np.mean(signal**2)) < 10 ** (-55 / 20):
        return []
    rows = []
    for k in range(2 if label == "music" and seconds > 20 else 1):
        length = rng.uniform(0.5, 1.5) if rng.random() < 0.3 else rng.uniform(1.5, 10.0)
        piece = signal
        if seconds > length:
            start = int(rng.uniform(0, seconds - length) * rate)
            piece = signal[start : start + int(length * rate)]
        piece = piece / max(float(np.abs(piece).max()), 1e-9) * 10 ** (rng.uniform(-30, -1) / 20)
        rows.append({"label": label, "source": source, "group": f"{source}:{number}"})
        rows[-1].update(write(piece, rate, out / label / f"{source}__{number}_{k}", rng))
    if label == "speech" and seconds > 4 and rng.random() < 0.5:
        pause = quietest_stretch(signal, rate)
        if pause is not None:
            name = f"{source}-pause"
            rows.append({"label": "silence", "source": name, "group": f"{name}:{number}"})
            rows[-1].update(write(pause, rate, out / "silence" / f"{name}__{number}", rng))
    if label == "noise" and rng.random() < 0.35:
        piece = signal[: int(min(seconds, rng.uniform(0.5, 6)) * rate)]
        rms = max(float(np.sqrt(np.mean(piece**2))), 1e-9)
        piece = piece / rms * 10 ** (rng.uniform(-75, -60) / 20)
        name = f"{source}-faint"
        rows.append({"label": "silence", "source": "faint-noise", "group": f"{name}:{number}"})
        rows[-1].update(write(piece, rate, out / "silence" / f"{name}__{number}", rng))
    return rows


def build(root: Path, out: Path) -> Path:
    """Cut and write the clips; the manifest's path."""
    rng = random.Random(7)
    jobs = []
    for source, (label, patterns) in SOURCES.items():
        files = files_of(root, patterns)
        rng.shuffle(files)
        jobs += [
            Job(source, label, i, f, rng.random(), out) for i, f in enumerate(files[:PER_SOURCE])
        ]
    for label in ("speech", "music", "noise", "silence"):
        (out / label).mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(2) as pool:
        rows = [row for found in pool.map(clips_of, jobs, chunksize=4) for row in found]
    if not rows:
        sys.exit("no clip was made: did the packages unpack?")
    manifest, partial = out / "manifest.csv", out / "manifest.csv.partial"
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "path": Path(row["path"]).relative_to(out)})
    partial.rename(manifest)  # written last, whole: a rerun trusts the clips it lists
    return manifest


def harken(*args: str) -> str:
    """Standard output of a harken command; exit 3 (some clips failed) is fine."""
    argv = [sys.executable, "-c", "from cli import main; main()", *args]
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
    if done.returncode not in (0, 3):
        raise subprocess.CalledProcessError(done.returncode, argv)
    return done.stdout


def peer_labels(python: str, clips: Path, rows: list[dict[str, str]]) -> dict[str, str]:
    """pyAudioAnalysis's label of every clip (``other`` as noise), from WAV copies."""
    with tempfile.TemporaryDirectory() as folder:
        names = {}
        for i, row in enumerate(rows):
            data, rate = sf.read(clips / row["path"], dtype="float32")
            sf.write(Path(folder) / f"{i:05d}.wav", data, rate, subtype="PCM_16")
            names[f"{i:05d}.wav"] = row["path"]
        script = str(REPO / "benchmarks" / "peer" / "peer.py")
        done = subprocess.run([python, script, folder], check=True, capture_output=True, text=True)
    labels = json.loads(done.stdout)["labels"].items()
    return {names[n]: {"other": "noise"}.get(label or "", label or "failed") for n, label in labels}


def balanced_accuracy(rows: list[dict[str, str]], labels: dict[str, str]) -> float:
    """As ``harken train`` and ``evaluate`` score it; ``unknown`` or a failure is wrong."""
    truth = np.array([row["label"] for row in rows])
    answers = np.array([labels[row["path"]] for row in rows])
    return float(metrics(truth, answers, sorted(set(truth.tolist())))["balanced_accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "harken-unseen")
    parser.add_argument("--model", help="a .skops model [default: the shipped one]")
    parser.add_argument("--peer", help="a Python with pyAudioAnalysis, to score it too")
    args = parser.parse_args()
    versions = fetch(args.work)
    clips = args.work / "clips"
    manifest = clips / "manifest.csv"
    if not manifest.exists():
        build(args.work / "x", clips)
    with manifest.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    common = [*(["--model", args.model] if args.model else []), "-q"]
    common += ["--cache-dir", str(args.work / "cache")]
    report = json.loads(harken("evaluate", "--manifest", str(manifest), "-f", "json", *common))
    scanned = harken("scan", str(clips), "-f", "jsonl", *common)
    labels = {}
    for line in scanned.splitlines():
        record = json.loads(line)
        labels[str(Path(record["path"]).relative_to(clips))] = record["label"] or record["status"]
    scores = report["scores"]["ensemble"]
    print(f"{len(rows)} clips, {len({r['source'] for r in rows})} sources; model {report['model']}")
    print(f"harken evaluate: balanced accuracy {scores['balanced_accuracy']:.3f}", end="")
    print(f", accuracy {scores['accuracy']:.3f}, macro-F1 {scores['macro_f1']:.3f}")
    scanned_score = balanced_accuracy(rows, labels)
    print(f"harken scan (below the card's threshold is unknown): {scanned_score:.3f}")
    peer = peer_labels(args.peer, clips, rows) if args.peer else None
    if peer:
        print(f"pyAudioAnalysis: balanced accuracy {balanced_accuracy(rows, peer):.3f}")
    print("\n| class | recall | clips |\n|---|---:|---:|")
    for label, m in sorted(scores["per_class"].items()):
        print(f"| {label} | {m['recall']:.3f} | {m['support']} |")
    print(
        "\n| source | class | clips | harken scan right |"
        + (" pyAudioAnalysis right |" if peer else "")
    )
    print("|---|---|---:|---:|" + ("---:|" if peer else ""))
    by_source: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_source[row["source"]].append(row)
    for source, of in sorted(by_source.items()):
        right = np.mean([labels[r["path"]] == r["label"] for r in of])
        line = f"| {source} | {of[0]['label']} | {len(of)} | {right:.2f} |"
        if peer:
            line += f" {np.mean([peer[r['path']] == r['label'] for r in of]):.2f} |"
        print(line)
    print("\n| what was wrong | clips |\n|---|---:|")
    for (truth, said), n in Counter(
        (r["label"], labels[r["path"]]) for r in rows if labels[r["path"]] != r["label"]
    ).most_common():
        print(f"| {truth} as {said} | {n} |")
    print("\nPackages: " + ", ".join(f"{k} {v}" for k, v in versions.items()))


if __name__ == "__main__":
    main()
