"""Real audio for tests: seeded generators of tones, notes, noise and silence."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RATE = 16000


def tone(seconds: float = 2.0, rate: int = RATE, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def chord(seconds: float = 3.0, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """A sequence of harmonic notes with decaying envelopes: music-like."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * rate), dtype=np.float32)
    note = int(0.25 * rate)
    t = np.arange(note) / rate
    for start in range(0, out.size - note, note):
        f0 = 220.0 * 2 ** (rng.integers(0, 12) / 12)
        wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
        out[start : start + note] += (0.2 * wave * np.exp(-4 * t)).astype(np.float32)
    return out


def noise(seconds: float = 2.0, rate: int = RATE, seed: int = 0, level: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal(int(seconds * rate))).astype(np.float32)


def silence(seconds: float = 2.0, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.float32)


def write(path: Path, signal: np.ndarray, rate: int = RATE, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, signal, rate, **kwargs)
    return path


def default_sigint() -> None:
    """``preexec_fn`` for a child that must stop on SIGINT even when the tests
    run with SIGINT ignored (a shell's background job), which Python inherits."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def scan_in_fresh_process(
    args: list[str], cache: object, heavy: tuple[str, ...]
) -> tuple[str, str]:
    """Run ``harken scan ARGS`` in a new interpreter with cache folder ``cache``;
    returns its stdout and stderr, the latter ending with ``HEAVY [...] CODE n``:
    which of the ``heavy`` modules it imported, and its exit code."""
    import os
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from cli import main\n"
        f"try:\n    main(['scan', *{args!r}])\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        f"heavy = sorted(m for m in {heavy!r} if m in sys.modules)\n"
        "print('HEAVY', heavy, 'CODE', code, file=sys.stderr)\n"
    )
    env = {**os.environ, "HARKEN_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )
    return done.stdout, done.stderr


def unprivileged() -> list[str]:
    """A command prefix under which file permissions hold: none for a user;
    for root, ``setpriv`` without the capabilities that override them."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions deny root nothing")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]
