"""Discovery: folders and file lists -> a deterministic list of audio files.

Folders are walked recursively in sorted order, following symlinks but never
entering a folder twice (symlink loops are safe). Hidden files and folders
are skipped. Paths named on the command line are taken as they are, and so
is a folder that cannot be listed (the scan gives it a row saying why).
"""

from __future__ import annotations

import fnmatch
import io
import os
import sys
from collections.abc import Iterable, Iterator
from functools import cache
from typing import BinaryIO, cast

from analyzer.arguments import globs
from analyzer.errors import UsageError

DEFAULT_EXTENSIONS = (
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".aif",
    ".aiff",
    ".au",
    ".w64",
    ".rf64",
)


@cache
def _globstar_forms(pattern: str) -> tuple[str, ...]:
    """``pattern`` and its forms with any ``**/`` matching no folder, so
    ``**/*.wav`` also takes ``a.wav`` and ``a/**/b.wav`` takes ``a/b.wav``, as
    in shells and .gitignore (``fnmatch``'s ``*`` already crosses ``/``)."""
    at = pattern.find("**/")
    while at > 0 and pattern[at - 1] != "/":  # only a whole segment: not take**/
        at = pattern.find("**/", at + 1)
    if at < 0:
        return (pattern,)
    head, rest = pattern[:at], _globstar_forms(pattern[at + 3 :])
    return (*(f"{head}**/{tail}" for tail in rest), *(head + tail for tail in rest))


def _matches(rel: str, name: str, patterns: Iterable[str]) -> bool:
    return any(
        fnmatch.fnmatchcase(name, form) or fnmatch.fnmatchcase(rel, form)
        for pattern in patterns
        for form in _globstar_forms(pattern)
    )


def _wanted(rel: str, name: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    if name.startswith("."):
        return False
    if exclude and _matches(rel, name, exclude):
        return False
    if include:
        return _matches(rel, name, include)
    return name.lower().endswith(DEFAULT_EXTENSIONS)


def walk(
    root: str, *, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()
) -> Iterator[str]:
    """Files below ``root`` that pass the filters, folder by folder.

    Parameters
    ----------
    root : str
        A folder.
    include, exclude : tuple of str
        Glob patterns matched against the file name and against the path
        relative to ``root``. ``include`` replaces the default extension filter.
    """
    seen: set[tuple[int, int]] = set()
    unlisted: list[str] = []

    def cannot_list(exc: OSError) -> None:
        # Whatever the reason (no permission, a path longer than PATH_MAX, an
        # I/O error), but not a folder gone (or no longer a folder) since its
        # parent was listed.
        if exc.filename is None or isinstance(exc, (FileNotFoundError, NotADirectoryError)):
            return
        folder = os.fsdecode(exc.filename)
        try:
            st = os.stat(folder)
        except FileNotFoundError:
            return
        except OSError:  # not even stat'ed (its path too long): known by its path alone
            if folder not in unlisted:
                unlisted.append(folder)
            return
        if (st.st_dev, st.st_ino) not in seen:  # (not again through a symlink)
            seen.add((st.st_dev, st.st_ino))
            unlisted.append(folder)

    for folder, dirs, files in os.walk(root, onerror=cannot_list, followlinks=True):
        try:
            st = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:  # reached again through a symlink
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel_folder = os.path.relpath(folder, root)
        for name in sorted(files):
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            if _wanted(rel, name, include, exclude):
                yield os.path.join(folder, name)
    # A folder that cannot be listed (no permission, too long a path...) is
    # given as it is: the scan gives it a row saying why, where it would
    # silently be left out.
    for folder in unlisted:
        rel, name = os.path.relpath(folder, root), os.path.basename(folder)
        # ``--exclude 'lost+found/*'`` (what it holds) leaves out the folder too
        if not (exclude and (_matches(rel, name, exclude) or _matches(rel + "/", name, exclude))):
            yield folder


#: How the audio files most likely given by mistake begin.
AUDIO_MAGIC = (b"RIFF", b"RF64", b"riff", b"FORM", b"fLaC", b"OggS", b"ID3", b".snd")


def _is_audio(data: bytes) -> bool:
    """Whether ``data`` is an audio file libsndfile reads. Only bytes that
    begin like one are asked (soundfile imports numpy, which a cached rerun
    does without)."""
    mpeg_sync = len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0  # MP3, no tag
    if not data[:4].startswith(AUDIO_MAGIC) and not mpeg_sync:
        return False
    if _container_head(data[:12]):
        return True
    import soundfile

    try:
        soundfile.info(io.BytesIO(data))
    except Exception:  # libsndfile says no to anything else in the same words
        return False
    return True


def _container_head(head: bytes) -> bool:
    """Whether ``head`` (12 bytes) starts an audio container's structure, not
    just its magic: enough when a cover picture or a long comment puts the
    audio beyond the head that is read. No list of paths begins so."""
    if head[:3] == b"ID3":  # ID3v2: version 2-4, then a syncsafe size
        return len(head) >= 10 and head[3] in (2, 3, 4) and max(head[6:10]) < 0x80
    if head[:4] == b"fLaC":  # STREAMINFO (type 0, last or not), 34 bytes
        return head[4] & 0x7F == 0 and head[5:8] == b"\0\0\x22"
    if head[:4] == b"OggS":  # version 0, the stream's first page
        return len(head) >= 6 and head[4] == 0 and head[5] & 0x02 != 0
    if head[:4] in (b"RIFF", b"RF64"):
        return head[8:12] == b"WAVE"
    if head[:4] == b"FORM":
        return head[8:12] in (b"AIFF", b"AIFC")
    return False


HEAD_BYTES = 1 << 16  # enough for any audio header, read before the rest


def _opened(source: str) -> BinaryIO:
    """The list's bytes as a stream (standard input as text where it is only
    text: IDLE, a test)."""
    if source != "-":
        return open(source, "rb")
    if (raw := getattr(sys.stdin, "buffer", None)) is not None:
        return cast(BinaryIO, raw)
    return io.BytesIO(sys.stdin.read().encode("utf-8", errors="surrogateescape"))


def read_file_list(source: str) -> list[str]:
    """Paths from a file, one a line (``-`` reads standard input); blanks and ``#``
    skipped, and spaces at either end of a line. A list with NUL bytes
    (``find -print0``) is split at them instead, and its paths are kept
    exactly, spaces and newlines included."""
    name = "standard input" if source == "-" else source
    stream = _opened(source)
    try:
        # An audio file given by mistake is told by its head, before a
        # multi-GB recording is read into memory.
        data = stream.read(HEAD_BYTES)
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # (split at its NUL bytes, '.' among the paths)
            raise UsageError(f"{name} is UTF-16 text; save the list as UTF-8")
        data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark is no path
        if b"\0" in data and _is_audio(data):
            raise UsageError(f"{name} is an audio file, not a list of paths")
        data += stream.read()
    finally:
        if source != "-":
            stream.close()
    text = data.decode("utf-8", errors="surrogateescape")
    if "\0" in text:
        return [path for path in text.split("\0") if path]
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def discover(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    include: str | tuple[str, ...] = (),
    exclude: str | tuple[str, ...] = (),
    files_from: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None = None,
) -> list[str]:
    """Every audio file under ``paths``, in a deterministic order, without duplicates.

    The files of each folder come sorted by path, as ``ls -R`` would list them.

    Folders are walked; other paths (files, and paths that do not exist) are
    kept as given, so a missing or unreadable file still gets a result row.
    ``exclude`` applies to every path, ``include`` only to walked folders.
    """
    include, exclude = globs("include", include), globs("exclude", exclude)  # one, or many
    if "" in include:  # a run that found nothing would end as if all were well
        raise ValueError("include: an empty pattern matches no file")
    found: list[str] = []
    if isinstance(paths, (str, bytes, os.PathLike)):  # one path, not its characters
        paths = [paths]
    given = [os.fsdecode(p) for p in paths]  # bytes as os.listdir gives them, too
    listings = (
        [files_from]
        if isinstance(files_from, (str, bytes, os.PathLike))
        else list(files_from or ())
    )
    for listing in listings:
        given.extend(read_file_list(os.fsdecode(listing)))
    for path in given:
        if os.path.isdir(path):
            files = walk(path, include=include, exclude=exclude)
            found.extend(sorted(files, key=lambda f: f.split(os.sep)))
        elif not (exclude and _matches(path, os.path.basename(path), exclude)):
            found.append(path)
    # One file under two spellings ("dir", "./dir/", its absolute path) is
    # listed once, first spelling kept.
    unique: dict[str, str] = {}
    for path in found:
        unique.setdefault(os.path.abspath(path), path)
    return list(unique.values())
