"""The on-disk result cache (diskcache), written only by the parent process.

The kinds of entry, keyed as DESIGN.md says:

- ``file/<hash of the absolute path>`` -> the file's
  ``(size, mtime_ns, ctime_ns, inode)`` and content hash.
  A matching stat only saves rehashing; a checkout that resets mtimes just
  costs one hash, never a wrong answer.
- ``analysis/<content hash>/<feature key>`` -> signal facts and the feature
  vector (as bytes), or the reason the file could not be decoded.
- ``prediction/<content hash>/<feature key>/<model fingerprint>`` -> the
  finished result record, minus its path (and minus any timeline).
- ``segments/<content hash>/<feature key>/<model fingerprint>/<segment spec>``
  -> the timeline of ``--segments`` (``SegmentSpec.key()``: window, hop and
  smoothing), as the record's timeline keys.
- ``unaudited/<model fingerprint>/skops-<version>`` -> the types in a model
  file that skops does not trust by default, so that a run answered from
  the cache refuses an untrusted model without importing skops again.

Values are plain dicts of str/float/bytes, so reading them imports neither
numpy nor scikit-learn.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any

HASH_CHUNK = 1 << 20
#: The cache's size limit unless --cache-size says otherwise.
DEFAULT_SIZE_LIMIT = 4 << 30
#: Files changed this recently are hashed again on the next run.
RACY_SECONDS = 2.0
#: ``file/`` entries (key, value) that ``ResultCache.identify`` left to write later.
Identities = list[tuple[str, dict[str, Any]]]


def default_cache_dir() -> str:
    """``$HARKEN_CACHE_DIR``, else the platform's user cache folder."""
    env = os.environ.get("HARKEN_CACHE_DIR")
    if env:
        return env
    from platformdirs import user_cache_dir

    return user_cache_dir("harken", appauthor=False)


def hash_file(path: str) -> str:
    """BLAKE2b of the file's bytes, hex."""
    digest = _content_hasher()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hash_bytes(data: bytes) -> str:
    """The content hash of bytes already in memory (``hash_file``'s algorithm)."""
    digest = _content_hasher()
    digest.update(data)
    return digest.hexdigest()


def _content_hasher() -> Any:
    return hashlib.blake2b(digest_size=20)


class CacheWarning(UserWarning):
    """The cache could not be used; the run goes on without it."""


def reset_store(directory: str) -> int:
    """Remove a cache that cannot be opened: diskcache's database and its value
    folders (two hex digits), not the run history beside them. Returns how
    many paths were removed."""
    import shutil

    folder = Path(directory)
    if not (folder / "cache.db").exists():
        return 0  # not a cache: nothing here is ours to remove
    removed = 0
    for path in folder.iterdir():
        if path.name in ("cache.db", "cache.db-wal", "cache.db-shm"):
            path.unlink()
        elif path.is_dir() and re.fullmatch("[0-9a-f]{2}", path.name):
            shutil.rmtree(path)
        else:
            continue
        removed += 1
    return removed


def _database_identity(directory: str) -> tuple[int, int] | None:
    """Which file the cache database at ``directory`` is (device, inode), if any."""
    try:
        st = os.stat(os.path.join(directory, "cache.db"))
    except OSError:
        return None
    return st.st_dev, st.st_ino


class ResultCache:
    """Results by file content, feature config and model.

    Parameters
    ----------
    directory : str or None
        The cache folder; ``None`` keeps nothing between runs.
    """

    def __init__(self, directory: str | None, *, size_limit: int | None = None) -> None:
        self.directory = directory
        self.size_limit = size_limit or DEFAULT_SIZE_LIMIT
        self._store: Any = None
        self._database: tuple[int, int] | None = None
        if directory is not None:
            self._store = self._open(directory, self.size_limit)
            self._database = _database_identity(directory)

    @staticmethod
    def _open(directory: str, size_limit: int) -> Any:
        import diskcache

        try:
            Path(directory).mkdir(parents=True, exist_ok=True)
            # cull_limit=0: diskcache never evicts on its own; ``evict_to_limit``
            # does, once a run is over, and says how much it removed. No
            # statistics: counting hits makes every read a write transaction
            # (the hit rate comes from the run records instead).
            return diskcache.Cache(
                directory,
                size_limit=size_limit,
                eviction_policy="least-recently-stored",
                cull_limit=0,
                statistics=0,
            )
        except (OSError, sqlite3.Error) as exc:
            warnings.warn(
                f"the cache at {directory} cannot be used ({exc}); running without a cache",
                CacheWarning,
                stacklevel=3,
            )
            return None

    @property
    def enabled(self) -> bool:
        return self._store is not None

    def close(self) -> None:
        if self._store is not None:
            # Looked at before closing: once the old file is freed, a new one may get its inode.
            moved = self.directory and _database_identity(self.directory) != self._database
            self._store.close()
            if moved:
                # Written to all along without an error: an unlinked file takes writes.
                warnings.warn(
                    f"the cache at {self.directory} was removed or replaced during the run:"
                    " what this run stored in it is gone, and the next run analyzes those"
                    " files again",
                    CacheWarning,
                    stacklevel=2,
                )

    def _get(self, key: str) -> Any:
        value = self._raw(key)
        if isinstance(value, dict):
            value.pop("stored", None)  # bookkeeping for prune, not part of the entry
        return value

    def _raw(self, key: str) -> Any:
        if self._store is None:
            return None
        try:
            return self._store.get(key)
        except Exception:  # a damaged entry (any unpickling error) is a miss, not a crash
            return None

    def _set(self, key: str, value: dict[str, Any]) -> None:
        if self._store is None:
            return
        try:
            self._store.set(key, {**value, "stored": time.time()})
        except Exception as exc:  # a full disk, a damaged database: warn, keep going
            warnings.warn(f"could not write to the cache ({exc})", CacheWarning, stacklevel=3)

    def known_hash(self, path: str, st: os.stat_result) -> tuple[str | None, bool]:
        """``(hash remembered for path, whether its stat still matches)``, no reading."""
        known = self._get(self._file_key(path))
        if not isinstance(known, dict):
            return None, False
        identity = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        return str(known["hash"]), known.get("identity") == identity and bool(known.get("settled"))

    @staticmethod
    def _file_key(path: str) -> str:
        # Keyed by a hash of the path's bytes: names need not be valid UTF-8.
        where = hashlib.blake2b(os.fsencode(os.path.abspath(path)), digest_size=16).hexdigest()
        return f"file/{where}"

    def content_hash(self, path: str, st: os.stat_result) -> str:
        """The file's content hash, from the stat fast path when it matches."""
        return self.identify(path, st)[0]

    def identify(
        self, path: str, st: os.stat_result, later: Identities | None = None
    ) -> tuple[str, bool]:
        """The file's content hash, and whether that content is new at this
        path (a file copied, renamed or written there since it was last seen,
        though its content may be cached under another path). What the path
        holds is remembered now, or with ``remember(later)``: a scan first
        lists what is new where ``--changed-only`` looks (see
        ``analyzer.delivery``), so that a run stopped in between has not
        remembered a path it never listed.

        The stat fast path skips the hashing when the identity matches. It
        includes the ctime, which ``touch -d`` cannot restore. A file modified
        within ``RACY_SECONDS`` of being hashed could change again without its
        timestamps moving (git's "racy" case), so its identity is marked
        unsettled and it is hashed again next time.
        """
        key = self._file_key(path)
        identity = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        known = self._get(key)
        if isinstance(known, dict) and known.get("identity") == identity and known.get("settled"):
            return str(known["hash"]), False
        digest = hash_file(path)
        newest = max(st.st_mtime_ns, st.st_ctime_ns)
        settled = time.time_ns() - newest > RACY_SECONDS * 1_000_000_000
        entry = {"identity": identity, "hash": digest, "settled": settled}
        if later is None:
            self._set(key, entry)
        else:
            later.append((key, entry))
        return digest, not (isinstance(known, dict) and known.get("hash") == digest)

    def remember(self, identities: Identities) -> None:
        """Write what ``identify`` left for later."""
        for key, entry in identities:
            self._set(key, entry)

    def get_analysis(self, content_hash: str, feature_key: str) -> dict[str, Any] | None:
        value = self._get(f"analysis/{content_hash}/{feature_key}")
        return value if isinstance(value, dict) else None

    def put_analysis(self, content_hash: str, feature_key: str, value: dict[str, Any]) -> None:
        self._set(f"analysis/{content_hash}/{feature_key}", value)

    def get_prediction(
        self, content_hash: str, feature_key: str, fingerprint: str
    ) -> dict[str, Any] | None:
        value = self._get(f"prediction/{content_hash}/{feature_key}/{fingerprint}")
        return value if isinstance(value, dict) else None

    def put_prediction(
        self, content_hash: str, feature_key: str, fingerprint: str, record: dict[str, Any]
    ) -> None:
        self._set(f"prediction/{content_hash}/{feature_key}/{fingerprint}", record)

    def get_segments(
        self, content_hash: str, feature_key: str, fingerprint: str, spec_key: str
    ) -> dict[str, Any] | None:
        value = self._get(f"segments/{content_hash}/{feature_key}/{fingerprint}/{spec_key}")
        return value if isinstance(value, dict) else None

    def put_segments(
        self,
        content_hash: str,
        feature_key: str,
        fingerprint: str,
        spec_key: str,
        timeline: dict[str, Any],
    ) -> None:
        self._set(f"segments/{content_hash}/{feature_key}/{fingerprint}/{spec_key}", timeline)

    def get_unaudited(self, key: str) -> list[str] | None:
        """The types a model file holds that skops does not trust by default,
        once found (``key``: its fingerprint and the skops version)."""
        value = self._get(f"unaudited/{key}")
        types = value.get("types") if isinstance(value, dict) else None
        return types if isinstance(types, list) else None

    def put_unaudited(self, key: str, types: list[str]) -> None:
        self._set(f"unaudited/{key}", {"types": types})

    # --- management: harken cache info / clear / prune, and the size limit ---

    def info(self) -> dict[str, Any]:
        """Location, size on disk and entries (hit rates come from the run records)."""
        if self._store is None:
            return {"location": self.directory, "usable": False}
        return {
            "location": self.directory,
            "usable": True,
            "bytes": int(self._store.volume()),
            "entries": len(self._store),
            "size_limit": self.size_limit,
        }

    def clear(self) -> int:
        """Remove every entry; returns how many."""
        return int(self._store.clear()) if self._store is not None else 0

    def prune(self, older_than: float) -> int:
        """Remove entries stored more than ``older_than`` seconds ago; returns how many."""
        if self._store is None:
            return 0
        cutoff = time.time() - older_than
        removed = 0
        for key in list(self._store.iterkeys()):
            value = self._raw(key)
            if not isinstance(value, dict) or value.get("stored", 0) < cutoff:
                removed += bool(self._store.delete(key))
        return removed

    def evict_to_limit(self) -> int:
        """Remove the oldest entries until the cache fits its size limit; returns how many."""
        if self._store is None or self._store.volume() <= self.size_limit:
            return 0
        return int(self._store.cull())


def enforce_cache_limit(directory: str, size_limit: int | None) -> int:
    """Evict the oldest entries of the cache at ``directory`` beyond its size limit;
    returns how many were removed (to be reported, never silent)."""
    with warnings.catch_warnings():  # a cache that cannot be used was reported by the run
        warnings.simplefilter("ignore", CacheWarning)
        cache = ResultCache(directory, size_limit=size_limit)
    try:
        return cache.evict_to_limit()
    finally:
        cache.close()
