"""Feature extraction: one fixed-length vector per file from one shared STFT.

``FeatureConfig`` holds every parameter that changes the numbers and owns the
cache key built from them. ``FeatureStream`` turns a mono signal, pushed in
blocks, into per-frame descriptors (every spectral one from the same STFT
frames), summarised by mean, standard deviation and percentiles.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cache

import numpy as np

from analyzer import spectral
from analyzer.featureconfig import (
    CONTRAST_BANDS,
    CONTRAST_FMIN,
    FEATURE_CODE_VERSION,
    FeatureConfig,
)

__all__ = ["FEATURE_CODE_VERSION", "FeatureConfig", "FeatureStream", "extract", "summarise"]


@cache
def _window(n_fft: int) -> np.ndarray:
    import scipy.signal

    return scipy.signal.get_window("hann", n_fft, fftbins=True).astype(np.float32)


#: Frames computed at a time: about 30 s at the default 16 kHz / hop 512.
CHUNK_FRAMES = 1024


def zero_crossing_rate(frames: np.ndarray) -> np.ndarray:
    """Fraction of sign changes in each frame, ``[shape=(n_frames,)]``.

    ``frames`` is ``[shape=(n_frames, n_fft)]``; samples within 1e-10 of zero
    count as positive, so digital silence has no crossings.
    """
    positive = (frames >= 0) | (np.abs(frames) <= 1e-10)
    return np.count_nonzero(positive[:, 1:] != positive[:, :-1], axis=1) / frames.shape[1]


def frame_descriptors(frames: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Descriptors of each frame, all but the MFCC deltas.

    Parameters
    ----------
    frames : np.ndarray [shape=(n_frames, n_fft)]
        Overlapping, unwindowed frames of the (zero-padded) signal.
    config : FeatureConfig

    Returns
    -------
    np.ndarray [shape=(n_mfcc + 13, n_frames)]
        MFCCs, centroid, bandwidth, roll-off, flatness, contrast, ZCR, RMS dB.
    """
    sr, n_fft = config.sample_rate, config.n_fft
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    magnitude = np.abs(np.fft.rfft(frames * _window(n_fft), axis=1)).T
    mel = spectral.mel_filters(sr, n_fft, config.n_mels) @ np.square(magnitude)
    rows = [
        spectral.mfcc(spectral.power_to_db(mel), config.n_mfcc),
        spectral.centroid_and_bandwidth(magnitude, freqs),
        spectral.rolloff(magnitude, freqs)[np.newaxis, :],
        spectral.flatness(magnitude)[np.newaxis, :],
        spectral.contrast(magnitude, sr, n_fft, fmin=CONTRAST_FMIN, n_bands=CONTRAST_BANDS),
        zero_crossing_rate(frames)[np.newaxis, :],
        spectral.rms_db(magnitude, n_fft)[np.newaxis, :],
    ]
    return np.vstack([r.astype(np.float32, copy=False) for r in rows])


class FeatureStream:
    """Frame descriptors of a signal that arrives in blocks, in bounded memory.

    Frames are centred (``n_fft // 2`` zeros before the first sample and after
    the last, as ``librosa.stft(center=True)``) and computed a chunk at a
    time; only the small per-frame descriptors are kept.

    Parameters
    ----------
    config : FeatureConfig
    """

    def __init__(self, config: FeatureConfig) -> None:
        self.config = config
        self._pending = np.zeros(config.n_fft // 2, dtype=np.float32)
        self._chunks: list[np.ndarray] = []
        self.samples = 0

    def push(self, block: np.ndarray) -> None:
        """Add the next samples, ``np.ndarray [shape=(n,)]``, float32."""
        self.samples += block.size
        self._pending = np.concatenate([self._pending, block.astype(np.float32, copy=False)])
        if self._ready() >= CHUNK_FRAMES:
            self._compute(self._ready())

    def _ready(self) -> int:
        n_fft, hop = self.config.n_fft, self.config.hop_length
        return 0 if self._pending.size < n_fft else 1 + (self._pending.size - n_fft) // hop

    def _compute(self, n_frames: int) -> None:
        hop = self.config.hop_length
        for start in range(0, n_frames, CHUNK_FRAMES):
            count = min(CHUNK_FRAMES, n_frames - start)
            piece = self._pending[start * hop : (start + count - 1) * hop + self.config.n_fft]
            frames = np.lib.stride_tricks.sliding_window_view(piece, self.config.n_fft)[::hop]
            self._chunks.append(frame_descriptors(frames, self.config))
        self._pending = self._pending[n_frames * hop :]

    def _finish(self) -> None:
        """Compute the last frames (once): the end padding, and a signal shorter
        than one frame padded to one, so there is always at least one frame."""
        n_fft, hop = self.config.n_fft, self.config.hop_length
        if self.samples < n_fft:
            self.push(np.zeros(n_fft - self.samples, dtype=np.float32))
        total = 1 + self.samples // hop
        done = sum(chunk.shape[1] for chunk in self._chunks)
        if done < total:
            self._pending = np.concatenate([self._pending, np.zeros(n_fft // 2, np.float32)])
            self._compute(total - done)

    def rows(self) -> Iterator[np.ndarray]:
        """Each descriptor row over every frame, in ``descriptor_names()`` order.

        Rows are joined from the chunks one at a time (and the MFCC deltas
        computed one row at a time), so a long file never holds a second
        copy of all its descriptors. Call after the last block.
        """
        self._finish()
        n_mfcc = self.config.n_mfcc

        def row(r: int) -> np.ndarray:
            return np.concatenate([chunk[r] for chunk in self._chunks])

        for r in range(n_mfcc):
            yield row(r)
        for r in range(n_mfcc):
            yield spectral.delta(row(r)[np.newaxis, :])[0].astype(np.float32)
        for r in range(n_mfcc, self._chunks[0].shape[0]):
            yield row(r)

    def descriptors(self) -> np.ndarray:
        """Every frame's descriptors, ``[shape=(len(config.descriptor_names()), frames)]``."""
        return np.vstack(list(self.rows()))

    def vector(self) -> np.ndarray:
        """The feature vector, ``[shape=(config.n_features,)]``."""
        return summarise(self.rows(), self.config)


def summarise(rows: Iterable[np.ndarray], config: FeatureConfig) -> np.ndarray:
    """Mean, std and percentiles of every descriptor row -> one vector.

    ``rows`` is a ``[shape=(n_rows, frames)]`` array or any iterable of rows;
    the vector holds every row's mean, then every row's std, then each
    percentile of every row.
    """
    table = np.array(
        [[row.mean(), row.std(), *np.percentile(row, config.percentiles)] for row in rows]
    )
    vector = table.T.reshape(-1).astype(np.float32)
    return np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0)


def extract(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The feature vector of a whole mono signal.

    Parameters
    ----------
    signal : np.ndarray [shape=(n,)]
        Mono float32 samples at ``config.sample_rate``.
    config : FeatureConfig

    Returns
    -------
    np.ndarray [shape=(config.n_features,)], float32
    """
    stream = FeatureStream(config)
    stream.push(signal)
    return stream.vector()
