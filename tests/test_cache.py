"""analyzer.cache.ResultCache against a real cache folder under tmp_path."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import analyzer.cache
from analyzer.cache import CacheWarning, ResultCache, default_cache_dir, hash_file

from signals import noise, write

FEATURE_KEY = "f" * 24
FINGERPRINT = "model-fp-1"


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ResultCache]:
    store = ResultCache(str(tmp_path / "store"))
    yield store
    store.close()


def reopen(cache: ResultCache) -> ResultCache:
    cache.close()
    return ResultCache(cache.directory)


def content_hash(cache: ResultCache, path: Path) -> str:
    return cache.content_hash(str(path), os.stat(path))


def blake(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def rewrite_keeping_mtime(path: Path, data: bytes) -> None:
    """Write ``data`` into ``path`` in place, then put the old mtime back.

    Only the ctime moves, and with a coarse clock (older kernels) it may not
    have yet: the mtime is put back again until it has."""
    before = os.stat(path)
    with open(path, "r+b") as handle:  # same inode
        handle.truncate(0)
        handle.write(data)
    deadline = time.monotonic() + 10
    while True:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # sets the ctime to now
        if os.stat(path).st_ctime_ns != before.st_ctime_ns:
            return
        assert time.monotonic() < deadline, "the ctime never moved"
        time.sleep(0.002)


# --- hashing ------------------------------------------------------------------------------


def test_hash_file_is_blake2b_of_the_bytes(tmp_path: Path) -> None:
    path = write(tmp_path / "a.wav", noise(0.5, seed=1))
    assert hash_file(str(path)) == blake(path.read_bytes())
    assert len(hash_file(str(path))) == 40


def test_hash_file_of_a_file_larger_than_one_chunk(tmp_path: Path) -> None:
    data = np.random.default_rng(2).bytes(3 * (1 << 20) + 123)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert hash_file(str(path)) == blake(data)


def test_hash_file_of_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    assert hash_file(str(path)) == blake(b"")


def test_content_hash_equals_hash_file(cache: ResultCache, tmp_path: Path) -> None:
    path = write(tmp_path / "a.wav", noise(0.5, seed=3))
    assert cache.enabled
    assert content_hash(cache, path) == hash_file(str(path))
    assert content_hash(cache, path) == hash_file(str(path))  # second time, from the cache


def test_same_bytes_at_two_paths_have_the_same_hash(cache: ResultCache, tmp_path: Path) -> None:
    a = write(tmp_path / "a.wav", noise(0.5, seed=4))
    b = tmp_path / "copy" / "b.wav"
    b.parent.mkdir()
    b.write_bytes(a.read_bytes())
    assert content_hash(cache, a) == content_hash(cache, b)


def test_different_bytes_have_different_hashes(cache: ResultCache, tmp_path: Path) -> None:
    a = write(tmp_path / "a.wav", noise(0.5, seed=5))
    b = write(tmp_path / "b.wav", noise(0.5, seed=6))
    assert content_hash(cache, a) != content_hash(cache, b)


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count real hashing; files count as settled at once (no racy window)."""
    calls: list[str] = []
    real = analyzer.cache.hash_file

    def counting(path: str) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(analyzer.cache, "hash_file", counting)
    monkeypatch.setattr(analyzer.cache, "RACY_SECONDS", -1.0)
    return calls


def test_hash_is_reused_when_the_stat_matches(
    cache: ResultCache, tmp_path: Path, hash_calls: list[str]
) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(b"A" * 4096)
    first = content_hash(cache, path)
    assert content_hash(cache, path) == first
    assert len(hash_calls) == 1  # the second answer came from the stat fast path


def test_rewrite_with_restored_mtime_is_noticed(
    cache: ResultCache, tmp_path: Path, hash_calls: list[str]
) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(b"A" * 4096)
    first = content_hash(cache, path)
    before = os.stat(path)
    # Same size, same inode, mtime put back: only the ctime tells.
    rewrite_keeping_mtime(path, b"B" * 4096)
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    assert content_hash(cache, path) == hash_file(str(path)) != first


def test_recently_changed_file_is_hashed_again(cache: ResultCache, tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(b"A" * 100)
    first = content_hash(cache, path)
    # Within the racy window a same-second rewrite could keep every timestamp;
    # the identity is not remembered, so the next lookup reads the bytes.
    path.write_bytes(b"B" * 100)
    assert content_hash(cache, path) == hash_file(str(path)) != first


def test_stat_fast_path_survives_reopening(
    cache: ResultCache, tmp_path: Path, hash_calls: list[str]
) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(b"A" * 100)
    first = content_hash(cache, path)
    again = reopen(cache)
    try:
        assert content_hash(again, path) == first
    finally:
        again.close()
    assert len(hash_calls) == 1


def test_rewritten_file_with_old_mtime_but_new_size_gets_a_new_hash(
    cache: ResultCache, tmp_path: Path
) -> None:
    path = write(tmp_path / "a.wav", noise(1.0, seed=7))
    old = content_hash(cache, path)
    old_mtime = os.stat(path).st_mtime_ns
    write(path, noise(1.5, seed=8))  # different bytes and size
    os.utime(path, ns=(old_mtime, old_mtime))
    assert os.stat(path).st_mtime_ns == old_mtime
    new = content_hash(cache, path)
    assert new != old
    assert new == hash_file(str(path))


def test_touched_file_is_rehashed_to_the_same_hash(cache: ResultCache, tmp_path: Path) -> None:
    # A git checkout resets mtimes: stat differs, bytes do not.
    path = write(tmp_path / "a.wav", noise(0.5, seed=9))
    old = content_hash(cache, path)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert content_hash(cache, path) == old


def test_a_file_replaced_by_another_inode_is_rehashed(cache: ResultCache, tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(b"A" * 100)
    first = content_hash(cache, path)
    st = os.stat(path)
    replacement = tmp_path / "new.wav"
    replacement.write_bytes(b"B" * 100)  # same size, new inode
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(replacement, path)
    assert os.stat(path).st_ino != st.st_ino
    assert content_hash(cache, path) == blake(b"B" * 100) != first


def test_content_hash_keys_on_the_absolute_path(
    cache: ResultCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hash_calls: list[str]
) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(b"A" * 64)
    first = content_hash(cache, path)
    monkeypatch.chdir(tmp_path)
    # Same file through a relative path: the same entry answers, nothing is read.
    assert cache.content_hash("a.wav", os.stat("a.wav")) == first
    assert len(hash_calls) == 1


# --- analysis and prediction entries ------------------------------------------------------


def analysis_entry(seed: int = 0) -> dict[str, Any]:
    vector = np.random.default_rng(seed).standard_normal(265).astype(np.float32)
    return {
        "facts": {"duration": 1.5, "sample_rate": 16000, "channels": 1},
        "features": vector.tobytes(),
        "error": None,
    }


def test_analysis_round_trip(cache: ResultCache) -> None:
    entry = analysis_entry(1)
    assert cache.get_analysis("h1", FEATURE_KEY) is None
    cache.put_analysis("h1", FEATURE_KEY, entry)
    got = cache.get_analysis("h1", FEATURE_KEY)
    assert got == entry
    assert got is not None
    np.testing.assert_array_equal(
        np.frombuffer(got["features"], dtype=np.float32),
        np.frombuffer(entry["features"], dtype=np.float32),
    )


def test_analysis_is_keyed_by_hash_and_feature_key(cache: ResultCache) -> None:
    cache.put_analysis("h1", FEATURE_KEY, analysis_entry(1))
    cache.put_analysis("h2", FEATURE_KEY, analysis_entry(2))
    assert cache.get_analysis("h1", "other-key") is None
    assert cache.get_analysis("h3", FEATURE_KEY) is None
    assert cache.get_analysis("h2", FEATURE_KEY) == analysis_entry(2)
    assert cache.get_analysis("h1", FEATURE_KEY) == analysis_entry(1)


def test_failure_entry_round_trip(cache: ResultCache) -> None:
    entry = {
        "facts": None,
        "features": None,
        "error": {"kind": "unsupported", "message": "x.wav: not a readable audio file"},
    }
    cache.put_analysis("h1", FEATURE_KEY, entry)
    assert cache.get_analysis("h1", FEATURE_KEY) == entry


def test_analysis_put_twice_keeps_the_last(cache: ResultCache) -> None:
    cache.put_analysis("h1", FEATURE_KEY, analysis_entry(1))
    cache.put_analysis("h1", FEATURE_KEY, analysis_entry(2))
    assert cache.get_analysis("h1", FEATURE_KEY) == analysis_entry(2)


def test_prediction_round_trip(cache: ResultCache) -> None:
    record = {
        "status": "ok",
        "label": "music",
        "confidence": 0.8,
        "probabilities": {"music": 0.8, "speech": 0.2},
        "votes": {"svm": "music"},
        "agreement": 1,
        "members": 1,
        "model": "default-1",
        "seconds": 0.1,
        "path": "cafe\u0301.wav",
    }
    assert cache.get_prediction("h1", FEATURE_KEY, FINGERPRINT) is None
    cache.put_prediction("h1", FEATURE_KEY, FINGERPRINT, record)
    assert cache.get_prediction("h1", FEATURE_KEY, FINGERPRINT) == record
    assert cache.get_prediction("h1", FEATURE_KEY, "another-model") is None
    assert cache.get_prediction("h1", "other-key", FINGERPRINT) is None
    assert cache.get_prediction("h2", FEATURE_KEY, FINGERPRINT) is None


def test_analysis_and_prediction_do_not_collide(cache: ResultCache) -> None:
    cache.put_analysis("h1", FEATURE_KEY, analysis_entry(1))
    assert cache.get_prediction("h1", FEATURE_KEY, FINGERPRINT) is None
    cache.put_prediction("h1", FEATURE_KEY, FINGERPRINT, {"label": "x"})
    assert cache.get_analysis("h1", FEATURE_KEY) == analysis_entry(1)


def test_entries_persist_across_reopening(cache: ResultCache, tmp_path: Path) -> None:
    path = write(tmp_path / "a.wav", noise(0.5, seed=10))
    digest = content_hash(cache, path)
    cache.put_analysis(digest, FEATURE_KEY, analysis_entry(3))
    cache.put_prediction(digest, FEATURE_KEY, FINGERPRINT, {"label": "noise"})
    again = reopen(cache)
    try:
        assert again.enabled
        assert again.get_analysis(digest, FEATURE_KEY) == analysis_entry(3)
        assert again.get_prediction(digest, FEATURE_KEY, FINGERPRINT) == {"label": "noise"}
    finally:
        again.close()


def test_the_cache_folder_is_created(tmp_path: Path) -> None:
    folder = tmp_path / "deep" / "er" / "cache"
    store = ResultCache(str(folder))
    try:
        assert store.enabled
        assert folder.is_dir()
        assert (folder / "cache.db").is_file()
    finally:
        store.close()


def test_default_cache_dir_follows_the_environment(isolated_cache: Path) -> None:
    assert default_cache_dir() == str(isolated_cache)


# --- no cache -----------------------------------------------------------------------------


def test_no_directory_means_a_disabled_cache(tmp_path: Path) -> None:
    store = ResultCache(None)
    assert not store.enabled
    assert store.directory is None
    store.put_analysis("h1", FEATURE_KEY, analysis_entry(1))
    store.put_prediction("h1", FEATURE_KEY, FINGERPRINT, {"label": "x"})
    assert store.get_analysis("h1", FEATURE_KEY) is None
    assert store.get_prediction("h1", FEATURE_KEY, FINGERPRINT) is None
    store.close()  # harmless


def test_a_disabled_cache_still_hashes_and_never_reuses(tmp_path: Path) -> None:
    store = ResultCache(None)
    path = tmp_path / "a.wav"
    path.write_bytes(b"A" * 100)
    assert content_hash(store, path) == blake(b"A" * 100)
    rewrite_keeping_mtime(path, b"B" * 100)
    assert content_hash(store, path) == blake(b"B" * 100)  # nothing was remembered


def test_a_disabled_cache_writes_nothing(tmp_path: Path, isolated_cache: Path) -> None:
    store = ResultCache(None)
    path = write(tmp_path / "a.wav", noise(0.2, seed=11))
    content_hash(store, path)
    store.put_analysis("h", FEATURE_KEY, analysis_entry(0))
    assert not isolated_cache.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]


# --- a damaged cache ----------------------------------------------------------------------


def check_usable(store: ResultCache, tmp_path: Path) -> None:
    """A damaged cache is either disabled or working; it never raises."""
    path = tmp_path / "probe.wav"
    path.write_bytes(b"probe" * 10)
    assert content_hash(store, path) == blake(b"probe" * 10)
    store.put_analysis("h1", FEATURE_KEY, analysis_entry(1))
    got = store.get_analysis("h1", FEATURE_KEY)
    if store.enabled:
        assert got == analysis_entry(1)
    else:
        assert got is None
        assert store.get_prediction("h1", FEATURE_KEY, FINGERPRINT) is None


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(np.random.default_rng(0).bytes(8192), id="random-bytes"),
        pytest.param(
            b"SQLite format 3\x00" + np.random.default_rng(1).bytes(4080),
            id="sqlite-header-then-garbage",
        ),
        pytest.param(b"not a database\n" * 100, id="text"),
    ],
)
def test_a_corrupt_cache_db_warns_and_does_not_raise(tmp_path: Path, garbage: bytes) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    (folder / "cache.db").write_bytes(garbage)
    with pytest.warns(CacheWarning, match="cache"):
        store = ResultCache(str(folder))
    try:
        check_usable(store, tmp_path)
    finally:
        store.close()


def test_a_cache_path_that_is_a_file_warns_and_disables(tmp_path: Path) -> None:
    blocker = tmp_path / "store"
    blocker.write_text("I am a file, not a folder")
    with pytest.warns(CacheWarning):
        store = ResultCache(str(blocker))
    assert not store.enabled
    check_usable(store, tmp_path)
    assert blocker.read_text() == "I am a file, not a folder"


def test_a_damaged_value_file_is_a_miss(cache: ResultCache, tmp_path: Path) -> None:
    # Values of 32 KB or more live in their own file beside cache.db (diskcache).
    record = {"label": "music", "blob": "x" * 100_000}
    cache.put_prediction("h1", FEATURE_KEY, FINGERPRINT, record)
    folder = Path(cache.directory or "")
    value_files = list(folder.rglob("*.val"))
    assert len(value_files) == 1
    value_files[0].write_bytes(b"garbage" * 10)
    assert cache.get_prediction("h1", FEATURE_KEY, FINGERPRINT) is None
