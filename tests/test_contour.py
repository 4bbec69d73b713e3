"""The contour: the sound's course in time (``analyzer.contour``)."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.contour import LOUD_RANGE_DB, contour, contour_of_sums
from analyzer.featureconfig import MAX_PARTS, FeatureConfig
from analyzer.features import CONTOUR_RUN_FRAMES, FeatureStream, extract

from signals import RATE, chord, noise, silence

PARTS = 3
CONFIG = FeatureConfig(contour_parts=PARTS)
NAMES = CONFIG.feature_names()
COURSE = slice(NAMES.index(CONFIG.contour_names()[0]), None)
PER_PART = len(CONFIG.contour_mfccs()) + 1


def sweep(seconds: float, low: float, high: float, level: float = 0.3) -> np.ndarray:
    """A tone gliding from ``low`` to ``high`` Hz, exponentially."""
    t = np.arange(int(seconds * RATE)) / RATE
    rate = np.log(high / low) / seconds
    phase = 2 * np.pi * low * (np.exp(rate * t) - 1) / rate
    return (level * np.sin(phase)).astype(np.float32)


def parts(vector: np.ndarray) -> np.ndarray:
    """The contour entries of a vector, a row per part."""
    return vector[COURSE].reshape(PARTS, PER_PART)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


def test_the_contour_keeps_the_order_the_summary_loses() -> None:
    """A rising and a falling glide hold the same frames, in reverse: their
    MFCC means are alike, their contours are each other's reverse."""
    rising, falling = extract(sweep(1.0, 200, 3000), CONFIG), extract(sweep(1.0, 3000, 200), CONFIG)
    means = [NAMES.index(f"mfcc{i}_mean") for i in CONFIG.contour_mfccs()]
    up, down = parts(rising), parts(falling)
    apart = distance(up, down)
    assert distance(rising[means], falling[means]) < 0.1 * apart  # the summary: alike
    assert distance(up, down[::-1]) < 0.1 * apart  # the contour: reversed


def test_neither_padding_nor_tempo_moves_the_contour() -> None:
    """Parts are thirds of the loud stretch: zeros or a noise floor under
    ``LOUD_RANGE_DB`` around the sound, or the same glide twice as slow,
    keep their numbers."""
    glide = sweep(0.8, 300, 2500)
    plain = parts(extract(glide, CONFIG))
    reversed_course = distance(plain, plain[::-1])
    floor = noise(0.5, seed=1, level=0.3 * 10 ** (-(LOUD_RANGE_DB + 15) / 20))
    for padded in (
        np.concatenate([silence(0.7), glide, silence(1.3)]),
        np.concatenate([floor, glide, floor]),
        sweep(1.6, 300, 2500),
    ):
        assert distance(parts(extract(padded, CONFIG)), plain) < 0.1 * reversed_course


def test_a_sound_of_one_or_two_frames_fills_every_part() -> None:
    mfcc, level = np.array([[1.0, 3.0]]), np.array([-10.0, -20.0])
    one = contour(mfcc[:, :1], level[:1], PARTS).reshape(PARTS, 2)
    assert (one == [1.0, 0.0]).all()
    two = contour(mfcc, level, PARTS).reshape(PARTS, 2)
    assert two[0].tolist() == [1.0, 0.0] and two[-1].tolist() == [3.0, -10.0]
    assert np.isfinite(extract(np.zeros(10, np.float32), CONFIG)[COURSE]).all()


def test_the_loud_stretch_starts_and_ends_within_range_of_the_loudest() -> None:
    """Frames more than ``LOUD_RANGE_DB`` under the loudest at either end are
    left out; inside the stretch, a quiet frame counts."""
    mfcc = np.array([[9.0, 1.0, 9.0, 2.0, 3.0, 9.0]])
    level = np.array([-90.0, 0.0, -90.0, -5.0, -10.0, -45.0])
    course = contour(mfcc, level, PARTS).reshape(PARTS, 2)
    # The stretch is frames 1-4; thirds of 4 frames: 1-2, 2-3, 3-4 (edges shared).
    np.testing.assert_allclose(course[:, 0], [5.0, 5.5, 2.5])
    np.testing.assert_allclose(course[:, 1], [-45.0, -47.5, -7.5])


@pytest.mark.parametrize("pause", [False, True])
def test_a_long_file_gets_the_contour_of_its_loud_stretch(pause: bool) -> None:
    """Past ``keep_frames`` no frames are kept: the loud stretch is found to
    a run of frames, from sums over runs, close to the exact contour. Digital
    silence at the ends is left out, a pause inside is content, and a faint
    tail is not the course."""
    if pause:
        sound = [silence(3), chord(60, seed=1), silence(50), chord(30, seed=3) * 0.3, silence(40)]
    else:
        faint = noise(100, seed=2, level=0.3 * 10 ** (-(LOUD_RANGE_DB + 20) / 20))
        sound = [chord(40, seed=1), noise(40, seed=2, level=0.05), chord(40, seed=3) * 0.3, faint]
    signal = np.concatenate(sound).astype(np.float32)
    exact, bounded = FeatureStream(CONFIG), FeatureStream(CONFIG, keep_frames=1024)
    for pos in range(0, signal.size, 65536):
        exact.push(signal[pos : pos + 65536])
        bounded.push(signal[pos : pos + 65536])
    truth, approx = parts(exact.vector()), parts(bounded.vector())
    assert exact.exact and not bounded.exact
    # The stretch's ends are found to a run (whose frames outside it count),
    # and a run that a part's edge cuts counts in both parts by its share:
    # off by at most two runs' share of the values' range (the faint
    # tail's level, 64 dB under the loudest, is within 60 dB of the parts').
    share = 2 * CONTOUR_RUN_FRAMES / (exact.frames / PARTS)
    assert (np.abs(approx - truth) <= share * (2 * np.abs(truth).max(axis=0) + 60)).all()
    if pause:  # the middle third is mostly the pause
        assert truth[1, -1] < -100 and approx[1, -1] < -100
    else:  # the faint tail is left out, as in the exact contour
        assert truth[-1, -1] > -20 and approx[-1, -1] > -20


def test_runs_cut_by_a_part_count_by_their_share() -> None:
    frames = np.array([3.0, 3.0, 3.0, 3.0])
    loudest = np.array([-90.0, 0.0, -5.0, -45.0])  # the first and last: not loud
    sums = np.array([[99.0, -270.0], [0.0, -6.0], [18.0, -24.0], [99.0, -135.0]])
    course = contour_of_sums(frames, loudest, sums, PARTS).reshape(PARTS, 2)
    # Frames 0-2 are 0s, frames 3-5 are 6s: thirds of two frames each.
    np.testing.assert_allclose(course[:, 0], [0.0, 3.0, 6.0])
    np.testing.assert_allclose(course[:, 1], [-2.0, -5.0, -8.0])


def test_no_contour_unless_the_config_asks() -> None:
    """The default config has none, and its card and cache key are those of
    configs from before the contour."""
    plain = FeatureConfig()
    assert plain.contour_names() == [] and "contour_parts" not in plain.to_dict()
    assert extract(noise(1.0), plain).size == plain.n_features
    assert FeatureConfig.from_dict(CONFIG.to_dict()) == CONFIG
    assert CONFIG.cache_key() != plain.cache_key()
    for bad in (-1, True, 1.5, MAX_PARTS + 1):
        with pytest.raises(ValueError, match="contour_parts must be a whole number"):
            FeatureConfig(contour_parts=bad)  # type: ignore[arg-type]
