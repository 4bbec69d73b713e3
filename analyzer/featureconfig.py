"""``FeatureConfig``: every parameter that changes the feature numbers, and its cache key.

Kept apart from the extraction code so that reading a model card or a cache
key imports neither numpy nor librosa.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass
from functools import cache
from importlib.metadata import version
from typing import Any

#: Bump when decoding or feature code change what the feature numbers are
#: for the same config (models must be trained again): it is part of every
#: cache key and of every model card. 13: each frame less its mean (DC).
FEATURE_CODE_VERSION = 13
#: Bump when a decoding fix changes the samples of some files, or a fix
#: changes the signal facts (which no model sees), not what the features
#: are: cached analyses are computed again, and models stay valid.
#: 2: MP3s read in blocks came out wrong after some block boundaries.
#: 3: a FLAC cut short between two frames was read as whole, one with an
#: ID3v1 tag after its last frame was refused as corrupt, and one whose
#: header gives no length as too long.
#: 4: ``rms_dbfs`` and ``silence`` take the DC offset out.
DECODE_FIX = 4
#: Libraries whose versions can change the numbers, hence part of the key.
KEYED_LIBRARIES = ("librosa", "numpy", "scipy", "soundfile", "soxr")

#: Per-frame descriptors, in vector order; MFCC rows are expanded by ``rows``.
SPECTRAL_SHAPE = ("centroid", "bandwidth", "rolloff", "flatness")
CONTRAST_BANDS = 6  # librosa gives n_bands + 1 rows
CONTRAST_FMIN = 100.0
#: Per-frame rows of ``analyzer.texture``, after librosa's.
TEXTURE_ROWS = ("periodicity", "pitch", "onset", "change")
#: Entries of the vector that describe a stretch of frames as a whole
#: (``analyzer.texture.texture``), after every row's statistics.
TEXTURE_NAMES = (
    "pulse_beat",
    "pulse_fast",
    "pitched_fraction",
    "pitch_spread",
    "pitch_step",
    "pitch_steady",
)
#: Modulation frequency bands, in Hz, of the level envelopes (``analyzer.modulation``):
#: slow swells, phrases, syllables and beats, fast flutter (up to the frame rate's
#: Nyquist frequency, 15.6 Hz at the defaults).
MODULATION_EDGES_HZ = (0.25, 1.0, 2.0, 4.0, 8.0, 16.0)
#: The highest MFCC of the contour (``analyzer.contour``), from the 1st: the
#: 0th is the level, which the contour has apart.
CONTOUR_TOP_MFCC = 12
#: The most parts a contour may have: each adds 13 features, and a part of a
#: short sound is a frame or two.
MAX_PARTS = 20


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
    n_bands : int
        Coarse bands the mel bands are pooled into (``n_mels`` must be a
        multiple): each frame's level in each, against its mean over them.
    contour_parts : int
        Parts in time the sound is cut into for its contour
        (``analyzer.contour``); 0 for none. Left out of ``to_dict`` when 0,
        so the cards and cache keys of configs from before it are the same.
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 64
    n_mfcc: int = 20
    percentiles: tuple[int, ...] = (10, 50, 90)
    n_bands: int = 16
    contour_parts: int = 0

    def __post_init__(self) -> None:
        if self.n_bands < 1 or self.n_mels % self.n_bands:
            raise ValueError(
                f"n_mels ({self.n_mels}) must be a multiple of n_bands ({self.n_bands})"
            )
        parts = self.contour_parts
        if isinstance(parts, bool) or not isinstance(parts, int) or not 0 <= parts <= MAX_PARTS:
            raise ValueError(
                f"contour_parts must be a whole number from 0 to {MAX_PARTS}, not {parts!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["percentiles"] = list(self.percentiles)
        if not self.contour_parts:
            del data["contour_parts"]
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
        contrast = [f"contrast{i}" for i in range(CONTRAST_BANDS + 1)]
        return [
            *mfcc, *delta, *SPECTRAL_SHAPE, *contrast, "zcr", "rms_db", *self._band_rows(),
            *TEXTURE_ROWS,
        ]  # fmt: skip

    def _band_rows(self) -> list[str]:
        return [f"band{i}" for i in range(self.n_bands)]

    def modulated_rows(self) -> list[str]:
        """Descriptor rows whose modulation spectrum is part of the vector."""
        return ["rms_db", *self._band_rows()]

    def modulation_names(self) -> list[str]:
        """Names of the modulation entries: every modulated row, then every band."""
        edges = [f"{edge:g}" for edge in MODULATION_EDGES_HZ]
        return [
            f"{row}_mod_{lo}_{hi}hz"
            for row in self.modulated_rows()
            for lo, hi in itertools.pairwise(edges)
        ]

    def feature_names(self) -> list[str]:
        """Names of the vector's entries, in order."""
        stats = ["mean", "std", *(f"p{p}" for p in self.percentiles)]
        rows = [f"{row}_{stat}" for stat in stats for row in self.descriptor_names()]
        return [*rows, *TEXTURE_NAMES, *self.modulation_names(), *self.contour_names()]

    def contour_mfccs(self) -> range:
        """The MFCCs of the contour."""
        return range(1, min(CONTOUR_TOP_MFCC + 1, self.n_mfcc))

    def contour_names(self) -> list[str]:
        """Names of the contour entries: each part's MFCCs, then its level."""
        per_part = [*(f"mfcc{i}" for i in self.contour_mfccs()), "level"]
        return [f"part{part}_{name}" for part in range(self.contour_parts) for name in per_part]

    @property
    def n_features(self) -> int:
        return len(self.feature_names())


@cache
def _cache_key(config: FeatureConfig) -> str:
    material = {
        "config": config.to_dict(),
        "code": FEATURE_CODE_VERSION,
        "decode_fix": DECODE_FIX,
        **{name: version(name) for name in KEYED_LIBRARIES},
    }
    return hashlib.blake2b(
        json.dumps(material, sort_keys=True).encode(), digest_size=12
    ).hexdigest()
