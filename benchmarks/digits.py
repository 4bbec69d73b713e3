"""Spoken digits told apart by voices not trained on: ``python benchmarks/digits.py``.

Issue 3 checks ``harken train`` on the Free Spoken Digit Dataset, which is
not on this machine. This stands in for it with synthetic speech: six
espeak-ng voices (accents and voice variants) say the ten digits 50 times
each, at a pitch and speed that vary around each voice's own, at 8 kHz (as
FSDD), a random level, with silence before and after and a faint noise
floor. FSDD's split puts every speaker on both sides; synthetic takes of
one voice are too alike for that to say anything (1.000 with or without the
contour), so this holds out one voice at a time (a ``fold`` column: the
voice). It runs ``harken train --manifest`` with ``--members
extra_trees,gboost`` and ``--contour 3``, then ``--contour 0``, and prints
the mean fold accuracy of each.

Needs ``espeak-ng`` on the PATH. The clips are written to ``--work`` and
reused (delete it to make them again); everything random is seeded.

    python benchmarks/digits.py [--work DIR]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

REPO = Path(__file__).resolve().parent.parent
#: Speaker name -> espeak-ng voice.
VOICES = {
    "ana": "en-us+f2",
    "ben": "en-gb-scotland+m3",
    "cy": "en-029+f4",
    "dev": "en-gb-x-rp+m7",
    "eli": "en-us+klatt2",
    "fay": "en-gb+f5",
}
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TAKES = 50
RATE = 8000


def speak(voice: str, word: str, pitch: int, speed: int) -> np.ndarray:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "--stdout", word],
        capture_output=True,
        check=True,
    ).stdout
    signal, rate = sf.read(io.BytesIO(wav), dtype="float32")
    return np.asarray(soxr.resample(signal, rate, RATE), dtype=np.float32)


def build(clips: Path) -> Path:
    """Write the clips and ``manifest.csv`` (path, label, group, fold)."""
    random.seed(7)
    rng = np.random.default_rng(7)
    rows = []
    for name, voice in VOICES.items():
        base_pitch, base_speed = random.randint(30, 70), random.randint(140, 180)
        for digit, word in enumerate(WORDS):
            for take in range(TAKES):
                pitch = int(np.clip(base_pitch + rng.normal(0, 8), 0, 99))
                speed = int(np.clip(base_speed + rng.normal(0, 15), 90, 260))
                x = speak(voice, word, pitch, speed) * 10 ** (rng.uniform(-20, 0) / 20)
                lead, tail = (np.zeros(int(rng.uniform(0.02, 0.25) * RATE)) for _ in "lt")
                x = np.concatenate([lead, x, tail]).astype(np.float32)
                rms = float(np.sqrt(np.mean(x**2))) + 1e-9
                floor = rms * 10 ** (-rng.uniform(25, 45) / 20)
                x = x + rng.normal(0, floor, x.shape).astype(np.float32)
                path = Path(str(digit)) / f"{digit}_{name}_{take}.wav"
                (clips / path).parent.mkdir(parents=True, exist_ok=True)
                sf.write(clips / path, np.clip(x, -1, 1), RATE, subtype="PCM_16")
                rows.append({"path": str(path), "label": str(digit), "group": name, "fold": name})
    manifest = clips / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "group", "fold"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def train(manifest: Path, work: Path, contour: int) -> tuple[float, list[float]]:
    """``harken train`` over the voices' folds: the ensemble's mean fold
    accuracy and each fold's."""
    argv = [sys.executable, "-c", "from cli import main; main()", "train"]
    argv += ["--manifest", str(manifest), "-o", str(work / f"model-{contour}.skops")]
    argv += ["--members", "extra_trees,gboost", "--contour", str(contour), "-q"]
    argv += ["--format", "json", "--cache-dir", str(work / "cache")]
    done = subprocess.run(argv, cwd=REPO, stdout=subprocess.PIPE, text=True, check=True)
    per_fold = json.loads(done.stdout)["per_fold"]
    return per_fold["mean"]["ensemble"], per_fold["accuracy"]["ensemble"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = Path(tempfile.gettempdir()) / "harken-digits"
    parser.add_argument("--work", type=Path, default=default)
    work = parser.parse_args().work.resolve()
    manifest = work / "clips" / "manifest.csv"
    if not manifest.exists():
        build(work / "clips")
    print("| --contour | mean fold accuracy | per voice |\n|---:|---:|---|")
    for contour in (3, 0):
        mean, folds = train(manifest, work, contour)
        each = " ".join(f"{value:.3f}" for value in folds)
        print(f"| {contour} | {mean:.3f} | {each} |", flush=True)


if __name__ == "__main__":
    main()
