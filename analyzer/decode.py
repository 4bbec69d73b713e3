"""Decoding: soundfile blocks -> mono mix -> soxr stream resampling to the feature rate.

The file is read in blocks; signal facts are measured on the native samples
as they pass, and the resampled mono blocks go to a sink (the feature
stream), so no whole signal is ever held. The frame count in the header is
checked against ``max_duration`` and ``max_memory`` before anything is read.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from analyzer.errors import DecodeError
from analyzer.flac import after_id3v2, samples_held
from analyzer.quality import SignalMeter
from analyzer.results import SignalFacts

#: libsndfile's frame count for a file whose header does not give its length
#: (SF_COUNT_MAX: a FLAC stream's total of 0).
_LENGTH_NOT_GIVEN = 2**63 - 1
#: Frames read per block: about 1.4 s at 48 kHz, a few MB for 8 channels.
BLOCK_FRAMES = 65536
#: Float samples beyond this magnitude (80 dB over full scale) are not audio.
MAX_SAMPLE_MAGNITUDE = 1e4


#: Memory one file's analysis needs besides its feature frames, and per second
#: of audio (the frame descriptors kept for the summary), for the early check
#: against --max-memory.
BASE_MEMORY = 48 << 20
MEMORY_PER_SECOND = 16 << 10
#: Past this many seconds the kept descriptors stop growing (``features.KEEP_FRAMES``
#: at the default 16 kHz / hop 512 is 1049 s; longer files are summarised in
#: bounded memory).
GROWING_SECONDS = 1200.0

Sink = Callable[[np.ndarray], None]

#: libsndfile trims a PCM container's data chunk to the bytes present and logs
#: the size its header declared: ``data : 64000 (should be 31978)``.
_TRIMMED_CHUNK = re.compile(r"^\s*(?:data|SSND|Data Size)\s*:\s*(\d+) \(should be (\d+)\)", re.M)
#: Declared sizes from here up are placeholders of writers that could not seek
#: back, not a promise: 0xFFFFFFFF (streamed WAV, RF64), 0x7FFFF000 rounded
#: down to a block (sox's WAV), 0x7F000008 (sox's AIFF), 0x7FFF0000 (GStreamer).
_PLACEHOLDER_SIZE = 0x7F000000
#: RF64 keeps its data size in a ds64 chunk (its frame count there is only a
#: hint, which some writers leave at 0), and libsndfile trims the frames to
#: the file without a word.
_DS64_DATA = re.compile(r"^\s*Data size\s*:\s*(\d+)$", re.M)
#: Sony Wave64 logs its data chunk's declared size (with its 24-byte header)
#: and the block size, and trims the frames to the file without a word.
_W64_DATA = re.compile(r"^data : (\d+)$", re.M)
_BLOCK_ALIGN = re.compile(r"^\s*Block Align\s*:\s*(\d+)$", re.M)
#: 64-bit sizes from here up are placeholders (all ones), not a promise.
_PLACEHOLDER_SIZE_64 = 2**62
#: An MP3 decoding to less than this share of the frames its Xing/Info frame
#: counts was cut short (decoders differ by a frame or two at the ends).
MP3_SHORTFALL = 0.98
#: An Ogg page is at most 65307 bytes; the last one lies within this tail.
_OGG_TAIL = 65536 + 282


@dataclass(frozen=True)
class Decoded:
    """A decoded file: the whole mono signal at the feature rate and its facts."""

    signal: np.ndarray  # float32, shape (n,)
    facts: SignalFacts


def open_error(path: str, exc: Exception) -> DecodeError:
    """Why ``path`` could not be opened, as a result reason.

    libsndfile reports every failure to open the same way, so the file
    system is asked what is actually wrong.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return DecodeError("not_found", f"{path}: no such file")
    except OSError as err:
        return DecodeError("unreadable", f"{path}: {err.strerror or err}")
    if stat.S_ISDIR(st.st_mode):
        return DecodeError("not_a_file", f"{path}: is a directory, not an audio file")
    if not os.access(path, os.R_OK):
        return DecodeError("permission", f"{path}: permission denied")
    if st.st_size == 0:
        return DecodeError("empty", f"{path}: the file is empty (0 bytes)")
    detail = str(exc).split(":")[-1].strip() or type(exc).__name__
    if "does not exist or is not a regular file" in detail:
        # libsndfile's words for some short or damaged files, which do exist
        detail = "libsndfile found no audio format it knows"
    return DecodeError("unsupported", f"{path}: not a readable audio file ({detail})")


#: libsndfile refuses file names of this many bytes or more.
SNDFILE_MAX_PATH = 1024


def cut_data(audio: sf.SoundFile) -> tuple[int, int] | None:
    """Bytes of audio data a PCM container's header declares and bytes the
    file holds, when it holds less (by more than a pad byte); else, or when
    the format does not say, ``None``."""
    info = audio.extra_info
    if match := _TRIMMED_CHUNK.search(info):
        declared, present = int(match[1]), int(match[2])
        placeholder = _PLACEHOLDER_SIZE
    elif audio.format == "RF64" and (match := _DS64_DATA.search(info)):
        declared, present = int(match[1]), _frames_in_bytes(audio, audio.frames)
        placeholder = _PLACEHOLDER_SIZE_64
    elif audio.format == "W64" and (match := _W64_DATA.search(info)):
        declared, present = int(match[1]) - 24, _frames_in_bytes(audio, audio.frames)
        placeholder = _PLACEHOLDER_SIZE_64
    else:
        return None
    if declared <= 0 or declared >= placeholder or declared - present <= 64:
        # (a missing pad byte or so is no loss)
        return None
    return declared, present


def declared_seconds(audio: sf.SoundFile, declared: int, present: int) -> float | None:
    """The seconds ``declared`` bytes of ``audio``'s data hold (``present``
    bytes holding ``audio.frames``), or ``None`` when nothing tells.

    In proportion to what is there; with nothing there, by the size of a PCM
    sample (a compressed subtype's block holds hundreds of frames)."""
    if present > 0 and audio.frames > 0:
        return audio.frames / audio.samplerate * declared / present
    if sample := _SAMPLE_BYTES.get(audio.subtype, 0):
        return declared / (sample * audio.channels) / audio.samplerate
    return None


#: Bytes one sample of a PCM subtype takes in a container's data chunk.
_SAMPLE_BYTES = {
    **dict.fromkeys(("PCM_S8", "PCM_U8", "ULAW", "ALAW"), 1),
    "PCM_16": 2,
    "PCM_24": 3,
    **dict.fromkeys(("PCM_32", "FLOAT"), 4),
    "DOUBLE": 8,
}


def _frames_in_bytes(audio: sf.SoundFile, frames: int) -> int:
    """``frames`` of a PCM file in bytes, by the block size its header logs (else 0)."""
    match = _BLOCK_ALIGN.search(audio.extra_info)
    return frames * int(match[1]) if match else 0


def ogg_is_complete(path: str) -> bool:
    """Whether the Ogg file ends with a whole page flagged end-of-stream:
    encoders always write one, so a file without it was cut short.

    The last page is the last ``OggS`` in the tail that parses as a page
    ending within the file (the bytes ``OggS`` may occur inside a packet too).
    A tail with no page at all (over 64 KiB of something appended) says
    nothing, and counts as complete.
    """
    with open(path, "rb") as file:
        file.seek(max(0, os.fstat(file.fileno()).st_size - _OGG_TAIL))
        tail = file.read()
    start = len(tail)
    while (start := tail.rfind(b"OggS", 0, start)) >= 0:
        if len(tail) < start + 27 or tail[start + 4] != 0:  # stream structure version 0
            continue
        segments = tail[start + 26]
        lacing = tail[start + 27 : start + 27 + segments]
        if len(lacing) == segments and start + 27 + segments + sum(lacing) <= len(tail):
            return bool(tail[start + 5] & 0x04)
    return True


def _cut_short(path: str, declared: float | None, held: float) -> str:
    if declared is None:
        return (
            f"{path}: the file is cut short: its header declares more audio"
            f" than the {held:.2f} s it holds"
        )
    digits = 2 if declared - held >= 0.01 else 4  # a few ms missing still shows
    return (
        f"{path}: the file is cut short: its header declares {declared:.{digits}f} s"
        f" of audio, it holds {held:.{digits}f} s"
    )


def mp3_declares_length(path: str) -> bool:
    """Whether the MP3's first frame is a Xing/Info frame, which counts the
    frames exactly; without one the decoder only estimates the length."""
    with open(path, "rb") as file:
        file.seek(after_id3v2(file))
        frame = file.read(200)
    return b"Xing" in frame or b"Info" in frame


#: python-soundfile's own binding of libsndfile, internal to it (there since
#: 0.10); should a release drop it, ``read_block`` falls back on ``SoundFile.read``.
_LIBSNDFILE_READ = (
    hasattr(sf, "_ffi")
    and hasattr(sf, "_error_check")
    and all(hasattr(getattr(sf, "_snd", None), name) for name in ("sf_readf_float", "sf_error"))
)


def read_block(audio: sf.SoundFile, frames: int) -> tuple[np.ndarray, Exception | None]:
    """Up to ``frames`` frames from where the last read stopped, float32,
    ``[shape=(frames, channels)]``; none at the end. With them, the error
    that stopped the read early, if one did: the frames decoded before it
    come all the same.

    Not ``SoundFile.read``: to keep its read and write positions together it
    seeks after every read. On an MP3 that seek makes libmpg123 decode again
    from an earlier frame without that frame's bit reservoir: it prints
    ``part2_3_length (...) too large for available bit count``, and up to
    some hundred samples after the block's end come out wrong (0.24 off in a
    22.05 kHz test file read in 65,536-frame blocks). libsndfile's own read,
    as here, never seeks.
    """
    handle = getattr(audio, "_file", None)
    if not _LIBSNDFILE_READ or handle is None:
        try:
            return audio.read(frames, dtype="float32", always_2d=True), None
        except Exception as exc:  # libsndfile raises a plain error for a damaged stream
            return np.empty((0, audio.channels), dtype=np.float32), exc
    out = np.empty((frames, audio.channels), dtype=np.float32)
    pointer = sf._ffi.cast("float *", out.ctypes.data)
    got = sf._snd.sf_readf_float(handle, pointer, frames)
    try:
        sf._error_check(sf._snd.sf_error(handle))
    except Exception as exc:
        return out[: max(got, 0)], exc
    return out[: max(got, 0)], None


def _openable(path: str) -> str | BinaryIO:
    """``path`` itself, or an open file when libsndfile could not take the name:
    names that are not valid UTF-8 (soundfile cannot encode them) or too long."""
    raw = os.fsencode(path)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return open(path, "rb")  # the caller closes it
    if len(raw) >= SNDFILE_MAX_PATH:
        return open(path, "rb")  # the caller closes it
    return path


def decode(
    path: str,
    *,
    target_rate: int,
    sink: Sink,
    max_duration: float,
    max_memory: int | None = None,
) -> SignalFacts:
    """Decode ``path`` block by block, feeding mono float32 at ``target_rate`` to ``sink``.

    Parameters
    ----------
    path : str
        The audio file.
    target_rate : int
        The sample rate of the blocks given to ``sink``.
    sink : callable
        Called with each block, ``np.ndarray [shape=(n,)]``, in order.
    max_duration : float
        Files whose header declares more seconds than this are refused
        before any sample is read.
    max_memory : int, optional
        Files whose analysis would need more bytes than this are refused
        before any sample is read.

    Returns
    -------
    SignalFacts

    Raises
    ------
    DecodeError
        With a kind (``not_found``, ``permission``, ``not_a_file``, ``empty``,
        ``unsupported``, ``truncated``, ``too_long``, ``memory``, ``corrupt``,
        ``invalid_samples``).
    """
    with contextlib.ExitStack() as stack:
        try:
            source = _openable(path)
            if not isinstance(source, str):
                stack.enter_context(source)  # soundfile does not close what it is given
            audio = stack.enter_context(sf.SoundFile(source))
        except Exception as exc:  # libsndfile raises a plain error for every unreadable file
            raise open_error(path, exc) from None
        rate, channels, declared = audio.samplerate, audio.channels, audio.frames
        if declared >= _LENGTH_NOT_GIVEN:
            declared = 0  # (a FLAC stream's encoder could not go back to write it)
        if rate <= 0 or channels <= 0:
            raise DecodeError(
                "corrupt", f"{path}: the header declares {rate} Hz, {channels} channels"
            )
        seconds = declared / rate
        if cut := cut_data(audio):
            full = declared_seconds(audio, *cut)
            raise DecodeError("truncated", _cut_short(path, full, seconds))
        if seconds > max_duration:
            raise DecodeError(
                "too_long",
                f"{path}: {seconds:.6g} s declared, over the limit of {max_duration:g} s"
                " (raise it with --max-duration)",
            )
        needed = BASE_MEMORY + min(seconds, GROWING_SECONDS) * MEMORY_PER_SECOND
        if max_memory is not None and needed > max_memory:
            raise DecodeError(
                "memory",
                f"{path}: {seconds:.6g} s of audio needs about {needed / 2**20:.0f} MiB,"
                f" over --max-memory ({max_memory / 2**20:.0f} MiB)",
            )
        meter = SignalMeter(rate)
        resampler = (
            soxr.ResampleStream(rate, target_rate, 1, dtype="float32", quality="HQ")
            if rate != target_rate
            else None
        )
        while True:
            block, failure = read_block(audio, BLOCK_FRAMES)
            if block.shape[0] == 0 and failure is None:
                break
            peak = np.abs(block).max(initial=0.0)
            if not np.isfinite(block).all() or peak > MAX_SAMPLE_MAGNITUDE:
                raise DecodeError(
                    "invalid_samples",
                    f"{path}: the audio holds NaN, infinite or absurdly large samples",
                )
            if block.shape[0]:
                mono = block.mean(axis=1) if channels > 1 else block[:, 0]
                meter.update(block, mono)
                sink(resampler.resample_chunk(mono) if resampler else mono.copy())
            if not declared and meter.frames > max_duration * rate:
                raise DecodeError(
                    "too_long",
                    f"{path}: over the limit of {max_duration:g} s (its header gives no"
                    " length; raise the limit with --max-duration)",
                )
            if failure is not None:  # a damaged stream fails mid-read
                if audio.format == "FLAC" and 0 < declared <= meter.frames:
                    break  # every sample there; what follows (an ID3v1 tag, say) is not audio
                if audio.format == "FLAC" and (held := samples_held(path, declared)) is not None:
                    held = min(held, meter.frames)  # (a frame it could not decode is not whole)
                    raise DecodeError("truncated", _cut_short(path, seconds, held / rate))
                raise DecodeError(
                    "corrupt",
                    f"{path}: decoding failed after {meter.frames / rate:.2f} s ({failure})",
                )
        if resampler is not None:
            sink(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        if (
            audio.format == "MP3"
            and meter.frames < MP3_SHORTFALL * declared
            and mp3_declares_length(path)
        ) or (audio.format == "FLAC" and meter.frames < declared):
            # (STREAMINFO counts every sample; libFLAC passes over a cut
            # between two frames without an error, and fills a gap in the
            # middle with silence)
            raise DecodeError("truncated", _cut_short(path, seconds, meter.frames / rate))
        if audio.format == "OGG" and not ogg_is_complete(path):
            raise DecodeError(
                "truncated",
                f"{path}: the file is cut short: its Ogg stream stops after"
                f" {meter.frames / rate:.2f} s without its last page",
            )
        if meter.frames == 0:
            raise DecodeError("empty", f"{path}: the file holds no audio frames")
        return meter.facts(channels=channels, format=audio.format, subtype=audio.subtype)


def decode_signal(path: str, *, target_rate: int, max_duration: float) -> Decoded:
    """The whole mono signal of ``path`` at ``target_rate``, in memory, and its facts."""
    pieces: list[np.ndarray] = []
    facts = decode(path, target_rate=target_rate, sink=pieces.append, max_duration=max_duration)
    signal = np.concatenate(pieces).astype(np.float32, copy=False)
    return Decoded(signal=signal, facts=facts)
