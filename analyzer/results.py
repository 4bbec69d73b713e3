"""Result records: frozen dataclasses and their JSON form.

One ``FileResult`` per file, the same in every output format. ``to_dict``
gives the documented schema (README, "Output schema"); ``from_dict`` reads
it back, which is how results come out of the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def _fields(record: Any) -> dict[str, Any]:
    """A flat dataclass's fields as a dict: ``asdict`` deep-copies every value,
    which cost a warm rerun of 10,000 files half a second."""
    return dict(vars(record))


@dataclass(frozen=True)
class SignalFacts:
    """Facts about the signal, measured while decoding, before any model runs.

    Levels are in dBFS over all channels at the native rate (``rms_dbfs``
    without each channel's DC offset); ``clipping`` is the fraction of
    samples at full scale; ``silence`` the fraction of 50 ms frames of the
    mono mix below -60 dBFS, each frame's DC offset left out; ``dc_offset``
    the mean sample.
    """

    duration: float
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str
    peak_dbfs: float
    rms_dbfs: float
    clipping: float
    silence: float
    dc_offset: float


@dataclass(frozen=True)
class Prediction:
    """What the ensemble says about one file.

    ``votes`` maps each member to its label; ``agreement`` counts the members
    whose vote equals ``label``.
    """

    label: str
    confidence: float
    probabilities: dict[str, float]
    votes: dict[str, str]
    agreement: int


@dataclass(frozen=True)
class ErrorInfo:
    """Why a file has no label: a short machine-readable kind and a message."""

    kind: str
    message: str


@dataclass(frozen=True)
class Segment:
    """A stretch of a file with one (smoothed) label; times in seconds."""

    start: float
    end: float
    label: str
    confidence: float


@dataclass(frozen=True)
class Window:
    """One analysis window: its own most probable class and probabilities."""

    start: float
    end: float
    label: str
    confidence: float
    probabilities: dict[str, float]


@dataclass(frozen=True)
class Timeline:
    """What is heard when: windows, merged segments, and each class's share of time.

    ``window``, ``hop`` (seconds) and ``smoothing`` are the settings that made it
    (``analyzer.segments.SegmentSpec``).
    """

    window: float
    hop: float
    smoothing: float
    segments: tuple[Segment, ...]
    windows: tuple[Window, ...]
    fractions: dict[str, float]

    @property
    def segment_count(self) -> int:
        return len(self.segments)

    def to_dict(self) -> dict[str, Any]:
        """The keys a record gains with ``--segments``."""
        return {
            "segmentation": {"window": self.window, "hop": self.hop, "smoothing": self.smoothing},
            "segments": [_fields(s) for s in self.segments],
            "segment_count": self.segment_count,
            "fractions": dict(sorted(self.fractions.items())),
            "windows": [
                {**_fields(w), "probabilities": dict(sorted(w.probabilities.items()))}
                for w in self.windows
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timeline:
        settings = data["segmentation"]
        return cls(
            window=settings["window"],
            hop=settings["hop"],
            smoothing=settings["smoothing"],
            segments=tuple(Segment(**s) for s in data["segments"]),
            windows=tuple(
                Window(**{**w, "probabilities": dict(w["probabilities"])}) for w in data["windows"]
            ),
            fractions=dict(data["fractions"]),
        )


#: A result's ``status``: ``ok``, or why it has no prediction.
STATUSES = ("ok", "error", "timeout", "crashed")
#: Every ``error.kind`` (the README's "Error kinds"); rules are checked against it.
ERROR_KINDS = (
    "not_found",
    "permission",
    "unreadable",
    "not_a_file",
    "empty",
    "unsupported",
    "truncated",
    "corrupt",
    "invalid_samples",
    "too_long",
    "memory",
    "changed",
    "model",
    "internal",
    "timeout",
    "crashed",
)

#: The record keys of a ``Timeline``, present only with ``--segments``.
TIMELINE_KEYS = ("segmentation", "segments", "segment_count", "fractions", "windows")


@dataclass(frozen=True)
class FileResult:
    """The result for one file.

    ``status`` is ``ok`` (with a ``prediction``), ``error``, ``timeout`` or
    ``crashed`` (each with an ``error``). ``timeline`` is there with ``--segments``.
    """

    path: str
    status: str
    facts: SignalFacts | None = None
    prediction: Prediction | None = None
    error: ErrorInfo | None = None
    model: str | None = None
    content_hash: str | None = None
    seconds: float = 0.0
    timeline: Timeline | None = None

    @property
    def label(self) -> str | None:
        return self.prediction.label if self.prediction else None

    @property
    def confidence(self) -> float | None:
        return self.prediction.confidence if self.prediction else None

    def to_dict(self) -> dict[str, Any]:
        """The record in the documented, flat JSON schema."""
        pred = self.prediction
        data: dict[str, Any] = {
            "path": self.path,
            "status": self.status,
            "label": pred.label if pred else None,
            "confidence": pred.confidence if pred else None,
            "probabilities": dict(sorted(pred.probabilities.items())) if pred else None,
            "votes": dict(sorted(pred.votes.items())) if pred else None,
            "agreement": pred.agreement if pred else None,
            "members": len(pred.votes) if pred else None,
            "signal": _fields(self.facts) if self.facts else None,
            "model": self.model,
            "content_hash": self.content_hash,
            "seconds": self.seconds,
            "error": _fields(self.error) if self.error else None,
        }
        if self.timeline is not None:  # only with --segments: the schema is unchanged without
            data.update(self.timeline.to_dict())
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileResult:
        pred = None
        if data.get("label") is not None:
            pred = Prediction(
                label=data["label"],
                confidence=data["confidence"],
                probabilities=dict(data["probabilities"]),
                votes=dict(data["votes"]),
                agreement=data["agreement"],
            )
        return cls(
            path=data["path"],
            status=data["status"],
            facts=SignalFacts(**data["signal"]) if data.get("signal") else None,
            prediction=pred,
            error=ErrorInfo(**data["error"]) if data.get("error") else None,
            model=data.get("model"),
            content_hash=data.get("content_hash"),
            seconds=data.get("seconds", 0.0),
            timeline=Timeline.from_dict(data) if data.get("segments") is not None else None,
        )


def error_result(path: str, kind: str, message: str, **kwargs: Any) -> FileResult:
    """A result row for a file that could not be analyzed."""
    status = kwargs.pop("status", "error")
    assert kind in ERROR_KINDS and status in STATUSES, (kind, status)  # a new one is documented
    return FileResult(path=path, status=status, error=ErrorInfo(kind, message), **kwargs)
