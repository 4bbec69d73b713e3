"""Using harken from Python.

python examples/api.py examples/audio
"""

from __future__ import annotations

import sys
from collections import Counter

import analyzer


def main(folder: str) -> None:
    # Many files: a process pool and the on-disk cache, results as they finish.
    counts: Counter[str] = Counter()
    for result in analyzer.analyze([folder], jobs=2):
        if result.status == "ok":
            counts[result.label or ""] += 1
            print(f"{result.path}: {result.label} ({result.confidence:.2f})")
        else:
            message = result.error.message if result.error else ""
            print(f"{result.path}: {result.status}: {message}")
    print(dict(counts))

    # One file, in this process, no cache: the full record as a dict. A file
    # that could not be analyzed has no signal facts and no probabilities.
    files = analyzer.discover([folder])
    if files:
        record = analyzer.analyze_file(files[0]).to_dict()
        if record["status"] == "ok":
            print(record["label"], record["probabilities"], record["signal"]["duration"])
        else:
            print(record["path"], record["status"], record["error"]["message"])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "examples/audio")
