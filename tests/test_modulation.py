"""The coarse bands' shape and the modulation spectrum of a stretch's envelopes."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.featureconfig import MODULATION_EDGES_HZ, FeatureConfig
from analyzer.features import FeatureStream, extract
from analyzer.modulation import POWER_FLOOR, band_power, log_power
from analyzer.spectral import band_shape

from signals import RATE, noise, silence, tone

CONFIG = FeatureConfig()
NAMES = CONFIG.feature_names()
BANDS = len(MODULATION_EDGES_HZ) - 1
FRAME_RATE = CONFIG.sample_rate / CONFIG.hop_length


def swelling(seconds: float, rate_hz: float, depth: float = 0.9, seed: int = 0) -> np.ndarray:
    """Noise whose amplitude swells ``rate_hz`` times a second."""
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 1.0 - depth * (0.5 + 0.5 * np.cos(2 * np.pi * rate_hz * t))
    return (noise(seconds, seed=seed) * envelope).astype(np.float32)


def level_modulation(vector: np.ndarray) -> np.ndarray:
    start = NAMES.index("rms_db_mod_0.25_1hz")
    return vector[start : start + BANDS]


@pytest.mark.parametrize(("rate_hz", "band"), [(0.5, 0), (1.5, 1), (3.0, 2), (6.0, 3), (11.0, 4)])
def test_a_swell_shows_in_its_modulation_band(rate_hz: float, band: int) -> None:
    values = level_modulation(extract(swelling(8.0, rate_hz), CONFIG))
    assert int(np.argmax(values)) == band
    steady = level_modulation(extract(noise(8.0), CONFIG))
    assert values[band] > steady[band] + 1.0  # ten times the power, at least


def test_the_measure_does_not_grow_with_the_stretch() -> None:
    """A periodogram scaled by the window's energy: the same swell measures the
    same over 6 s and 24 s in its band; the bands beside it get some of its
    leakage (the short taper's price), less as the resolution grows."""
    short = level_modulation(extract(swelling(6.0, 3.0), CONFIG))
    long = level_modulation(extract(swelling(24.0, 3.0), CONFIG))
    assert abs(short[2] - long[2]) < 0.05
    assert np.abs(short - long).max() < 1.0


def test_a_still_envelope_gives_the_floor_and_an_empty_one_too() -> None:
    still = np.full((2, 200), -30.0)
    assert np.allclose(log_power(band_power(still, CONFIG)), np.log10(POWER_FLOOR))
    empty = log_power(band_power(np.zeros((3, 0)), CONFIG))
    assert empty.shape == (3 * BANDS,)
    assert np.allclose(empty, np.log10(POWER_FLOOR))


def test_a_gap_of_digital_silence_counts_as_a_drop_of_60_db_not_a_cliff() -> None:
    """Each envelope is floored 60 dB below its peak: a -200 dBFS gap weighs
    as a drop to 60 dB under the peak would."""
    level = np.full((1, 400), -20.0)
    gap, floor = level.copy(), level.copy()
    gap[0, 150:250] = -200.0
    floor[0, 150:250] = -80.0
    assert np.allclose(band_power(gap, CONFIG), band_power(floor, CONFIG))


@pytest.mark.parametrize("level_db", [-70.0, -84.0])
def test_a_faint_recording_keeps_its_movement(level_db: float) -> None:
    """The floor follows the envelope's peak: near -80 dBFS there is no cliff."""
    loud = level_modulation(extract(swelling(8.0, 3.0), CONFIG))
    signal = swelling(8.0, 3.0)
    faint = signal * np.float32(10 ** ((level_db - 20 * np.log10(np.abs(signal).max())) / 20))
    values = level_modulation(extract(faint.astype(np.float32), CONFIG))
    assert np.abs(values - loud).max() < 0.3


def test_an_event_counts_about_the_same_wherever_it_sits() -> None:
    """A short taper (Tukey, 20 %): a burst at a clip's very start is not
    faded out, as a Hann window would (1.7 log units lower there)."""
    values = []
    for start in (0.0, 1.85, 3.6):
        signal = noise(4.0, level=0.001)
        at = int(start * RATE)
        signal[at : at + int(0.3 * RATE)] += noise(0.3, seed=5)[: signal.size - at]
        values.append(level_modulation(extract(signal, CONFIG))[0])
    assert max(values) - min(values) < 1.0


def test_a_band_above_the_frame_rates_nyquist_gives_the_floor() -> None:
    slow = FeatureConfig(hop_length=1024)  # 15.6 frames a second: nothing above 7.8 Hz
    values = log_power(band_power(np.random.default_rng(0).normal(size=(1, 300)), slow))
    assert values[-1] == pytest.approx(np.log10(POWER_FLOOR))
    assert (values[:-1] > np.log10(POWER_FLOOR)).all()


def test_each_entry_is_named_after_its_row_and_band() -> None:
    """The vector's ``<row>_mod_<lo>_<hi>hz`` entries are that row's power in that band."""
    stream = FeatureStream(CONFIG)
    stream.push(np.concatenate([swelling(3.0, 1.5), noise(3.0, seed=4) * np.float32(0.3)]))
    rows = dict(zip(CONFIG.descriptor_names(), stream.descriptors(), strict=True))
    vector = stream.vector()
    for row in ("rms_db", "band0", "band9", "band15"):
        expected = log_power(band_power(rows[row][np.newaxis, :], CONFIG))
        for k, name in enumerate(n for n in CONFIG.modulation_names() if n.startswith(f"{row}_")):
            assert vector[NAMES.index(name)] == pytest.approx(expected[k], abs=1e-5)


def test_band_shape_puts_a_tone_in_its_band_and_ignores_the_level() -> None:
    stream = FeatureStream(CONFIG)
    stream.push(tone(1.0, freq=1000.0))
    rows = dict(zip(CONFIG.descriptor_names(), stream.descriptors(), strict=True))
    shape = np.vstack([rows[f"band{i}"] for i in range(CONFIG.n_bands)])[:, 2:-2]
    assert np.allclose(shape.mean(axis=0), 0.0, atol=1e-3)  # a shape, not a level
    mel_power = np.random.default_rng(1).uniform(size=(CONFIG.n_mels, 5))
    assert np.allclose(band_shape(mel_power, 16), band_shape(mel_power * 100.0, 16), atol=1e-4)
    # 1 kHz is 15 of Slaney's 45.3 mels up to 8 kHz: mel band 21 of 64, coarse band 5.
    assert int(np.argmax(shape.mean(axis=1))) == 5


def test_silence_and_tiny_signals_give_the_floor() -> None:
    """Nothing moves in digital silence or in a signal shorter than a frame."""
    names = CONFIG.modulation_names()
    start = NAMES.index(names[0])
    for signal in (silence(1.0), np.zeros(10, dtype=np.float32), tone(0.01)):
        entries = extract(signal, CONFIG)[start : start + len(names)]
        assert entries.size == len(CONFIG.modulated_rows()) * BANDS
        assert np.allclose(entries, np.log10(POWER_FLOOR))


def test_n_mels_must_be_a_multiple_of_n_bands() -> None:
    with pytest.raises(ValueError, match="multiple of n_bands"):
        FeatureConfig(n_mels=40, n_bands=16)
    assert len(FeatureConfig(n_mels=40, n_bands=8).descriptor_names()) == 65


@pytest.mark.parametrize("kind", ["swell", "step"])
def test_a_long_file_gets_its_modulation_block_by_block(kind: str) -> None:
    """Beyond the kept frames the modulation is the frame-weighted mean of the
    blocks' power (``_Summary``), logged at the end: a steady swell, and a
    single step of 20 dB that only one block holds, measure as over the whole."""
    if kind == "swell":
        signal = swelling(80.0, 3.0)
    else:
        signal = noise(80.0, seed=2, level=0.01)
        signal[50 * RATE :] *= 10
    exact = FeatureStream(CONFIG)
    bounded = FeatureStream(CONFIG, keep_frames=1024)
    for start in range(0, signal.size, 48000):
        exact.push(signal[start : start + 48000])
        bounded.push(signal[start : start + 48000])
    assert exact.exact and not bounded.exact
    a, b = level_modulation(exact.vector()), level_modulation(bounded.vector())
    assert np.abs(a - b).max() < 0.1
