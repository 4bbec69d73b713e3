"""How much of its stream a FLAC file holds whole, read from its last frame.

libsndfile decodes a FLAC file cut inside a frame as "flac decoder lost
sync", the words it uses for damage in the middle too. The last frame header
in the file tells the two apart: each frame header carries the number of its
first sample and a CRC-8, and each frame ends with a CRC-16 of itself. A file
whose last frame is not its stream's final one, or is not whole, was cut short.
(A file cut exactly between frames decodes without an error; the decoder
simply gives fewer samples than STREAMINFO counts.)
"""

from __future__ import annotations

import os
from typing import BinaryIO

#: The last frame lies within this tail when STREAMINFO does not give the
#: largest frame's size.
_TAIL = 1 << 20
#: A 128-byte ID3v1 tag some taggers append after the last frame.
_ID3V1 = 128
#: An APEv2 tag's footer (and header, when it has one).
_APE_FOOTER = 32


def _crc_table(poly: int, width: int) -> list[int]:
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) if crc & top else crc << 1
        table.append(crc & mask)
    return table


_CRC8 = _crc_table(0x07, 8)
_CRC16 = _crc_table(0x8005, 16)


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ byte]
    return crc


def after_id3v2(file: BinaryIO) -> int:
    """Where ``file``'s audio starts: after an ID3v2 tag, which FLAC and MP3
    files may begin with (its size is syncsafe: 7 bits a byte)."""
    file.seek(0)
    head = file.read(10)
    if head[:3] == b"ID3" and len(head) == 10:
        return 10 + sum((byte & 0x7F) << (7 * (3 - i)) for i, byte in enumerate(head[6:10]))
    return 0


def _stream_info(file: BinaryIO) -> tuple[int, int, int] | None:
    """Where the frames start, the fixed block size and the largest frame's
    bytes (0: not given), from the file's metadata blocks (which a picture
    can make megabytes long); ``None`` when ``file`` is not a whole FLAC
    file's start."""
    start = after_id3v2(file)
    file.seek(start)
    if file.read(4) != b"fLaC":
        return None
    position, last, info = start + 4, False, b""
    while not last:
        file.seek(position)
        block = file.read(4)
        if len(block) < 4:
            return None
        last, size = bool(block[0] & 0x80), int.from_bytes(block[1:4], "big")
        if not info:  # STREAMINFO comes first
            info = file.read(34)
            if len(info) < 34:
                return None
        position += 4 + size
    block_size = int.from_bytes(info[2:4], "big")  # the largest block: all but the last
    max_frame = int.from_bytes(info[7:10], "big")
    return position, block_size, max_frame


def _frame_header(data: bytes, at: int, block_size: int) -> tuple[int, int] | None:
    """The first sample and the sample count of the frame whose header is at
    ``data[at]``, or ``None`` when the bytes there are not a valid header."""
    if len(data) < at + 6 or data[at] != 0xFF or data[at + 1] not in (0xF8, 0xF9):
        return None
    variable = data[at + 1] & 1
    size_code, rate_code = data[at + 2] >> 4, data[at + 2] & 0x0F
    channels, depth = data[at + 3] >> 4, (data[at + 3] >> 1) & 7
    if size_code == 0 or rate_code == 0x0F or channels > 10 or depth == 3 or data[at + 3] & 1:
        return None
    # the frame (or sample) number, UTF-8 coded in 1 to 7 bytes
    first = data[at + 4]
    extra = next((n for n in range(8) if not first & (0x80 >> n)), 8)  # leading ones
    if extra == 1 or extra == 8:
        return None
    number = first & (0x7F >> extra) if extra else first
    position = at + 5
    for _ in range(max(extra - 1, 0)):
        if position >= len(data) or data[position] & 0xC0 != 0x80:
            return None
        number = (number << 6) | (data[position] & 0x3F)
        position += 1
    if size_code == 1:
        samples = 192
    elif size_code <= 5:
        samples = 576 << (size_code - 2)
    elif size_code <= 7:
        width = 1 if size_code == 6 else 2
        samples = int.from_bytes(data[position : position + width], "big") + 1
        position += width
    else:
        samples = 256 << (size_code - 8)
    position += {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if position >= len(data) or _crc8(data[at:position]) != data[position]:
        return None
    return (number if variable else number * block_size), samples


def _audio_end(file: BinaryIO, size: int, start: int) -> int:
    """Where the frames (from ``start``) end: before the tags some taggers
    append, an APEv2 tag and then an ID3v1 tag (the frames alone say nothing
    of them). A tag that would reach back before ``start`` is none."""
    end = size
    file.seek(max(0, end - _ID3V1))
    if file.read(3) == b"TAG" and end - _ID3V1 >= start:
        end -= _ID3V1
    file.seek(max(0, end - _APE_FOOTER))
    footer = file.read(_APE_FOOTER)
    if footer[:8] == b"APETAGEX" and len(footer) == _APE_FOOTER:
        tag = int.from_bytes(footer[12:16], "little")  # items and footer
        has_header = int.from_bytes(footer[20:24], "little") & 0x80000000
        if (before := end - tag - (_APE_FOOTER if has_header else 0)) >= start:
            end = before
    return end


def samples_held(path: str, total: int) -> int | None:
    """The samples of ``path``'s stream up to its last whole frame, when that
    is fewer than ``total`` (its STREAMINFO's count); ``None`` when the file
    ends with its final frame whole, or when it does not tell.

    A whole frame is one whose CRC-16 matches where the file (less its
    tags) ends. So damage inside the final frame reads as a cut; and a cut
    in the first bytes of a frame's header counts the frame before as cut
    too. (The decoder, which checks every frame, bounds what this says.)
    """
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        info = _stream_info(file)
        if info is None or total <= 0:
            return None
        frames_start, block_size, max_frame = info
        end = _audio_end(file, size, frames_start)
        tail_start = max(frames_start, end - (2 * max_frame + 4096 if max_frame else _TAIL))
        file.seek(tail_start)
        tail = file.read(max(0, end - tail_start))
    at = len(tail)
    while (at := tail.rfind(b"\xff", 0, at)) >= 0:
        header = _frame_header(tail, at, block_size)
        if header is None or sum(header) > total:
            continue
        first, samples = header
        whole = len(tail) >= at + 2 and _crc16(tail[at:-2]) == int.from_bytes(tail[-2:], "big")
        held = first + samples if whole else first
        return held if held < total else None
    # no frame at all: cut right after the metadata, if the tail reaches back to it
    return 0 if tail_start == frames_start else None
