"""librosa's frame descriptors, computed with numpy on a whole chunk at once.

Each function follows the definition of the librosa function it is named
after (librosa 0.11, default arguments unless stated), and the test suite
checks them against librosa itself (``tests/test_features.py``). Importing
librosa at run time would cost every worker about 140 MB (numba) and half a
second; these few formulas need neither.

One deliberate difference: ``spectral_contrast`` does not clip its peaks and
valleys to 80 dB below the loudest value of the array (librosa's
``power_to_db`` default), because that would make a frame's value depend on
which chunk of the file it was computed with.

Spectra are ``[shape=(n_bins, n_frames)]`` magnitudes, bins from
``np.fft.rfftfreq(n_fft, 1 / sr)``.
"""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
import scipy.fft

AMIN = 1e-10


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    mel = hz / f_sp
    log_part = hz >= min_log_hz
    mel[log_part] = min_log_hz / f_sp + np.log(hz[log_part] / min_log_hz) / logstep
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    hz = f_sp * mel
    log_part = mel >= min_log_mel
    hz[log_part] = min_log_hz * np.exp(logstep * (mel[log_part] - min_log_mel))
    return hz


@cache
def mel_filters(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """``librosa.filters.mel`` (Slaney scale and area normalisation), float32."""
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mels = np.linspace(
        _hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([sr / 2.0]))[0], n_mels + 2
    )
    mel_f = _mel_to_hz(mels)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, np.newaxis]
    upper = ramps[2:] / fdiff[1:, np.newaxis]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, np.newaxis]
    return weights.astype(np.float32)


def power_to_db(power: np.ndarray) -> np.ndarray:
    """``librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=None)``."""
    return 10.0 * np.log10(np.maximum(power, AMIN))


def mfcc(log_mel: np.ndarray, n_mfcc: int) -> np.ndarray:
    """``librosa.feature.mfcc(S=log_mel)``: orthonormal DCT-II over the mel axis."""
    return scipy.fft.dct(log_mel, type=2, norm="ortho", axis=0)[:n_mfcc]


def _l1_normalised(magnitude: np.ndarray) -> np.ndarray:
    """Columns scaled to sum 1; silent columns stay zero (``librosa.util.normalize``)."""
    total = magnitude.sum(axis=0, keepdims=True)
    tiny = np.finfo(magnitude.dtype).tiny
    return magnitude / np.where(total < tiny, 1.0, total)


def centroid_and_bandwidth(magnitude: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """``spectral_centroid`` and ``spectral_bandwidth`` (p=2), ``[shape=(2, n_frames)]``."""
    weights = _l1_normalised(magnitude)
    centroid = freqs @ weights
    deviation = np.abs(freqs[:, np.newaxis] - centroid[np.newaxis, :])
    bandwidth = np.sqrt(np.sum(weights * deviation**2, axis=0))
    return np.vstack([centroid, bandwidth])


def rolloff(magnitude: np.ndarray, freqs: np.ndarray, roll_percent: float = 0.85) -> np.ndarray:
    """``spectral_rolloff``: the lowest bin frequency holding ``roll_percent`` of the sum."""
    cumulative = np.cumsum(magnitude, axis=0)
    reached = cumulative >= roll_percent * cumulative[-1:]
    return freqs[np.argmax(reached, axis=0)]


def flatness(magnitude: np.ndarray) -> np.ndarray:
    """``spectral_flatness`` (power 2): geometric over arithmetic mean of the power."""
    power = np.maximum(AMIN, magnitude**2)
    return np.exp(np.mean(np.log(power), axis=0)) / np.mean(power, axis=0)


@cache
def _contrast_bands(sr: int, n_fft: int, fmin: float, n_bands: int) -> tuple[np.ndarray, ...]:
    """Bin masks of the octave bands, as ``librosa.feature.spectral_contrast`` builds them."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = np.zeros(n_bands + 2)
    edges[1:] = fmin * 2.0 ** np.arange(n_bands + 1)
    bands = []
    for k, (low, high) in enumerate(itertools.pairwise(edges)):
        band = (freqs >= low) & (freqs <= high)
        idx = np.flatnonzero(band)
        if k > 0:
            band[idx[0] - 1] = True
        if k == n_bands:
            band[idx[-1] + 1 :] = True
        bands.append(band)
    return tuple(bands)


def contrast(
    magnitude: np.ndarray, sr: int, n_fft: int, *, fmin: float, n_bands: int, quantile: float = 0.02
) -> np.ndarray:
    """``spectral_contrast``: peak over valley per octave band, in dB, ``[(n_bands + 1), n]``.

    Not clipped to 80 dB below the array's maximum (see the module notes).
    """
    bands = _contrast_bands(sr, n_fft, fmin, n_bands)
    out = np.empty((n_bands + 1, magnitude.shape[1]), dtype=np.float64)
    for k, band in enumerate(bands):
        sub = magnitude[band]
        if k < n_bands:
            sub = sub[:-1]
        count = max(int(np.rint(quantile * np.count_nonzero(band))), 1)
        ordered = np.sort(sub, axis=0)
        valley = ordered[:count].mean(axis=0)
        peak = ordered[-count:].mean(axis=0)
        out[k] = power_to_db(peak) - power_to_db(valley)
    return out


def rms_db(magnitude: np.ndarray, n_fft: int) -> np.ndarray:
    """``librosa.feature.rms(S=magnitude)`` in dB (20 log10, floored at -200 dB)."""
    power = magnitude.astype(np.float64) ** 2
    power[0] *= 0.5
    if n_fft % 2 == 0:
        power[-1] *= 0.5
    rms = np.sqrt(2.0 * power.sum(axis=0) / n_fft**2)
    return 20.0 * np.log10(np.maximum(rms, AMIN))


def band_shape(mel_power: np.ndarray, n_bands: int) -> np.ndarray:
    """Each frame's level (dB) in ``n_bands`` coarse bands of adjacent mel
    bands, less its mean over them, ``[shape=(n_bands, n_frames)]``.

    Not a librosa descriptor. The MFCCs keep only a smooth outline of the
    spectrum; these rows keep where its energy sits and, over time, how each
    band moves apart from the overall level (``rms_db`` has that).
    """
    n_mels, n_frames = mel_power.shape
    pooled = mel_power.reshape(n_bands, n_mels // n_bands, n_frames).sum(axis=1)
    levels = power_to_db(pooled)
    return levels - levels.mean(axis=0, keepdims=True)


def delta(rows: np.ndarray) -> np.ndarray:
    """``librosa.feature.delta(rows, width=9)`` along frames (narrower when there are few).

    librosa calls ``scipy.signal.savgol_filter(deriv=1, polyorder=1,
    mode="interp")``. For a straight-line fit that has a closed form: inside,
    the slope of the least-squares line through the ``width`` frames around
    each frame, ``sum(k * x[i + k]) / sum(k**2)``; in the first and last
    ``width // 2`` frames, the slope of the line through the first or last
    ``width`` frames, which is the value at the first or last inside frame.
    Each value is the same sum whatever the row's length, so a row computed
    in pieces gives the same bits as the whole row. float32 in, float32 out,
    as scipy does; the sums are in float64.
    """
    n = rows.shape[1]
    if n < 3:
        return np.zeros_like(rows)
    width = min(9, n if n % 2 else n - 1)
    half = width // 2
    data = rows.astype(np.float64, copy=False)
    inside = np.zeros((rows.shape[0], n - 2 * half))
    for k in range(1, half + 1):
        inside += k * (data[:, half + k : n - half + k] - data[:, half - k : n - half - k])
    inside /= half * (half + 1) * (2 * half + 1) / 3
    head = np.repeat(inside[:, :1], half, axis=1)
    tail = np.repeat(inside[:, -1:], half, axis=1)
    out_type = rows.dtype if rows.dtype in (np.float32, np.float64) else np.float64
    return np.concatenate([head, inside, tail], axis=1).astype(out_type, copy=False)
