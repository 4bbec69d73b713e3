"""The one root error type and its few subclasses.

Per-file problems are not exceptions: they become a ``FileResult`` with
``status="error"``. These types are for usage errors (bad options, a model
file that cannot be used) that the CLI turns into clear messages.
"""

from __future__ import annotations


class HarkenError(Exception):
    """Base class of every error harken raises on purpose."""


class ModelError(HarkenError):
    """A model file is missing, unreadable, untrusted or incompatible."""


class UsageError(HarkenError):
    """An argument or option cannot be used as given."""


class DecodeError(HarkenError):
    """A file could not be decoded; carries the error kind for its result row.

    Raised and caught inside a worker only; it never escapes to the caller.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ClusterError(HarkenError):
    """The Dask cluster cannot be used: unreachable, no worker, dask missing."""


class ClusterLost(ClusterError):
    """The connection to the Dask cluster broke during a scan."""
