"""How the level of a stretch of frames moves: the modulation spectrum of its envelopes.

Rain, surf and wind have the same broad spectrum; what tells them apart is
how their level moves: the slow swell of waves, the flutter of wind, the
patter of rain. Speech moves at the syllable rate (about 4 Hz), music at
its beat. ``modulation`` measures that for the overall level (``rms_db``)
and for each coarse band's share of it (``band*``): the power of each
envelope's movement in each band of ``MODULATION_EDGES_HZ``.
"""

from __future__ import annotations

import itertools

import numpy as np

from analyzer.featureconfig import MODULATION_EDGES_HZ, FeatureConfig

__all__ = ["modulation"]

#: Envelopes are floored here (dB) first: a gap of digital silence (-200 dBFS)
#: would otherwise swamp every band with one step.
ENVELOPE_FLOOR_DB = -80.0
#: Added to the power before its log, so that a still envelope gives a finite value.
POWER_FLOOR = 1e-6


def modulation(envelopes: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """log10 of the mean power of each envelope's movement in each modulation
    band, envelope by envelope, ``[shape=(n_envelopes * n_bands,)]``, float32.

    Parameters
    ----------
    envelopes : np.ndarray [shape=(n_envelopes, n_frames)]
        Levels in dB, one column per frame.
    config : FeatureConfig
        Gives the frame rate.

    Each envelope's mean is removed, a Hann window tapers it, and its
    periodogram (power per bin, scaled by the window's energy so that it does
    not grow with the stretch's length) is zero-padded to resolve the lowest
    band even in a short stretch. A band with no bin (above the frame rate's
    Nyquist frequency) gives the floor.
    """
    frame_rate = config.sample_rate / config.hop_length
    edges = np.asarray(MODULATION_EDGES_HZ)
    means = np.zeros((envelopes.shape[0], edges.size - 1))
    if envelopes.shape[1] == 0:
        return np.log10(means + POWER_FLOOR).reshape(-1).astype(np.float32)
    rows = np.maximum(envelopes.astype(np.float64), ENVELOPE_FLOOR_DB)
    n = rows.shape[1]
    size = max(n, 2 * int(np.ceil(frame_rate / MODULATION_EDGES_HZ[0])))
    window = np.hanning(n + 2)[1:-1]
    tapered = (rows - rows.mean(axis=1, keepdims=True)) * window
    power = np.square(np.abs(np.fft.rfft(tapered, n=size, axis=1)))
    power /= max(float(np.dot(window, window)), 1.0)
    freqs = np.fft.rfftfreq(size, 1.0 / frame_rate)
    for k, (lo, hi) in enumerate(itertools.pairwise(edges)):
        band = (freqs >= lo) & (freqs < hi)
        if band.any():
            means[:, k] = power[:, band].mean(axis=1)
    return np.log10(means + POWER_FLOOR).reshape(-1).astype(np.float32)
