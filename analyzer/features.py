"""Feature extraction: one fixed-length vector per file from one shared STFT.

``FeatureConfig`` holds every parameter that changes the numbers and owns the
cache key built from them. ``extract`` turns a mono signal into the vector:
per-frame descriptors summarised by mean, standard deviation and percentiles.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cache
from importlib.metadata import version
from typing import Any

import numpy as np

#: Bump when the code below changes the numbers for the same config.
FEATURE_CODE_VERSION = 1

#: Per-frame descriptors, in vector order; MFCC rows are expanded by ``rows``.
_SPECTRAL_SHAPE = ("centroid", "bandwidth", "rolloff", "flatness")
_CONTRAST_BANDS = 6  # librosa gives n_bands + 1 rows
_CONTRAST_FMIN = 100.0


@dataclass(frozen=True)
class FeatureConfig:
    """Parameters of the feature vector.

    Parameters
    ----------
    sample_rate : int
        Rate every file is resampled to before analysis.
    n_fft, hop_length : int
        STFT frame and hop, in samples at ``sample_rate``.
    n_mels : int
        Mel bands the MFCCs are computed from.
    n_mfcc : int
        MFCCs per frame (their deltas are added too).
    percentiles : tuple of int
        Percentiles summarising each descriptor, beside mean and std.
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 64
    n_mfcc: int = 20
    percentiles: tuple[int, ...] = (10, 50, 90)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["percentiles"] = list(self.percentiles)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        return cls(**{**data, "percentiles": tuple(data["percentiles"])})

    def cache_key(self) -> str:
        """A key that changes whenever the feature numbers could change."""
        return _cache_key(self)

    def descriptor_names(self) -> list[str]:
        """Names of the per-frame descriptor rows, in order."""
        mfcc = [f"mfcc{i}" for i in range(self.n_mfcc)]
        delta = [f"delta_mfcc{i}" for i in range(self.n_mfcc)]
        contrast = [f"contrast{i}" for i in range(_CONTRAST_BANDS + 1)]
        return [*mfcc, *delta, *_SPECTRAL_SHAPE, *contrast, "zcr", "rms_db"]

    def feature_names(self) -> list[str]:
        """Names of the vector's entries, in order."""
        stats = ["mean", "std", *(f"p{p}" for p in self.percentiles)]
        return [f"{row}_{stat}" for stat in stats for row in self.descriptor_names()]

    @property
    def n_features(self) -> int:
        return len(self.descriptor_names()) * (2 + len(self.percentiles))


@cache
def _cache_key(config: FeatureConfig) -> str:
    material = {
        "config": config.to_dict(),
        "code": FEATURE_CODE_VERSION,
        "librosa": version("librosa"),
        "numpy": version("numpy"),
    }
    return hashlib.blake2b(
        json.dumps(material, sort_keys=True).encode(), digest_size=12
    ).hexdigest()


@cache
def _mel_basis(config: FeatureConfig) -> np.ndarray:
    import librosa

    return librosa.filters.mel(
        sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, dtype=np.float32
    )


def descriptors(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Per-frame descriptors of a mono signal.

    Parameters
    ----------
    signal : np.ndarray [shape=(n,)]
        Mono float32 samples at ``config.sample_rate``.
    config : FeatureConfig

    Returns
    -------
    np.ndarray [shape=(len(config.descriptor_names()), frames)]
    """
    import librosa

    sr, n_fft, hop = config.sample_rate, config.n_fft, config.hop_length
    if signal.size < n_fft:  # shorter than one frame: pad so there is one
        signal = np.pad(signal, (0, n_fft - signal.size))
    magnitude = np.abs(
        librosa.stft(signal, n_fft=n_fft, hop_length=hop, center=True, dtype=np.complex64)
    )
    power = np.square(magnitude)
    log_mel = librosa.power_to_db(_mel_basis(config) @ power, ref=1.0, amin=1e-10, top_db=None)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc)
    frames = mfcc.shape[1]
    if frames >= 3:
        width = min(9, frames if frames % 2 else frames - 1)
        delta = librosa.feature.delta(mfcc, width=width)
    else:
        delta = np.zeros_like(mfcc)
    shape = np.vstack(
        [
            librosa.feature.spectral_centroid(S=magnitude, sr=sr, n_fft=n_fft),
            librosa.feature.spectral_bandwidth(S=magnitude, sr=sr, n_fft=n_fft),
            librosa.feature.spectral_rolloff(S=magnitude, sr=sr, n_fft=n_fft),
            librosa.feature.spectral_flatness(S=magnitude),
        ]
    )
    contrast = librosa.feature.spectral_contrast(
        S=magnitude, sr=sr, n_fft=n_fft, fmin=_CONTRAST_FMIN, n_bands=_CONTRAST_BANDS
    )
    zcr = librosa.feature.zero_crossing_rate(signal, frame_length=n_fft, hop_length=hop)
    rms = librosa.feature.rms(S=magnitude, frame_length=n_fft)
    rms_db = 20.0 * np.log10(np.maximum(rms, 1e-10))
    rows = [mfcc, delta, shape, contrast, zcr[:, :frames], rms_db[:, :frames]]
    return np.vstack([r.astype(np.float32, copy=False) for r in rows])


def summarise(frames: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Mean, std and percentiles of every descriptor row -> one vector."""
    stats = [frames.mean(axis=1), frames.std(axis=1)]
    stats.extend(np.percentile(frames, config.percentiles, axis=1))
    vector = np.concatenate(stats).astype(np.float32)
    return np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0)


def extract(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The feature vector of a mono signal.

    Parameters
    ----------
    signal : np.ndarray [shape=(n,)]
        Mono float32 samples at ``config.sample_rate``.
    config : FeatureConfig

    Returns
    -------
    np.ndarray [shape=(config.n_features,)], float32
    """
    return summarise(descriptors(signal, config), config)
