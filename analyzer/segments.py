"""Segment timelines: what is heard when in a recording.

A file is cut into windows of ``window`` seconds every ``hop`` seconds. Each
window gets a feature vector (``summarise`` over the window's frames, without
digital silence at its ends unless that is most of it, so it is what the
model sees for a clip of that length; a sliver of sound at a window's edge
belongs to the next one) and the model's
probabilities. A sticky hidden Markov model (Viterbi over the windows'
probabilities, with a small probability of a change of class from one window
to the next) smooths the labels, so a timeline does not flicker at window
boundaries; windows in a row with one label merge into a segment. What the
smoother hears from each window is half its probabilities and half its own
vote (its most probable class), so a stretch of windows that agree stands
even when the model is unsure of each of them.

Window vectors are computed as descriptor columns arrive from the
``FeatureStream`` (``WindowVectors``), so a long file never holds more than a
window's frames for them. numpy is imported inside the functions: importing
this module (for ``SegmentSpec``) stays cheap on a warm, cached run.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING

from analyzer.featureconfig import FeatureConfig
from analyzer.results import Segment, Timeline, Window

if TYPE_CHECKING:
    import numpy as np

#: Seconds per window. The default model was trained on clips of 1.7 to 5 s;
#: 2 s windows are as accurate on the example clips as 3 s ones and place
#: boundaries more finely.
DEFAULT_WINDOW = 2.0
#: Probability of a change of class from one window to the next, for the smoother:
#: one or two stray windows are smoothed away; three sure or five unsure ones stand.
DEFAULT_SMOOTHING = 0.03
#: Bump when windows, smoothing or merging change, so cached timelines are redone.
SEGMENT_CODE_VERSION = 2
#: Shortest window: below half a second the descriptors' statistics are noise.
MIN_WINDOW = 0.5
#: Shortest hop: 4 windows a second already make 28800 window vectors (53 MB) for 2 h.
MIN_HOP = 0.25


@dataclass(frozen=True)
class SegmentSpec:
    """How to cut a file into windows and smooth their labels.

    Parameters
    ----------
    window : float
        Seconds per window.
    hop : float
        Seconds from one window's start to the next; ``window / 2`` by
        default (see ``make``), so every boundary falls within half a hop
        of a window's centre.
    smoothing : float
        Probability of a change of class between consecutive windows in the
        Viterbi smoother; smaller is stickier. 0 turns smoothing off: each
        window keeps its own most probable class.
    """

    window: float = DEFAULT_WINDOW
    hop: float = DEFAULT_WINDOW / 2
    smoothing: float = DEFAULT_SMOOTHING

    def __post_init__(self) -> None:
        # Checked however it is made: SegmentSpec(0.1, ...) gave numpy's warnings and a timeline.
        for name in ("window", "hop", "smoothing"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"the {name} must be a number, not {value!r}")
            object.__setattr__(self, name, float(value))  # (the cache key spells floats)
        window, hop, smoothing = self.window, self.hop, self.smoothing
        if not math.isfinite(window):
            raise ValueError(f"the window must be a finite number of seconds, not {window:g}")
        if window < MIN_WINDOW:
            raise ValueError(f"the window must be at least {MIN_WINDOW:g} s, not {window:g}")
        if not math.isfinite(hop) or not MIN_HOP <= hop <= window:
            raise ValueError(
                f"the hop must be at least {MIN_HOP:g} s and at most the window, not {hop:g}"
            )
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing is a probability below 1, not {smoothing:g}")

    @classmethod
    def make(
        cls, window: float, hop: float | None = None, smoothing: float = DEFAULT_SMOOTHING
    ) -> SegmentSpec:
        """A spec whose ``hop`` defaults to half the window. Raises ``TypeError``
        or ``ValueError``, as the constructor does."""
        if hop is None and isinstance(window, numbers.Real):
            hop = window / 2
        return cls(window, window if hop is None else hop, smoothing)

    def key(self) -> str:
        """The part of a cache key these settings make (exact floats, and the code's version)."""
        return f"v{SEGMENT_CODE_VERSION}-w{self.window!r}-h{self.hop!r}-s{self.smoothing!r}"


class WindowVectors:
    """Feature vectors of overlapping windows, from descriptor columns as they arrive.

    Window ``k`` starts at ``k * hop`` and holds the frames whose centres
    fall in ``[start, start + window)``. Only the frames from the earliest
    unfinished window on are kept. A last, partial window is added when at
    least half a hop of the signal is not yet covered by a full one.

    Parameters
    ----------
    spec : SegmentSpec
    config : FeatureConfig
    """

    def __init__(self, spec: SegmentSpec, config: FeatureConfig) -> None:
        import numpy as np

        self.config = config
        self.window = round(spec.window * config.sample_rate)  # in samples
        self.hop = round(spec.hop * config.sample_rate)
        self._frames = np.zeros((len(config.descriptor_names()), 0), dtype=np.float32)
        self._first = 0  # frame index of the first column kept
        self.vectors: list[np.ndarray] = []

    def _span(self, k: int) -> tuple[int, int]:
        """Frames ``[first, end)`` of window ``k``: centres in its samples."""
        step = self.config.hop_length
        start = k * self.hop
        return -(-start // step), -(-(start + self.window) // step)

    def push(self, columns: np.ndarray) -> None:
        """Add finished descriptor columns ``[shape=(n_descriptors, n)]``, in order."""
        import numpy as np

        self._frames = np.concatenate([self._frames, columns], axis=1)
        received = self._first + self._frames.shape[1]
        while (span := self._span(len(self.vectors)))[1] <= received:
            self._emit(*span)
        drop = self._span(len(self.vectors))[0] - self._first
        if drop > 0:
            self._frames = self._frames[:, drop:]
            self._first += drop

    def _emit(self, first: int, end: int) -> None:
        from analyzer.features import summarise, without_quiet_edges

        lo, hi = first - self._first, end - self._first
        frames = without_quiet_edges(self._frames[:, lo:hi], self.config, window=True)
        self.vectors.append(summarise(frames, self.config))

    def finish(self, samples: int) -> np.ndarray:
        """The vectors of every window, ``[shape=(n_windows, n_features)]``.

        Call once the stream has passed on its last column; ``samples`` is
        the signal's length at the feature rate.
        """
        import numpy as np

        received = self._first + self._frames.shape[1]
        while True:
            k = len(self.vectors)
            start = k * self.hop
            if k > 0 and start + self.window - self.hop / 2 > samples:
                break
            first, end = self._span(k)
            if first >= received:
                break
            self._emit(first, min(end, received))
        return np.stack(self.vectors)


def window_times(
    n: int, spec: SegmentSpec, duration: float, rate: int
) -> list[tuple[float, float]]:
    """``(start, end)`` in seconds of each of ``n`` windows, cut at ``duration``.

    Counted in samples at ``rate``, as ``WindowVectors`` cuts them, so a
    window's times are those of the frames it holds (``k`` times the hop
    rounded to samples, which may differ from ``k * spec.hop`` seconds).
    """
    hop, window = round(spec.hop * rate), round(spec.window * rate)
    return [(k * hop / rate, min((k * hop + window) / rate, duration)) for k in range(n)]


def viterbi(probabilities: np.ndarray, switch: float) -> np.ndarray:
    """The most likely class sequence under a sticky Markov chain.

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n_windows, n_classes)]
        The model's probabilities, used as scaled likelihoods (uniform prior).
    switch : float
        Probability of leaving a class between consecutive windows, shared
        evenly among the other classes.

    Returns
    -------
    np.ndarray [shape=(n_windows,)], int
        A class index per window.
    """
    import numpy as np

    n, k = probabilities.shape
    if k < 2 or n == 0:
        return np.zeros(n, dtype=int)
    # Half probability, half vote: unsure windows that agree still count.
    votes = np.eye(k)[np.argmax(probabilities, axis=1)]
    emit = np.log(np.clip(0.5 * probabilities + 0.5 * votes, 1e-9, 1.0))
    trans = np.full((k, k), np.log(switch / (k - 1)))
    np.fill_diagonal(trans, np.log1p(-switch))
    score = emit[0] - np.log(k)
    back = np.zeros((n, k), dtype=int)
    for t in range(1, n):
        candidates = score[:, np.newaxis] + trans  # [from, to]
        back[t] = np.argmax(candidates, axis=0)
        score = candidates[back[t], np.arange(k)] + emit[t]
    path = np.zeros(n, dtype=int)
    path[-1] = int(np.argmax(score))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def build_timeline(
    probabilities: np.ndarray, classes: list[str], spec: SegmentSpec, duration: float, rate: int
) -> Timeline:
    """Windows, smoothed segments and the time share of each class.

    A boundary between two windows with different labels is placed halfway
    between their centres; the first segment starts at 0 and the last ends
    at ``duration``. A segment's confidence is the mean probability of its
    label over its windows.

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n_windows, n_classes)]
    classes : list of str
        Class names, in the columns' order.
    spec : SegmentSpec
    duration : float
        Seconds of the file.
    rate : int
        The feature rate, in which windows are cut.
    """
    import numpy as np

    n = probabilities.shape[0]
    times = window_times(n, spec, duration, rate)
    raw = np.argmax(probabilities, axis=1)
    path = viterbi(probabilities, spec.smoothing) if spec.smoothing > 0 else raw
    windows = tuple(
        Window(
            start=round(start, 6),
            end=round(end, 6),
            label=classes[int(raw[i])],
            confidence=round(float(probabilities[i, raw[i]]), 6),
            probabilities={c: round(float(probabilities[i, j]), 6) for j, c in enumerate(classes)},
        )
        for i, (start, end) in enumerate(times)
    )
    centres = [(start + end) / 2 for start, end in times]
    segments: list[Segment] = []
    first = 0
    for i in range(1, n + 1):
        if i < n and path[i] == path[first]:
            continue
        start = 0.0 if first == 0 else (centres[first - 1] + centres[first]) / 2
        end = duration if i == n else (centres[i - 1] + centres[i]) / 2
        label = int(path[first])
        segments.append(
            Segment(
                start=round(start, 6),
                end=round(end, 6),
                label=classes[label],
                confidence=round(float(probabilities[first:i, label].mean()), 6),
            )
        )
        first = i
    return Timeline(
        window=spec.window,
        hop=spec.hop,
        smoothing=spec.smoothing,
        segments=tuple(segments),
        windows=windows,
        fractions=fractions(segments, classes, duration),
    )


def fractions(segments: list[Segment], classes: list[str], duration: float) -> dict[str, float]:
    """The share of ``duration`` each class's segments cover (every class, 0 if absent)."""
    share = dict.fromkeys(classes, 0.0)
    for segment in segments:
        share[segment.label] = share.get(segment.label, 0.0) + (segment.end - segment.start)
    return {c: round(t / duration, 6) if duration > 0 else 0.0 for c, t in sorted(share.items())}


def audacity_labels(timeline: Timeline) -> str:
    """An Audacity label track: ``start<TAB>end<TAB>label`` a line, seconds to 6 decimals."""
    return "".join(f"{s.start:.6f}\t{s.end:.6f}\t{s.label}\n" for s in timeline.segments)
