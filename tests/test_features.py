"""analyzer.features: FeatureConfig and its cache key, and the feature vector."""

from __future__ import annotations

import dataclasses
import json
import tracemalloc

import numpy as np
import pytest

from analyzer.featureconfig import MODULATION_EDGES_HZ, TEXTURE_NAMES
from analyzer.features import FeatureConfig, FeatureStream, extract, summarise

from signals import chord, noise, silence, tone

# A changed value for every field, so each one is shown to reach the cache key.
CHANGES = {
    "sample_rate": 22050,
    "n_fft": 2048,
    "hop_length": 256,
    "n_mels": 48,
    "n_mfcc": 13,
    "percentiles": (25, 50, 75),
    "n_bands": 8,
    "contour_parts": 3,
}


def test_every_field_has_a_change_listed() -> None:
    assert set(CHANGES) == {f.name for f in dataclasses.fields(FeatureConfig)}


# --- the config ---------------------------------------------------------------------------


def test_config_is_frozen() -> None:
    config = FeatureConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.n_fft = 2048  # type: ignore[misc]
    assert config.n_fft == 1024


def test_config_is_hashable_and_equal_by_value() -> None:
    a, b = FeatureConfig(), FeatureConfig()
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, FeatureConfig(n_mfcc=13)}) == 2


def test_cache_key_is_stable_across_calls_and_instances() -> None:
    key = FeatureConfig().cache_key()
    assert isinstance(key, str)
    assert len(key) >= 16
    assert FeatureConfig().cache_key() == key
    assert FeatureConfig.from_dict(FeatureConfig().to_dict()).cache_key() == key
    assert FeatureConfig(percentiles=(10, 50, 90)).cache_key() == key


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_cache_key_changes_when_a_field_changes(field: str) -> None:
    base = FeatureConfig()
    changed = dataclasses.replace(base, **{field: CHANGES[field]})
    assert changed != base
    assert changed.cache_key() != base.cache_key()


def test_all_single_changes_give_distinct_keys() -> None:
    keys = {FeatureConfig().cache_key()}
    keys |= {dataclasses.replace(FeatureConfig(), **{f: v}).cache_key() for f, v in CHANGES.items()}
    assert len(keys) == len(CHANGES) + 1


def test_percentile_order_is_part_of_the_key() -> None:
    a = FeatureConfig(percentiles=(10, 50, 90))
    b = FeatureConfig(percentiles=(90, 50, 10))
    assert a.cache_key() != b.cache_key()  # the vector order differs


def test_to_dict_is_plain_json() -> None:
    data = FeatureConfig().to_dict()
    assert data == {
        "sample_rate": 16000,
        "n_fft": 1024,
        "hop_length": 512,
        "n_mels": 64,
        "n_mfcc": 20,
        "percentiles": [10, 50, 90],
        "n_bands": 16,
    }
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize(
    "config",
    [
        FeatureConfig(),
        FeatureConfig(**CHANGES),
        FeatureConfig(percentiles=()),
        FeatureConfig(n_mfcc=1, percentiles=(5,)),
    ],
)
def test_to_dict_from_dict_round_trip(config: FeatureConfig) -> None:
    again = FeatureConfig.from_dict(config.to_dict())
    assert again == config
    assert isinstance(again.percentiles, tuple)
    assert hash(again) == hash(config)
    # Through JSON too (how a model card stores it).
    assert FeatureConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_feature_names_are_unique_and_counted() -> None:
    config = FeatureConfig()
    names = config.feature_names()
    assert len(names) == config.n_features
    assert len(set(names)) == len(names)
    assert names[0] == "mfcc0_mean"
    assert "rms_db_p90" in names


@pytest.mark.parametrize(
    "config",
    [
        FeatureConfig(n_mfcc=13, percentiles=(50,)),
        FeatureConfig(percentiles=()),
        FeatureConfig(n_mfcc=8, contour_parts=4),
    ],
)
def test_n_features_follows_the_config(config: FeatureConfig) -> None:
    assert config.n_features == len(config.feature_names())
    per_row = len(config.descriptor_names()) * (2 + len(config.percentiles))
    modulation = len(config.modulated_rows()) * (len(MODULATION_EDGES_HZ) - 1)
    contour = config.contour_parts * (len(config.contour_mfccs()) + 1)
    assert config.n_features == per_row + len(TEXTURE_NAMES) + modulation + contour


# --- extraction ---------------------------------------------------------------------------


def check_vector(vector: np.ndarray, config: FeatureConfig) -> None:
    assert vector.dtype == np.float32
    assert vector.shape == (config.n_features,)
    assert vector.shape == (len(config.feature_names()),)
    assert np.isfinite(vector).all()


@pytest.mark.parametrize(
    "signal",
    [
        pytest.param(silence(2.0), id="silence"),
        pytest.param(np.zeros(100, dtype=np.float32), id="100-zero-samples"),
        pytest.param(noise(100 / 16000, seed=1), id="100-noise-samples"),
        pytest.param(noise(2.0, seed=2), id="noise"),
        pytest.param(tone(1.0), id="tone"),
        pytest.param(chord(2.0), id="chord"),
        pytest.param(np.ones(16000, dtype=np.float32), id="dc"),
    ],
)
def test_extract_gives_a_finite_float32_vector(signal: np.ndarray) -> None:
    config = FeatureConfig()
    check_vector(extract(signal, config), config)


def test_extract_follows_a_non_default_config() -> None:
    config = FeatureConfig(n_fft=512, hop_length=128, n_mels=32, n_mfcc=13, percentiles=(25, 75))
    check_vector(extract(noise(1.0, seed=3), config), config)
    check_vector(extract(np.zeros(100, dtype=np.float32), config), config)


def test_extract_is_deterministic() -> None:
    config = FeatureConfig()
    signal = chord(2.0, seed=4)
    first = extract(signal, config)
    second = extract(signal.copy(), config)
    np.testing.assert_array_equal(first, second)
    assert first.tobytes() == second.tobytes()  # the cache stores these bytes


def test_extract_does_not_modify_its_input() -> None:
    signal = noise(0.5, seed=5)
    before = signal.copy()
    extract(signal, FeatureConfig())
    np.testing.assert_array_equal(signal, before)


def test_different_sounds_give_different_vectors() -> None:
    config = FeatureConfig()
    a = extract(tone(1.0), config)
    b = extract(noise(1.0, seed=6), config)
    assert not np.allclose(a, b)


def test_the_vector_means_what_its_names_say() -> None:
    config = FeatureConfig()
    names = config.feature_names()
    loud = extract(noise(1.0, seed=7, level=0.3), config)
    quiet = extract(noise(1.0, seed=7, level=0.003), config)
    rms = names.index("rms_db_mean")
    assert loud[rms] - quiet[rms] == pytest.approx(40.0, abs=1.0)
    zcr = names.index("zcr_mean")
    low = extract(tone(1.0, freq=200.0), config)[zcr]
    high = extract(tone(1.0, freq=4000.0), config)[zcr]
    assert high > 5 * low


def padded(signal: np.ndarray, lead: float, trail: float, rate: int = 16000) -> np.ndarray:
    zeros = np.zeros(int(lead * rate), np.float32), np.zeros(int(trail * rate), np.float32)
    return np.concatenate([zeros[0], signal, zeros[1]]).astype(np.float32)


def test_digital_silence_at_the_ends_is_left_out_of_the_summary() -> None:
    config = FeatureConfig()
    names = config.feature_names()
    sound = chord(1.25, seed=3)[:16000]  # a second of notes (chord() ends in a rest)
    plain, pad = extract(sound, config), extract(padded(sound, 0.3, 0.3), config)
    whole = summarise(descriptors(padded(sound, 0.3, 0.3), config), config)  # zeros kept
    for name, closer in (
        ("rms_db_mean", 10),
        ("rms_db_p10", 10),
        ("mfcc0_mean", 10),
        ("onset_mean", 2),
    ):
        i = names.index(name)
        # The frames fall half a hop or so apart, so not equal; but far closer
        # than with 0.6 s of zeros (rms -200 dB) in the summary.
        assert abs(pad[i] - plain[i]) < abs(whole[i] - plain[i]) / closer, name
    # Silence inside a file is content: a pause is kept.
    gap = np.concatenate([sound, np.zeros(16000, np.float32), sound])
    assert extract(gap, config)[names.index("rms_db_p10")] < -150


def test_a_file_of_digital_silence_is_summarised_whole() -> None:
    config = FeatureConfig()
    mean = config.feature_names().index("rms_db_mean")
    vector = extract(np.zeros(16000, np.float32), config)
    assert np.isfinite(vector).all() and vector[mean] < -150
    # A click in seconds of zeros is silence too: nothing is left out.
    click = padded(noise(0.01, seed=3), 1.0, 2.0)
    stream = FeatureStream(config)
    stream.push(click)
    assert extract(click, config)[mean] == summarise(stream.descriptors(), config)[mean] < -150


@pytest.mark.parametrize("seconds", [0.15, 0.5])
def test_a_short_sound_padded_with_zeros_is_that_sound(seconds: float) -> None:
    """Data sets pad short clips (a word, a bark) to seconds with zeros: the
    padding is left out even when it is most of the file."""
    config = FeatureConfig()
    names = config.feature_names()
    sound = noise(seconds, seed=5, level=0.3)
    plain = extract(sound, config)
    for lead, trail in ((0.0, 4.5), (2.0, 2.5)):
        signal = padded(sound, lead, trail)
        pad = extract(signal, config)
        whole = summarise(descriptors(signal, config), config)  # zeros kept
        for name in ("rms_db_mean", "rms_db_p10", "mfcc0_mean"):
            i = names.index(name)
            # The frames that straddle a cut differ; the zeros (-200 dB) are gone.
            assert abs(pad[i] - plain[i]) < abs(whole[i] - plain[i]) / 5, (name, lead)


def test_a_timeline_window_that_is_mostly_zeros_stays_whole() -> None:
    """A sliver of sound at a window's edge belongs to the next window: the
    window keeps its zeros, where a file of the same frames would not."""
    from analyzer.features import without_quiet_edges

    config = FeatureConfig()
    frames = descriptors(padded(noise(0.25, seed=6), 1.75, 0.0), config)
    assert without_quiet_edges(frames, config, window=True).shape == frames.shape
    assert without_quiet_edges(frames, config).shape[1] < frames.shape[1] / 4


def test_a_long_file_leaves_out_its_quiet_ends_too() -> None:
    """Past ``keep_frames``, the bounded summary cuts digital silence where
    the exact one does, however long the quiet is: its ends are left out, a
    pause inside is content, and a click in zeros (or zeros alone) is
    silence. The frames next to a cut are mended as in an exact summary, so
    every mean and std (MFCC deltas and onsets too) is the exact one."""
    config = FeatureConfig()
    names = config.feature_names()
    moments = 2 * len(config.descriptor_names())  # every mean, then every std
    sound = noise(70.0, seed=4, level=0.1)
    click = noise(0.01, seed=3)
    keep = 2048  # 65.5 s: every quiet run below but the 10 s ones is longer
    cases = [
        (padded(sound, 10, 0), "sound"),
        (padded(sound, 0, 10), "sound"),
        (padded(sound, 3, 3), "sound"),
        (padded(sound, 0, 100), "sound"),
        (padded(sound, 100, 0), "sound"),
        (padded(sound, 80, 90), "sound"),
        (np.concatenate([sound, np.zeros(100 * 16000), sound]), "pause"),
        (padded(noise(0.2, seed=5, level=0.3), 100, 1), "short"),
        (padded(click, 100, 0), "silence"),
        (padded(click, 50, 50), "silence"),
        (np.zeros(100 * 16000, np.float32), "silence"),
    ]
    for signal, kind in cases:
        bounded = FeatureStream(config, keep_frames=keep)
        bounded.push(signal.astype(np.float32))
        vector = bounded.vector()
        assert not bounded.exact
        exact = extract(signal.astype(np.float32), config)
        np.testing.assert_allclose(vector[:moments], exact[:moments], rtol=1e-4, atol=1e-4)
        for name in ("rms_db_p10", "rms_db_p90"):
            i = names.index(name)
            assert vector[i] == pytest.approx(exact[i], abs=0.5), (name, kind, signal.size)
        p10, p90 = vector[names.index("rms_db_p10")], vector[names.index("rms_db_p90")]
        expected = {"pause": p10 < -150 < -30 < p90, "silence": p90 < -150}
        assert expected.get(kind, p10 > -30)


def test_keeping_fewer_frames_than_a_chunk_holds_works() -> None:
    """A ``keep_frames`` under the first chunk's (about 1,020 frames) goes
    bounded at once, with nothing kept to pass on."""
    config = FeatureConfig()
    signal = padded(noise(40.0, seed=6, level=0.1), 2, 2)
    stream = FeatureStream(config, keep_frames=256)
    stream.push(signal)
    moments = 2 * len(config.descriptor_names())
    vector = stream.vector()
    assert not stream.exact
    np.testing.assert_allclose(
        vector[:moments], extract(signal, config)[:moments], rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("sound_first", [True, False])
def test_a_long_quiet_run_is_held_in_bounded_memory(sound_first: bool) -> None:
    """Minutes of digital silence held apart (in case a sound follows, or as
    the file's quiet start) do not grow the summary's memory: kept, the six
    minutes more would take 3.3 MB."""

    def peak(minutes: float) -> int:
        tracemalloc.start()
        stream = FeatureStream(FeatureConfig(), keep_frames=2048)
        sound, block = noise(1.0, seed=2), np.zeros(16000 * 10, np.float32)
        stream.push(sound if sound_first else block)
        for _ in range(int(minutes * 6)):
            stream.push(block)
        stream.push(block if sound_first else sound)
        stream.vector()
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return top

    peak(0.5)  # the first call's one-time allocations (FFT plans, caches)
    assert peak(8) - peak(2) < (1 << 20)


def descriptors(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    stream = FeatureStream(config)
    stream.push(signal)
    return stream.descriptors()


def test_descriptors_have_one_row_per_name() -> None:
    config = FeatureConfig()
    frames = descriptors(noise(1.0, seed=8), config)
    assert frames.shape[0] == len(config.descriptor_names())
    assert frames.shape[1] == 1 + 16000 // config.hop_length
    short = descriptors(np.zeros(100, dtype=np.float32), config)
    assert short.shape[0] == len(config.descriptor_names())
    assert short.shape[1] >= 1


def reference_descriptors(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The straightforward way: librosa's centred frames over the whole signal,
    each less its mean (a DC offset is no sound), then library calls."""
    import librosa

    sr, n_fft, hop = config.sample_rate, config.n_fft, config.hop_length
    if signal.size < n_fft:
        signal = np.pad(signal, (0, n_fft - signal.size))
    padded = np.pad(signal, n_fft // 2)  # librosa.stft(center=True, pad_mode="constant")
    frames = librosa.util.frame(padded, frame_length=n_fft, hop_length=hop)
    frames = frames - frames.mean(axis=0, dtype=np.float64).astype(np.float32)
    window = librosa.filters.get_window("hann", n_fft, fftbins=True)[:, np.newaxis]
    magnitude = np.abs(np.fft.rfft(frames * window, axis=0))
    mel = librosa.feature.melspectrogram(S=magnitude**2, sr=sr, n_fft=n_fft, n_mels=config.n_mels)
    mfcc = librosa.feature.mfcc(
        S=librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None), n_mfcc=config.n_mfcc
    )
    n = mfcc.shape[1]
    delta = librosa.feature.delta(mfcc, width=min(9, n if n % 2 else n - 1))
    positive = (frames >= 0) | (np.abs(frames) <= 1e-10)
    zcr = np.count_nonzero(positive[1:] != positive[:-1], axis=0) / n_fft
    rms = librosa.feature.rms(S=magnitude, frame_length=n_fft)
    return np.vstack(
        [
            mfcc,
            delta,
            librosa.feature.spectral_centroid(S=magnitude, sr=sr, n_fft=n_fft),
            librosa.feature.spectral_bandwidth(S=magnitude, sr=sr, n_fft=n_fft),
            librosa.feature.spectral_rolloff(S=magnitude, sr=sr, n_fft=n_fft),
            librosa.feature.spectral_flatness(S=magnitude),
            librosa.feature.spectral_contrast(
                S=magnitude, sr=sr, n_fft=n_fft, fmin=100.0, n_bands=6
            ),
            zcr[np.newaxis, :],
            20 * np.log10(np.maximum(rms, 1e-10)),
        ]
    )


@pytest.mark.parametrize("seconds", [0.01, 0.5, 3.0, 75.0])
def test_streamed_features_match_the_reference(seconds: float) -> None:
    """Chunked, block-fed features equal whole-signal library calls within float tolerance."""
    config = FeatureConfig()
    signal = chord(seconds, seed=4) + noise(seconds, seed=4, level=0.02)
    reference = reference_descriptors(signal, config)
    stream = FeatureStream(config)
    for start in range(0, signal.size, 7919):  # odd block sizes, across chunk boundaries
        stream.push(signal[start : start + 7919])
    streamed = stream.descriptors()[: len(reference)]  # librosa's rows come first
    assert streamed.shape == reference.shape
    # Roll-off is a bin frequency: float rounding at the threshold may move it one bin.
    rolloff = config.descriptor_names().index("rolloff")
    bin_hz = config.sample_rate / config.n_fft
    assert np.abs(streamed[rolloff] - reference[rolloff]).max() <= bin_hz
    # Contrast: librosa clips to 80 dB below the array's loudest value, harken
    # does not (it would depend on chunking); compare where that clip is idle.
    names = config.descriptor_names()[: len(reference)]
    contrast = np.array([name.startswith("contrast") for name in names])
    loud = reference[names.index("rms_db")] > -60
    np.testing.assert_allclose(
        streamed[contrast][:, loud], reference[contrast][:, loud], rtol=2e-3, atol=2e-3
    )
    others = (np.arange(streamed.shape[0]) != rolloff) & ~contrast
    np.testing.assert_allclose(streamed[others], reference[others], rtol=2e-3, atol=2e-3)


def test_mel_filters_match_librosa() -> None:
    import librosa

    from analyzer.spectral import mel_filters

    for sr, n_fft, n_mels in ((16000, 1024, 64), (22050, 2048, 128), (8000, 512, 40)):
        ours = mel_filters(sr, n_fft, n_mels)
        theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("frames", [2, 3, 4, 5, 8, 9, 10, 11, 200])
def test_delta_is_librosas_to_the_last_float32_bit_or_so(frames: int) -> None:
    """The closed-form delta against librosa's (a Savitzky-Golay fit per frame)."""
    import librosa

    from analyzer.spectral import delta

    rows = (np.random.default_rng(frames).standard_normal((20, frames)) * 30).astype(np.float32)
    ours = delta(rows)
    assert ours.dtype == np.float32 and ours.shape == rows.shape
    if frames < 3:
        assert not ours.any()  # librosa refuses; harken has no slope to give
        return
    theirs = librosa.feature.delta(rows, width=min(9, frames if frames % 2 else frames - 1))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    # A piece with 4 frames of context either side gives the bits of the whole.
    if frames >= 30:
        piece = delta(rows[:, 6:30])[:, 4:-4]
        np.testing.assert_array_equal(piece, ours[:, 10:26])


def test_hot_path_does_not_import_librosa() -> None:
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from analyzer.features import FeatureConfig, extract\n"
        "extract(np.random.default_rng(0).standard_normal(40000).astype(np.float32),"
        " FeatureConfig())\n"
        "print('librosa' in sys.modules, 'numba' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
