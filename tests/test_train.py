"""``harken train``, ``evaluate`` and ``model show`` on small real data sets."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from analyzer.modelfile import load_ensemble, resolve_model
from cli import main
from cli.scan import EXIT_ERRORS, EXIT_USAGE

from signals import chord, noise, silence, tone, write


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def labeled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of six clips each, two clips per 'recording' (group)."""
    root = tmp_path_factory.mktemp("labeled")
    for i in range(6):
        write(root / "tones" / f"rec{i // 2}_tone{i}.wav", tone(1.0, freq=220.0 * (i + 1)))
        write(root / "notes" / f"rec{i // 2}_notes{i}.wav", chord(1.5, seed=i))
        write(root / "hiss" / f"rec{i // 2}_hiss{i}.wav", noise(1.0, seed=i, level=0.05 * (i + 1)))
    return root


@pytest.fixture(scope="module")
def model(labeled: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.skops"
    code, _, err = invoke(
        "train",
        str(labeled),
        "-o",
        str(path),
        "--cv",
        "3",
        "-j",
        "1",
        "--group-pattern",
        r"^(rec\d)_",
        "--name",
        "toy",
        "-q",
    )
    assert code == 0, err
    return path


def test_train_reports_and_writes_a_model(model: Path) -> None:
    assert model.exists()
    code, out, _ = invoke("model", "show", str(model), "-f", "json")
    assert code == 0
    card = json.loads(out)
    assert card["classes"] == ["hiss", "notes", "tones"]
    assert card["members"] == ["logreg", "svm", "extra_trees", "gboost"]
    assert card["training"]["clips_per_class"] == {"hiss": 6, "notes": 6, "tones": 6}
    assert card["training"]["groups"] == 3  # rec0..rec2, across class folders
    assert card["id"].startswith("toy@")
    assert 0.0 <= card["unknown_threshold"] <= 0.7
    assert card["feature_config"]["contour_parts"] == 3  # --contour's default
    ensemble = load_ensemble(resolve_model(model))
    assert ensemble.temperature_ == card["calibration"]["temperature"]


def test_train_json_report_has_every_score(labeled: Path, tmp_path: Path) -> None:
    code, out, err = invoke(
        "train",
        str(labeled),
        "-o",
        str(tmp_path / "m.skops"),
        "--cv",
        "3",
        "-j",
        "2",
        "--members",
        "logreg,extra_trees",
        "-f",
        "json",
        "-q",
    )
    assert code == 0, err
    report = json.loads(out)
    assert set(report["scores"]) == {"logreg", "extra_trees", "ensemble"}
    ensemble = report["scores"]["ensemble"]
    assert ensemble["classes"] == ["hiss", "notes", "tones"]
    assert len(ensemble["confusion"]) == 3 and sum(map(sum, ensemble["confusion"])) == 18
    assert ensemble["balanced_accuracy"] >= 0.8
    assert report["fold_source"] == "files"
    assert "WARNING: no groups (" in err
    calibration = report["calibration"]
    assert 0.2 <= calibration["temperature"] <= 5.0
    assert 0.0 <= calibration["error"] <= calibration["error_before"]


def write_manifest(
    labeled: Path, manifest: Path, column: str, value: Callable[[int, Path], object]
) -> list[Path]:
    """A manifest of the labeled clips: path, label and ``column`` from
    ``value(i, path)``; returns the clips in manifest order."""
    rows = sorted(labeled.rglob("*.wav"))
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", *column.split(",")])
        for i, path in enumerate(rows):
            extra = value(i, path)
            writer.writerow(
                [path, path.parent.name, *(extra if isinstance(extra, tuple) else [extra])]
            )
    return rows


def test_manifest_with_official_folds(labeled: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "data.csv"
    write_manifest(labeled, manifest, "fold", lambda i, _: 1 + i % 3)
    code, out, err = invoke(
        "train",
        "--manifest",
        str(manifest),
        "-o",
        str(tmp_path / "m.skops"),
        "-j",
        "1",
        "-f",
        "json",
        "--members",
        "logreg",
        "--contour",
        "0",
        "-q",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["fold_source"] == "given" and report["folds"] == 3
    assert "WARNING" not in err
    # Per test fold, as ESC-50-style benchmarks report: named by the fold column.
    per_fold = report["per_fold"]
    assert per_fold["folds"] == ["1", "2", "3"] and sum(per_fold["clips"]) == 18
    for member in ("logreg", "ensemble"):
        values = per_fold["accuracy"][member]
        assert len(values) == 3 and all(0 <= v <= 1 for v in values)
        assert per_fold["mean"][member] == pytest.approx(sum(values) / 3, abs=1e-4)
    code, out, _ = invoke("model", "show", str(tmp_path / "m.skops"), "-f", "json")
    card = json.loads(out)
    assert card["cross_validation"]["mean_fold_accuracy"] == per_fold["mean"]["ensemble"]
    assert "contour_parts" not in card["feature_config"]  # as the default model's
    code, out, _ = invoke("model", "show", str(tmp_path / "m.skops"))
    assert "mean fold accuracy" in out
    args = ["--manifest", str(manifest), "-o", str(tmp_path / "m.skops"), "--members", "logreg"]
    predictions = tmp_path / "cv.csv"
    code, out, _ = invoke("train", *args, "-j", "1", "-q", "--cv-predictions", str(predictions))
    assert code == 0 and "accuracy per test fold" in out and "1 (6)" in out
    # Each clip's fold as the manifest names it (was its number from 0).
    with manifest.open(newline="") as handle:
        given = {row["path"]: row["fold"] for row in csv.DictReader(handle)}
    with predictions.open(newline="") as handle:
        written = {Path(row["path"]).name: row["fold"] for row in csv.DictReader(handle)}
    assert written == {Path(path).name: fold for path, fold in given.items()}


def test_evaluate_and_scan_with_the_trained_model(model: Path, labeled: Path) -> None:
    code, out, _ = invoke("evaluate", str(labeled), "--model", str(model), "-f", "json", "-q")
    assert code == 0
    report = json.loads(out)
    assert report["scores"]["ensemble"]["accuracy"] >= 0.9  # its own training data
    assert report["analyzed"] == 18
    assert 0.0 <= report["calibration_error"] <= 1.0
    code, out, _ = invoke("evaluate", str(labeled), "--model", str(model), "-q")
    assert code == 0 and "balanced acc." in out
    code, out, _ = invoke("scan", str(labeled), "--model", str(model), "-f", "jsonl", "-j", "1")
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["label"] for r in rows} <= {"hiss", "notes", "tones", "unknown"}
    assert all(r["model"].startswith("toy@") for r in rows)
    # Scored as a scan answers, too (under the threshold: `unknown`, a mistake).
    for threshold, unknown in ((1.0, 18), (0.0001, 0)):
        args = ("--model", str(model), "-f", "json", "-q", "--min-confidence", str(threshold))
        code, out, _ = invoke("evaluate", str(labeled), *args)
        scanned = json.loads(out)["as_scanned"]
        assert scanned["unknown_threshold"] == threshold and scanned["unknown"] == unknown
        scores = scanned["scores"]["ensemble"]
        assert scores["confusion"][scores["classes"].index("unknown")] == [0, 0, 0, 0]
        expected = 0.0 if unknown else report["scores"]["ensemble"]["balanced_accuracy"]
        assert scores["balanced_accuracy"] == expected
    code, out, _ = invoke("evaluate", str(labeled), *args[:2], "-q", "--min-confidence", "1")
    assert "as scanned: 18 unknown (confidence < 1.0)" in out


def test_min_confidence_labels_unknown(labeled: Path) -> None:
    code, out, _ = invoke(
        "scan", str(labeled / "tones"), "-f", "jsonl", "-j", "1", "--min-confidence", "1.0"
    )
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["label"] for r in rows} == {"unknown"}
    assert all(r["agreement"] == 0 and r["probabilities"] for r in rows)


def test_default_model_card() -> None:
    code, out, _ = invoke("model", "show")
    assert code == 0 and "harken-default@" in out and "speech" in out
    flat = " ".join(out.replace("│", " ").split())
    assert "clips (music " in flat and " groups; 1 augmented copy of each clip" in flat
    assert "TRAINING-DATA.md" in flat and "{" not in flat  # read as text, not JSON


def test_training_usage_errors(labeled: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "m.skops")
    assert invoke("train", str(labeled), "-o", out, "--members", "knn")[0] == EXIT_USAGE
    code, _, err = invoke("train", str(labeled), "-o", "-")
    assert code == EXIT_USAGE and "a model is written to a file" in err
    code, _, err = invoke("train", str(labeled), "-o", out, "--cv-predictions", out)
    assert code == EXIT_USAGE and "--output and --cv-predictions name the same file" in err
    code, _, err = invoke("train", str(labeled), "-o", out, "--members", "logreg,svm,logreg")
    assert code == EXIT_USAGE and "logreg named more than once" in err  # the card said 3 members
    code, _, err = invoke("train", str(labeled), "-o", out, "--contour", "21")
    assert code == EXIT_USAGE and "--contour" in err and "0<=x<=20" in err
    assert invoke("train", "-o", out)[0] == EXIT_USAGE
    assert invoke("train", str(labeled / "tones"), "-o", out)[0] == EXIT_USAGE  # no classes
    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\na.wav,x\n")
    code, _, err = invoke("train", "--manifest", str(bad), "-o", out)
    assert code == EXIT_USAGE and "missing column" in err
    assert invoke("train", str(labeled), "-o", out, "--group-pattern", "(")[0] == EXIT_USAGE
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(b"path,label\ncaf\xe9.wav,x\n")
    code, _, err = invoke("train", "--manifest", str(latin1), "-o", out)
    assert code == EXIT_USAGE and "not UTF-8" in err
    blank = tmp_path / "blank.csv"
    blank.write_text("path,label\na.wav,x\nb.wav,  \n")
    code, _, err = invoke("train", "--manifest", str(blank), "-o", out)
    assert code == EXIT_USAGE and "line 3: empty path or label" in err
    for name in ("", " ", "two\nlines"):  # an id '@935e94b6ccaf'; a CSV cell across lines
        code, _, err = invoke("train", str(labeled), "-o", out, "--name", name)
        assert code == EXIT_USAGE and "a model needs a name" in err
    twice = tmp_path / "twice.csv"  # two annotators: the second label was taken silently
    twice.write_text("path,label,group,label\na.wav,x,g,y\n")
    code, _, err = invoke("train", "--manifest", str(twice), "-o", out)
    assert code == EXIT_USAGE and "column(s) label more than once in the header" in err
    file = tmp_path / "a-file"
    file.write_text("")
    code, _, err = invoke("train", str(labeled), "-o", str(file / "m.skops"))  # before any work
    assert code == EXIT_USAGE and "cannot write" in err and "--output" in err


def test_a_manifest_header_with_spaces_after_the_commas(labeled: Path, tmp_path: Path) -> None:
    from analyzer.dataset import load_dataset

    manifest = tmp_path / "data.csv"
    lines = [f"{p}, {p.parent.name}, g{i}" for i, p in enumerate(sorted(labeled.rglob("*.wav")))]
    manifest.write_text("\n".join(["path, label, group", *lines]) + "\n")
    dataset = load_dataset(None, manifest=str(manifest))  # was: missing column(s) label
    assert dataset.classes == ["hiss", "notes", "tones"] and dataset.grouped


def test_a_label_spelt_with_a_combining_accent_is_the_same_class(
    labeled: Path, tmp_path: Path
) -> None:
    # Folder names copied from macOS are decomposed: 'café' made two classes.
    from analyzer.dataset import load_dataset

    tree = tmp_path / "tree"
    shutil.copytree(labeled / "hiss", tree / "cafe\u0301")
    shutil.copytree(labeled / "notes", tree / "café")
    shutil.copytree(labeled / "tones", tree / "tones")
    dataset = load_dataset(str(tree))
    assert dataset.classes == ["café", "tones"]
    assert sum(c.label == "café" for c in dataset.clips) == 12 and not dataset.warnings
    manifest = tmp_path / "data.csv"
    manifest.write_text(
        "path,label\n" + "".join(f"{c.path},{c.path.split('/')[-2]}\n" for c in dataset.clips)
    )
    assert load_dataset(None, manifest=str(manifest)).classes == ["café", "tones"]


def test_a_file_listed_twice_in_a_manifest_is_refused_or_counted_once(
    model: Path, labeled: Path, tmp_path: Path
) -> None:
    from analyzer.dataset import load_dataset

    rows = write_manifest(labeled, tmp_path / "data.csv", "group", lambda i, p: p.name[:4])
    base = (tmp_path / "data.csv").read_text()
    first = rows[0]  # line 2, as an absolute path; again relative to the manifest, with ./
    again = "./" + os.path.relpath(first, tmp_path)
    out = str(tmp_path / "m.skops")
    for row, what, value in (
        (f"{again},{first.parent.name}-too,{first.name[:4]}", "label", "-too"),  # as reported
        (f"{again},{first.parent.name},elsewhere", "group", "elsewhere"),  # on both sides of a fold
    ):
        conflicting = tmp_path / f"conflicting-{what}.csv"
        conflicting.write_text(base + "\n" + row + "\n")  # line 21, after a blank line
        for command in (["train", "-o", out], ["evaluate", "--model", str(model)]):
            code, _, err = invoke(*command, "--manifest", str(conflicting), "-q")
            flat = " ".join(err.split())
            assert code == EXIT_USAGE, err
            assert f"{first} is listed more than once with a different {what}" in flat
            assert f"line 2 has {what} " in flat and f"line 21 ({again}) has {what} " in flat
            assert f"{value}'; give each file one row" in flat
    # The same row again (under another spelling) is one clip, with a warning.
    repeated = tmp_path / "repeated.csv"
    repeated.write_text(base + "\n" + f"{again},{first.parent.name},{first.name[:4]}\n")
    dataset = load_dataset(manifest=str(repeated))
    assert len(dataset.clips) == len(rows) == 18
    assert [c.path for c in dataset.clips].count(str(first)) == 1
    (warning,) = dataset.warnings
    assert (
        "1 row(s) repeat an earlier row" in warning
        and f"line 21 ({again}) repeats line 2" in warning
    )
    args = ["--manifest", str(repeated), "--model", str(model), "-f", "json", "-q"]
    code, out, err = invoke("evaluate", *args)
    assert code == 0 and json.loads(out)["analyzed"] == 18
    assert "line 21" in " ".join(err.split())


def _small_files(limit: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ


def test_a_model_that_cannot_be_written_leaves_the_old_one_and_no_scrap(
    labeled: Path, model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "m.skops"
    out.write_bytes(model.read_bytes())
    args = ["train", str(labeled), "-o", str(out), "-j", "1", "--no-cache", "-q"]
    done = subprocess.run(
        [sys.executable, "-c", "from cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: _small_files(16 << 10),  # a disk that fills up
    )
    assert done.returncode == 4, done.stderr
    assert "could not write" in done.stderr and "File too large" in done.stderr
    assert out.read_bytes() == model.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.skops"]  # was m.skops.tmp too


def test_a_model_written_to_a_symlink_replaces_its_target(labeled: Path, tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "v1.skops"
    target.write_bytes(b"old")
    link = tmp_path / "current.skops"
    link.symlink_to(target)
    code, _, err = invoke("train", str(labeled), "-o", str(link), "-j", "1", "-q", "--cv", "2")
    assert code == 0, err
    assert link.is_symlink() and resolve_model(link).model_id == resolve_model(target).model_id
    assert target.read_bytes()[:2] == b"PK"  # was: the link replaced, v1 left as it was


def test_what_a_class_tree_leaves_out_is_said(labeled: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(labeled, data)
    write(data / "stray.wav", tone(1.0))  # no class folder: no label
    (data / "empty").mkdir()
    from analyzer.dataset import load_dataset

    dataset = load_dataset(str(data))
    assert len(dataset.clips) == 18 and "empty" not in dataset.classes
    (loose, empty) = dataset.warnings
    assert "1 audio file(s) in" in loose and "stray.wav" in loose
    assert "no audio files in folder(s) empty" in empty
    model = str(tmp_path / "m.skops")
    code, _, err = invoke("train", str(data), "-o", model, "-j", "1", "-q", "--cv", "2")
    assert code == 0 and "stray.wav" in err and "folder(s) empty" in err
    code, _, err = invoke("evaluate", str(data), "--model", model, "-j", "1", "-q")
    assert code == 0 and "stray.wav" in err  # evaluate said none of its data's warnings


def test_a_refused_class_tree_still_says_what_it_left_out(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write(data / "tones" / "a.wav", tone(1.0))
    write(data / "b.wav", chord(1.0))  # meant for a class folder of its own
    code, _, err = invoke("train", str(data), "-o", str(tmp_path / "m.skops"))
    assert code == EXIT_USAGE and "at least two classes" in err and "b.wav" in err


def test_copies_with_other_labels_are_pointed_out(labeled: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(labeled, data)
    shutil.copy(data / "tones" / "rec0_tone0.wav", data / "hiss" / "mislabelled.wav")
    model = str(tmp_path / "m.skops")
    args = ("-j", "1", "-q", "--cv", "2", "--members", "logreg", "-o", model)
    code, _, err = invoke("train", str(data), *args)
    assert code == 0
    assert "2 clips are byte-identical to a clip with another label" in err
    assert "mislabelled.wav (hiss)" in err and "rec0_tone0.wav (tones)" in err


def test_a_class_called_unknown_is_refused(labeled: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "data.csv"
    write_manifest(labeled, manifest, "group", lambda i, _: f"g{i}")
    text = manifest.read_text().replace(",hiss,", ",unknown,")
    manifest.write_text(text)
    code, _, err = invoke("train", "--manifest", str(manifest), "-o", str(tmp_path / "m.skops"))
    assert code == EXIT_USAGE and "give that class another name" in err
    # An evaluation counted every unsure answer on such clips as right.
    code, _, err = invoke("evaluate", "--manifest", str(manifest), "--min-confidence", "1")
    assert code == EXIT_USAGE and "give that class another name" in err


@pytest.mark.parametrize(
    ("column", "value", "warning"),
    [
        ("group", lambda i, _: "" if i % 3 else f"g{i}", "12 of 18 clips have no group"),
        ("pattern", "^(rec[01])_", "--group-pattern matched 12 of 18 file names"),
        ("pattern", "^(nothing)?", "'^(nothing)?' matched none of the 18 file names"),
        ("label", None, "differ only in case"),
    ],
)
def test_partial_groups_are_pointed_out(
    labeled: Path, tmp_path: Path, column: str, value: Any, warning: str
) -> None:
    if column == "pattern":
        args = [str(labeled), "--group-pattern", value]
    elif column == "label":  # the first two clips' label in capitals
        write_manifest(labeled, tmp_path / "data.csv", "group", lambda i, _: f"g{i}")
        rows = (tmp_path / "data.csv").read_text().splitlines()
        for k in (1, 2):
            path, label, group = rows[k].split(",")
            rows[k] = ",".join([path, label.upper(), group])
        (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
        args = ["--manifest", str(tmp_path / "data.csv")]
    else:
        write_manifest(labeled, tmp_path / "data.csv", column, value)
        args = ["--manifest", str(tmp_path / "data.csv")]
    code, _, err = invoke(
        "train", *args, "-o", str(tmp_path / "m.skops"), "-j", "1", "--members", "logreg",
        "--cv", "2", "-q",
    )  # fmt: skip
    assert code == 0 and warning in err


def test_a_fold_column_must_give_every_clip_a_fold(
    model: Path, labeled: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "data.csv"
    write_manifest(labeled, manifest, "fold", lambda i, _: "" if i == 4 else 1 + i % 3)
    code, _, err = invoke("train", "--manifest", str(manifest), "-o", str(tmp_path / "m.skops"))
    assert code == EXIT_USAGE and "1 of 18 clips have no fold" in err
    code, _, err = invoke("evaluate", "--manifest", str(manifest), "--model", str(model), "-q")
    assert code == 0, err  # evaluation has no use for folds


def test_macro_f1_counts_only_the_classes_that_occur() -> None:
    import numpy as np

    from analyzer.training import metrics

    perfect = np.array(["speech"] * 6)
    m = metrics(perfect, perfect, ["music", "noise", "silence", "speech"])
    assert m["accuracy"] == m["balanced_accuracy"] == m["macro_f1"] == 1.0
    m = metrics(np.array(["a", "a"]), np.array(["a", "b"]), ["a", "b", "c"])
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0) / 2, abs=1e-4)  # "b" was answered
    # An abstention is a miss, not a class: it costs no more than a wrong answer.
    truth = np.array(["a", "a", "b", "b"])
    wrong = metrics(truth, np.array(["a", "b", "b", "b"]), ["a", "b"])
    abstained = metrics(truth, np.array(["a", "?", "b", "b"]), ["?", "a", "b"], abstain="?")
    assert abstained["macro_f1"] >= wrong["macro_f1"]  # was 0.556 against 0.733


def test_the_table_rounds_a_score_once() -> None:
    from rich.console import Console

    from analyzer.training import metrics
    from cli.render import training_report

    truth = np.array(["a"] * 21)
    m = metrics(truth, np.array(["a"] * 17 + ["b"] * 4), ["a", "b"])  # 17/21 = 0.80952
    console = Console(file=io.StringIO(), width=200)
    training_report(console, {"scores": {"ensemble": m}, "analyzed": 21, "clips": 21})
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "0.810" in shown and "0.809" not in shown  # was 0.8095, shown as 0.809


def test_folds_beyond_the_groups_are_reduced_with_a_note(labeled: Path, tmp_path: Path) -> None:
    code, out, err = invoke(
        "train", str(labeled), "-o", str(tmp_path / "m.skops"), "-j", "1", "--members",
        "logreg", "--cv", "9", "--group-pattern", r"^(rec\d)_", "-f", "json", "-q",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["folds"] == 3
    assert "3 folds, not 9: a class has only 3 groups" in err


def test_evaluate_on_one_class(model: Path, labeled: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(labeled / "tones", tmp_path / "only" / "tones")
    (tmp_path / "only" / "tones" / "broken.wav").write_bytes(b"")
    code, out, err = invoke("evaluate", str(tmp_path / "only"), "--model", str(model), "-q")
    assert code == 0, err
    assert "balanced acc." in out
    assert "warning: could not analyze" in err and "broken.wav: empty" in err
    # No hiss clips: no recall (it showed 0.000), and no precision unless predicted.
    (hiss,) = [line for line in out.splitlines() if line.split()[:1] == ["hiss"]]
    assert "n/a" in hiss and "0.000" not in hiss.split("│")[2]
    code, _, err = invoke("evaluate", str(labeled / "tones"), "--model", str(model), "-q")
    assert code == EXIT_USAGE and "no class folders" in err
    shutil.copytree(labeled / "hiss", tmp_path / "only" / "birds")
    code, out, _ = invoke("evaluate", str(tmp_path / "only"), "--model", str(model), "-q")
    assert code == 0 and "does not know the label(s) birds" in out
    code, out, _ = invoke("evaluate", str(tmp_path / "only"), "--model", str(model), "-f", "json")
    report = json.loads(out)
    assert report["labels_the_model_does_not_know"] == ["birds"]
    assert report["scores"]["ensemble"]["n"] == 12
    assert report["known_label_scores"]["ensemble"]["n"] == 6


def test_too_little_data_is_a_usage_error(tmp_path: Path) -> None:
    one = tmp_path / "one"
    write(one / "a" / "x.wav", tone(1.0))
    write(one / "b" / "y.wav", noise(1.0))
    write(one / "b" / "z.wav", noise(1.0, seed=1))
    code, _, err = invoke("train", str(one), "-o", str(tmp_path / "m.skops"), "-q")
    assert code == EXIT_USAGE and "at least two groups" in err and "; a has one" in err
    manifest = tmp_path / "gone.csv"
    manifest.write_text("\ufeffpath,label\nmissing1.wav,a\nmissing2.wav,b\n")  # with a BOM
    code, _, err = invoke(
        "train", "--manifest", str(manifest), "-o", str(tmp_path / "m.skops"), "-q"
    )
    # The files that could not be analyzed are named: they are why (they were not).
    gone = [tmp_path / "missing1.wav", tmp_path / "missing2.wav"]
    named = f"2 of the clips could not be analyzed: {gone[0]} (not_found); {gone[1]}"
    assert code == EXIT_USAGE and "two classes" in err and named in err
    code, _, err = invoke("evaluate", "--manifest", str(manifest), "-q")
    assert code == EXIT_USAGE and "none of the clips" in err and named in err
    (tmp_path / "missing2.wav").write_bytes((one / "b" / "y.wav").read_bytes())
    manifest.write_text("path,label\nmissing1.wav,a\nmissing2.wav,b\none/a/x.wav,a\n")
    code, _, err = invoke(
        "train", "--manifest", str(manifest), "-o", str(tmp_path / "m.skops"), "-q"
    )
    assert code == EXIT_USAGE and "at least two groups" in err
    assert f"1 of the clips could not be analyzed: {gone[0]} (not_found)" in err


def test_augmented_training_with_leave_one_source_out(
    labeled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "data.csv"
    rows = write_manifest(
        labeled, manifest, "group,source", lambda i, path: (path.name[:4], f"site{i % 3}")
    )
    args = ["train", "--manifest", str(manifest), "-o", str(tmp_path / "m.skops"), "-q"]
    args += ["-f", "json", "--members", "logreg,extra_trees", "--augment", "2"]
    predictions = tmp_path / "oof.csv"
    code, out, err = invoke(
        *args, "-j", "1", "--folds-from", "source", "--cv-predictions", str(predictions),
        "--note", "toy sounds, CC0",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    oof = list(csv.DictReader(io.StringIO(predictions.read_text())))
    assert len(oof) == len(rows) and {r["fold"] for r in oof} == {"site0", "site1", "site2"}
    assert {r["label"] for r in oof} == {"tones", "notes", "hiss"}
    assert all(r["predicted"] and r["narrowband_predicted"] for r in oof)
    right = sum(r["predicted"] == r["label"] for r in oof) / len(oof)
    assert right == pytest.approx(report["scores"]["ensemble"]["accuracy"], abs=1e-3)
    assert report["fold_source"] == "column source" and report["folds"] == 3
    assert sorted(report["per_fold"]["folds"]) == ["site0", "site1", "site2"]  # the sources
    narrow = report["narrowband_scores"]["ensemble"]
    assert narrow["n"] == len(rows) and 0.0 <= narrow["balanced_accuracy"] <= 1.0
    code, out, _ = invoke("model", "show", str(tmp_path / "m.skops"), "-f", "json")
    card = json.loads(out)
    assert card["training"]["augmented_copies"] == 2
    assert card["training"]["data"] == "toy sounds, CC0"
    assert "narrowband_balanced_accuracy" in card["cross_validation"]
    # The variants are cached with the clips: a second run analyzes nothing
    # (a worker would crash on every file).
    monkeypatch.setenv("HARKEN_FAULT", "crash:*.wav")
    code, again, err = invoke(*args, "-j", "2", "--folds-from", "source")
    assert code == 0 and json.loads(again)["failed"] == []
    assert json.loads(again)["narrowband_scores"] == report["narrowband_scores"]
    monkeypatch.delenv("HARKEN_FAULT")
    code, _, err = invoke(*args, "--folds-from", "nowhere")
    assert code == EXIT_USAGE and "not a column" in err


def test_augmented_copies_are_altered_and_reproducible() -> None:
    import numpy as np

    from analyzer.augment import rms_dbfs, training_variants

    signal = chord(2.0, seed=3)
    first = training_variants(signal, 16000, 3, "ab12cd34ef567890")
    again = training_variants(signal, 16000, 3, "ab12cd34ef567890")
    assert len(first) == 4 and all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    spectrum = np.abs(np.fft.rfft(first[0]))
    freqs = np.fft.rfftfreq(signal.size, 1 / 16000)
    assert spectrum[freqs > 4500].max() < 1e-3 * spectrum.max()  # the 4 kHz check copy
    quiet = np.full(16000, 1e-5, dtype=np.float32)
    for copy in training_variants(quiet, 16000, 4, "00ff")[1:]:
        assert rms_dbfs(copy) < -60  # unlabelled but quiet: stays quiet
    room = (noise(1.0, seed=2) * 0.01).astype(np.float32)  # about -50 dBFS
    assert -55 < rms_dbfs(room) < -45
    for copy in training_variants(room, 16000, 6, "00ff", "silence")[1:]:
        assert rms_dbfs(copy) < -45  # labelled silence keeps its level
    assert max(rms_dbfs(c) for c in training_variants(room, 16000, 6, "00ff", "noise")) > -42


def test_short_copies_are_excerpts_of_sound_not_of_pauses() -> None:
    """Half the copies of a long clip are 0.5-1.5 s excerpts (short music and
    speech exist too); an excerpt that falls in a pause is moved to the sound."""
    import numpy as np

    from analyzer.augment import EXCERPT_S, excerpt, rms_dbfs, training_variants

    rng = np.random.default_rng(1)
    talk = np.concatenate([silence(4.0), chord(1.0, seed=2), silence(4.0)])
    for _ in range(20):
        piece = excerpt(talk, 16000, rng)
        assert EXCERPT_S[0] * 16000 <= piece.size <= EXCERPT_S[1] * 16000
        assert rms_dbfs(piece) > rms_dbfs(talk) - 10.0
    short = chord(0.9, seed=2)
    assert excerpt(short, 16000, rng) is short  # too short to cut
    long = chord(6.0, seed=4)
    sizes = [copy.size for copy in training_variants(long, 16000, 40, "77aa")[1:]]
    assert 10 <= sum(size < long.size for size in sizes) <= 30


def test_copies_are_put_in_rooms_and_over_background_noise() -> None:
    """Speech from amateur and acted recordings was called noise while the
    copies were clean and dry: some copies now reverberate, and some carry
    white-to-brown noise 5-30 dB under the sound."""
    import numpy as np

    from analyzer.augment import (
        NOISE_LOWEST_HZ,
        NOISE_SNR_DB,
        coloured_noise,
        over_background,
        reverberate,
        rms_dbfs,
    )

    rng = np.random.default_rng(5)
    click = np.zeros(16000, dtype=np.float32)
    click[100] = 1.0
    wet = reverberate(click, 16000, rng)
    assert wet.size == click.size and abs(wet[100] - 1.0) < 0.2  # the dry sound is kept
    tail = wet[1700:3300]  # 0.1-0.2 s after the click: the room's, not the click's
    assert rms_dbfs(tail) > -60
    assert reverberate(click[:0], 16000, rng).size == 0
    slopes = []
    freqs = np.fft.rfftfreq(1 << 15, 1 / 16000)
    for _ in range(30):
        hiss = coloured_noise(1 << 15, 16000, rng)
        power = np.abs(np.fft.rfft(hiss)) ** 2
        assert power[freqs < NOISE_LOWEST_HZ].max() < 1e-6 * power.max()  # no drift, no rumble
        low = power[(freqs >= 200) & (freqs < 400)].mean()
        high = power[(freqs >= 3200) & (freqs < 6400)].mean()  # four octaves up
        slopes.append(10 * np.log10(low / high) / 4)
    assert -1.5 < min(slopes) < 2.0 and 4.0 < max(slopes) < 7.5  # dB per octave
    assert np.mean(slopes) == pytest.approx(3.0, abs=1.0)
    # The noise is scaled to the clip: the clip stays on top, but not by far.
    signal = chord(1.0, seed=6)
    snrs = []
    for _ in range(40):
        noisy = over_background(signal, 16000, rng)
        snrs.append(rms_dbfs(signal) - rms_dbfs(noisy - signal))
    assert NOISE_SNR_DB[0] <= min(snrs) < 10 and 25 < max(snrs) <= NOISE_SNR_DB[1]
    assert over_background(signal[:0], 16000, rng).size == 0  # a clip of no samples


def test_a_few_clips_a_class_train_every_member(tmp_path: Path) -> None:
    """Three clips a class leave two to train on in each of 3 folds: the svm
    member calibrates on two folds, not its usual three (which failed with
    scikit-learn's traceback). Two a class leave one: a usage error that
    says what to do."""
    data = tmp_path / "few"
    for i in range(3):
        write(data / "tones" / f"t{i}.wav", tone(1.0, freq=300.0 + 150 * i))
        write(data / "hiss" / f"h{i}.wav", noise(1.0, seed=i))
    out = tmp_path / "m.skops"
    code, _, err = invoke("train", str(data), "-o", str(out), "-j", "1", "-q")
    assert code == 0 and out.exists(), err
    (data / "tones" / "t2.wav").unlink()
    code, _, err = invoke("train", str(data), "-o", str(tmp_path / "m2.skops"), "-j", "1", "-q")
    assert code == EXIT_USAGE and "too few clips of '" in err, err  # two folds now
    assert "1 is left to train on" in err and "--members logreg,extra_trees,gboost" in err
    code, _, err = invoke(
        "train", str(data), "-o", str(tmp_path / "m3.skops"), "-j", "1", "-q",
        "--members", "logreg,extra_trees",
    )  # fmt: skip
    assert code == 0, err


def test_a_fold_that_leaves_no_clip_of_a_class_to_train_on_still_trains(tmp_path: Path) -> None:
    """Recordings that hold clips of several classes can leave a fold's
    training side without a class: that fold's fit leaves it out."""
    rows = [  # grouped folds (seed 0) leave fold 2 no noise to train on
        ("speech", "rec3"), ("music", "rec1"), ("music", "rec0"), ("noise", "rec4"),
        ("noise", "rec4"), ("speech", "rec4"), ("noise", "rec2"), ("music", "rec4"),
        ("speech", "rec3"),
    ]  # fmt: skip
    lines = ["path,label,group"]
    for i, (label, group) in enumerate(rows):
        signal = {"speech": chord(1.0, seed=i), "music": tone(1.0, freq=200.0 + 50 * i)}.get(
            label, noise(1.0, seed=i)
        )
        write(tmp_path / f"{label}{i}.wav", signal)
        lines.append(f"{label}{i}.wav,{label},{group}")
    manifest = tmp_path / "data.csv"
    manifest.write_text("\n".join(lines) + "\n")
    code, out, err = invoke(
        "train", "--manifest", str(manifest), "-o", str(tmp_path / "m.skops"), "-j", "1",
        "--members", "logreg,extra_trees", "-f", "json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["folds"] == 2
    # A fold that leaves one class to train on cannot be fitted at all.
    from analyzer.errors import UsageError
    from analyzer.training import check_class_sizes

    y = np.array(["music", "music", "noise", "noise"])
    folds = [(np.array([0, 1]), np.array([2, 3]))]
    with pytest.raises(UsageError, match="only clips of 'music' are left to train on"):
        check_class_sizes(y, ["music", "noise"], folds, ["1"], ("logreg",))


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        (lambda i, label: "one", "at least two folds"),
        (lambda i, label: label, "no hiss"),
        (lambda i, label: "" if i == 0 else "a", "has no value"),
    ],
)
def test_folds_that_cannot_be_trained_on_are_usage_errors(
    labeled: Path, tmp_path: Path, sources: Any, message: str
) -> None:
    manifest = tmp_path / "data.csv"
    write_manifest(labeled, manifest, "source", lambda i, path: sources(i, path.parent.name))
    code, _, err = invoke(
        "train", "--manifest", str(manifest), "-o", str(tmp_path / "m.skops"), "-j", "1",
        "--members", "logreg", "--folds-from", "source", "-q",
    )  # fmt: skip
    assert code == EXIT_USAGE and message in err


def test_model_files_that_are_not_harken_ensembles_are_refused(
    model: Path, labeled: Path, tmp_path: Path
) -> None:
    import zipfile

    import numpy as np
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    card = json.loads(zipfile.ZipFile(model).read("harken/card.json"))
    plain = tmp_path / "plain.skops"
    fitted = LogisticRegression().fit(np.eye(2), [0, 1])
    sio.dump(fitted, plain)
    with zipfile.ZipFile(plain, "a") as archive:
        archive.writestr("harken/card.json", json.dumps(card))
    code, _, err = invoke("scan", str(labeled / "tones"), "--model", str(plain), "-j", "1")
    assert code == EXIT_USAGE and "LogisticRegression, not a harken ensemble" in err
    no_classes = tmp_path / "no-classes.skops"
    del card["classes"]
    with zipfile.ZipFile(no_classes, "w") as archive:
        archive.writestr("harken/card.json", json.dumps(card))
    code, _, err = invoke("model", "show", str(no_classes))
    assert code == EXIT_USAGE and "card lacks classes" in err


def test_a_model_of_another_feature_code_or_an_invalid_config_is_refused(
    model: Path, labeled: Path, tmp_path: Path
) -> None:
    """A card from feature code 8 (before ``n_bands``) says to retrain; a card
    whose feature config cannot be built is a clear error, not a traceback."""
    import zipfile

    from analyzer.featureconfig import FEATURE_CODE_VERSION

    card = json.loads(zipfile.ZipFile(model).read("harken/card.json"))
    assert card["feature_code_version"] == FEATURE_CODE_VERSION
    old_config = {k: v for k, v in card["feature_config"].items() if k != "n_bands"}
    edits = {
        "old.skops": ({"feature_code_version": 8, "feature_config": old_config}, "retrain"),
        "bad.skops": (
            {"feature_config": {**card["feature_config"], "n_mels": 40}},
            "feature config is not valid (n_mels (40) must be a multiple of n_bands (16))",
        ),
        "odd.skops": (
            {"feature_config": {**card["feature_config"], "colour": "blue"}},
            "feature config is not valid",
        ),
    }
    broken = tmp_path / "broken.skops"  # a card without what the table shows: refused only
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("harken/card.json", json.dumps({**card, "feature_config": None}))
    code, out, err = invoke("model", "show", str(broken))
    assert code == EXIT_USAGE and out == "" and "Traceback" not in err
    for name, (changes, message) in edits.items():
        edited = tmp_path / name
        with zipfile.ZipFile(edited, "w") as archive:
            archive.writestr("harken/card.json", json.dumps({**card, **changes}))
        code, out, err = invoke("model", "show", str(edited), "-f", "json")
        assert code == EXIT_USAGE and message in err, (name, err)
        # Its card is still shown: its classes and data, to retrain it.
        shown = json.loads(out)
        assert shown["classes"] == card["classes"] and "cannot use this model" in err
        assert shown["usable"] is False and message in shown["error"]
        code, out, err = invoke("model", "show", str(edited))
        assert code == EXIT_USAGE and "classes" in out and message in err
        code, _, err = invoke("scan", str(labeled / "tones"), "--model", str(edited), "-j", "1")
        assert code == EXIT_USAGE and message in err, (name, err)


def test_a_model_file_replaced_after_the_run_started_is_refused(
    model: Path, tmp_path: Path
) -> None:
    """Results are cached under the fingerprint read at the start: the workers
    must not answer with another file's model."""
    from analyzer.errors import ModelError

    copy = tmp_path / "m.skops"
    copy.write_bytes(model.read_bytes())
    ref = resolve_model(copy)
    copy.write_bytes(Path(resolve_model().path).read_bytes())  # the default model
    with pytest.raises(ModelError, match="changed while harken was using it"):
        load_ensemble(ref)


def _resaved(model: Path, target: Path, edit: Callable[[Any], None], **card: Any) -> Path:
    """``model`` loaded, changed by ``edit`` and saved again with ``card`` entries."""
    import zipfile

    from analyzer.modelfile import save_model

    ensemble = load_ensemble(resolve_model(model))
    edit(ensemble)
    saved = json.loads(zipfile.ZipFile(model).read("harken/card.json"))
    save_model(ensemble, target, {**saved, **card})
    return target


def test_a_model_with_untrusted_types_is_refused_cached_or_not(
    model: Path, labeled: Path, tmp_path: Path
) -> None:
    """Refused unless --trust-model, and the same from the cache: results a
    --trust-model run cached made the same command pass (nothing loaded it)."""
    import collections

    def add(ensemble: Any) -> None:
        ensemble.notes_ = collections.Counter(a=1)  # a type outside the allow-list

    edited = _resaved(model, tmp_path / "untrusted.skops", add)
    scan = ("scan", str(labeled / "tones"), "--model", str(edited), "-j", "1", "-q")
    for trust in ((), ("--trust-model",), ()):
        code, _, err = invoke(*scan, *trust)
        if trust:
            assert code == 0, err
        else:
            assert code == EXIT_USAGE and "does not trust: collections.Counter" in err, err
    # No file needs the model: a missing one is still just missing.
    missing = str(tmp_path / "missing.wav")
    code, out, err = invoke("scan", missing, "--model", str(edited), "-j", "1", "-f", "jsonl")
    assert code == EXIT_ERRORS and json.loads(out)["error"]["kind"] == "not_found", err


def test_a_model_that_no_longer_answers_as_saved_is_refused(model: Path, tmp_path: Path) -> None:
    """A model file keeps a few training rows with its members' answers; loaded
    where it answers otherwise (another scikit-learn), it is refused with what
    to do, not used."""
    import numpy as np
    import sklearn

    from analyzer.errors import ModelError
    from analyzer.modelfile import ModelWarning

    ensemble = load_ensemble(resolve_model(model))
    assert ensemble.answer_drift() == 0.0
    assert ensemble.probe_answers_.shape == (4, ensemble.probe_rows_.shape[0], 3)

    def shift(e: Any) -> None:
        e.probe_answers_ = e.probe_answers_ + 0.01

    def spoil(e: Any) -> None:
        e.probe_answers_ = e.probe_answers_ * np.nan

    def narrow(e: Any) -> None:
        e.probe_rows_ = e.probe_rows_[:, :5]

    def forget(e: Any) -> None:
        del e.probe_rows_, e.probe_answers_

    here = {"versions": {"scikit-learn": sklearn.__version__}}
    old = {"versions": {"scikit-learn": "1.0.2"}}
    cases = [
        (shift, here, r"no longer gives the answers it was saved with \(they differ by up to"
         r" 0\.01\)\. Retrain it with harken train\."),
        (shift, old, rf"It was built with scikit-learn 1\.0\.2, this is {sklearn.__version__}:"
         r" retrain it here with harken train, or install scikit-learn==1\.0\.2\."),
        (spoil, here, r"differ by up to nan\)"),
        (narrow, old, r"the model fails to answer \(.*features.*\)\. It was built with"),
    ]  # fmt: skip
    for i, (edit, card, message) in enumerate(cases):
        edited = _resaved(model, tmp_path / f"m{i}.skops", edit, **card)
        with pytest.raises(ModelError, match=message):
            load_ensemble(resolve_model(edited))
    # A file from before probes existed loads unchecked, with a warning where
    # another scikit-learn built it.
    unprobed = load_ensemble(resolve_model(_resaved(model, tmp_path / "old.skops", forget)))
    assert unprobed.answer_drift() is None
    with pytest.warns(ModelWarning, match="saved before harken models checked their own"):
        elsewhere = _resaved(model, tmp_path / "older.skops", forget, **old)
    assert load_ensemble(resolve_model(elsewhere)).answer_drift() is None  # said once only
    # A scan says so once, not again from every pool worker that loads it.
    clips = tmp_path / "clips"
    for i in range(4):
        write(clips / f"tone{i}.wav", tone(0.5, freq=300.0 + 100 * i))
    # (a rule naming a class reads the model card before the scan starts)
    rule = ["--fail-on", f"label == {ensemble.classes_[0]}"]
    for extra in ([], rule):
        scan = subprocess.run(
            [sys.executable, "-c", "from cli import main; main()", "scan", str(clips),
             "--model", str(elsewhere), "-j", "2", "-q", "--no-cache", *extra],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert scan.returncode in (0, 1), scan.stderr
        assert scan.stderr.count("saved before harken models checked") == 1, scan.stderr
        assert scan.stderr.startswith("warning: "), scan.stderr  # one plain line
    rows = np.asarray(ensemble.probe_rows_)
    assert np.array_equal(unprobed.predict_proba(rows), ensemble.predict_proba(rows))


def test_byte_identical_clips_never_straddle_a_fold(labeled: Path, tmp_path: Path) -> None:
    """The same file under two names is one recording, whatever the groups say."""
    import shutil

    import numpy as np

    from analyzer.training import join_duplicates

    joined, moved = join_duplicates(np.array(["a", "a", "b", "c", "d"]), ["x", "y", "y", "z", "x2"])
    assert joined[0] == joined[1] == joined[2] != joined[3] != joined[4]
    assert moved == 2  # the two clips of "y", in groups a and b

    data = tmp_path / "data"
    shutil.copytree(labeled, data)
    shutil.copy(data / "tones" / "rec0_tone0.wav", data / "tones" / "rec2_copy.wav")
    args = ["-j", "1", "--members", "logreg", "-q", "-o", str(tmp_path / "m.skops")]
    code, _, err = invoke("train", str(data), "--group-pattern", r"^(rec\d)_", "--cv", "3", *args)
    assert code == 0 and "2 clips are byte-identical to a clip of another group" in err
    manifest = tmp_path / "folds.csv"
    write_manifest(data, manifest, "fold", lambda i, path: 1 + i % 3)
    code, _, err = invoke("train", "--manifest", str(manifest), *args)
    assert code == 0 and "2 clips have a byte-identical copy in another" in err


def test_given_folds_come_in_numeric_order() -> None:
    # UrbanSound8K's folds 1-10 were reported as 1, 10, 2, ...
    from analyzer.training import folds_for

    names = [str(n) for n in range(1, 11)]
    labels = np.array(["a", "b"] * 10)
    given: list[str | None] = [names[i // 2] for i in range(20)]
    folds = folds_for(labels, labels, given, n_splits=5)
    assert [given[test[0]] for _, test in folds] == names
