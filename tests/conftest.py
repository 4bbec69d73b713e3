"""Shared fixtures: real audio written into tmp_path with a seeded RNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signals import chord, noise, silence, tone, write


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache folder, never the user's."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HARKEN_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    """A small folder of real audio in several formats, rates and channel counts."""
    root = tmp_path / "audio"
    write(root / "tone.wav", tone())
    write(root / "music" / "chord.flac", chord(), format="FLAC")
    write(root / "noise-44k.ogg", noise(rate=44100), rate=44100, format="OGG", subtype="VORBIS")
    write(root / "silence.wav", silence(rate=8000), rate=8000)
    stereo = np.stack([chord(seed=1, rate=22050), noise(3.0, rate=22050, level=0.05)], axis=1)
    write(root / "stereo-22k.wav", stereo, rate=22050, subtype="PCM_24")
    return root


@pytest.fixture
def broken_dir(tmp_path: Path) -> Path:
    """Good files next to empty, corrupt and non-audio ones."""
    root = tmp_path / "mixed"
    write(root / "good.wav", chord())
    (root / "empty.wav").write_bytes(b"")
    (root / "text.wav").write_text("this is not audio\n")
    data = (root / "good.wav").read_bytes()
    (root / "truncated.flac").write_bytes(b"fLaC" + data[4:40])
    (root / "random.mp3").write_bytes(np.random.default_rng(0).bytes(5000))
    return root
