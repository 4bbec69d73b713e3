"""analyzer.decode and analyzer.quality: real files, decoded and measured."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from analyzer.decode import BLOCK_FRAMES, Decoded, decode_signal, ogg_is_complete
from analyzer.errors import DecodeError, HarkenError
from analyzer.flac import samples_held
from analyzer.quality import SignalMeter, to_dbfs
from analyzer.results import SignalFacts

from signals import noise, silence, tone, write

TARGET = 16000
LIMIT = 3600.0


def sine(seconds: float, rate: int, *, amp: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def run(path: Path, *, target_rate: int = TARGET, max_duration: float = LIMIT) -> Decoded:
    return decode_signal(str(path), target_rate=target_rate, max_duration=max_duration)


def kind_of(path: Path | str, **kwargs: float) -> str:
    with pytest.raises(DecodeError) as info:
        decode_signal(str(path), target_rate=TARGET, max_duration=kwargs.get("max_duration", LIMIT))
    assert str(path) in str(info.value)  # the message names the file
    return info.value.kind


# --- mono mixdown -------------------------------------------------------------------------


def test_mono_file_is_returned_as_is_at_the_target_rate(tmp_path: Path) -> None:
    signal = noise(1.0, seed=3)
    path = write(tmp_path / "mono.wav", signal, subtype="FLOAT")
    out = run(path)
    assert out.signal.dtype == np.float32
    assert out.signal.ndim == 1
    np.testing.assert_array_equal(out.signal, signal)
    assert out.facts.channels == 1


def test_stereo_is_mixed_down_to_the_mean_of_the_channels(tmp_path: Path) -> None:
    left = sine(1.0, TARGET, amp=0.6)
    right = noise(1.0, seed=1, level=0.1)
    path = write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    out = run(path)
    assert out.signal.shape == (TARGET,)
    np.testing.assert_allclose(out.signal, (left + right) / 2, atol=1e-6)
    assert out.facts.channels == 2
    assert out.facts.frames == TARGET


def test_opposite_channels_cancel_in_the_mix(tmp_path: Path) -> None:
    left = sine(0.5, TARGET, amp=0.5)
    path = write(tmp_path / "phase.wav", np.stack([left, -left], axis=1), subtype="FLOAT")
    out = run(path)
    assert np.max(np.abs(out.signal)) < 1e-7
    # Facts are measured on every channel, not on the (silent) mix.
    assert out.facts.peak_dbfs == pytest.approx(to_dbfs(0.5), abs=0.05)


def test_multichannel_file_is_mixed_to_mono(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    block = (0.2 * rng.standard_normal((4000, 6))).astype(np.float32)
    path = write(tmp_path / "surround.wav", block, subtype="FLOAT")
    out = run(path)
    assert out.facts.channels == 6
    np.testing.assert_allclose(out.signal, block.mean(axis=1), atol=1e-6)


# --- resampling ---------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_to_16k_gives_the_right_length(tmp_path: Path, rate: int) -> None:
    seconds = 1.25
    path = write(tmp_path / f"r{rate}.wav", sine(seconds, rate, freq=440.0), rate=rate)
    out = run(path)
    assert abs(out.signal.size - int(seconds * TARGET)) <= 4
    assert out.facts.sample_rate == rate  # facts keep the native rate
    assert out.facts.frames == round(seconds * rate)
    assert out.signal.dtype == np.float32


@pytest.mark.parametrize("rate", [8000, 44100])
def test_resampling_keeps_the_tone(tmp_path: Path, rate: int) -> None:
    path = write(tmp_path / "tone.wav", sine(1.0, rate, amp=0.5, freq=1000.0), rate=rate)
    out = run(path)
    spectrum = np.abs(np.fft.rfft(out.signal))
    peak_hz = np.argmax(spectrum) * TARGET / out.signal.size
    assert peak_hz == pytest.approx(1000.0, abs=5.0)
    middle = out.signal[2000:-2000]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.5 / math.sqrt(2), rel=0.02)


def test_resampling_longer_than_one_block_keeps_the_length(tmp_path: Path) -> None:
    rate = 44100
    frames = BLOCK_FRAMES * 2 + 1234  # three blocks, the last one partial
    path = write(tmp_path / "long.wav", noise(frames / rate, rate=rate, seed=5), rate=rate)
    out = run(path)
    assert abs(out.signal.size - round(frames * TARGET / rate)) <= 4
    assert out.facts.frames == frames


def test_other_target_rates(tmp_path: Path) -> None:
    path = write(tmp_path / "t.wav", sine(1.0, 16000), rate=16000)
    assert abs(run(path, target_rate=22050).signal.size - 22050) <= 4
    assert abs(run(path, target_rate=8000).signal.size - 8000) <= 4


# --- formats ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt", "subtype", "tol"),
    [
        ("pcm16.wav", "WAV", "PCM_16", 1e-4),
        ("pcm24.wav", "WAV", "PCM_24", 1e-6),
        ("float.wav", "WAV", "FLOAT", 0.0),
        ("lossless.flac", "FLAC", "PCM_16", 1e-4),
    ],
)
def test_lossless_formats_decode_to_the_written_samples(
    tmp_path: Path, name: str, fmt: str, subtype: str, tol: float
) -> None:
    signal = noise(0.5, seed=11, level=0.2).clip(-0.9, 0.9)
    path = write(tmp_path / name, signal, format=fmt, subtype=subtype)
    out = run(path)
    np.testing.assert_allclose(out.signal, signal, atol=tol)
    assert out.facts.format == fmt
    assert out.facts.subtype == subtype


@pytest.mark.parametrize(
    ("name", "fmt", "subtype"),
    [("v.ogg", "OGG", "VORBIS"), ("m.mp3", "MP3", None)],
)
def test_lossy_formats_decode(tmp_path: Path, name: str, fmt: str, subtype: str | None) -> None:
    if fmt not in sf.available_formats():
        pytest.skip(f"this libsndfile cannot write {fmt}")
    rate = 44100
    path = write(tmp_path / name, sine(1.0, rate, amp=0.5), rate=rate, format=fmt, subtype=subtype)
    out = run(path)
    assert out.facts.format == fmt
    assert out.facts.sample_rate == rate
    assert out.facts.duration == pytest.approx(1.0, abs=0.06)
    assert abs(out.signal.size - TARGET) <= 0.06 * TARGET
    assert out.facts.peak_dbfs == pytest.approx(to_dbfs(0.5), abs=1.0)
    assert out.facts.rms_dbfs == pytest.approx(to_dbfs(0.5 / math.sqrt(2)), abs=1.0)


def test_mp3_subtype_is_reported(tmp_path: Path) -> None:
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile cannot write MP3")
    path = write(tmp_path / "m.mp3", tone(0.5), format="MP3")
    assert run(path).facts.subtype == "MPEG_LAYER_III"


def test_an_mp3_read_in_blocks_is_its_whole_read_and_makes_no_remark(tmp_path: Path) -> None:
    """python-soundfile's ``read`` seeks after every block; on this MP3 that
    seek made libmpg123 print "part2_3_length (...) too large for available bit
    count" and decode some hundred samples after a block's end wrong (0.24 off)."""
    import subprocess
    import sys

    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile cannot write MP3")
    rate = 22050
    chords = sum(sine(30.0, rate, amp=0.15, freq=f) for f in (220.0, 277.0, 330.0, 440.0))
    hiss = noise(30.0, rate, level=0.05)
    path = write(tmp_path / "chords.mp3", chords + hiss, rate=rate, format="MP3")
    whole, _ = sf.read(path, dtype="float32")
    blocks = decode_signal(str(path), target_rate=rate, max_duration=60.0).signal
    assert blocks.size == whole.size > 4 * BLOCK_FRAMES
    assert np.abs(blocks - whole).max() < 1e-6

    argv = ["-c", "from cli import main\nmain()", "scan", str(path), "-j", "1", "--no-cache"]
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "libmpg123" not in done.stderr and "part2_3_length" not in done.stderr


def test_blocks_are_read_by_soundfile_if_its_libsndfile_binding_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import analyzer.decode

    path = write(tmp_path / "long.flac", noise(5.0, 44100), rate=44100, format="FLAC")
    direct = decode_signal(str(path), target_rate=16000, max_duration=60.0)
    monkeypatch.setattr(analyzer.decode, "_LIBSNDFILE_READ", False)
    fallback = decode_signal(str(path), target_rate=16000, max_duration=60.0)
    np.testing.assert_array_equal(fallback.signal, direct.signal)
    assert fallback.facts == direct.facts


def test_conftest_audio_dir_decodes_entirely(audio_dir: Path) -> None:
    paths = sorted(audio_dir.rglob("*.*"))
    assert len(paths) == 5
    for path in paths:
        out = run(path)
        assert out.signal.size == pytest.approx(out.facts.duration * TARGET, abs=8)
        assert np.isfinite(out.signal).all()


# --- signal facts -------------------------------------------------------------------------


def test_facts_of_a_known_file(tmp_path: Path) -> None:
    rate = 22050
    stereo = np.stack([sine(2.0, rate, amp=0.25), sine(2.0, rate, amp=0.25)], axis=1)
    path = write(tmp_path / "facts.wav", stereo, rate=rate, subtype="PCM_24")
    facts = run(path).facts
    assert isinstance(facts, SignalFacts)
    assert facts.duration == pytest.approx(2.0)
    assert facts.sample_rate == rate
    assert facts.channels == 2
    assert facts.frames == 2 * rate
    assert facts.format == "WAV"
    assert facts.subtype == "PCM_24"


@pytest.mark.parametrize("amp", [1.0 - 2**-14, 0.5, 0.1, 0.01])
def test_peak_and_rms_of_a_sine(tmp_path: Path, amp: float) -> None:
    path = write(tmp_path / "sine.wav", sine(1.0, TARGET, amp=amp, freq=250.0), subtype="FLOAT")
    facts = run(path).facts
    assert facts.peak_dbfs == pytest.approx(20 * math.log10(amp), abs=0.01)
    assert facts.rms_dbfs == pytest.approx(20 * math.log10(amp / math.sqrt(2)), abs=0.01)


def test_peak_of_a_16_bit_sine(tmp_path: Path) -> None:
    path = write(tmp_path / "sine16.wav", sine(1.0, TARGET, amp=0.5, freq=250.0), subtype="PCM_16")
    assert run(path).facts.peak_dbfs == pytest.approx(-6.02, abs=0.01)


def test_clean_signal_has_no_clipping(tmp_path: Path) -> None:
    path = write(tmp_path / "clean.wav", sine(1.0, TARGET, amp=0.9))
    assert run(path).facts.clipping == 0.0


def test_clipping_fraction_of_a_signal_clipped_at_full_scale(tmp_path: Path) -> None:
    loud = sine(1.0, TARGET, amp=2.0, freq=100.0)
    clipped = np.clip(loud, -1.0, 1.0)
    expected = np.mean(np.abs(loud) >= 1.0)
    assert 0.3 < expected < 0.9  # the test signal really is heavily clipped
    path = write(tmp_path / "clip.wav", clipped, subtype="PCM_16")
    facts = run(path).facts
    assert facts.clipping == pytest.approx(expected, abs=0.01)
    assert facts.peak_dbfs == pytest.approx(0.0, abs=0.01)


def test_clipping_counts_samples_of_every_channel(tmp_path: Path) -> None:
    n = TARGET
    left = np.zeros(n, dtype=np.float32)
    left[: n // 4] = 1.0  # a quarter of one channel at full scale
    right = np.zeros(n, dtype=np.float32)
    path = write(tmp_path / "clip2.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    assert run(path).facts.clipping == pytest.approx(0.125, abs=1e-6)


def test_silence_fraction_of_half_silent_audio(tmp_path: Path) -> None:
    signal = np.concatenate([sine(1.0, TARGET, amp=0.3), silence(1.0)])
    path = write(tmp_path / "half.wav", signal)
    assert run(path).facts.silence == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize("rate", [8000, 44100])
def test_silence_fraction_at_other_rates(tmp_path: Path, rate: int) -> None:
    signal = np.concatenate([silence(1.5, rate=rate), noise(0.5, rate=rate, seed=2)])
    path = write(tmp_path / "quarter.wav", signal, rate=rate)
    assert run(path).facts.silence == pytest.approx(0.75, abs=0.03)


def test_a_last_partial_frame_counts_for_silence(tmp_path: Path) -> None:
    # 20 full 50 ms frames of tone, then 25 ms of silence: a 21st, partial, silent frame.
    signal = np.concatenate([sine(1.0, TARGET, amp=0.3), silence(0.025)])
    path = write(tmp_path / "tail.wav", signal, subtype="FLOAT")
    assert run(path).facts.silence == pytest.approx(1 / 21, abs=1e-4)


def test_levels_are_measured_over_every_channel(tmp_path: Path) -> None:
    left = sine(1.0, TARGET, amp=0.5, freq=250.0)
    right = np.zeros_like(left)
    path = write(tmp_path / "left-only.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    facts = run(path).facts
    # Mean square over both channels: (0.5**2 / 2 + 0) / 2 -> RMS 0.25.
    assert facts.rms_dbfs == pytest.approx(20 * math.log10(0.25), abs=0.01)
    assert facts.peak_dbfs == pytest.approx(20 * math.log10(0.5), abs=0.01)


def test_all_silent_and_never_silent(tmp_path: Path) -> None:
    quiet = run(write(tmp_path / "quiet.wav", silence(1.0))).facts
    assert quiet.silence == 1.0
    assert quiet.peak_dbfs <= -190.0
    assert quiet.rms_dbfs <= -190.0
    assert quiet.clipping == 0.0
    loud = run(write(tmp_path / "loud.wav", noise(1.0, seed=4))).facts
    assert loud.silence == 0.0


def test_very_quiet_audio_counts_as_silent(tmp_path: Path) -> None:
    # -70 dBFS RMS hiss is below the -60 dBFS silence threshold.
    hiss = noise(1.0, seed=6, level=10 ** (-70 / 20))
    assert run(write(tmp_path / "hiss.wav", hiss, subtype="FLOAT")).facts.silence == 1.0


def test_dc_offset_of_a_signal_with_a_constant_offset(tmp_path: Path) -> None:
    signal = sine(1.0, TARGET, amp=0.3, freq=100.0) + np.float32(0.2)
    path = write(tmp_path / "dc.wav", signal, subtype="FLOAT")
    assert run(path).facts.dc_offset == pytest.approx(0.2, abs=1e-3)
    negative = write(tmp_path / "dcneg.wav", -signal, subtype="FLOAT")
    assert run(negative).facts.dc_offset == pytest.approx(-0.2, abs=1e-3)


def test_a_dc_offset_is_no_sound_to_the_level_and_silence(tmp_path: Path) -> None:
    """A cheap recorder's 2 % offset made -70 dBFS room tone -34 dBFS, and
    not silent at all."""
    hiss = noise(2.0, seed=6, level=10 ** (-70 / 20))
    plain = run(write(tmp_path / "hiss.wav", hiss, subtype="FLOAT")).facts
    offset = run(write(tmp_path / "dc.wav", hiss + np.float32(0.02), subtype="FLOAT")).facts
    assert offset.rms_dbfs == pytest.approx(plain.rms_dbfs, abs=0.01)
    assert offset.silence == plain.silence == 1.0
    assert offset.dc_offset == pytest.approx(0.02, abs=1e-4)
    # Each channel's own offset: opposite ones do not hide each other.
    stereo = np.stack([hiss + np.float32(0.3), hiss - np.float32(0.3)], axis=1)
    both = run(write(tmp_path / "both.wav", stereo, subtype="FLOAT")).facts
    assert both.rms_dbfs == pytest.approx(plain.rms_dbfs, abs=0.01)


def test_a_last_short_frame_is_judged_by_its_sound() -> None:
    """A lone last sample has no variance of its own: it counted as silent."""
    t = np.arange(3 * 16000 + 1) / 16000
    loud = (0.5 * np.cos(2 * np.pi * 100 * t)).astype(np.float32)  # ends on a peak
    meter = SignalMeter(16000)
    meter.update(loud[:, np.newaxis], loud)
    assert meter.facts(channels=1, format="WAV", subtype="FLOAT").silence == 0.0


def test_levels_a_hair_under_full_scale_are_not_negative_zero() -> None:
    square = np.where(np.arange(16000) % 20 < 10, 0.99999, -0.99999).astype(np.float32)
    meter = SignalMeter(16000)
    meter.update(square[:, np.newaxis], square)
    facts = meter.facts(channels=1, format="WAV", subtype="FLOAT")
    assert json.dumps([facts.peak_dbfs, facts.rms_dbfs]) == "[0.0, 0.0]"  # was -0.0


def test_no_dc_offset_for_a_centred_signal(tmp_path: Path) -> None:
    path = write(tmp_path / "centred.wav", sine(1.0, TARGET, amp=0.5, freq=100.0), subtype="FLOAT")
    assert abs(run(path).facts.dc_offset) < 1e-4


def test_a_file_shorter_than_one_fft_frame_still_decodes(tmp_path: Path) -> None:
    signal = np.full(100, 0.25, dtype=np.float32)
    out = run(write(tmp_path / "short.wav", signal, subtype="FLOAT"))
    np.testing.assert_array_equal(out.signal, signal)
    assert out.facts.frames == 100
    assert out.facts.duration == pytest.approx(100 / TARGET)
    assert out.facts.dc_offset == pytest.approx(0.25)
    assert out.facts.silence == 1.0  # a constant is a DC offset, no sound


def test_a_short_file_at_another_rate_still_decodes(tmp_path: Path) -> None:
    out = run(write(tmp_path / "short44.wav", noise(100 / 44100, rate=44100, seed=8), rate=44100))
    assert out.facts.frames == 100
    assert abs(out.signal.size - round(100 * TARGET / 44100)) <= 2


def test_a_single_frame_file_decodes(tmp_path: Path) -> None:
    out = run(write(tmp_path / "one.wav", np.array([0.5], dtype=np.float32), subtype="FLOAT"))
    assert out.signal.tolist() == [0.5]
    assert out.facts.frames == 1


def test_signal_meter_gives_the_same_facts_whatever_the_block_size() -> None:
    rng = np.random.default_rng(12)
    block = (0.3 * rng.standard_normal((10007, 2))).clip(-0.9, 0.9).astype(np.float32)
    block[2000:6000] = 0.0
    block[100:110, 0] = 1.0

    def measure(step: int) -> SignalFacts:
        meter = SignalMeter(16000)
        for start in range(0, block.shape[0], step):
            part = block[start : start + step]
            meter.update(part, part.mean(axis=1))
        return meter.facts(channels=2, format="WAV", subtype="FLOAT")

    whole = measure(block.shape[0])
    assert measure(777) == whole
    assert measure(800) == whole
    assert whole.clipping == pytest.approx(10 / block.size, abs=1e-6)


# --- errors -------------------------------------------------------------------------------


def test_decode_error_is_a_harken_error() -> None:
    error = DecodeError("empty", "x.wav: the file is empty")
    assert isinstance(error, HarkenError)
    assert error.kind == "empty"
    assert str(error) == "x.wav: the file is empty"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    assert kind_of(path) == "empty"


def test_text_file_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "text.wav"
    path.write_text("this is not audio\n" * 20)
    assert kind_of(path) == "unsupported"


def test_random_bytes_are_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "random.mp3"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    assert kind_of(path) == "unsupported"


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    assert kind_of(tmp_path / "missing.wav") == "not_found"


def test_missing_file_raises_a_decode_error(tmp_path: Path) -> None:
    # Whatever its kind, a missing file is a DecodeError, never a raw exception.
    with pytest.raises(DecodeError):
        run(tmp_path / "missing.wav")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "folder.wav").mkdir()
    assert kind_of(tmp_path / "folder.wav") == "not_a_file"


def test_directory_raises_a_decode_error(tmp_path: Path) -> None:
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(DecodeError):
        run(tmp_path / "folder.wav")


def test_file_over_max_duration_is_too_long(tmp_path: Path) -> None:
    path = write(tmp_path / "two-seconds.wav", tone(2.0))
    assert kind_of(path, max_duration=1.5) == "too_long"
    assert run(path, max_duration=2.0).facts.duration == pytest.approx(2.0)


def test_too_long_is_judged_at_the_native_rate(tmp_path: Path) -> None:
    path = write(tmp_path / "44k.wav", tone(2.0, rate=44100), rate=44100)
    assert kind_of(path, max_duration=1.9) == "too_long"
    assert run(path, max_duration=2.1).facts.frames == 88200


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_wav_with_non_finite_samples_is_invalid(tmp_path: Path, bad: float) -> None:
    signal = noise(0.5, seed=9)
    signal[1234] = bad
    path = write(tmp_path / "nan.wav", signal, subtype="FLOAT")
    assert kind_of(path) == "invalid_samples"


def test_non_finite_sample_in_a_later_block_is_invalid(tmp_path: Path) -> None:
    signal = noise((BLOCK_FRAMES + 5000) / TARGET, seed=10)
    signal[-10] = np.nan
    path = write(tmp_path / "late-nan.wav", signal, subtype="FLOAT")
    assert kind_of(path) == "invalid_samples"


def test_a_truncated_flac_is_an_error_not_a_crash(tmp_path: Path) -> None:
    good = write(tmp_path / "good.flac", noise(1.0, seed=13), format="FLAC")
    data = good.read_bytes()
    bad = tmp_path / "truncated.flac"
    bad.write_bytes(data[:40])
    assert kind_of(bad) in {"unsupported", "corrupt", "empty"}


# --- a file cut short ----------------------------------------------------------------------


def test_bytes_that_look_like_an_ogg_page_do_not_hide_the_last_page(tmp_path: Path) -> None:
    path = tmp_path / "a.ogg"
    write(path, noise(3.0), 16000, format="OGG", subtype="VORBIS")
    good = path.read_bytes()
    assert ogg_is_complete(str(path))
    for junk in (
        b"OggS",
        b"OggS\x00\x04" + bytes(20) + b"\x05" + b"\xff" * 5,  # no whole page
        b"TAG" + bytes(125),  # an ID3v1 tag
        bytes(100_000),  # more than a page of something: no page in the tail at all
    ):
        path.write_bytes(good + junk)
        assert ogg_is_complete(str(path))
    path.write_bytes(good[: len(good) * 3 // 4])
    assert not ogg_is_complete(str(path))
    with pytest.raises(DecodeError, match="without its last page") as caught:
        decode_signal(str(path), target_rate=16000, max_duration=60)
    assert caught.value.kind == "truncated"


@pytest.mark.parametrize(
    ("fmt", "subtype", "sample_bytes"),
    [
        ("WAV", "PCM_16", 2),
        ("AIFF", "PCM_24", 3),
        ("AU", "ULAW", 1),  # AU logs no block size: the subtype tells it
        ("W64", "FLOAT", 4),
        ("RF64", "PCM_U8", 1),
    ],
)
def test_a_file_that_is_only_its_header_is_cut_short_by_all_it_declares(
    tmp_path: Path, fmt: str, subtype: str, sample_bytes: int
) -> None:
    # Every byte of audio is missing (was a division by zero: kind internal).
    rate = 48000
    path = tmp_path / f"whole.{fmt.lower()}"
    write(path, noise(2.0, seed=14, rate=rate), rate, format=fmt, subtype=subtype)
    whole = path.read_bytes()
    cut = tmp_path / f"header-only.{fmt.lower()}"
    cut.write_bytes(whole[: len(whole) - 2 * rate * sample_bytes])  # the data comes last
    with pytest.raises(DecodeError, match=r"declares 2\.00 s of audio, it holds 0\.00 s") as caught:
        run(cut)
    assert caught.value.kind == "truncated"


def test_a_file_libsndfile_cannot_place_is_not_said_to_be_missing(tmp_path: Path) -> None:
    whole = write(tmp_path / "whole.mp3", noise(2.0, seed=15), format="MP3")
    stub = tmp_path / "stub.mp3"
    stub.write_bytes(whole.read_bytes()[:200])
    with pytest.raises(DecodeError) as caught:
        run(stub)
    assert caught.value.kind == "unsupported"
    # libsndfile's own words were "File does not exist or is not a regular file"
    assert "does not exist" not in str(caught.value)


@pytest.mark.parametrize("subtype", ["IMA_ADPCM", "GSM610"])
def test_a_compressed_wav_cut_in_half_declares_its_whole_length(
    tmp_path: Path, subtype: str
) -> None:
    # A block of these holds hundreds of frames: by the block size, 4 s read as 0.004 s.
    path = write(tmp_path / "whole.wav", noise(4.0, seed=16), subtype=subtype)
    whole = path.read_bytes()
    cut = tmp_path / "half.wav"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DecodeError, match=r"declares 4\.\d\d s of audio, it holds 2\.") as caught:
        run(cut)
    assert caught.value.kind == "truncated"


@pytest.mark.parametrize("libsndfile_read", [True, False], ids=["own-read", "soundfile-read"])
@pytest.mark.parametrize(
    ("rate", "channels", "subtype"),
    [(16000, 1, "PCM_16"), (44100, 2, "PCM_24"), (8000, 1, "PCM_S8")],
)
def test_a_flac_cut_anywhere_is_cut_short_and_holds_its_whole_frames(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    libsndfile_read: bool,
    rate: int,
    channels: int,
    subtype: str,
) -> None:
    # libsndfile said "flac decoder lost sync" (kind corrupt) after 0.00 s, or,
    # cut between two frames, nothing at all (kind ok).
    import analyzer.decode

    monkeypatch.setattr(analyzer.decode, "_LIBSNDFILE_READ", libsndfile_read)
    signal = np.stack([noise(3.0, rate, seed=17 + c) for c in range(channels)], axis=1)
    whole = write(tmp_path / "whole.flac", signal, rate, subtype=subtype).read_bytes()
    cut = tmp_path / "cut.flac"
    for share in (0.1, 0.5, 0.9, 0.999):  # noise does not compress: bytes go with seconds
        cut.write_bytes(whole[: int(len(whole) * share)])
        with pytest.raises(DecodeError, match=r"declares 3\.00 s of audio") as caught:
            run(cut)
        assert caught.value.kind == "truncated"
        held = float(re.search(r"it holds (\d+\.\d+) s", str(caught.value))[1])  # type: ignore[index]
        frames = round(held * rate / 4096)  # whole frames of 4096 samples, 0.5 s at 8 kHz
        assert abs(held - frames * 4096 / rate) < 0.006  # (two decimals shown)
        # soundfile's own read gives none of a block that fails: what was decoded bounds it
        lowest = 3 * share - 4096 / rate if libsndfile_read else 0
        assert lowest <= held <= 3 * share


def test_a_file_whose_header_gives_no_length_is_held_to_the_limit_as_it_is_read(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "a.flac", noise(3.0, seed=19), format="FLAC")
    data = bytearray(path.read_bytes())
    data[8 + 13] &= 0xF0  # STREAMINFO's 36-bit total: 0, "not known"
    data[8 + 14 : 8 + 18] = bytes(4)
    path.write_bytes(bytes(data))
    assert run(path).facts.frames == 48000
    with pytest.raises(DecodeError, match="over the limit of 2 s") as caught:
        run(path, max_duration=2.0)
    assert caught.value.kind == "too_long"


def test_how_much_of_a_flac_stream_a_file_holds(tmp_path: Path) -> None:
    path = write(tmp_path / "a.flac", noise(2.0, seed=18), format="FLAC")
    whole = path.read_bytes()
    assert samples_held(str(path), 32000) is None  # its final frame is whole
    assert samples_held(str(path), 48000) == 32000  # STREAMINFO counts more than there is
    assert samples_held(str(path), 0) is None  # a length not known
    path.write_bytes(whole + b"TAG" + bytes(125))  # an ID3v1 tag after the last frame
    assert samples_held(str(path), 32000) is None
    item = (5).to_bytes(4, "little") + bytes(4) + b"Title\x00" + b"hello"
    ape = item + b"APETAGEX" + (2000).to_bytes(4, "little")
    ape += (len(item) + 32).to_bytes(4, "little") + (1).to_bytes(4, "little") + bytes(12)
    for tags in (ape, ape + b"TAG" + bytes(125)):  # an APEv2 tag, and an ID3v1 after it
        path.write_bytes(whole + tags)
        assert samples_held(str(path), 32000) is None
        path.write_bytes(whole[:-1] + tags)
        assert samples_held(str(path), 32000) == 28672
    path.write_bytes(whole + bytes(100_000))  # no frame in the tail: it does not tell
    assert samples_held(str(path), 32000) is None
    path.write_bytes(whole[: whole.index(b"\xff\xf8")])  # the metadata, no frame
    assert samples_held(str(path), 32000) == 0
    path.write_bytes(whole[:-1])  # the final frame, all but its last byte
    assert samples_held(str(path), 32000) == 28672  # 7 whole frames of 4096
    padded = whole[:42] + b"\x01" + (200_000).to_bytes(3, "big") + bytes(200_000) + whole[42:]
    path.write_bytes(padded[:-1])  # metadata as long as a cover picture's, after STREAMINFO
    assert samples_held(str(path), 32000) == 28672
    with pytest.raises(DecodeError, match=r"declares 2\.00 s of audio, it holds 1\.79 s"):
        run(path)
    wav = write(tmp_path / "a.wav", noise(1.0, seed=18))
    assert samples_held(str(wav), 16000) is None
