"""Train on everyday sounds, an ESC-10-like set: ``python benchmarks/environmental.py``.

harken's corpus has four coarse classes; this asks how its features and
ensemble do on a finer task of the kind ESC-10 poses (rain, sea waves, fire,
birds, engines, ...), without ESC-10 itself. It fetches freely licensed
Debian *main* game and education data packages (``PACKAGES``), labels the
sound effects in them by keyword rules on their paths (``CLASSES``), drops
near-silent files and duplicates, and cuts clips as ESC-50 does: 5 s,
44.1 kHz mono WAV; a long sound gives up to four non-overlapping excerpts,
a short one is zero-padded. Each class gets up to 40 clips, spread over as
many files, packages and groups (takes of one sound) as there are; every
group is in one of five folds. It then runs ``harken train --manifest`` with
the defaults, which cross-validates over those folds, and prints the mean
fold accuracy of the ensemble and its members, the recall per class and the
largest confusions.

Needs ``apt-get download`` from a Debian archive (Debian 12 here); the
packages (about 7.8 GB) and their unpacked audio (about 5.2 GB) are kept in
``--work`` and reused, as are the clips (delete ``WORK/clips`` to cut them
again) and the feature cache; once they are unpacked, a run takes about three
minutes on two cores. Everything random is seeded, so every run builds the
same set from the same package versions, which it prints.

    python benchmarks/environmental.py [--work DIR]

The set and the last run's figures: ``benchmarks/ENVIRONMENTAL.md``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import soundfile as sf
import soxr

REPO = Path(__file__).resolve().parent.parent
SEED = 20240611
RATE = 44100
CLIP_S = 5.0
PER_CLASS = 40
MAX_PER_FILE = 4
MAX_PER_GROUP = 4
#: A package with this many clips of a class counts as one step further down
#: in the pick, so other packages' long files give a second excerpt first.
PACKAGE_SHARE = 12
MIN_SOUND_S = 0.3  # of sound, once the ends 40 dB below the loudest frame are trimmed
MIN_LEVEL_DB = -50.0  # RMS of that audio, dBFS
MIN_TAIL_S = 2.0  # a long file's zero-padded last excerpt must hold this much
FOLDS = range(1, 6)
COLUMNS = ["path", "label", "group", "fold", "source"]

#: Debian main packages searched (games / education data). Ten of them give no
#: clip (see ENVIRONMENTAL.md); they are searched all the same, as when the set was made.
PACKAGES = [
    *("0ad-data", "ardentryst", "btanks-data", "cube2-data", "flare-game"),
    *("flightgear-data-base", "freedink-data", "gcompris-qt-data", "lincity-ng-data"),
    *("lugaru-data", "megaglest-data", "minetest-data", "minetest-mod-homedecor"),
    *("nexuiz-data", "openarena-data", "openclonk-data", "openttd-opensfx"),
    *("redeclipse-data", "scorched3d-data", "supertux-data", "supertuxkart-data"),
    *("torcs-data", "trigger-rally-data", "tuxpaint-stamps-default"),
    *("unknown-horizons", "warzone2100-data", "wesnoth-1.16-data", "widelands-data"),
    *("freeciv-data", "hedgewars-data", "freecol", "tuxfootball", "warmux-data"),
    *("freedroidrpg-data", "teeworlds-data", "xmoto-data", "extremetuxracer-data"),
]
AUDIO_EXT = (".wav", ".ogg", ".oga", ".flac", ".mp3", ".opus")
#: What is unpacked from a package: audio files and the containers games keep
#: them in (zip / pk3 / wz, Qt .rcc, OpenTTD .cat, OpenClonk c4group).
UNPACKED = [f"*{ext}" for ext in AUDIO_EXT]
UNPACKED += ["*.zip", "*.pk3", "*.wz", "*.rcc", "*.cat", "*.ocg", "*.ocd", "*.ocf", "*.ocs"]

Reader = Callable[[], bytes]


class Rule(NamedTuple):
    """Regexes searched in a file's lower-cased id (see ``label_of``)."""

    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    min_sound_s: float = MIN_SOUND_S


#: Paths of music, speech and interface sounds, whatever their names say.
GLOBAL_EXCLUDE = (
    *(r"/music/", r"/musics?/", r"/voices?/", r"/voice_", r"_desc", r"/tutorial"),
    *(r"/announcer/", r"/speech/", r"/lang/", r"/zik/", r"/theme", r"interface/"),
    *(r"/ui[/_]", r"alarm"),
)
#: Written after reading every path they match; the comment says what a class holds.
CLASSES = {
    # rain falling (on ground, leaves, roofs, a windshield)
    "rain": Rule(
        (r"(^|[^tr])rain(?!bow)[^/]*\.\w+$", r"stormrain"),
        (r"train", r"raindrops", r"drain"),
    ),
    # sea waves and surf, rivers, creeks, waterfalls: few surf recordings ship
    "sea_waves": Rule(
        (
            *(r"ambient/water/(wave|river|waterfall)", r"oceanwaves", r"river_loop"),
            *(r"ambience/river\.ogg", r"creek", r"waterfall", r"env_sounds_water"),
            *(r"ambience/water\.ogg", r"ambient/water\.ogg"),
        ),
        (r"waterfall_indoor",),
    ),
    # fire burning / crackling (campfire, fireplace, burning buildings)
    "crackling_fire": Rule(
        (
            *(r"(^|/)fire_loop", r"open_fire", r"campfire", r"ambience/fire\.ogg"),
            *(r"fire\.ocg/fire\.ogg", r"lugaru/sounds/fire(start)?\.ogg", r"sfx/burning\.ogg"),
            *(r"lincity-ng/sounds/fire(\d|wasteland)", r"fire_fire\.\d", r"fire_large"),
            *(r"fire_small", r"world/fire\d", r"world/firesoft", r"dink/sound/(fire|burn)\.wav"),
            r"wicker_fire",
            r"0ad/mods/public/public\.zip!audio/attack/fire/(c|sp|sz)_?\d+\.ogg",
        ),
        (r"fake_fire", r"backfire", r"firewasteland"),
    ),
    # wind blowing, gusts, storms (no rain)
    "wind": Rule(
        (
            r"ambient/weather/(wind_|windgust|windstorm|snowstorm)",
            r"soundfx/environment/wind_loop",
            *(r"flightgear/sounds/wind1?\.wav", r"lugaru/sounds/wind\.ogg"),
            *(r"tilesets/\w+/sounds/wind\.ogg", r"windhowling", r"windoutside", r"world/wind\d"),
            *(r"environment\.ocg/windloop", r'opensfx\.cat!\d+ "(heavy )?wind"'),
            r"trigger-rally.*sounds/wind\.wav",
            r"ambience/(wind|blowwind|hollowwind|wastewind)\.ogg",
            *(r"ambience/morph/(wind\d|stormwind)", r"cavewind"),
        ),
    ),
    # thunder claps and rumbles
    "thunder": Rule(
        (
            *(r"thunder(?!bird|stick)", r"stormbolts", r"naturalforces/lightningbolt"),
            *(r"supertux2/sounds/lightning\.wav", r"apoc/data/wav/explosions/lightningbolt"),
        ),
    ),
    # songbirds chirping / singing (no corvids, owls, gulls, poultry), and day-time
    # ambiences that are mostly birdsong
    "chirping_birds": Rule(
        (
            *(r"sound/animals/bird\d", r"bird_twitter", r"birdsloop", r"birdchirp"),
            *(r"misc/birds\d", r"exotic-birds", r"ambient/birds\d", r"dink/sound/bird1"),
            *(r'"tropical: bird', r"ambience/forest\d", r"birds/(blackbird|lark|cuckoo)\.ogg"),
            *(r"dayscape/day_(temperate|tropical)", r"tilesets/\w+/sounds/(day|sunny_day)\.ogg"),
        ),
    ),
    # cow / ox / bull, sheep, goat, horse, donkey vocalisations
    "farm_animals": Rule(
        (
            *(r"fauna/animal/(cattle|sheep|horse_(idle|select)|horse_\d)", r"fauna/death/goat"),
            *(r"sounds/cow_(ack|select|die)", r"units/bull/sounds/bull_(ack|select|die)"),
            *(r"units/sheep/sounds/sheep", r"mudchute_cow", r"btanks/data/sounds/cow\.ogg"),
            r"farm_animals/resource/animals/(cow|horse|sheep)\.ogg",
            *(r'"(sheep|cow|horse)"\. original', r"misc/(cows|moo|sheep)\.wav"),
            *(r"tracks/(black_forest/cow|scotland/sheep)", r"bovines/", r"equines/(donkey|horse)"),
            *(r"sheepfield", r"sound/farm/(donkey|farm_animal|horse|ox|sheep)"),
        ),
    ),
    # rooster crowing, hens / chickens clucking
    "rooster_hen": Rule((r"rooster", r"chicken", r"birds/hen\.ogg"), (r"peacock",)),
    # human footsteps, walking / running on various surfaces
    "footsteps": Rule(
        (
            *(r"footstep", r"foorstep", r"singlesteps/", r"hstep", r"_step_"),
            *(r"step_(cloth|echo|leather|metal)", r"movement\.ocg/step", r"icy_walk"),
            r"footsteps/(boot|clank|step)",
        ),
        (
            *(r"water_footstep", r"swimstep", r"glass_footstep", r"tuxfootball"),
            r"footsteps/(energy|flesh|mech|splash)",
        ),
    ),
    # combustion engines: cars, trucks, buses, propeller aircraft (idle, running,
    # starting); a second of sound at least, to leave out short seamless loops
    "engine": Rule(
        (
            *(r"torcs/data/sound/\w*engine", r"c172p/sounds/engine", r"engine-prop"),
            r"flightgear/sounds/(p51d_(startup|rpm1)|r-1535slow|exhaust_loop|cranking)",
            r'"(truck/old bus start, pull away|modern bus start|old bus start)"',
            r'"(propeller plane start|toyland: propeller plane take off)"',
            *(r"startandstopcarengine", r"traffic/resource/car\.wav"),
            *(r"btanks/data/sounds/engine-(car|vehicle)", r"trigger-rally.*sounds/engine\.wav"),
            r"supertuxkart/data/sfx/(engine_(large|small)|car_accel|car_revup)",
            *(r"sawmill\.ocd/engine", r"distant_cars"),
        ),
        min_sound_s=1.0,
    ),
}


@dataclass
class Sound:
    """One original file of a class, trimmed, and how many clips were picked from it."""

    id: str
    package: str
    group: str
    signal: np.ndarray
    seconds: float
    hash: str
    fingerprint: tuple[np.ndarray, np.ndarray]
    picked: int = 0
    tiebreak: float = 0.0


def deb_of(name: str, debs: Path) -> Path:
    """The package's .deb in ``debs``, downloaded when it is not there yet."""
    found = sorted(debs.glob(f"{name}_*.deb"))
    if not found:
        subprocess.run(["apt-get", "download", "-q", name], cwd=debs, check=True)
        found = sorted(debs.glob(f"{name}_*.deb"))
    return found[-1]


def unpack_audio(deb: Path, version: str, dest: Path) -> None:
    """The audio files and containers of ``deb`` into ``dest``, once per version."""
    stamp = dest / f".extracted-{version}"
    if stamp.exists():
        return
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    tar = ["tar", "-x", "-C", str(dest), "--ignore-case", "--wildcards", *UNPACKED]
    fsys = ["dpkg-deb", "--fsys-tarfile", str(deb)]
    with subprocess.Popen(fsys, stdout=subprocess.PIPE) as deb_tar:
        # tar fails on patterns that match nothing; what matched is extracted all the same
        subprocess.run(tar, stdin=deb_tar.stdout, stderr=subprocess.DEVNULL, check=False)
    if deb_tar.returncode:
        raise subprocess.CalledProcessError(deb_tar.returncode, deb_tar.args)
    stamp.touch()  # last: a half-unpacked package is unpacked again


def fetch(work: Path) -> dict[str, str]:
    """Download ``PACKAGES`` and unpack their audio into ``work``; their versions."""
    debs = work / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    versions = {}
    for name in PACKAGES:
        deb = deb_of(name, debs)
        field = ["dpkg-deb", "-f", str(deb), "Version"]
        versions[name] = subprocess.run(
            field, capture_output=True, text=True, check=True
        ).stdout.strip()
        unpack_audio(deb, versions[name], work / "x" / name)
    return versions


def rcc_entries(path: Path) -> dict[str, bytes]:
    """The files in a Qt resource bundle (gcompris-qt-data keeps its sounds in them)."""
    data = path.read_bytes()
    if data[:4] != b"qres":
        raise ValueError(f"{path} is not a Qt resource bundle")
    version, tree, blobs, names = struct.unpack(">IIII", data[4:20])
    node_size = 14 if version == 1 else 22
    out: dict[str, bytes] = {}

    def name_at(offset: int) -> str:
        start = names + offset
        length = struct.unpack(">H", data[start : start + 2])[0]
        return data[start + 6 : start + 6 + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> None:
        node = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", data[node : node + 6])
        name = name_at(name_offset) if index else ""  # the root has no name
        path = f"{prefix}/{name}" if name else prefix
        if flags & 2:  # a directory
            count, first = struct.unpack(">II", data[node + 6 : node + 14])
            for child in range(first, first + count):
                walk(child, path)
            return
        start = blobs + struct.unpack(">I", data[node + 10 : node + 14])[0]
        blob = data[start + 4 : start + 4 + struct.unpack(">I", data[start : start + 4])[0]]
        if flags & 1:  # zlib, after a 4-byte length
            out[path] = zlib.decompress(blob[4:])
        elif not flags & 4:  # 4: zstd, which no sound here uses
            out[path] = blob

    walk(0, "")
    return out


def c4_header(data: bytes) -> bytes:
    """An OpenClonk group header in clear: it is stored with byte triples
    reversed and every byte XORed with 237."""
    swapped = bytearray(data)
    for i in range(0, len(swapped) - 2, 3):
        swapped[i], swapped[i + 2] = swapped[i + 2], swapped[i]
    return bytes(byte ^ 237 for byte in swapped)


def c4_walk(data: bytes, prefix: str, out: dict[str, bytes]) -> None:
    """The files of an OpenClonk group and of the groups inside it into ``out``."""
    header = c4_header(data[:204])
    if not header.startswith(b"RedWolf Design Gr"):
        raise ValueError("not an OpenClonk group")
    count = struct.unpack("<i", header[36:40])[0]
    # All entry records (316 bytes: name, flags, size, offset) are read before any
    # file, so a group that turns out broken adds nothing to ``out``.
    entries = []
    for i in range(count):
        record = data[204 + i * 316 : 204 + (i + 1) * 316]
        name = record[:260].split(b"\0")[0].decode("latin-1")
        _, is_group, size, _, offset = struct.unpack("<5i", record[260:280])
        entries.append((name, is_group, size, offset))
    base = 204 + count * 316  # the files' data follow the records
    for name, is_group, size, offset in entries:
        blob = data[base + offset : base + offset + size]
        if is_group:
            try:
                c4_walk(blob, f"{prefix}/{name}", out)
                continue
            except (ValueError, struct.error):  # flagged as a group but is not one
                pass
        out[f"{prefix}/{name}"] = blob


def c4_entries(path: Path) -> dict[str, bytes]:
    """The files in an OpenClonk group file (.ocg, .ocd, ...)."""
    data = path.read_bytes()
    if data[:2] == b"\x1e\x8c":  # gzip, with its magic bytes changed
        data = gzip.decompress(b"\x1f\x8b" + data[2:])
    out: dict[str, bytes] = {}
    c4_walk(data, "", out)
    return out


def cat_entries(path: Path) -> dict[str, bytes]:
    """The WAV files in an OpenTTD sound catalogue, named "NN title"; the titles
    hold what the sound is, and often the original recording it was cut from."""
    data = path.read_bytes()
    out = {}
    for i in range((struct.unpack("<I", data[:4])[0] & 0x7FFFFFFF) // 8):
        offset, size = struct.unpack("<II", data[i * 8 : i * 8 + 8])
        offset &= 0x7FFFFFFF
        length = data[offset]
        title = data[offset + 1 : offset + 1 + length].split(b"\0")[0].decode("latin-1")
        wav = data[offset + 1 + length : offset + size]
        if wav[:4] == b"RIFF":
            out[f"{i:02d} {title}"] = wav
    return out


def held(data: bytes) -> Reader:
    """A reader of bytes already in memory."""
    return lambda: data


def container_files(path: Path, file_id: str) -> list[tuple[str, Reader]]:
    """(name inside, reader) of the audio in a container file; none if it is not one."""
    lower = file_id.lower()
    if lower.endswith((".zip", ".pk3", ".wz")):
        archive = zipfile.ZipFile(path)
        names = [i.filename for i in archive.infolist() if i.filename.lower().endswith(AUDIO_EXT)]
        return [(name, functools.partial(archive.read, name)) for name in names]
    if lower.endswith(".cat") and "openttd" in lower:
        return [(name, held(wav)) for name, wav in sorted(cat_entries(path).items())]
    if lower.endswith(".rcc"):
        entries = rcc_entries(path)
    elif lower.endswith((".ocg", ".ocd", ".ocf", ".ocs")):
        entries = c4_entries(path)
    else:
        return []
    return [(n, held(entries[n])) for n in sorted(entries) if n.lower().endswith(AUDIO_EXT)]


def audio_files(package_dir: Path, package: str) -> Iterator[tuple[str, Reader]]:
    """(id, reader) of every audio file in an unpacked package, inside containers
    too; the id is ``package:path`` or ``package:path!path inside``."""
    for folder, subfolders, files in os.walk(package_dir):
        subfolders.sort()
        for name in sorted(files):
            path = Path(folder, name)
            file_id = f"{package}:{path.relative_to(package_dir)}"
            if name.lower().endswith(AUDIO_EXT):
                yield file_id, path.read_bytes
                continue
            try:
                inside = container_files(path, file_id)
            except Exception:  # another format under a container's extension: no audio of ours
                continue
            for member, read in inside:
                yield f"{file_id}!{member}", read


def label_of(file_id: str) -> str | None:
    """The class whose rules match ``file_id``; None when none or two do."""
    path = file_id.lower().replace("usr/share/games/", "").replace("usr/share/", "")
    if any(re.search(p, path) for p in GLOBAL_EXCLUDE):
        return None
    hits = [
        label
        for label, rule in CLASSES.items()
        if any(re.search(p, path) for p in rule.include)
        and not any(re.search(p, path) for p in rule.exclude)
    ]
    return hits[0] if len(hits) == 1 else None


def candidates(root: Path) -> dict[str, list[tuple[str, Reader]]]:
    """Class -> (id, reader) of the files labelled with it, by id."""
    found: dict[str, list[tuple[str, Reader]]] = {label: [] for label in CLASSES}
    for package in PACKAGES:
        for file_id, read in audio_files(root / package, package):
            label = label_of(file_id)
            if label:
                found[label].append((file_id, read))
    return {label: sorted(files, key=lambda f: f[0]) for label, files in found.items()}


def group_of(file_id: str) -> str:
    """The recording a file comes from: numbered takes (thunder1..5) are one, and
    OpenTTD's entries name the original they were edited from."""
    original = re.search(r'opensfx\.cat!\d+ .*?original "([^"]+)"', file_id, re.I)
    if original:
        return f"openttd-opensfx:original:{original.group(1)}"
    package, path = file_id.split(":", 1)
    folder, name = os.path.split(path)
    stem = os.path.splitext(name)[0]
    stem = re.sub(r"([_\-. ]?\d+[a-z]?)$", "", stem) or stem
    return f"{package}:{folder}/{stem}"


def decode(data: bytes) -> np.ndarray:
    """A file's audio as mono float32 at ``RATE``; levels as shipped."""
    signal, rate = sf.read(io.BytesIO(data), always_2d=True, dtype="float32")
    signal = signal.mean(axis=1)
    if rate != RATE:
        signal = soxr.resample(signal, rate, RATE, quality="HQ").astype(np.float32)
    return signal


def level_db(signal: np.ndarray) -> np.floating:
    """RMS level in dBFS."""
    return 20 * np.log10(np.sqrt((signal**2).mean()) + 1e-9)


def trim(signal: np.ndarray, frame: int = 1024) -> np.ndarray:
    """Without the frames at either end that are over 40 dB below the loudest."""
    if not len(signal):
        return signal
    n = max(1, len(signal) // frame)
    frames = signal[: n * frame].reshape(n, frame) if len(signal) >= frame else signal[None, :]
    levels = 20 * np.log10(np.sqrt((frames**2).mean(1)) + 1e-9)
    loud = np.where(levels > levels.max() - 40.0)[0]
    if len(loud) == 0:
        return signal[:0]
    return signal[loud[0] * frame : min(len(signal), (loud[-1] + 1) * frame)]


def fingerprint(signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What duplicates are found by: the first 4 s at 8 kHz, and a coarse
    log-mel spectrogram of the first 20 s."""
    import librosa  # slow to import, and needed only when the clips are cut

    low = soxr.resample(signal[: RATE * 20], RATE, 8000).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=low, sr=8000, n_fft=512, hop_length=186, n_mels=24)
    return low[: 8000 * 4], np.log(mel + 1e-6)


def correlation_peak(a: np.ndarray, b: np.ndarray, max_lag: int = 800) -> float:
    """The largest normalised cross-correlation within ``max_lag`` samples."""
    size = 1 << (len(a) + len(b) - 1).bit_length()
    c = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    c = np.concatenate([c[-max_lag:], c[: max_lag + 1]])
    return float(np.abs(c).max() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def near_duplicate(a: Sound, b: Sound) -> bool:
    """One recording, maybe resampled, re-levelled or re-encoded?"""
    if abs(a.seconds - b.seconds) > 0.04 * max(a.seconds, b.seconds) + 0.05:
        return False
    (wave_a, mel_a), (wave_b, mel_b) = a.fingerprint, b.fingerprint
    m = min(len(wave_a), len(wave_b))
    if m > 800 and correlation_peak(wave_a[:m], wave_b[:m]) > 0.8:
        return True
    n = min(mel_a.shape[1], mel_b.shape[1])
    if n < 80:  # under about 2 s: too short for the envelope test
        return False
    # How each band's level moves (its mean removed): two recordings of steady
    # noise (rain, rivers) do not correlate, two edits of one recording do.
    moves_a = mel_a[:, :n] - mel_a[:, :n].mean(1, keepdims=True)
    moves_b = mel_b[:, :n] - mel_b[:, :n].mean(1, keepdims=True)
    return float(np.corrcoef(moves_a.ravel(), moves_b.ravel())[0, 1]) > 0.8


def usable(files: list[tuple[str, Reader]], min_sound_s: float) -> list[Sound]:
    """The files of a class that decode, are neither too short nor near-silent,
    and duplicate none before them."""
    kept: list[Sound] = []
    for file_id, read in files:
        try:
            signal = trim(decode(read()))
        except Exception:  # a broken or unsupported file (or a dangling link)
            continue
        seconds = len(signal) / RATE
        loudness = level_db(signal) if len(signal) else -200
        if seconds < min_sound_s or loudness < MIN_LEVEL_DB:
            continue
        digest = hashlib.md5(np.round(signal[::5] * 512).astype(np.int16).tobytes()).hexdigest()
        if any(k.hash == digest for k in kept):
            continue
        package = file_id.split(":", 1)[0]
        prints = fingerprint(signal)
        sound = Sound(file_id, package, group_of(file_id), signal, seconds, digest, prints)
        if not any(near_duplicate(sound, k) for k in kept):
            kept.append(sound)
    return kept


def excerpts(seconds: float) -> int:
    """The clips a file can give: its full 5 s windows, and a zero-padded last
    part of at least ``MIN_TAIL_S``; one for a short file."""
    full = int(seconds // CLIP_S)
    tail = seconds - full * CLIP_S
    return max(1, min(MAX_PER_FILE, full + (1 if full and tail >= MIN_TAIL_S else 0)))


def pick(sounds: list[Sound], rng: random.Random) -> list[Sound]:
    """Up to ``PER_CLASS`` clips, one at a time, from the file that has the
    fewest clips so far (every file once before any twice), then the package
    with the fewest, then the group with the fewest, then the longest."""
    for sound in sounds:
        sound.tiebreak = rng.random()
    per_package: Counter[str] = Counter()
    per_group: Counter[str] = Counter()

    def order(s: Sound) -> tuple[int, int, int, int, float]:
        round_ = s.picked + (1 if per_package[s.package] >= PACKAGE_SHARE else 0)
        longer = -round(min(s.seconds, 10) * 2)  # in half seconds, up to 10 s
        return round_, per_package[s.package], per_group[s.group], longer, s.tiebreak

    for _ in range(PER_CLASS):
        open_ = [
            s
            for s in sounds
            if s.picked < excerpts(s.seconds) and per_group[s.group] < MAX_PER_GROUP
        ]
        if not open_:
            break
        best = min(open_, key=order)
        best.picked += 1
        per_package[best.package] += 1
        per_group[best.group] += 1
    return sorted((s for s in sounds if s.picked), key=lambda s: s.id)


def cut(sound: Sound, rng: random.Random) -> list[np.ndarray]:
    """The picked clips of a file, 5 s each."""
    signal, length = sound.signal, int(CLIP_S * RATE)
    if len(signal) <= length:  # the event at the start or at a random offset
        clip = np.zeros(length, np.float32)
        offset = 0 if rng.random() < 0.5 else rng.randint(0, length - len(signal))
        clip[offset : offset + len(signal)] = signal
        return [clip]
    full = len(signal) // length
    if sound.picked <= full:
        # Full windows on a randomly shifted grid, but for those 15 dB below the
        # loudest: the gaps between a sound's events.
        slack = len(signal) - full * length
        shift = rng.randint(0, slack) if slack else 0
        starts = [k * length + shift for k in range(full)]
        levels = [level_db(signal[a : a + length]) for a in starts]
        loud = [a for a, level in zip(starts, levels, strict=True) if level > max(levels) - 15]
        starts = sorted(rng.sample(loud if len(loud) >= sound.picked else starts, sound.picked))
    else:  # every full window and the zero-padded tail
        starts = [k * length for k in range(sound.picked)]
    clips = []
    for start in starts:
        clip = np.zeros(length, np.float32)
        piece = signal[start : start + length]
        clip[: len(piece)] = piece
        clips.append(clip)
    return clips


def clip_name(sound: Sound) -> str:
    """``package__file`` in characters that are safe in a file name."""
    stem = os.path.splitext(sound.id.split("!")[-1].split("/")[-1])[0]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{sound.package}__{stem}").strip("_")[:80]


def write_clips(
    label: str, sounds: list[Sound], rng: random.Random, out: Path
) -> list[dict[str, Any]]:
    """Cut and write a class's clips into ``out``; their manifest rows."""
    out.mkdir(parents=True)
    rows: list[dict[str, Any]] = []
    for sound in sounds:
        base = clip_name(sound)
        for k, clip in enumerate(cut(sound, rng)):
            name, i = f"{base}__{k}.wav", 0
            while (out / name).exists():  # two files of one name in different folders
                i += 1
                name = f"{base}_{i}__{k}.wav"
            sf.write(out / name, np.clip(clip, -1.0, 1.0), RATE, subtype="PCM_16")
            rows.append(
                {
                    "path": f"{label}/{name}",
                    "label": label,
                    "group": sound.group,
                    "source": sound.package,
                    "file": sound.id,  # not in the manifest: for the counts ``describe`` prints
                }
            )
    return rows


def assign_folds(rows: list[dict[str, Any]], rng: random.Random) -> None:
    """Per class, each group (largest first) to the fold that has the fewest
    clips of the class so far, then the fewest in all: a group in one fold only."""
    fold_of: dict[str, int] = {}
    overall: Counter[int] = Counter()
    for label in sorted({row["label"] for row in rows}):
        sizes = list(Counter(row["group"] for row in rows if row["label"] == label).items())
        rng.shuffle(sizes)
        sizes.sort(key=lambda item: -item[1])
        in_class = Counter({k: 0 for k in FOLDS})
        for group, n in sizes:
            keys = {k: (in_class[k], overall[k], rng.random()) for k in FOLDS}
            fold_of[group] = min(FOLDS, key=keys.__getitem__)
            in_class[fold_of[group]] += n
            overall[fold_of[group]] += n
    for row in rows:
        row["fold"] = fold_of[row["group"]]


def describe(rows: list[dict[str, Any]]) -> None:
    """What the set holds, per class."""
    print("| class | clips | distinct files | groups | packages | clips per fold |")
    print("|---|---:|---:|---:|---:|---|")
    for label in CLASSES:
        of = [row for row in rows if row["label"] == label]
        distinct = [len({row[key] for row in of}) for key in ("file", "group", "source")]
        folds = Counter(row["fold"] for row in of)
        cells = [label, len(of), *distinct, "/".join(str(folds[k]) for k in FOLDS)]
        print("| " + " | ".join(map(str, cells)) + " |")
    files, packages = len({r["file"] for r in rows}), len({r["source"] for r in rows})
    print(f"\n{len(rows)} clips from {files} files in {packages} packages\n")


def build(root: Path, out: Path) -> Path:
    """Label, pick, cut and write the clips; the manifest's path."""
    shutil.rmtree(out, ignore_errors=True)
    found = candidates(root)
    rows = []
    for label, rule in CLASSES.items():
        rng = random.Random(f"{SEED}:{label}")  # per class: one class's files move no other's
        chosen = pick(usable(found[label], rule.min_sound_s), rng)
        rows += write_clips(label, chosen, rng, out / label)
    assign_folds(rows, random.Random(SEED))
    describe(rows)
    manifest, partial = out / "manifest.csv", out / "manifest.csv.partial"
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in sorted(rows, key=lambda r: r["path"]):
            writer.writerow([row[c] for c in COLUMNS])
    partial.rename(manifest)  # written last, whole: a rerun trusts the clips it lists
    return manifest


def train(manifest: Path, work: Path) -> dict[str, Any]:
    """``harken train`` with the defaults (the manifest's folds); its JSON report."""
    argv = [sys.executable, "-c", "from cli import main; main()", "train"]
    argv += ["--manifest", str(manifest), "-o", str(work / "model.skops"), "--format", "json"]
    argv += ["--cache-dir", str(work / "cache")]
    done = subprocess.run(argv, cwd=REPO, stdout=subprocess.PIPE, text=True, check=True)
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def show(report: dict[str, Any], confusions: int = 8) -> None:
    """Mean fold accuracies, recall per class and the largest confusions."""
    folds = report["per_fold"]
    print(f"{report['clips']} clips, {report['groups']} groups, folds of", end=" ")
    print("/".join(map(str, folds["clips"])) + f" clips; model {report['model']}")
    if report["failed"]:
        print(f"{len(report['failed'])} clips could not be analyzed")
    print("\n| model | mean fold accuracy | sd |\n|---|---:|---:|")
    for member, mean in sorted(folds["mean"].items(), key=lambda m: -m[1]):
        print(f"| {member} | {mean:.3f} | {folds['std'][member]:.3f} |")
    scores = report["scores"]["ensemble"]
    print("\n| class | recall (ensemble) | clips |\n|---|---:|---:|")
    for label, m in sorted(scores["per_class"].items()):
        print(f"| {label} | {m['recall']:.2f} | {m['support']} |")
    classes, matrix = scores["classes"], scores["confusion"]
    wrong = [
        (matrix[i][j], truth, said)
        for i, truth in enumerate(classes)
        for j, said in enumerate(classes)
        if i != j and matrix[i][j]
    ]
    print("\n| what was wrong | clips |\n|---|---:|")
    for n, truth, said in sorted(wrong, key=lambda w: -w[0])[:confusions]:
        print(f"| {truth} as {said} | {n} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = Path(tempfile.gettempdir()) / "harken-environmental"
    parser.add_argument("--work", type=Path, default=default)
    work = parser.parse_args().work.resolve()
    versions = fetch(work)
    manifest = work / "clips" / "manifest.csv"
    if not manifest.exists():
        build(work / "x", work / "clips")
    show(train(manifest, work))
    print("\nPackages: " + ", ".join(f"{k} {v}" for k, v in versions.items()))


if __name__ == "__main__":
    main()
