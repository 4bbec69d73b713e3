"""Feature extraction: one fixed-length vector per file from one shared STFT.

``FeatureConfig`` holds every parameter that changes the numbers and owns the
cache key built from them. ``FeatureStream`` turns a mono signal, pushed in
blocks, into per-frame descriptors (every spectral one from the same STFT
frames), summarised by mean, standard deviation and percentiles, then the
texture and modulation of the whole stretch (``analyzer.texture``,
``analyzer.modulation``) and, if the config asks, its course in time
(``analyzer.contour``). Digital silence at either end of a file is left out
of its summary (``QUIET_EDGE_DB``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from functools import cache

import numpy as np

from analyzer import contour, modulation, spectral, texture
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


def frame_descriptors(
    frames: np.ndarray, config: FeatureConfig, previous_log_mel: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors of each frame, all but the MFCC deltas and the change.

    Parameters
    ----------
    frames : np.ndarray [shape=(n_frames, n_fft)]
        Overlapping, unwindowed frames of the (zero-padded) signal.
    config : FeatureConfig
    previous_log_mel : np.ndarray [shape=(n_mels,)], optional
        The mel spectrum (dB) of the frame before the first, for its onset.

    Returns
    -------
    np.ndarray [shape=(base_rows(config), n_frames)]
        MFCCs, centroid, bandwidth, roll-off, flatness, contrast, ZCR, RMS dB,
        the coarse bands' shape, then periodicity, pitch and onset (``analyzer.texture``).
    np.ndarray [shape=(n_mels,)]
        The last frame's mel spectrum (dB), the next chunk's ``previous_log_mel``.
    """
    sr, n_fft = config.sample_rate, config.n_fft
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    magnitude = np.abs(np.fft.rfft(frames * _window(n_fft), axis=1)).T
    mel_power = spectral.mel_filters(sr, n_fft, config.n_mels) @ np.square(magnitude)
    log_mel = spectral.power_to_db(mel_power)
    rows = [
        spectral.mfcc(log_mel, config.n_mfcc),
        spectral.centroid_and_bandwidth(magnitude, freqs),
        spectral.rolloff(magnitude, freqs)[np.newaxis, :],
        spectral.flatness(magnitude)[np.newaxis, :],
        spectral.contrast(magnitude, sr, n_fft, fmin=CONTRAST_FMIN, n_bands=CONTRAST_BANDS),
        zero_crossing_rate(frames)[np.newaxis, :],
        spectral.rms_db(magnitude, n_fft)[np.newaxis, :],
        spectral.band_shape(mel_power, config.n_bands),
        texture.frame_rows(magnitude, log_mel, previous_log_mel, sr),
    ]
    return np.vstack([r.astype(np.float32, copy=False) for r in rows]), log_mel[:, -1]


def without_dc(frames: np.ndarray) -> np.ndarray:
    """Each frame less its own mean: a DC offset is no sound. A cheap
    recorder's offset of 0.5 % of full scale made the model hear silence as
    noise (37 of 40 corpus silence clips); below about 16 Hz, what the 64 ms
    frames lose, nothing is heard either. Digital silence stays exact zeros,
    and a constant frame becomes one (its mean, summed in float64, is exact).
    """
    means = frames.mean(axis=1, dtype=np.float64, keepdims=True).astype(np.float32)
    return frames - means


def base_rows(config: FeatureConfig) -> int:
    """Rows ``frame_descriptors`` gives: all but the MFCC deltas and the change."""
    return len(config.descriptor_names()) - config.n_mfcc - 1


def spectral_change(deltas: np.ndarray) -> np.ndarray:
    """How fast the spectral envelope moves: the norm of each frame's MFCC
    deltas, leaving out the first (loudness), ``[shape=(n_frames,)]``."""
    return np.sqrt(np.square(deltas[1:], dtype=np.float32).sum(axis=0))


#: Frames quieter than this (RMS, dBFS) at either end of a file are left out of
#: its summary: padding, an MP3 decoder's delay or a track's lead-in say
#: nothing of its content. (The corpus's music never starts with digital
#: silence while its speech and effects often do; a model counted on it:
#: 200 ms of leading zeros sent a third of the corpus's own music clips to
#: noise or speech.)
QUIET_EDGE_DB = -80.0
#: ...unless what is left would span fewer frames than this many seconds
#: hold (4 at the defaults; each 64 ms frame spreads a sound over 2 or 3, so
#: a sound under about 60 ms): a click in digital silence is silence. A sound
#: padded to seconds with zeros (a word, a footstep, a bark, as data sets pad
#: their clips) is that sound: when padding over half a file kept it whole,
#: such speech and music clips from sources the corpus never saw were all
#: called noise or silence.
MIN_SOUND_S = 0.125


def without_quiet_edges(
    rows: np.ndarray, config: FeatureConfig, *, end: bool = True, window: bool = False
) -> np.ndarray:
    """Descriptor columns ``[shape=(n_rows, frames)]`` without the frames under
    ``QUIET_EDGE_DB`` at the start (and, with ``end``, the end); all of them
    when what would be left is both under ``MIN_SOUND_S`` and under half
    the frames: a click in zeros. A ``window`` of a timeline keeps them
    whenever under half would be left: a sliver of sound at its edge belongs
    to the next window, and heard alone it made a segment of its own.

    The frames next to a cut are then measured as at a file's own edges: the
    first has no onset, and the MFCC deltas near a cut (and the change made
    of them) are fitted within the frames kept, not across the silence.
    """
    level = _edge_rows(config)[0]
    loud = np.flatnonzero(rows[level] > QUIET_EDGE_DB)
    if loud.size == 0:
        return rows
    first, last = int(loud[0]), int(loud[-1]) + 1 if end else rows.shape[1]
    least = rows.shape[1] / 2
    if not window:
        least = min(least, _min_sound_frames(config))
    if (first == 0 and last == rows.shape[1]) or last - first < least:
        return rows
    return _mended(rows[:, first:last], config, start=first > 0, end=last < rows.shape[1])


def _mended(kept: np.ndarray, config: FeatureConfig, *, start: bool, end: bool) -> np.ndarray:
    """A copy of descriptor columns cut out at the ``start`` and/or ``end``,
    with the frames next to each cut measured as at a file's own edges. Only
    the first (last) ``MEND_FRAMES`` columns matter to a cut there."""
    kept = kept.copy()
    _, onset, change = _edge_rows(config)
    n_mfcc, width = config.n_mfcc, kept.shape[1]
    deltas = spectral.delta(kept[:n_mfcc])
    near_cut = np.zeros(width, dtype=bool)
    if start:
        kept[onset, 0] = 0.0
        near_cut[:DELTA_CONTEXT] = True
    if end:
        near_cut[width - DELTA_CONTEXT :] = True
    kept[n_mfcc : 2 * n_mfcc, near_cut] = deltas[:, near_cut]
    kept[change, near_cut] = spectral_change(deltas[:, near_cut])
    return kept


def _min_sound_frames(config: FeatureConfig) -> int:
    return math.ceil(MIN_SOUND_S * config.sample_rate / config.hop_length)


#: Frames whose descriptors are all kept for an exact summary: 2**15 frames is
#: about 17.5 min at the default 16 kHz / hop 512 (9.6 MB). Longer files are
#: summarised in bounded memory (``_Summary``).
KEEP_FRAMES = 1 << 15
#: Frames either side of a frame that its MFCC delta depends on (width 9).
DELTA_CONTEXT = 4
#: A long file's contour is put together from runs of this many frames (4 s
#: at the defaults; 2.5 MB for 10 hours): its loud stretch is found to a run,
#: and a part's edge cuts one run at most.
CONTOUR_RUN_FRAMES = 128
#: The frames a delta next to a cut is fitted on (``analyzer.spectral.delta``).
MEND_FRAMES = 2 * DELTA_CONTEXT + 1


class FeatureStream:
    """Frame descriptors of a signal that arrives in blocks, in bounded memory.

    Frames are centred (``n_fft // 2`` zeros before the first sample and after
    the last, as ``librosa.stft(center=True)``) and computed a chunk at a
    time. Each chunk's MFCC deltas are computed as soon as the frames they
    depend on have arrived, and the finished descriptor columns go to the file
    summary and, if given, to ``windows`` (per-window vectors for segments).

    Parameters
    ----------
    config : FeatureConfig
    windows : callable, optional
        Called with each finished chunk of descriptors,
        ``[shape=(len(config.descriptor_names()), n)]``, in order.
    keep_frames : int
        Frames kept for an exact summary; beyond them, see ``_Summary``.
    """

    def __init__(
        self,
        config: FeatureConfig,
        *,
        windows: Callable[[np.ndarray], None] | None = None,
        keep_frames: int = KEEP_FRAMES,
    ) -> None:
        self.config = config
        self._pending = np.zeros(config.n_fft // 2, dtype=np.float32)
        # Base descriptors (no deltas) of the frames whose deltas still need
        # frames not yet seen, plus the DELTA_CONTEXT frames before them.
        self._held = np.zeros((base_rows(config), 0), dtype=np.float32)
        self._last_log_mel: np.ndarray | None = None  # for the next chunk's first onset
        self._emitted = 0  # frames of ``_held`` already passed on (context only)
        self.frames = 0  # frames computed so far
        self._summary = _Summary(keep_frames, config)
        self._windows = windows
        self._finished = False
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

    def _compute(self, n_frames: int, *, last: bool = False) -> None:
        hop = self.config.hop_length
        if last and n_frames == 0:  # nothing new, but the held columns are final now
            self._add(self._held[:, :0], last=True)
        for start in range(0, n_frames, CHUNK_FRAMES):
            count = min(CHUNK_FRAMES, n_frames - start)
            piece = self._pending[start * hop : (start + count - 1) * hop + self.config.n_fft]
            frames = np.lib.stride_tricks.sliding_window_view(piece, self.config.n_fft)[::hop]
            rows, self._last_log_mel = frame_descriptors(
                without_dc(frames), self.config, self._last_log_mel
            )
            self._add(rows, last=last and start + count == n_frames)
        self._pending = self._pending[n_frames * hop :]

    def _add(self, chunk: np.ndarray, *, last: bool) -> None:
        """Take a chunk of base descriptors; pass on the columns whose deltas are final.

        A delta (Savitzky-Golay, width 9) depends on 4 frames either side, and
        near the ends of the signal on the first or last 9 frames; a column is
        final once 4 frames after it have arrived (or the signal ended), and
        is then exactly what the delta of the whole row would give.
        """
        self.frames += chunk.shape[1]
        held = np.concatenate([self._held, chunk], axis=1)
        n = held.shape[1]
        if not last and (self.frames < 9 or n - DELTA_CONTEXT <= self._emitted):
            self._held = held  # too few frames yet to know the delta's width
            return
        stop = n if last else n - DELTA_CONTEXT
        n_mfcc = self.config.n_mfcc
        deltas = spectral.delta(held[:n_mfcc]).astype(np.float32)
        done = np.vstack(
            [
                held[:n_mfcc, self._emitted : stop],
                deltas[:, self._emitted : stop],
                held[n_mfcc:, self._emitted : stop],
                spectral_change(deltas[:, self._emitted : stop])[np.newaxis, :],
            ]
        )
        self._summary.add(done)
        if self._windows is not None:
            self._windows(done)
        keep = max(0, stop - DELTA_CONTEXT)
        self._held = held[:, keep:]
        self._emitted = stop - keep

    def _finish(self) -> None:
        """Compute the last frames (once): the end padding, and a signal shorter
        than one frame padded to one, so there is always at least one frame."""
        if self._finished:
            return
        n_fft, hop = self.config.n_fft, self.config.hop_length
        if self.samples < n_fft:
            self.push(np.zeros(n_fft - self.samples, dtype=np.float32))
        total = 1 + self.samples // hop
        self._pending = np.concatenate([self._pending, np.zeros(n_fft // 2, np.float32)])
        self._compute(total - self.frames, last=True)
        self._finished = True

    def rows(self) -> Iterator[np.ndarray]:
        """Each descriptor row over every frame, in ``descriptor_names()`` order.

        Only while every frame is kept (``keep_frames``); call after the last block.
        """
        self._finish()
        return self._summary.rows()

    def descriptors(self) -> np.ndarray:
        """Every frame's descriptors, ``[shape=(len(config.descriptor_names()), frames)]``."""
        return np.vstack(list(self.rows()))

    def vector(self) -> np.ndarray:
        """The feature vector, ``[shape=(config.n_features,)]``; exact up to
        ``keep_frames`` frames, see ``_Summary`` beyond."""
        self._finish()
        return self._summary.vector()

    @property
    def exact(self) -> bool:
        """Whether every frame was kept, so the vector is the exact summary."""
        return self._summary.exact


class _Summary:
    """The file-level summary of descriptor columns that arrive in chunks.

    Up to ``keep`` frames every column is kept and the vector is exactly
    ``summarise`` over all of them but the quiet ones at either end
    (``without_quiet_edges``). Beyond, memory stays bounded: the frames go
    to ``_Stretch`` statistics in three parts, cut where an exact summary
    cuts them. A quiet run is held apart (``held``) until a louder frame
    follows and joins the ``body`` (a pause inside is content); if none
    does, it is the file's quiet end, left out. The quiet start (``lead``)
    is left out once the sound spans ``MIN_SOUND_S`` of frames; a file whose
    sound stays shorter (a click in zeros) or that has none is summarised
    whole. The sound's first and last ``MEND_FRAMES`` columns wait in
    ``recent`` until it is known whether a cut is next to them, to be
    mended as an exact summary mends them.
    """

    def __init__(self, keep: int, config: FeatureConfig) -> None:
        self.keep = keep
        self.config = config
        self.chunks: list[np.ndarray] = []
        self.count = 0
        self.exact = True
        self.lead: _Stretch | None = None
        self.body: _Stretch | None = None  # from the first loud frame on
        self.held: _Stretch | None = None  # a quiet run after the last loud frame so far
        self.recent = np.zeros((len(config.descriptor_names()), 0), dtype=np.float32)
        self.opening = False  # the sound's start is a cut, not yet mended
        self.routed = 0  # frames given to the parts (or ``recent``)
        self._level = _edge_rows(config)[0]

    def add(self, chunk: np.ndarray) -> None:
        if self.exact and self.count + chunk.shape[1] <= self.keep:
            self.chunks.append(chunk)
            self.count += chunk.shape[1]
            return
        if self.exact and self.chunks:  # switch to bounded: the frames kept so far go first
            kept, self.chunks = np.concatenate(self.chunks, axis=1), []
            self._route(kept)
            # Texture blocks count from the file's start: the first ends here.
            for part in (self.lead, self.body, self.held):
                if part is not None and part.block:
                    part.close_block()
        self.exact = False
        self._route(chunk)
        self.count += chunk.shape[1]

    def _route(self, chunk: np.ndarray) -> None:
        """Hold the chunk's quiet frames after its last loud one; the rest is sound."""
        loud = np.flatnonzero(chunk[self._level] > QUIET_EDGE_DB)
        if loud.size:
            first, last = int(loud[0]), int(loud[-1]) + 1
            if self.body is None:  # the file's first sound: what came before is its quiet start
                self._hold(chunk[:, :first])
                self.lead, self.held = self.held, None
                self.body = _Stretch(self.keep, self.config, start=self.routed)
                self.opening = self.lead is not None
                chunk, last = chunk[:, first:], last - first
            elif self.held is not None:  # a pause inside the file
                self._release(mend_start=True)
                self.body.follow(self.held)
                self.held = None
            self._sound(chunk[:, :last])
            chunk = chunk[:, last:]
            if self.lead is not None and self._sound_frames() >= _min_sound_frames(self.config):
                self.lead = None
        self._hold(chunk)

    def _hold(self, quiet: np.ndarray) -> None:
        if quiet.shape[1]:
            if self.held is None:
                self.held = _Stretch(self.keep, self.config, start=self.routed)
            self.held.take(quiet)
            self.routed += quiet.shape[1]

    def _sound(self, columns: np.ndarray) -> None:
        """Take the sound's columns into the body, but its last ``MEND_FRAMES``
        (an end may be cut there), and its first ones until they are mended."""
        assert self.body is not None
        self.routed += columns.shape[1]
        # No copy of a large ``columns`` (at the switch, all the frames kept).
        joined = np.concatenate([self.recent, columns], axis=1) if self.recent.size else columns
        if self.opening:
            # Only the first DELTA_CONTEXT columns change, fitted on MEND_FRAMES;
            # MEND_FRAMES are left for an end.
            if joined.shape[1] < DELTA_CONTEXT + MEND_FRAMES:
                self.recent = joined.copy()
                return
            head = _mended(joined[:, :MEND_FRAMES], self.config, start=True, end=False)
            self.body.take(head[:, :DELTA_CONTEXT])
            joined, self.opening = joined[:, DELTA_CONTEXT:], False
        n = joined.shape[1] - MEND_FRAMES
        if n > 0:
            self.body.take(joined[:, :n])
        self.recent = joined[:, max(n, 0) :].copy()  # not a view holding the whole chunk

    def _release(self, *, mend_start: bool = False, mend_end: bool = False) -> None:
        """Take ``recent`` into the body, mended first at a cut start (while
        ``opening``) or end if asked. (With a pause within ``MEND_FRAMES``
        columns of a cut, they are mended without the pause's columns, which
        an exact summary fits on.)"""
        assert self.body is not None
        start = mend_start and self.opening
        if (start or mend_end) and self.recent.shape[1]:
            self.recent = _mended(self.recent, self.config, start=start, end=mend_end)
        if start:
            self.opening = False
        self.body.take(self.recent)
        self.recent = self.recent[:, :0]

    def _sound_frames(self) -> int:
        return (self.body.frames if self.body else 0) + self.recent.shape[1]

    def rows(self) -> Iterator[np.ndarray]:
        if not self.exact:
            raise ValueError("the frames of a long file are not kept; use vector()")
        for r in range(self.chunks[0].shape[0]):
            yield np.concatenate([chunk[r] for chunk in self.chunks])

    def vector(self) -> np.ndarray:
        if self.exact:  # one 2-D table: a call per statistic, not per row
            frames = np.concatenate(self.chunks, axis=1)
            return summarise(without_quiet_edges(frames, self.config), self.config)
        if self.body is None:  # digital silence throughout: all of it
            assert self.held is not None
            return self.held.vector()
        if self._sound_frames() < min(_min_sound_frames(self.config), self.count / 2):
            # a moment of sound in digital silence is silence: the whole file,
            # as in an exact summary
            self._release()
            whole = self.lead if self.lead is not None else self.body
            for part in (self.body, self.held):
                if part is not None and part is not whole:
                    whole.follow(part)
            self.lead, self.body, self.held = None, whole, None
        else:
            self._release(mend_start=True, mend_end=self.held is not None)
        return self.body.vector()


class _Stretch:
    """Statistics of consecutive descriptor columns in bounded memory.

    Means and standard deviations are exact (running float64 moments, merged
    per chunk, Chan et al.); percentiles come from a systematic sample: the
    frames whose index in the file is a multiple of ``stride``, doubled
    whenever the sample passes ``keep`` frames (so it holds ``keep / 2`` to
    ``keep``). The texture and modulation entries are the frame-weighted mean
    of those of consecutive blocks of about ``keep`` frames (pulse, pitch
    steps and modulations are local).
    """

    def __init__(self, keep: int, config: FeatureConfig, start: int) -> None:
        self.keep = keep
        self.config = config
        self.start = start  # the index of its first frame in the file
        self.frames = 0
        # Every frame at first, so that a few frames have a sample too (a
        # sound of 0.2 s after minutes of zeros is all a file's summary holds).
        self.stride = 1
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None
        self.sample: list[np.ndarray] = []
        self.sampled = 0  # columns in ``sample``
        self.block: list[np.ndarray] = []  # ``_stretch_rows`` of the block under way
        self.block_frames = 0
        self.stretch_sum = np.zeros(len(texture.TEXTURE_NAMES) + len(config.modulation_names()))
        self.stretch_frames = 0
        # Per run of frames taken, in order: its frames, its loudest level and
        # the sums of the contour rows (``_contour_runs``).
        self.course: list[np.ndarray] = []

    @property
    def end(self) -> int:
        return self.start + self.frames

    def take(self, chunk: np.ndarray) -> None:
        """Add the columns that come next."""
        n = chunk.shape[1]
        if n == 0:
            return
        mean = chunk.mean(axis=1, dtype=np.float64)
        m2 = np.square(chunk - mean[:, np.newaxis].astype(np.float32), dtype=np.float64).sum(axis=1)
        sample = chunk[:, (-self.end) % self.stride :: self.stride]
        base = sample.base if sample.base is not None else sample
        if base.nbytes > 2 * sample.nbytes:  # a view would hold all of a larger array
            sample = sample.copy()
        if self.config.contour_parts:
            self.course.extend(_contour_runs(chunk, self.config))
        self._merge(n, mean, m2, [sample], [chunk[list(_stretch_rows(self.config))]])

    def follow(self, other: _Stretch) -> None:
        """Add ``other``, the stretch that starts where this one ends."""
        assert other.start == self.end and other.mean is not None and other.m2 is not None
        stride = max(self.stride, other.stride)
        self._restride(stride)
        other._restride(stride)
        if other.stretch_frames and self.block:  # blocks are consecutive frames
            self.close_block()
        self.stretch_sum += other.stretch_sum
        self.stretch_frames += other.stretch_frames
        self.course.extend(other.course)
        self._merge(other.frames, other.mean, other.m2, other.sample, other.block)

    def _merge(
        self,
        n: int,
        mean: np.ndarray,
        m2: np.ndarray,
        sample: list[np.ndarray],
        block: list[np.ndarray],
    ) -> None:
        if self.mean is None or self.m2 is None:
            self.mean, self.m2 = mean, m2
        else:
            total = self.frames + n
            diff = mean - self.mean
            self.mean = self.mean + diff * n / total
            self.m2 = self.m2 + m2 + np.square(diff) * self.frames * n / total
        self.frames += n
        self.sample.extend(sample)
        self.sampled += sum(s.shape[1] for s in sample)
        while self.sampled > self.keep:
            self._restride(self.stride * 2)
        self.block.extend(block)
        self.block_frames += sum(b.shape[1] for b in block)
        if self.block_frames >= self.keep:
            self.close_block()

    def _restride(self, stride: int) -> None:
        """Thin the sample to the frames whose index is a multiple of ``stride``."""
        if stride == self.stride:
            return
        first = -(-self.start // self.stride) * self.stride  # the index of the first one
        sample = np.concatenate(self.sample, axis=1) if self.sample else None
        old, self.stride = self.stride, stride
        if sample is not None:  # a copy frees the whole sample
            self.sample = [sample[:, ((-first) % stride) // old :: stride // old].copy()]
            self.sampled = self.sample[0].shape[1]

    def close_block(self) -> None:
        """Add the texture and modulation of the block under way to the sum."""
        rows = np.concatenate(self.block, axis=1)
        self.stretch_sum += _stretch_sums(rows, self.config) * rows.shape[1]
        self.stretch_frames += rows.shape[1]
        self.block, self.block_frames = [], 0

    def vector(self) -> np.ndarray:
        assert self.mean is not None and self.m2 is not None
        sample = np.concatenate(self.sample, axis=1)
        std = np.sqrt(np.maximum(self.m2, 0.0) / self.frames)
        table = np.column_stack(
            [self.mean, std, np.percentile(sample, self.config.percentiles, axis=1).T]
        )
        if self.block:
            self.close_block()
        stretch = _stretch_entries(self.stretch_sum / self.stretch_frames)
        course = np.zeros(0)
        if self.config.contour_parts:
            runs = np.array(self.course)
            parts = self.config.contour_parts
            course = contour.contour_of_sums(runs[:, 0], runs[:, 1], runs[:, 2:], parts)
        vector = np.concatenate([table.T.reshape(-1), stretch, course]).astype(np.float32)
        return np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0)


def summarise(rows: Iterable[np.ndarray], config: FeatureConfig) -> np.ndarray:
    """Mean, std and percentiles of every descriptor row, then the texture and
    modulation of the whole stretch -> one vector.

    ``rows`` is a ``[shape=(n_rows, frames)]`` array or any iterable of rows;
    the vector holds every row's mean, then every row's std, then each
    percentile of every row, then ``TEXTURE_NAMES``, then the modulation
    entries (``config.modulation_names()``), then the contour if the config
    asks for one (``config.contour_names()``).
    """
    if isinstance(rows, np.ndarray) and rows.ndim == 2 and rows.shape[1] > 0:
        # One call per statistic (a window's vector is 35x faster this way);
        # numpy reduces each row as it would alone, so the numbers are the same.
        table = np.column_stack(
            [
                rows.mean(axis=1),
                rows.std(axis=1),
                np.percentile(rows, config.percentiles, axis=1).T,
            ]
        )
    else:
        rows = list(rows)
        table = np.array(
            [[row.mean(), row.std(), *np.percentile(row, config.percentiles)] for row in rows]
        )
    course = np.zeros(0)
    if config.contour_parts:
        mfcc_rows, level_row = _contour_rows(config)
        mfcc = np.vstack([rows[r] for r in mfcc_rows])
        course = contour.contour(mfcc, rows[level_row], config.contour_parts)
    vector = np.concatenate(
        [
            table.T.reshape(-1).astype(np.float32),
            _stretch_entries_of(rows, config),
            course.astype(np.float32),
        ]
    )
    return np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0)


@cache
def _edge_rows(config: FeatureConfig) -> tuple[int, int, int]:
    """Rows ``without_quiet_edges`` reads or mends: RMS level, onset, change."""
    names = config.descriptor_names()
    return names.index("rms_db"), names.index("onset"), names.index("change")


@cache
def _contour_rows(config: FeatureConfig) -> tuple[tuple[int, ...], int]:
    """Rows the contour is made of: its MFCCs, and the RMS level."""
    names = config.descriptor_names()
    mfccs = tuple(names.index(f"mfcc{i}") for i in config.contour_mfccs())
    return mfccs, names.index("rms_db")


def _contour_runs(columns: np.ndarray, config: FeatureConfig) -> list[np.ndarray]:
    """What a long file keeps of descriptor columns for its contour, per run
    of up to ``CONTOUR_RUN_FRAMES`` of them: the run's frames, its loudest
    level and the sums of the contour rows."""
    mfcc_rows, level_row = _contour_rows(config)
    runs = []
    for start in range(0, columns.shape[1], CONTOUR_RUN_FRAMES):
        run = columns[[*mfcc_rows, level_row], start : start + CONTOUR_RUN_FRAMES]
        head = [run.shape[1], float(run[-1].max())]
        runs.append(np.concatenate([head, run.sum(axis=1, dtype=np.float64)]))
    return runs


@cache
def _stretch_rows(config: FeatureConfig) -> tuple[int, ...]:
    """Rows the entries of a whole stretch are made of: onset, pitch, then the
    modulated ones."""
    names = config.descriptor_names()
    wanted = ["onset", "pitch", *config.modulated_rows()]
    return tuple(names.index(name) for name in wanted)


def _stretch_sums(rows: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Texture and modulation power of the ``_stretch_rows`` of a stretch, in
    that order: what blocks of a long file average, frame-weighted (the
    power, not its log, so that a block with an event counts as much as
    that event)."""
    return np.concatenate(
        [texture.texture(rows[0], rows[1], config), modulation.band_power(rows[2:], config)]
    )


def _stretch_entries(sums: np.ndarray) -> np.ndarray:
    """The vector's entries from ``_stretch_sums`` (or a mean of them)."""
    textures = len(texture.TEXTURE_NAMES)
    return np.concatenate([sums[:textures], modulation.log_power(sums[textures:])]).astype(
        np.float32
    )


def _stretch_entries_of(rows: np.ndarray | list[np.ndarray], config: FeatureConfig) -> np.ndarray:
    """``analyzer.texture.texture`` and the modulation of a stretch of descriptor rows."""
    selected = np.vstack([rows[r] for r in _stretch_rows(config)])
    return _stretch_entries(_stretch_sums(selected, config))


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
