"""Does the default model hear content, not the file? ``python benchmarks/robustness.py``.

Takes clips (by default 150 a class from the shared corpus, else the example
clips), writes each in several forms users' files come in (other rates and
containers, MP3 at several bitrates, digital silence before and after, a DC
offset), scans every form with ``harken scan`` and prints the balanced
accuracy of each form beside the clips as they are. The corpus's clips were trained on,
so their scores are high; what matters is the drop from the first line.

    python benchmarks/robustness.py                     # ../shared/corpus if there
    python benchmarks/robustness.py --corpus PATH --per-class 50 --model m.skops
    python benchmarks/robustness.py --examples          # the 12 example clips
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

REPO = Path(__file__).resolve().parent.parent
#: name -> (rate, format, libsndfile compression level or None, seconds of zeros
#: before, after). Compression levels give about these bitrates for MP3 (CBR):
#: 0.8 -> 45 kbit/s at 16 kHz, 80 at 22.05 kHz; 0.9 -> 26 kbit/s at 16 kHz, 60 at
#: 44.1 kHz. ``PADDED`` zeros fill a clip up to ``PAD_TO`` seconds, as data sets
#: pad their short clips (the share of the zeros that go first, the rest after).
PAD_TO = 5.0
PADDED = {"zeros: padded to 5 s, sound first": 0.0, "zeros: padded to 5 s, sound mid-way": 0.5}
#: A recorder's DC offset, as a share of full scale, added to every sample.
OFFSET = {"DC offset 0.5 % of full scale": 0.005, "DC offset 2 % of full scale": 0.02}
FORMS = {
    "as they are (16 kHz WAV)": (16000, "WAV", None, 0.0, 0.0),
    "8 kHz FLAC": (8000, "FLAC", None, 0.0, 0.0),
    "44.1 kHz MP3, ~60 kbit/s": (44100, "MP3", 0.9, 0.0, 0.0),
    "22.05 kHz MP3, ~80 kbit/s": (22050, "MP3", 0.8, 0.0, 0.0),
    "16 kHz MP3, ~45 kbit/s": (16000, "MP3", 0.8, 0.0, 0.0),
    "16 kHz MP3, ~26 kbit/s": (16000, "MP3", 0.9, 0.0, 0.0),
    "8 kHz MP3, ~18 kbit/s": (8000, "MP3", 0.8, 0.0, 0.0),
    "zeros: 50 ms before and after": (16000, "WAV", None, 0.05, 0.05),
    "zeros: 200 ms before, 100 ms after": (16000, "WAV", None, 0.2, 0.1),
    **{name: (16000, "WAV", None, first, 1.0 - first) for name, first in PADDED.items()},
    **{name: (16000, "WAV", None, 0.0, 0.0) for name in OFFSET},
}


def clips(corpus: Path | None, per_class: int) -> list[tuple[Path, str]]:
    """``(path, label)`` of the clips to use."""
    if corpus is None:
        examples = sorted((REPO / "examples" / "audio").glob("*.ogg"))
        return [(p, p.name.split("-")[0]) for p in examples]
    with open(corpus / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rng = random.Random(1)
    chosen = []
    for label in sorted({r["label"] for r in rows}):
        of_label = [r for r in rows if r["label"] == label]
        chosen += rng.sample(of_label, min(per_class, len(of_label)))
    return [(corpus / r["path"], r["label"]) for r in chosen]


def write_forms(job: tuple[int, Path, str, Path]) -> None:
    number, path, label, out = job
    signal, rate = sf.read(path, dtype="float32")
    for index, (name, (new_rate, fmt, level, before, after)) in enumerate(FORMS.items()):
        converted = soxr.resample(signal, rate, new_rate) if new_rate != rate else signal
        shape = signal.shape[1:]
        if name in PADDED:  # shares of what fills the clip up to PAD_TO
            fill = max(0.0, PAD_TO - converted.shape[0] / new_rate)
            before, after = before * fill, after * fill
        zeros = [np.zeros((int(s * new_rate), *shape), np.float32) for s in (before, after)]
        target = out / str(index) / label / f"{number}.{fmt.lower()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        extra = {"compression_level": level, "bitrate_mode": "CONSTANT"} if level else {}
        padded = np.concatenate([zeros[0], converted, zeros[1]]) + OFFSET.get(name, 0.0)
        padded = np.clip(padded, -1.0, 1.0)
        sf.write(target, padded, new_rate, format=fmt, **extra)


def balanced_accuracy(rows: list[dict]) -> float:
    recalls = []
    for label in sorted({Path(r["path"]).parent.name for r in rows}):
        of_label = [r for r in rows if Path(r["path"]).parent.name == label]
        recalls.append(sum(r["label"] == label for r in of_label) / len(of_label))
    return float(np.mean(recalls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = REPO.parent / "shared" / "corpus"
    parser.add_argument("--corpus", type=Path, default=default if default.is_dir() else None)
    parser.add_argument("--examples", action="store_true", help="use the example clips")
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--model", help="a .skops model [default: the shipped one]")
    args = parser.parse_args()
    corpus = None if args.examples else args.corpus
    chosen = clips(corpus, args.per_class)
    print(f"{len(chosen)} clips from {corpus or 'examples/audio'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="harken-robustness-") as tmp:
        out = Path(tmp)
        with ProcessPoolExecutor(2) as pool:
            jobs = [(n, p, label, out) for n, (p, label) in enumerate(chosen)]
            list(pool.map(write_forms, jobs, chunksize=16))
        for index, name in enumerate(FORMS):
            command = [sys.executable, "-c", "from cli import main; main()", "scan"]
            command += [str(out / str(index)), "-f", "jsonl", "-q", "--no-cache"]
            command += ["--model", args.model] if args.model else []
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
            if done.returncode not in (0, 3) or not rows:
                sys.exit(f"harken scan failed on {name}: {done.stderr.strip()}")
            print(f"{name:36s} balanced accuracy {balanced_accuracy(rows):.3f}", flush=True)


if __name__ == "__main__":
    main()
