"""How the level of a stretch of frames moves: the modulation spectrum of its envelopes.

Rain, surf and wind have the same broad spectrum; what tells them apart is
how their level moves: the slow swell of waves, the flutter of wind, the
patter of rain. Speech moves at the syllable rate (about 4 Hz), music at
its beat. ``band_power`` measures that for the overall level (``rms_db``)
and for each coarse band's share of it (``band*``): the power of each
envelope's movement in each band of ``MODULATION_EDGES_HZ``; the vector
holds its ``log_power``.

The envelopes are sampled once a frame (31.25 times a second at the
defaults), from frames of 64 ms: movement faster than half the frame rate
is smoothed by the frames, and what passes of it folds into the bands below
(a 28 Hz buzz reads partly as 2-4 Hz movement).
"""

from __future__ import annotations

import itertools

import numpy as np

from analyzer.featureconfig import MODULATION_EDGES_HZ, FeatureConfig

__all__ = ["band_power", "log_power"]

#: Each envelope is floored this far (dB) below its own peak: a gap of
#: digital silence (-200 dBFS) would otherwise swamp every band with one
#: step, while a faint recording keeps its movement.
ENVELOPE_RANGE_DB = 60.0
#: Added to the power before its log, so that a still envelope gives a finite value.
POWER_FLOOR = 1e-6
#: Share of the stretch tapered at each end (a Tukey window): an event at a
#: clip's very start must count about as much as one in its middle.
TAPER = 0.2


def _taper(n: int) -> np.ndarray:
    """Not cached: stretches come in every length, and a cache per length
    would grow without bound in a long-lived worker; it costs far less than
    the FFT it goes with."""
    import scipy.signal

    return scipy.signal.windows.tukey(n, TAPER, sym=True)


def band_power(envelopes: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The mean power of each envelope's movement in each modulation band,
    envelope by envelope, ``[shape=(n_envelopes * n_bands,)]``, float64.

    Parameters
    ----------
    envelopes : np.ndarray [shape=(n_envelopes, n_frames)]
        Levels in dB, one column per frame.
    config : FeatureConfig
        Gives the frame rate.

    Each envelope is floored ``ENVELOPE_RANGE_DB`` below its peak, its mean
    is removed and a Tukey window tapers its ends; its periodogram is scaled
    by the window's energy, so that the mean over a band's bins is the power
    in that band whatever the stretch's length. A stretch shorter than the
    lowest band's period is zero-padded to it: its bins are interpolated, so
    the slowest bands of a clip under 2 s are rough. A band with no bin
    (above the frame rate's Nyquist frequency) gives 0.
    """
    frame_rate = config.sample_rate / config.hop_length
    edges = np.asarray(MODULATION_EDGES_HZ)
    means = np.zeros((envelopes.shape[0], edges.size - 1))
    n = envelopes.shape[1]
    if n == 0:
        return means.reshape(-1)
    rows = envelopes.astype(np.float64)
    rows = np.maximum(rows, rows.max(axis=1, keepdims=True) - ENVELOPE_RANGE_DB)
    size = max(n, 2 * int(np.ceil(frame_rate / MODULATION_EDGES_HZ[0])))
    window = _taper(n)
    tapered = (rows - rows.mean(axis=1, keepdims=True)) * window
    power = np.square(np.abs(np.fft.rfft(tapered, n=size, axis=1)))
    power /= max(float(np.dot(window, window)), 1.0)
    freqs = np.fft.rfftfreq(size, 1.0 / frame_rate)
    for k, (lo, hi) in enumerate(itertools.pairwise(edges)):
        band = (freqs >= lo) & (freqs < hi)
        if band.any():
            means[:, k] = power[:, band].mean(axis=1)
    return means.reshape(-1)


def log_power(power: np.ndarray) -> np.ndarray:
    """The vector's entries: log10 of ``band_power`` (or of a mean of it), float32."""
    return np.log10(power + POWER_FLOOR).astype(np.float32)
