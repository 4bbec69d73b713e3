"""Descriptors beyond librosa's: pitch, onsets, and the texture of a stretch of frames.

The spectral shape alone confuses a distorted guitar with an engine and a
rain shower with applause. What tells them apart is over time: how periodic
each frame is and at what pitch, how sharply the spectrum rises from one
frame to the next (onset strength), and, over a stretch of frames, whether
the onsets come at a regular beat and whether the pitch holds steady notes
(music) or glides (speech). ``frame_rows`` gives the per-frame rows;
``texture`` turns a stretch of them into ``TEXTURE_NAMES``.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import scipy.fft

from analyzer import spectral
from analyzer.featureconfig import TEXTURE_NAMES, FeatureConfig

__all__ = ["TEXTURE_NAMES", "frame_rows", "texture"]

#: Fundamental frequencies searched for, in Hz (a low male voice to a high soprano).
PITCH_RANGE_HZ = (60.0, 500.0)
#: Periodicity (normalised autocorrelation) above which a frame counts as pitched.
PITCHED = 0.6
#: A pitch step under this many octaves (about a quarter of a semitone) is steady.
STEADY_OCTAVES = 0.02
#: Beat periods looked for, in seconds (240 down to 40 beats a minute).
BEAT_RANGE_S = (0.25, 1.5)


@cache
def _window_autocorrelation(n_fft: int) -> np.ndarray:
    """The (circular) autocorrelation of the Hann window, normalised to 1 at lag 0:
    dividing by it undoes the window's taper (Boersma 1993)."""
    window = np.hanning(n_fft + 1)[:-1]
    ac = np.fft.irfft(np.abs(np.fft.rfft(window)) ** 2, n=n_fft)
    # float32, so that dividing the float32 lag table by it keeps it float32.
    return np.maximum(ac / ac[0], 1e-3).astype(np.float32)


def frame_rows(
    magnitude: np.ndarray, log_mel: np.ndarray, previous_log_mel: np.ndarray | None, sr: int
) -> np.ndarray:
    """Periodicity, pitch and onset strength of each frame, ``[shape=(3, n_frames)]``.

    Parameters
    ----------
    magnitude : np.ndarray [shape=(n_fft // 2 + 1, n_frames)]
        Magnitude spectra of Hann-windowed frames.
    log_mel : np.ndarray [shape=(n_mels, n_frames)]
        The same frames' mel spectra in dB.
    previous_log_mel : np.ndarray [shape=(n_mels,)] or None
        The frame before the first one (None at the start: its onset is 0).
    sr : int

    Returns
    -------
    periodicity : the highest normalised autocorrelation at a lag in
        ``PITCH_RANGE_HZ``, 0 to 1 (0 for digital silence);
    pitch : log2 of that lag's frequency in Hz where the frame is pitched
        (periodicity above ``PITCHED``), else 0;
    onset : the mean rise, in dB, of the mel bands from the previous frame.
    """
    n_fft = 2 * (magnitude.shape[0] - 1)
    # The autocorrelation is the inverse FFT of the power; float32 halves its cost.
    power = np.square(magnitude).astype(np.float32)
    ac = scipy.fft.irfft(power, n=n_fft, axis=0)
    lo = int(sr / PITCH_RANGE_HZ[1])
    hi = int(sr / PITCH_RANGE_HZ[0]) + 1
    energy = ac[0]
    normalised = (
        ac[lo:hi]
        / np.maximum(energy, spectral.AMIN)
        / _window_autocorrelation(n_fft)[lo:hi, np.newaxis]
    )
    # Every multiple of the period peaks too, a lag's rounding decides which is
    # highest: take the first local peak within 10 % of the highest one.
    peaks = np.zeros(normalised.shape, dtype=bool)
    peaks[1:-1] = (normalised[1:-1] >= normalised[:-2]) & (normalised[1:-1] >= normalised[2:])
    highest = normalised.max(axis=0)
    chosen = peaks & (normalised >= highest - 0.1 * np.abs(highest))
    best = np.where(chosen.any(axis=0), np.argmax(chosen, axis=0), np.argmax(normalised, axis=0))
    periodicity = np.where(energy > spectral.AMIN, np.clip(highest, 0.0, 1.0), 0.0)
    pitch = np.where(periodicity > PITCHED, np.log2(sr / (lo + best)), 0.0)
    before = log_mel[:, :1] if previous_log_mel is None else previous_log_mel[:, np.newaxis]
    rise = np.diff(log_mel, axis=1, prepend=before)
    onset = np.maximum(rise, 0.0).mean(axis=0)
    return np.vstack([periodicity, pitch, onset])


def texture(onset: np.ndarray, pitch: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """``TEXTURE_NAMES`` over a stretch of frames, ``[shape=(6,)]``, float32.

    pulse_beat, pulse_fast : the highest autocorrelation of the onset
        strength (mean removed) at a lag within ``BEAT_RANGE_S``, and at a
        shorter lag of two frames or more; 0 for a stretch shorter than the
        longest beat plus two of the shortest (about 2 s).
    pitched_fraction : the fraction of frames that are pitched.
    pitch_spread : the standard deviation of the pitched frames' pitch, in octaves.
    pitch_step : the median step, in octaves, from one pitched frame to the next.
    pitch_steady : the fraction of those steps under ``STEADY_OCTAVES``.
    """
    frame_s = config.hop_length / config.sample_rate
    lo = max(3, round(BEAT_RANGE_S[0] / frame_s))
    hi = round(BEAT_RANGE_S[1] / frame_s)
    beat = fast = 0.0
    centred = onset.astype(np.float64) - (onset.mean() if onset.size else 0.0)
    zero = float(np.dot(centred, centred))
    if centred.size >= hi + 2 * lo and zero > 1e-9:
        acf = np.array([np.dot(centred[:-k], centred[k:]) for k in range(2, hi + 1)]) / zero
        fast, beat = float(acf[: lo - 2].max()), float(acf[lo - 2 :].max())
    pitched = pitch[pitch > 0].astype(np.float64)
    steps = np.abs(np.diff(pitched))
    values = [
        beat,
        fast,
        float(np.mean(pitch > 0)) if pitch.size else 0.0,
        float(pitched.std()) if pitched.size > 2 else 0.0,
        float(np.median(steps)) if steps.size > 1 else 0.0,
        float(np.mean(steps < STEADY_OCTAVES)) if steps.size > 1 else 0.0,
    ]
    assert len(values) == len(TEXTURE_NAMES)
    return np.array(values, dtype=np.float32)
