"""Signal facts, accumulated block by block while a file is decoded.

Everything here is a running sum, so a file of any length is measured in
the memory of one block.
"""

from __future__ import annotations

import math

import numpy as np

from analyzer.results import SignalFacts

#: A sample at or above this magnitude counts as clipped (full scale, allowing
#: for integer formats whose largest positive value is just under 1.0).
CLIP_LEVEL = 0.999
#: A 50 ms frame of the mono mix below this RMS level counts as silent.
SILENT_FRAME_DBFS = -60.0
SILENT_FRAME_SECONDS = 0.05


def _rounded(value: float, digits: int) -> float:
    """``round``, with no negative zero: a level a hair under full scale
    printed as -0.0."""
    return round(value, digits) + 0.0


def to_dbfs(amplitude: float) -> float:
    """Amplitude (linear, full scale 1.0) to dBFS, floored at -200 dB."""
    return 20.0 * math.log10(max(amplitude, 1e-10))


class SignalMeter:
    """Running signal facts over blocks of ``(frames, channels)`` samples.

    Parameters
    ----------
    sample_rate : int
        The native sample rate of the blocks.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._frame_len = max(1, round(sample_rate * SILENT_FRAME_SECONDS))
        self._silent_power = 10.0 ** (SILENT_FRAME_DBFS / 10.0)
        self._tail = np.zeros(0, dtype=np.float64)  # mono samples not yet framed
        self.frames = 0
        self._samples = 0
        self._peak = 0.0
        self._sums = np.zeros(0, dtype=np.float64)  # per channel: the DC offset
        self._sum_sq = 0.0
        self._clipped = 0
        self._silent_frames = 0
        self._total_frames = 0

    def update(self, block: np.ndarray, mono: np.ndarray) -> None:
        """Add one block.

        Parameters
        ----------
        block : np.ndarray [shape=(n, channels)]
            Samples of every channel, float, full scale 1.0.
        mono : np.ndarray [shape=(n,)]
            The same block mixed down to mono.
        """
        if block.size == 0:
            return
        self.frames += block.shape[0]
        self._samples += block.size
        magnitude = np.abs(block)
        self._peak = max(self._peak, float(magnitude.max()))
        sums = block.sum(axis=0, dtype=np.float64)
        self._sums = self._sums + sums if self._sums.size else sums
        self._sum_sq += float(np.square(block, dtype=np.float64).sum())
        self._clipped += int(np.count_nonzero(magnitude >= CLIP_LEVEL))
        self._count_silent_frames(mono)

    def _count_silent_frames(self, mono: np.ndarray) -> None:
        samples = np.concatenate([self._tail, mono.astype(np.float64)])
        n_full = samples.size // self._frame_len
        if n_full:
            frames = samples[: n_full * self._frame_len].reshape(n_full, self._frame_len)
            power = np.var(frames, axis=1)  # (a DC offset is no sound)
            self._silent_frames += int(np.count_nonzero(power < self._silent_power))
            self._total_frames += n_full
        self._tail = samples[n_full * self._frame_len :]

    def facts(self, *, channels: int, format: str, subtype: str) -> SignalFacts:
        """The facts of everything seen so far."""
        silent, total = self._silent_frames, self._total_frames
        if self._tail.size:  # a last, partial frame still counts
            total += 1
            # About the mono mix's offset (the mean of the channels'): a few
            # samples' own mean is their sound.
            offset = float(self._sums.mean()) / max(self.frames, 1)
            silent += int(np.mean(np.square(self._tail - offset)) < self._silent_power)
        n = max(self._samples, 1)
        # The level without each channel's DC offset, which is no sound: a
        # recorder's 2 % offset made -70 dBFS room tone -34 dBFS.
        dc_power = float(np.square(self._sums).sum()) / max(self.frames, 1)
        ac_power = max(self._sum_sq - dc_power, 0.0) / n
        return SignalFacts(
            duration=round(self.frames / self.sample_rate, 6),
            sample_rate=self.sample_rate,
            channels=channels,
            frames=self.frames,
            format=format,
            subtype=subtype,
            peak_dbfs=_rounded(to_dbfs(self._peak), 3),
            rms_dbfs=_rounded(to_dbfs(math.sqrt(ac_power)), 3),
            clipping=round(self._clipped / n, 6),
            silence=round(silent / total, 4) if total else 1.0,
            dc_offset=_rounded(float(self._sums.sum()) / n, 6),
        )
