"""analyzer.discover: folders and file lists -> a deterministic list of audio files."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analyzer.discover import DEFAULT_EXTENSIONS, discover, read_file_list, walk


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def rel(paths: list[str], root: Path) -> list[str]:
    return [Path(p).relative_to(root).as_posix() for p in paths]


# --- extensions and recursion -------------------------------------------------------------


def test_default_extensions_are_the_documented_set() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    documented = re.search(r"extensions are taken \(`([a-z0-9 ]+)`", readme)
    assert documented is not None
    assert set(DEFAULT_EXTENSIONS) == {f".{ext}" for ext in documented[1].split()}


@pytest.mark.parametrize(
    "ext", ["wav", "flac", "ogg", "oga", "opus", "mp3", "aif", "aiff", "au", "w64", "rf64"]
)
def test_every_default_extension_is_found_in_any_case(tmp_path: Path, ext: str) -> None:
    touch(tmp_path, f"lower.{ext}", f"upper.{ext.upper()}", f"mixed.{ext.capitalize()}")
    found = rel(discover([tmp_path]), tmp_path)
    assert sorted(found) == sorted(
        [f"lower.{ext}", f"upper.{ext.upper()}", f"mixed.{ext.capitalize()}"]
    )


def test_other_files_are_left_out(tmp_path: Path) -> None:
    touch(tmp_path, "song.wav", "notes.txt", "cover.jpg", "wav", "song.wav.bak", "README")
    assert rel(discover([tmp_path]), tmp_path) == ["song.wav"]


def test_folders_are_walked_recursively(tmp_path: Path) -> None:
    touch(tmp_path, "top.wav", "a/one.flac", "a/b/two.mp3", "a/b/c/d/deep.ogg")
    found = rel(discover([tmp_path]), tmp_path)
    assert sorted(found) == ["a/b/c/d/deep.ogg", "a/b/two.mp3", "a/one.flac", "top.wav"]


def test_walked_paths_are_joined_to_the_root_as_given(tmp_path: Path) -> None:
    touch(tmp_path, "music/a.wav")
    assert discover([tmp_path / "music"]) == [os.path.join(tmp_path / "music", "a.wav")]


def test_a_folder_named_like_an_audio_file_is_walked_not_yielded(tmp_path: Path) -> None:
    touch(tmp_path, "x.wav/inner.flac", "x.wav/notes.txt", "plain.wav")
    found = rel(discover([tmp_path]), tmp_path)
    assert "x.wav" not in found
    assert sorted(found) == ["plain.wav", "x.wav/inner.flac"]
    # Named directly, it is walked too.
    assert rel(discover([tmp_path / "x.wav"]), tmp_path) == ["x.wav/inner.flac"]


def test_an_empty_folder_gives_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert discover([tmp_path / "empty"]) == []


# --- include / exclude --------------------------------------------------------------------


def test_include_replaces_the_extension_filter(tmp_path: Path) -> None:
    touch(tmp_path, "a.wav", "b.raw", "sub/c.raw", "sub/d.flac")
    found = rel(discover([tmp_path], include=("*.raw",)), tmp_path)
    assert sorted(found) == ["b.raw", "sub/c.raw"]


def test_globs_are_case_sensitive_unlike_the_default_extensions(tmp_path: Path) -> None:
    touch(tmp_path, "a.wav", "B.WAV")
    assert rel(discover([tmp_path]), tmp_path) == ["B.WAV", "a.wav"]
    assert rel(discover([tmp_path], include="*.wav"), tmp_path) == ["a.wav"]  # as documented
    assert rel(discover([tmp_path], exclude="*.wav"), tmp_path) == ["B.WAV"]
    both = rel(discover([tmp_path], include="*.[wW][aA][vV]"), tmp_path)
    assert both == ["B.WAV", "a.wav"]


def test_include_star_takes_every_file(tmp_path: Path) -> None:
    touch(tmp_path, "a.wav", "notes.txt", "sub/README", "sub/image.png")
    found = rel(discover([tmp_path], include=("*",)), tmp_path)
    assert sorted(found) == ["a.wav", "notes.txt", "sub/README", "sub/image.png"]


def test_include_star_still_skips_hidden_files(tmp_path: Path) -> None:
    touch(tmp_path, "a.txt", ".hidden.txt", ".git/config")
    assert rel(discover([tmp_path], include=("*",)), tmp_path) == ["a.txt"]


def test_include_matches_the_relative_path(tmp_path: Path) -> None:
    touch(tmp_path, "keep/a.wav", "drop/b.wav")
    found = rel(discover([tmp_path], include=("keep/*",)), tmp_path)
    assert found == ["keep/a.wav"]


def test_globstar_matches_zero_or_more_folders(tmp_path: Path) -> None:
    touch(tmp_path, "a.wav", "x/b.wav", "x/y/c.wav", "keep/d.wav", "keep/in/e.wav", "f.raw")
    found = rel(discover([tmp_path], include=("**/*.wav",)), tmp_path)
    assert found == ["a.wav", "keep/d.wav", "keep/in/e.wav", "x/b.wav", "x/y/c.wav"]
    found = rel(discover([tmp_path], include=("keep/**/*.wav",)), tmp_path)
    assert found == ["keep/d.wav", "keep/in/e.wav"]
    found = rel(discover([tmp_path], exclude=("**/y/**",)), tmp_path)
    assert "x/y/c.wav" not in found and "x/b.wav" in found
    # Only a whole segment may vanish: take**/mix.wav is not takemix.wav.
    touch(tmp_path, "takemix.wav", "take1/mix.wav")
    found = rel(discover([tmp_path], include=("take**/mix.wav",)), tmp_path)
    assert found == ["take1/mix.wav"]


def test_exclude_matches_the_file_name(tmp_path: Path) -> None:
    touch(tmp_path, "a.wav", "b.flac", "sub/c.flac", "sub/d.wav")
    found = rel(discover([tmp_path], exclude=("*.flac",)), tmp_path)
    assert sorted(found) == ["a.wav", "sub/d.wav"]


def test_exclude_matches_the_relative_path(tmp_path: Path) -> None:
    touch(tmp_path, "a.wav", "drafts/b.wav", "drafts/deeper/c.wav", "final/b.wav")
    found = rel(discover([tmp_path], exclude=("drafts/*",)), tmp_path)
    assert sorted(found) == ["a.wav", "final/b.wav"]


def test_exclude_wins_over_include(tmp_path: Path) -> None:
    touch(tmp_path, "a.raw", "b.raw")
    found = rel(discover([tmp_path], include=("*.raw",), exclude=("b.*",)), tmp_path)
    assert found == ["a.raw"]


def test_exclude_applies_to_explicit_files_include_does_not(tmp_path: Path) -> None:
    touch(tmp_path, "take1.wav", "notes.txt")
    given = [str(tmp_path / "take1.wav"), str(tmp_path / "notes.txt")]
    assert discover(given, exclude=("take*",)) == [given[1]]
    assert discover(given, include=("*.flac",)) == given


# --- hidden files, symlinks ---------------------------------------------------------------


def test_hidden_files_and_folders_are_skipped(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "seen.wav",
        ".hidden.wav",
        ".cache/in.wav",
        "sub/.dot/in.wav",
        "sub/ok.wav",
        "sub/.also.flac",
    )
    found = rel(discover([tmp_path]), tmp_path)
    assert sorted(found) == ["seen.wav", "sub/ok.wav"]


def test_a_hidden_file_named_explicitly_is_kept(tmp_path: Path) -> None:
    touch(tmp_path, ".hidden.wav")
    assert discover([tmp_path / ".hidden.wav"]) == [str(tmp_path / ".hidden.wav")]


def test_a_symlink_loop_to_a_parent_folder_is_safe(tmp_path: Path) -> None:
    root = tmp_path / "root"
    touch(root, "a.wav", "sub/b.wav")
    os.symlink("..", root / "sub" / "up")  # root/sub/up -> root
    os.symlink(root, root / "sub" / "self")  # absolute link to the root too
    found = rel(discover([root]), root)
    assert sorted(found) == ["a.wav", "sub/b.wav"]


def test_a_symlink_to_an_outside_folder_is_followed(tmp_path: Path) -> None:
    touch(tmp_path, "elsewhere/far.wav", "root/near.wav")
    os.symlink(tmp_path / "elsewhere", tmp_path / "root" / "link")
    found = rel(discover([tmp_path / "root"]), tmp_path / "root")
    assert sorted(found) == ["link/far.wav", "near.wav"]


def test_a_folder_reached_twice_through_links_is_walked_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    touch(root, "a/x.wav")
    os.symlink(root / "a", root / "b")  # sorted: 'a' is walked first, 'b' is the same folder
    assert rel(discover([root]), root) == ["a/x.wav"]


def test_a_folder_that_fails_to_list_for_any_reason_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    touch(tmp_path, "a.wav", "broken/b.wav", "fine/c.wav")
    real = os.scandir

    def scandir(path: str) -> Any:
        if os.path.basename(path) == "broken":
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)  # (os.walk lists with it)
    assert rel(discover([tmp_path]), tmp_path) == ["a.wav", "broken", "fine/c.wav"]
    assert rel(discover([tmp_path], exclude="broken/*"), tmp_path) == ["a.wav", "fine/c.wav"]


DEEP = 22  # folders of 200 characters: deeper than PATH_MAX (4096 on Linux, 1024 on macOS)


@pytest.fixture
def too_deep(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/deep`` with a chain of DEEP folders (a file at the bottom),
    made and removed through folder descriptors: no path is ever that long."""
    if os.mkdir not in os.supports_dir_fd or os.open not in os.supports_dir_fd:
        pytest.skip("no dir_fd support")
    root = tmp_path / "deep"
    root.mkdir()
    name = "d" * 200
    fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        for _ in range(DEEP):
            os.mkdir(name, dir_fd=fds[-1])
            fds.append(os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[-1]))
        os.close(os.open("bottom.wav", os.O_WRONLY | os.O_CREAT, dir_fd=fds[-1]))
        yield root
    finally:  # bottom up, each folder removed through its parent's descriptor
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink("bottom.wav", dir_fd=fds[-1])
            for parent in reversed(fds[:-1]):
                os.rmdir(name, dir_fd=parent)
        finally:
            for fd in fds:
                os.close(fd)
    assert name not in os.listdir(root)


def test_a_folder_too_deep_to_list_is_kept_and_gets_an_error_row(too_deep: Path) -> None:
    from click.testing import CliRunner

    from cli import main
    from cli.scan import EXIT_ERRORS

    touch(too_deep, "near.wav")
    found = discover([too_deep])
    assert len(found) == 2 and found[1] == str(too_deep / "near.wav")
    path = found[0]  # the first folder down the chain whose path is too long to list
    limit = os.pathconf(too_deep, "PC_PATH_MAX")
    assert path.startswith(str(too_deep)) and len(os.path.dirname(path)) < limit <= len(path)
    assert discover([too_deep], exclude="d*") == [str(too_deep / "near.wav")]
    # As a folder harken may not list: a row saying why, and the exit code of errors.
    args = ["scan", str(too_deep), "--exclude", "near.wav", "-f", "jsonl", "--no-cache", "-q"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == EXIT_ERRORS, result.stderr
    (row,) = map(json.loads, result.stdout.splitlines())
    assert row["path"] == path and row["status"] == "error"
    assert row["error"]["message"] == f"{path}: {os.strerror(errno.ENAMETOOLONG)}"


# --- order and duplicates -----------------------------------------------------------------


def test_order_is_sorted_within_each_folder(tmp_path: Path) -> None:
    names = ["m.wav", "b.wav", "z.wav", "a.wav", "k.flac"]
    touch(tmp_path, *names)
    assert rel(discover([tmp_path]), tmp_path) == sorted(names)


def test_order_does_not_depend_on_creation_order(tmp_path: Path) -> None:
    names = ["z/1.wav", "a/2.wav", "m.wav", "a/b/3.wav", "b.wav", "z/a.wav", "c/d/e.wav"]
    touch(tmp_path / "one", *names)
    touch(tmp_path / "two", *reversed(names))
    first = rel(discover([tmp_path / "one"]), tmp_path / "one")
    second = rel(discover([tmp_path / "two"]), tmp_path / "two")
    assert first == second
    # Sorted by path, folder by folder.
    assert first == sorted(names, key=lambda p: p.split("/"))
    assert first == ["a/2.wav", "a/b/3.wav", "b.wav", "c/d/e.wav", "m.wav", "z/1.wav", "z/a.wav"]


def test_repeated_calls_give_the_same_list(tmp_path: Path) -> None:
    touch(tmp_path, "b.wav", "a/c.wav", "a.wav")
    assert discover([tmp_path]) == discover([tmp_path])


def test_explicit_paths_keep_their_given_order(tmp_path: Path) -> None:
    touch(tmp_path, "a.wav", "b.wav", "c.wav")
    given = [str(tmp_path / n) for n in ("c.wav", "a.wav", "b.wav")]
    assert discover(given) == given


def test_the_same_folder_twice_gives_each_file_once(tmp_path: Path) -> None:
    touch(tmp_path, "a.wav", "sub/b.wav")
    assert discover([tmp_path, tmp_path]) == discover([tmp_path])
    assert discover([str(tmp_path), str(tmp_path) + "/"]) == discover([tmp_path])


def test_a_file_inside_a_given_folder_is_not_repeated(tmp_path: Path) -> None:
    touch(tmp_path, "a.wav", "sub/b.wav")
    once = discover([tmp_path])
    assert discover([tmp_path, tmp_path / "sub" / "b.wav"]) == once
    assert discover([tmp_path, tmp_path / "sub"]) == once


def test_an_explicit_file_then_its_folder_keeps_first_position(tmp_path: Path) -> None:
    touch(tmp_path, "a.wav", "b.wav")
    b = str(tmp_path / "b.wav")
    assert discover([b, tmp_path]) == [b, str(tmp_path / "a.wav")]


def test_the_same_folder_under_two_spellings_gives_each_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    touch(tmp_path, "root/a.wav", "root/sub/b.wav")
    monkeypatch.chdir(tmp_path)
    found = discover(["root", "./root", "root/sub/../a.wav", str(tmp_path / "root" / "a.wav")])
    assert len(found) == 2
    assert len({os.path.normpath(p) for p in found}) == len(found)


# --- explicit paths and file lists --------------------------------------------------------


def test_explicit_files_are_kept_as_given_whatever_their_extension(tmp_path: Path) -> None:
    touch(tmp_path, "notes.txt")
    given = [str(tmp_path / "notes.txt"), "relative/missing.wav", str(tmp_path / "gone.flac")]
    assert discover(given) == given


def test_nonexistent_paths_are_kept(tmp_path: Path) -> None:
    missing = str(tmp_path / "no" / "such.wav")
    assert discover([missing]) == [missing]


def test_pathlike_arguments_become_strings(tmp_path: Path) -> None:
    touch(tmp_path, "a.wav")
    found = discover([tmp_path / "a.wav"])
    assert found == [str(tmp_path / "a.wav")]
    assert all(type(p) is str for p in found)


def test_files_from_reads_one_path_a_line(tmp_path: Path) -> None:
    touch(tmp_path, "a.wav", "dir/b.wav", "dir/c.txt")
    listing = tmp_path / "list.txt"
    listing.write_text(
        "# a comment\n"
        f"{tmp_path / 'a.wav'}\n"
        "\n"
        f"   {tmp_path / 'dir'}   \n"
        f"{tmp_path / 'missing.wav'}\n",
        encoding="utf-8",
    )
    found = discover([], files_from=str(listing))
    assert found == [
        str(tmp_path / "a.wav"),
        str(tmp_path / "dir" / "b.wav"),
        str(tmp_path / "missing.wav"),
    ]


def test_files_from_adds_to_the_paths_given(tmp_path: Path) -> None:
    touch(tmp_path, "a.wav", "b.wav")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'b.wav'}\n{tmp_path / 'a.wav'}\n", encoding="utf-8")
    found = discover([tmp_path / "a.wav"], files_from=str(listing))
    assert found == [str(tmp_path / "a.wav"), str(tmp_path / "b.wav")]


def test_files_from_dash_reads_standard_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    touch(tmp_path, "a.wav", "sub/b.flac")
    listing = f"{tmp_path / 'sub'}\n#skip\n\n{tmp_path / 'a.wav'}\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(listing))
    assert discover([], files_from="-") == [
        str(tmp_path / "sub" / "b.flac"),
        str(tmp_path / "a.wav"),
    ]


def test_read_file_list_skips_blank_lines_and_comments(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("one.wav\n\n   \n# two.wav\nthree.wav  \r\n", encoding="utf-8")
    assert read_file_list(str(listing)) == ["one.wav", "three.wav"]


def test_read_file_list_splits_a_nul_separated_list_exactly(tmp_path: Path) -> None:
    listing = tmp_path / "list0"
    listing.write_text("a b.wav\0 lead.wav\0new\nline.wav\0")  # as find -print0 writes
    assert read_file_list(str(listing)) == ["a b.wav", " lead.wav", "new\nline.wav"]


def test_read_file_list_keeps_non_utf8_names(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"caf\xe9.wav\nplain.wav\n")  # latin-1, not UTF-8
    names = read_file_list(str(listing))
    assert names == ["caf\udce9.wav", "plain.wav"]
    assert os.fsencode(names[0]) == b"caf\xe9.wav"


def test_walk_yields_only_files_below_the_root(tmp_path: Path) -> None:
    touch(tmp_path, "outside.wav", "root/inside.wav")
    assert list(walk(str(tmp_path / "root"))) == [os.path.join(tmp_path / "root", "inside.wav")]


def test_an_audio_file_given_as_the_list_is_refused(tmp_path: Path) -> None:
    import numpy as np
    import soundfile as sf

    from analyzer.errors import UsageError

    audio = tmp_path / "take.wav"
    sf.write(audio, np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(UsageError, match=r"take\.wav is an audio file, not a list of paths"):
        read_file_list(str(audio))  # split at its NUL bytes, it made dozens of rows
    listing = tmp_path / "list0"
    listing.write_bytes(b"RIFF.wav\0b.wav\0")  # a list that starts as a WAV does
    assert read_file_list(str(listing)) == ["RIFF.wav", "b.wav"]
    # An MP3 with no tag starts with a frame's sync bits (it made 2,600 rows).
    mp3 = tmp_path / "take.mp3"
    sf.write(mp3, 0.1 * np.random.default_rng(0).standard_normal(44100), 44100, format="MP3")
    assert mp3.read_bytes()[:1] == b"\xff"
    with pytest.raises(UsageError, match=r"take\.mp3 is an audio file"):
        read_file_list(str(mp3))


def test_audio_on_standard_input_is_refused_as_a_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    import numpy as np
    import soundfile as sf

    from analyzer.errors import UsageError

    audio = io.BytesIO()
    sf.write(audio, np.zeros(1600, dtype=np.float32), 16000, format="WAV")
    # It was split at its NUL bytes: 9,312 "paths" of a 2 MB WAV, '/' among them.
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(audio.getvalue())))
    with pytest.raises(UsageError, match="standard input is an audio file, not a list of paths"):
        read_file_list("-")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b" a.wav \n#b.wav\n\nc.wav\n")))
    assert read_file_list("-") == ["a.wav", "c.wav"]


def test_a_long_recording_given_as_the_list_is_refused_from_its_head(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It was read whole first: a multi-GB WAV (or a stream that never ends)
    went into memory before it was told to be audio."""
    import numpy as np
    import soundfile as sf

    from analyzer.discover import HEAD_BYTES
    from analyzer.errors import UsageError

    class Counted(io.BytesIO):
        asked = 0

        def read(self, size: int | None = -1) -> bytes:
            block = super().read(size)
            Counted.asked += len(block)
            return block

    audio = io.BytesIO()
    sf.write(audio, np.zeros(16000 * 60, dtype=np.int16), 16000, format="WAV")  # 1.9 MB
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(Counted(audio.getvalue())))
    with pytest.raises(UsageError, match="standard input is an audio file"):
        read_file_list("-")
    assert 0 < Counted.asked <= HEAD_BYTES


def test_audio_whose_picture_outgrows_the_head_is_still_refused_as_a_list(
    tmp_path: Path,
) -> None:
    """A cover picture bigger than the head read first: still audio."""
    import numpy as np
    import soundfile as sf

    from analyzer.discover import HEAD_BYTES
    from analyzer.errors import UsageError

    picture = 2 * HEAD_BYTES
    mp3 = io.BytesIO()
    sf.write(mp3, 0.1 * np.random.default_rng(0).standard_normal(44100), 44100, format="MP3")
    syncsafe = bytes((picture >> shift) & 0x7F for shift in (21, 14, 7, 0))
    tagged = tmp_path / "tagged.mp3"
    tagged.write_bytes(b"ID3\4\0\0" + syncsafe + bytes(picture) + mp3.getvalue())
    flac = io.BytesIO()
    sf.write(flac, np.zeros(16000, dtype=np.int16), 16000, format="FLAC")
    whole = flac.getvalue()
    assert whole[4] == 0x00  # STREAMINFO, more blocks after it
    padding = b"\x01" + picture.to_bytes(3, "big") + bytes(picture)  # where a picture goes
    padded = tmp_path / "padded.flac"
    padded.write_bytes(whole[:42] + padding + whole[42:])
    assert sf.info(padded).frames == 16000
    commented = tmp_path / "commented.ogg"
    with sf.SoundFile(commented, "w", 16000, 1, format="OGG") as ogg:
        ogg.comment = "x" * picture  # (Vorbis comments hold cover pictures too)
        ogg.write(np.zeros(16000, dtype=np.float32))
    for audio in (tagged, padded, commented):
        with pytest.raises(UsageError, match="is an audio file, not a list of paths"):
            read_file_list(str(audio))
    short = tmp_path / "short"
    short.write_bytes(b"ID3\3\0\0")  # too short for a tag: a list (it raised ValueError)
    assert read_file_list(str(short)) == ["ID3\x03"]


def test_lists_given_twice_are_both_read(tmp_path: Path) -> None:
    first, second = tmp_path / "one.txt", tmp_path / "two.txt"
    first.write_text("a.wav\n")
    second.write_text("b.wav\n")
    assert discover([], files_from=[str(first), second]) == ["a.wav", "b.wav"]
    assert discover([], files_from=second) == ["b.wav"]  # one list, a Path


def test_a_list_in_utf16_is_refused_and_a_utf8_mark_is_no_path(tmp_path: Path) -> None:
    from analyzer.errors import UsageError

    listing = tmp_path / "list.txt"
    listing.write_text("a.wav\nb.wav\n", encoding="utf-16")  # PowerShell 5's '>'
    with pytest.raises(UsageError, match="is UTF-16 text; save the list as UTF-8"):
        read_file_list(str(listing))  # was split at its NUL bytes: 'a', '.', 'w', ...
    listing.write_text("a.wav\nb.wav\n", encoding="utf-8-sig")
    assert read_file_list(str(listing)) == ["a.wav", "b.wav"]
