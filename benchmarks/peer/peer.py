"""Classify every WAV in a folder with pyAudioAnalysis's shipped 4-class SVM.

    python peer.py FOLDER

Runs in its own virtual environment (``requirements.txt`` beside this file;
pyAudioAnalysis needs Python 3.12 or older). Calls
``audioTrainTest.file_classification(path, svm_rbf_4class, "svm_rbf")`` on
each ``*.wav`` in FOLDER, in one process, and prints one JSON object:
``{"files": n, "seconds": wall, "cpu_seconds": cpu, "labels": {name: label}}``.
The times cover the classification loop, not start-up. Labels are the
model's classes (speech, music, silence, other), or null when the library
failed on a file (the reason goes to stderr).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import warnings


def main() -> None:
    folder = sys.argv[1]
    warnings.filterwarnings("ignore")  # scikit-learn's version warning for the old pickle
    with contextlib.redirect_stdout(sys.stderr):  # the library prints
        import pyAudioAnalysis
        from pyAudioAnalysis import audioTrainTest

    model = os.path.join(os.path.dirname(pyAudioAnalysis.__file__), "data", "models")
    model = os.path.join(model, "svm_rbf_4class")
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(".wav"))
    labels: dict[str, str | None] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    for name in files:
        try:
            with contextlib.redirect_stdout(sys.stderr):
                index, _, classes = audioTrainTest.file_classification(
                    os.path.join(folder, name), model, "svm_rbf"
                )
            labels[name] = None if index == -1 else list(classes)[int(index)]
        except Exception as exc:  # one bad file must not sink the run
            print(f"peer.py: {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            labels[name] = None
    out = {
        "files": len(files),
        "seconds": round(time.perf_counter() - wall, 4),
        "cpu_seconds": round(time.process_time() - cpu, 4),
        "labels": labels,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
