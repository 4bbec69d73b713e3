"""The descriptors beyond librosa's: periodicity, pitch, onsets and the texture of a stretch."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.featureconfig import TEXTURE_NAMES, FeatureConfig
from analyzer.features import FeatureStream, extract
from analyzer.texture import PITCHED, STEADY_OCTAVES

from signals import RATE, noise, silence, tone

CONFIG = FeatureConfig()
NAMES = CONFIG.feature_names()


def value(vector: np.ndarray, name: str) -> float:
    return float(vector[NAMES.index(name)])


def rows(signal: np.ndarray) -> dict[str, np.ndarray]:
    stream = FeatureStream(CONFIG)
    stream.push(signal)
    return dict(zip(CONFIG.descriptor_names(), stream.descriptors(), strict=True))


@pytest.mark.parametrize("freq", [80.0, 150.0, 220.0, 440.0])
def test_a_tone_is_periodic_at_its_pitch(freq: float) -> None:
    frames = rows(tone(2.0, freq=freq))
    inside = slice(2, -2)  # the padded edge frames are half silence
    assert frames["periodicity"][inside].min() > 0.95
    # The pitch is a whole lag in samples: within one lag step of the truth.
    lag = RATE / freq
    step = np.log2((lag + 1) / lag)
    assert np.abs(frames["pitch"][inside] - np.log2(freq)).max() <= step


def test_noise_and_silence_are_not_pitched() -> None:
    frames = rows(noise(2.0, seed=3))
    assert frames["periodicity"].mean() < 0.3
    assert np.mean(frames["periodicity"] > PITCHED) < 0.02
    quiet = rows(silence(1.0))
    assert not quiet["periodicity"].any() and not quiet["pitch"].any()


def test_onset_marks_where_sound_starts() -> None:
    signal = np.concatenate([silence(1.0), tone(1.0, freq=300.0)])
    onset = rows(signal)["onset"]
    start = round(1.0 * RATE / CONFIG.hop_length)
    assert onset[0] == 0.0  # no frame before the first
    assert int(np.argmax(onset)) in range(start - 2, start + 2)
    assert onset[start + 4 : -4].max() < 0.1 * onset.max()  # a held tone does not rise


def clicks(seconds: float, period: float, seed: int = 0) -> np.ndarray:
    """A faint noise bed with a short burst every ``period`` seconds."""
    signal = noise(seconds, seed=seed, level=0.01)
    burst = noise(0.03, seed=seed + 1, level=0.5)
    for start in np.arange(0.0, seconds - 0.05, period):
        i = int(start * RATE)
        signal[i : i + burst.size] += burst
    return signal


def test_a_regular_beat_has_a_pulse_and_noise_has_none() -> None:
    beat = extract(clicks(8.0, 0.5), CONFIG)
    plain = extract(noise(8.0, seed=5), CONFIG)
    assert value(beat, "pulse_beat") > 0.6
    assert value(plain, "pulse_beat") < 0.3
    # Too short to hold two beats of the longest period: no pulse is claimed.
    assert value(extract(clicks(1.5, 0.5), CONFIG), "pulse_beat") == 0.0


def test_notes_hold_their_pitch_and_a_glide_does_not() -> None:
    notes = np.concatenate([tone(0.5, freq=f) for f in (220.0, 262.0, 330.0, 392.0) * 2])
    t = np.arange(4 * RATE) / RATE
    # A voice-like glide: pitch sweeping around 180 Hz, 3 semitones either way, twice a second.
    phase = 2 * np.pi * np.cumsum(180.0 * 2 ** (0.25 * np.sin(2 * np.pi * 2.0 * t))) / RATE
    glide = (0.3 * np.sin(phase)).astype(np.float32)
    steady, gliding = extract(notes, CONFIG), extract(glide, CONFIG)
    assert value(steady, "pitched_fraction") > 0.9 and value(gliding, "pitched_fraction") > 0.9
    assert value(steady, "pitch_steady") > 0.8 > 0.5 > value(gliding, "pitch_steady")
    assert value(steady, "pitch_step") < STEADY_OCTAVES < value(gliding, "pitch_step")
    assert value(gliding, "pitch_spread") > 0.1


def test_texture_entries_come_after_the_row_statistics() -> None:
    start = len(CONFIG.descriptor_names()) * (2 + len(CONFIG.percentiles))
    texture = slice(start, start + len(TEXTURE_NAMES))
    assert NAMES[texture] == list(TEXTURE_NAMES)
    modulation = slice(texture.stop, texture.stop + len(CONFIG.modulation_names()))
    assert NAMES[modulation] == CONFIG.modulation_names()
    assert NAMES[modulation.stop :] == CONFIG.contour_names()
    vector = extract(silence(3.0), CONFIG)
    assert not vector[texture].any()  # nothing to describe in silence
