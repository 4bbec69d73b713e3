"""The course of a sound: its spectral envelope and level over its thirds.

Every other entry of the vector summarises frames in no order (means,
spreads, percentiles, modulation), so "seven" and a word with the same
sounds the other way round got the same numbers. A spoken word, a bark,
a door or a thunderclap has a shape in time. ``contour`` cuts the loud
stretch of a clip (from the first to the last frame within
``LOUD_RANGE_DB`` of its loudest) into ``FeatureConfig.contour_parts``
equal parts and gives each part's mean MFCCs 1-12 (the spectral envelope
without its level) and its mean level against the loudest frame. In time
order and relative to the sound's length, so a word spoken fast or slow,
or padded with silence, keeps its numbers.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["contour", "contour_of_sums"]

#: Frames this far under the loudest one, before the first and after the last
#: louder frame, are the sound's lead-in and tail, not its course.
LOUD_RANGE_DB = 30.0


def contour(mfcc: np.ndarray, level: np.ndarray, parts: int) -> np.ndarray:
    """Each part's mean of the ``mfcc`` rows, then its mean ``level`` against
    the loudest frame, part after part.

    Parameters
    ----------
    mfcc : np.ndarray [shape=(n, frames)]
        The MFCCs of ``FeatureConfig.contour_mfccs``.
    level : np.ndarray [shape=(frames,)]
        RMS level of each frame, in dB.
    parts : int

    Returns
    -------
    np.ndarray [shape=(parts * (n + 1),)], float64
    """
    loudest = float(level.max())
    loud = np.flatnonzero(level > loudest - LOUD_RANGE_DB)
    first, last = (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, level.size)
    rows = np.vstack([mfcc[:, first:last], level[np.newaxis, first:last] - loudest])
    frames = rows.shape[1]
    edges = np.linspace(0, frames, parts + 1)
    means = []
    for start, end in itertools.pairwise(edges):
        # Parts overlap by a frame where the edges fall inside one, and each
        # holds at least one: a sound of one or two frames gives every part.
        lo = min(int(np.floor(start)), frames - 1)
        hi = max(int(np.ceil(end)), lo + 1)
        means.append(rows[:, lo:hi].mean(axis=1, dtype=np.float64))
    return np.concatenate(means)


def contour_of_sums(
    frames: np.ndarray, loudest: np.ndarray, sums: np.ndarray, parts: int
) -> np.ndarray:
    """``contour`` of a long file from consecutive runs of frames, whose
    frames are not kept: ``frames``, ``loudest`` (level) ``[shape=(runs,)]``
    and ``sums`` ``[shape=(runs, n + 1)]`` of the ``mfcc`` rows and ``level``
    in each run. The loud stretch is found to a run (from the first to the
    last run whose loudest frame is within ``LOUD_RANGE_DB``), and a run that
    a part's edge cuts counts in both parts by its share of frames."""
    top = float(loudest.max())
    loud = np.flatnonzero(loudest > top - LOUD_RANGE_DB)
    first, last = (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, frames.size)
    frames, sums = frames[first:last], sums[first:last]
    ends = np.cumsum(frames, dtype=np.float64)
    starts = ends - frames
    edges = np.linspace(0.0, ends[-1], parts + 1)
    means = []
    for lo, hi in itertools.pairwise(edges):
        share = np.clip(np.minimum(ends, hi) - np.maximum(starts, lo), 0.0, None)
        mean = (share / np.maximum(frames, 1)) @ sums / max(share.sum(), 1e-12)
        mean[-1] -= top
        means.append(mean)
    return np.concatenate(means)
