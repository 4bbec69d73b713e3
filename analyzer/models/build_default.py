"""Build the default model from the speech/music/noise/silence corpus.

    python -m analyzer.models.build_default --corpus PATH_TO_CORPUS

Every clip is decoded and featurised by the same code ``harken scan`` uses.
Each clip also gets one augmented copy (band-limited, re-levelled, noised;
see ``analyzer.augment``) for training. Grouped 5-fold cross-validation
(clips of one recording never on both sides) is scored on the original clips
and again on every test clip band-limited to 4 kHz, which shows whether the
model leans on bandwidth. A few clips the model never trains on (their whole
recording is held out) become ``examples/audio``. The report goes to
``analyzer/models/default-cv.md``; the model to ``analyzer/models/default.skops``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed

from analyzer.augment import augment, band_limit
from analyzer.dataset import LabeledClip, read_manifest
from analyzer.decode import decode_signal
from analyzer.ensemble import DEFAULT_MEMBERS, build_ensemble
from analyzer.features import FeatureConfig, extract
from analyzer.modelfile import save_model
from analyzer.training import choose_threshold, format_metrics, grouped_folds, metrics

HERE = Path(__file__).parent
REPO = HERE.parent.parent
SEED = 20261126
CLASSES = ["music", "noise", "silence", "speech"]
#: Licences whose clips may sit in examples/ with a plain attribution line.
EXAMPLE_LICENCES = {"CC-BY-3.0", "CC-BY-SA-3.0", "CC0-1.0", "GPL-2+", "GPL-3+", "Expat"}
EXAMPLES_PER_CLASS = 3


def featurise(clip: LabeledClip, index: int, config: FeatureConfig) -> tuple[np.ndarray, ...]:
    """Vectors of the clip as is, of one augmented copy, and band-limited to 4 kHz."""
    rng = np.random.default_rng([SEED, index])
    signal = decode_signal(clip.path, target_rate=config.sample_rate, max_duration=3600).signal
    rate = config.sample_rate
    return (
        extract(signal, config),
        extract(augment(signal, rate, clip.label, rng), config),
        extract(band_limit(signal, rate, narrow_rate=8000), config),
    )


def load_features(
    clips: list[LabeledClip], config: FeatureConfig, work: Path, jobs: int
) -> np.ndarray:
    """Feature array ``[shape=(3, n_clips, n_features)]``, cached in ``work``."""
    cache = work / f"features-{config.cache_key()}-{len(clips)}.npy"
    if cache.exists():
        return np.load(cache)
    start = time.perf_counter()
    rows = Parallel(n_jobs=jobs, batch_size=16)(
        delayed(featurise)(clip, i, config) for i, clip in enumerate(clips)
    )
    feats = np.stack([np.stack(r) for r in rows], axis=1)
    print(f"features of {len(clips)} clips in {time.perf_counter() - start:.0f} s")
    work.mkdir(parents=True, exist_ok=True)
    np.save(cache, feats)
    return feats


def fit_fold(
    feats: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray
) -> dict[str, Any]:
    """Fit on original + augmented train clips; predict original and narrowband tests."""
    X = np.concatenate([feats[0, train], feats[1, train]])
    y = np.concatenate([labels[train], labels[train]])
    model = build_ensemble(DEFAULT_MEMBERS, random_state=SEED).fit(X, y)
    out: dict[str, Any] = {"test": test}
    for name, X_test in (("original", feats[0, test]), ("narrowband", feats[2, test])):
        member = model.member_probabilities(X_test)
        out[name] = {"ensemble": np.mean(list(member.values()), axis=0), **member}
    return out


def cross_validate(
    feats: np.ndarray, labels: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], jobs: int
) -> dict[str, dict[str, np.ndarray]]:
    """Out-of-fold probabilities per condition and per member (and ensemble)."""
    results = Parallel(n_jobs=jobs)(delayed(fit_fold)(feats, labels, tr, te) for tr, te in folds)
    oof: dict[str, dict[str, np.ndarray]] = {}
    for fold in results:
        for cond in ("original", "narrowband"):
            for name, proba in fold[cond].items():
                arr = oof.setdefault(cond, {}).setdefault(
                    name, np.zeros((len(labels), len(CLASSES)))
                )
                arr[fold["test"]] = proba
    return oof


def pick_examples(clips: list[LabeledClip], labels: np.ndarray, proba: np.ndarray) -> list[int]:
    """A few clearly classified, freely licensed clips per class, one per source."""
    rng = np.random.default_rng(SEED)
    chosen: list[int] = []
    for cls in CLASSES:
        k = CLASSES.index(cls)
        candidates = [
            i
            for i, c in enumerate(clips)
            if labels[i] == cls
            and proba[i, k] > 0.8
            and c.meta.get("license") in EXAMPLE_LICENCES
            and 1.5 <= float(c.meta.get("duration_s") or 0) <= 5.0
        ]
        rng.shuffle(candidates)
        sources: set[str] = set()
        for i in candidates:
            if clips[i].meta.get("source") not in sources:
                chosen.append(i)
                sources.add(clips[i].meta.get("source", ""))
            if len(sources) == EXAMPLES_PER_CLASS:
                break
    return chosen


def write_examples(clips: list[LabeledClip], chosen: list[int], target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    lines = [
        "# Example clips",
        "",
        "Excerpts of freely licensed recordings, taken from harken's training corpus"
        " (built from Debian *main* packages). Every clip is a **modified** excerpt (cut,"
        " down-mixed, resampled to 16 kHz, level-changed, Ogg Vorbis re-encoded)."
        " The default model was trained without these clips' recordings.",
        "",
        "| file | class | source package | author / speaker | licence |",
        "|---|---|---|---|---|",
    ]
    for i in chosen:
        clip = clips[i]
        name = f"{clip.label}-{Path(clip.path).name.split('__')[0]}.ogg"
        shutil.copyfile(clip.path, target / name)
        lines.append(
            f"| {name} | {clip.label} | {clip.meta.get('source')} |"
            f" {clip.meta.get('speaker_or_artist') or '-'} | {clip.meta.get('license')} |"
        )
    lines += ["", "Licence texts: see `LICENSES.md` in this folder.", ""]
    (target / "ATTRIBUTION.md").write_text("\n".join(lines), encoding="utf-8")


def bullet_packages(bullet: str) -> set[str]:
    """Package names an attribution bullet covers: ``- **a-en-wav / -en-g722** ...``."""
    first, *more = bullet[4:].split("**")[0].split(" / ")
    stem = first.rsplit("-", 2)[0]
    return {first, *(stem + suffix for suffix in more)}


def write_attribution(corpus: Path, chosen: list[LabeledClip]) -> None:
    """Credit the corpus's sources: all of them for the model, the used ones for examples."""
    text = (corpus / "README.md").read_text(encoding="utf-8")
    licences = text[text.index("## Licences, copyright holders") :]
    (HERE / "TRAINING-DATA.md").write_text(
        "# Training data of the default model\n\n"
        "The default model was trained on the speech/music/noise/silence corpus described"
        " below: clips cut from freely licensed recordings in Debian *main* packages. This"
        " is the corpus's own licence and attribution section, reproduced as its licences"
        " require. The full copyright files of every package are in"
        " `examples/audio/COPYRIGHTS.txt`.\n\n" + licences,
        encoding="utf-8",
    )
    attribution = licences[licences.index("### Attribution text") :]
    bullets = [line for line in attribution.splitlines() if line.startswith("- **")]
    used = {clip.meta.get("source", "") for clip in chosen}
    wanted = [b for b in bullets if bullet_packages(b) & used]
    links = attribution[attribution.index("Licence texts:") :].split("\n\n")[0]
    lines = [
        "# Licences of the example clips",
        "",
        "Each clip is a modified excerpt of the recording credited below (see ATTRIBUTION.md",
        "for which clip comes from which package). Clips under a ShareAlike licence stay",
        "under it; GPL clips are distributed under the GPL (version 2 or later where the",
        "package says so; full texts at https://www.gnu.org/licenses/).",
        "",
        *wanted,
        "",
        links,
        "",
    ]
    (REPO / "examples" / "audio" / "LICENSES.md").write_text("\n".join(lines), encoding="utf-8")
    shutil.copyfile(corpus / "COPYRIGHTS.txt", REPO / "examples" / "audio" / "COPYRIGHTS.txt")


def report(
    oof: dict[str, dict[str, np.ndarray]], labels: np.ndarray, clips: list[LabeledClip]
) -> tuple[str, dict[str, Any]]:
    classes = CLASSES
    sections = [
        "# Default model: grouped cross-validation",
        "",
        "5 folds, grouped by recording (`group` column of the corpus manifest).",
        "",
    ]
    summary: dict[str, Any] = {}
    for cond in ("original", "narrowband"):
        for name, proba in oof[cond].items():
            pred = np.array(classes)[np.argmax(proba, axis=1)]
            m = metrics(labels, pred, classes)
            summary.setdefault(cond, {})[name] = {
                k: m[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")
            }
            if name == "ensemble":
                title = (
                    "Ensemble, clips as they are"
                    if cond == "original"
                    else "Ensemble, every test clip band-limited to 4 kHz"
                )
                sections.append(format_metrics(title, m))
                summary[cond]["ensemble_detail"] = m
    sections += [
        "### Per member (balanced accuracy)",
        "",
        "| member | original | band-limited to 4 kHz |",
        "|---|---:|---:|",
    ]
    for name in oof["original"]:
        sections.append(
            f"| {name} | {summary['original'][name]['balanced_accuracy']:.3f} |"
            f" {summary['narrowband'][name]['balanced_accuracy']:.3f} |"
        )
    sections += [
        "",
        "### Ensemble by source bandwidth (original clips)",
        "",
        "| bandwidth | clips | accuracy |",
        "|---|---:|---:|",
    ]
    pred = np.array(classes)[np.argmax(oof["original"]["ensemble"], axis=1)]
    bandwidth = np.array([c.meta.get("bandwidth", "n/a") for c in clips])
    for value in sorted(set(bandwidth)):
        mask = bandwidth == value
        sections.append(f"| {value} | {mask.sum()} | {np.mean(pred[mask] == labels[mask]):.3f} |")
    sections.append("")
    return "\n".join(sections), summary


def leave_one_source_out(
    clips: list[LabeledClip], labels: np.ndarray, feats: np.ndarray, jobs: int
) -> None:
    """Each source (Debian package, or synthetic/flite) held out in turn: the score
    that predicts what users' recordings from unseen sources will get."""
    sources = np.array([c.meta.get("source", "?") for c in clips])
    folds = [
        (np.flatnonzero(sources != s), np.flatnonzero(sources == s))
        for s in sorted(set(sources.tolist()))
    ]
    start = time.perf_counter()
    oof = cross_validate(feats, labels, folds, jobs)
    print(f"leave-one-source-out ({len(folds)} folds) in {time.perf_counter() - start:.0f} s")
    lines = [
        "# Default model: leave-one-source-out cross-validation",
        "",
        f"{len(folds)} folds: every clip of one source (the manifest's `source` column)"
        " is held out at a time, so the model is scored on sources it never heard.",
        "",
    ]
    for cond, title in (
        ("original", "clips as they are"),
        ("narrowband", "every test clip band-limited to 4 kHz"),
    ):
        pred = np.array(CLASSES)[np.argmax(oof[cond]["ensemble"], axis=1)]
        lines.append(format_metrics(f"Ensemble, {title}", metrics(labels, pred, CLASSES)))
    pred = np.array(CLASSES)[np.argmax(oof["original"]["ensemble"], axis=1)]
    lines += [
        "### Per member (balanced accuracy, clips as they are)",
        "",
        "| member | balanced accuracy |",
        "|---|---:|",
    ]
    for name, proba in oof["original"].items():
        member_pred = np.array(CLASSES)[np.argmax(proba, axis=1)]
        lines.append(
            f"| {name} | {metrics(labels, member_pred, CLASSES)['balanced_accuracy']:.3f} |"
        )
    lines += [
        "",
        "### Per held-out source",
        "",
        "| source | clips | classes | accuracy |",
        "|---|---:|---|---:|",
    ]
    for source in sorted(set(sources.tolist())):
        mask = sources == source
        classes = ", ".join(sorted(set(labels[mask].tolist())))
        lines.append(
            f"| {source} | {mask.sum()} | {classes} | {np.mean(pred[mask] == labels[mask]):.3f} |"
        )
    text = "\n".join(lines) + "\n"
    (HERE / "default-loso.md").write_text(text, encoding="utf-8")
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default=str(REPO.parent / "shared" / "corpus"))
    parser.add_argument("--work", default="/tmp/harken-build")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--loso",
        action="store_true",
        help="only leave-one-source-out cross-validation -> default-loso.md",
    )
    args = parser.parse_args()

    config = FeatureConfig()
    clips = read_manifest(Path(args.corpus) / "manifest.csv")
    labels = np.array([c.label for c in clips])
    groups = np.array([c.group for c in clips])
    feats = load_features(clips, config, Path(args.work), args.jobs)

    if args.loso:
        leave_one_source_out(clips, labels, feats, args.jobs)
        return
    start = time.perf_counter()
    folds = grouped_folds(labels, groups, n_splits=5, seed=SEED)
    oof = cross_validate(feats, labels, folds, args.jobs)
    print(f"cross-validation in {time.perf_counter() - start:.0f} s")
    text, summary = report(oof, labels, clips)

    chosen = pick_examples(clips, labels, oof["original"]["ensemble"])
    held_out = {clips[i].group for i in chosen}
    keep = np.array([g not in held_out for g in groups])
    X = np.concatenate([feats[0, keep], feats[1, keep]])
    y = np.concatenate([labels[keep], labels[keep]])
    ensemble = build_ensemble(DEFAULT_MEMBERS, random_state=SEED).fit(X, y)

    counts = {c: int(np.sum(labels[keep] == c)) for c in CLASSES}
    card = {
        "name": "harken-default",
        "classes": CLASSES,
        "members": list(DEFAULT_MEMBERS),
        "feature_config": config.to_dict(),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": {p: version(p) for p in ("scikit-learn", "librosa", "numpy", "skops")},
        "training": {
            "data": "harken speech/music/noise/silence corpus: clips of freely licensed"
            " recordings from Debian main packages; sources, licences and required"
            " attribution in analyzer/models/TRAINING-DATA.md",
            "clips_per_class": counts,
            "groups": len(set(groups[keep])),
            "augmentation": "one copy per clip: 50% band-limited (8/11.025 kHz), "
            "non-silence re-levelled to -42..-14 dBFS RMS, 33% noise at 15-40 dB SNR",
        },
        "cross_validation": {
            "folds": 5,
            "grouped_by": "recording (manifest group)",
            "original": summary["original"]["ensemble_detail"],
            "narrowband": summary["narrowband"]["ensemble_detail"],
            "members": {k: v for k, v in summary["original"].items() if k != "ensemble_detail"},
        },
        "unknown_threshold": choose_threshold(oof["original"]["ensemble"], labels, CLASSES),
    }
    ref = save_model(ensemble, HERE / "default.skops", card)
    (HERE / "default-cv.md").write_text(text, encoding="utf-8")
    write_examples(clips, chosen, REPO / "examples" / "audio")
    write_attribution(Path(args.corpus), [clips[i] for i in chosen])

    check = ensemble.predict(feats[0, chosen])
    wrong = [clips[i].path for i, p in zip(chosen, check, strict=True) if p != labels[i]]
    print(text)
    print(
        json.dumps(
            {
                "model": ref.model_id,
                "size": (HERE / "default.skops").stat().st_size,
                "examples": len(chosen),
                "examples_wrong": wrong,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
