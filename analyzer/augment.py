"""Training-time augmentation that breaks the corpus's shortcuts.

Part of the speech in the default corpus is narrowband telephone audio while
its music is wideband, every clip has one level, its short clips are mostly
noise, and most of its speech was recorded clean and dry. Copies that are
cut short, band-limited, re-levelled, put in a room and noised teach the
model content, not bandwidth, loudness, length or the studio.
"""

from __future__ import annotations

import numpy as np
import soxr

#: Rates a band-limited copy passes through (Nyquist 4 to 5.5 kHz).
NARROW_RATES = (8000, 11025)
#: Non-silent copies are levelled to an RMS in this range, in dBFS.
LEVEL_RANGE_DBFS = (-42.0, -14.0)


def band_limit(signal: np.ndarray, rate: int, *, narrow_rate: int) -> np.ndarray:
    """Resample down to ``narrow_rate`` and back: nothing is left above its Nyquist."""
    down = soxr.resample(signal, rate, narrow_rate, quality="HQ")
    up = soxr.resample(down, narrow_rate, rate, quality="HQ")
    out = np.zeros_like(signal)
    n = min(out.size, up.size)
    out[:n] = up[:n]
    return out


def rms_dbfs(signal: np.ndarray) -> float:
    return float(10.0 * np.log10(max(float(np.mean(np.square(signal, dtype=np.float64))), 1e-20)))


def set_level(signal: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Scale to an RMS of ``target_dbfs``, never past full scale."""
    gain = 10.0 ** ((target_dbfs - rms_dbfs(signal)) / 20.0)
    peak = float(np.max(np.abs(signal))) if signal.size else 0.0
    if peak * gain > 0.99:
        gain = 0.99 / max(peak, 1e-12)
    return (signal * gain).astype(np.float32)


#: Clips quieter than this (RMS, dBFS) keep their level: quiet is what silence is.
QUIET_DBFS = -60.0
#: Half the copies of a clip at least twice as long are an excerpt this long, in s.
EXCERPT_S = (0.5, 1.5)
#: A copy is put in a room this often, with a reverberation time (RT60) in this range, in s.
REVERB_SHARE = 0.3
REVERB_RT60_S = (0.1, 0.8)
#: A copy gets background noise (white to brown) this often, at an SNR in this range, in dB.
#: Speech from sources the corpus lacks (amateur and acted recordings) was called
#: noise when the copies only had faint white noise (15-40 dB, a third of them).
NOISE_SHARE = 0.5
NOISE_SNR_DB = (5.0, 30.0)
#: The noise has nothing below this, in Hz (see ``coloured_noise``).
NOISE_LOWEST_HZ = 50.0
#: Bump when the copies change, so cached training features are computed again.
AUGMENT_VERSION = 6
#: The rate a clip passes through for the band-limited check of a model.
CHECK_NARROW_RATE = 8000


def coloured_noise(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of Gaussian noise whose spectrum falls by 0 to 6 dB an
    octave from ``NOISE_LOWEST_HZ`` up, at random: from white through pink to
    brown, like hiss, air and rumble. Nothing below: shaped from the lowest
    bin, brown noise would be mostly an inaudible drift."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    tilt = (NOISE_LOWEST_HZ / np.maximum(freqs, NOISE_LOWEST_HZ)) ** rng.uniform(0.0, 1.0)
    spectrum *= np.where(freqs < NOISE_LOWEST_HZ, 0.0, tilt)
    return np.fft.irfft(spectrum, n).astype(np.float32)


def reverberate(signal: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """The signal in a room: convolved with exponentially decaying noise (the
    late reverberation of a room, ``REVERB_RT60_S``) and mixed with the dry signal."""
    from scipy.signal import fftconvolve

    if signal.size == 0:
        return signal
    rt60 = rng.uniform(*REVERB_RT60_S)
    t = np.arange(int(rt60 * rate)) / rate
    tail = rng.standard_normal(t.size) * 10.0 ** (-3.0 * t / rt60)
    tail /= np.sqrt(np.sum(tail**2))
    wet = fftconvolve(signal, tail)[: signal.size]
    return (signal + rng.uniform(0.3, 1.0) * wet).astype(np.float32)


def over_background(signal: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """The signal over ``coloured_noise`` at a random SNR in ``NOISE_SNR_DB``."""
    snr_db = rng.uniform(*NOISE_SNR_DB)
    if signal.size == 0:
        return signal
    noise = coloured_noise(signal.size, rate, rng)
    noise *= 10.0 ** ((rms_dbfs(signal) - snr_db - rms_dbfs(noise)) / 20.0)
    return signal + noise


def excerpt(signal: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A random excerpt of ``EXCERPT_S`` seconds (the whole clip if it is shorter
    than twice that). An excerpt 10 dB quieter than the clip, a pause, is
    replaced by the loudest one: a pause in speech is not speech."""
    length = int(rng.uniform(*EXCERPT_S) * rate)
    if signal.size < 2 * length:
        return signal
    start = int(rng.integers(0, signal.size - length + 1))
    if rms_dbfs(signal[start : start + length]) < rms_dbfs(signal) - 10.0:
        energy = np.concatenate([[0.0], np.cumsum(np.square(signal, dtype=np.float64))])
        start = int(np.argmax(energy[length:] - energy[:-length]))
    return signal[start : start + length]


def augment(
    signal: np.ndarray, rate: int, label: str | None, rng: np.random.Generator
) -> np.ndarray:
    """One randomly altered copy of a training clip.

    Half the time a long enough clip is cut to an ``excerpt``. Silence keeps
    its (low) level: only its band is altered, so "quiet" stays the cue for
    silence. Without a label, a clip under ``QUIET_DBFS`` counts as silence.
    Other clips are band-limited half of the time, reverberated
    (``REVERB_SHARE``), noised (``NOISE_SHARE``), and re-levelled.
    """
    out = signal.astype(np.float32, copy=True)
    quiet = label == "silence" if label is not None else rms_dbfs(out) < QUIET_DBFS
    if rng.random() < 0.5:
        out = excerpt(out, rate, rng)
    if rng.random() < 0.5:
        out = band_limit(out, rate, narrow_rate=int(rng.choice(NARROW_RATES)))
    if quiet:
        return out
    if rng.random() < REVERB_SHARE:
        out = reverberate(out, rate, rng)
    if rng.random() < NOISE_SHARE:
        out = over_background(out, rate, rng)
    return set_level(out, rng.uniform(*LEVEL_RANGE_DBFS))


def training_variants(
    signal: np.ndarray, rate: int, copies: int, seed: str, label: str | None = None
) -> list[np.ndarray]:
    """The signals ``harken train --augment`` adds for one clip: first the clip
    band-limited to 4 kHz (to check a model on it, never trained on), then
    ``copies`` augmented copies of a clip labelled ``label`` (for training).

    ``seed`` (the clip's content hash) makes the copies the same on every run.
    """
    rng = np.random.default_rng(int(seed[:16], 16) if seed else 0)
    check = band_limit(signal, rate, narrow_rate=CHECK_NARROW_RATE)
    return [check, *(augment(signal, rate, label, rng) for _ in range(copies))]
