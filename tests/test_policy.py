"""``--fail-on`` rules and JUnit reports."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.baseline import Entry, Move, compare, load_baseline
from analyzer.cache import hash_bytes
from analyzer.errors import UsageError
from analyzer.policy import RuleError, parse_rule, violations
from analyzer.results import FileResult, Prediction
from cli import main
from cli.scan import EXIT_ERRORS, EXIT_RULES, EXIT_USAGE

from signals import chord, silence, write

RECORD = {
    "path": "a/b.wav",
    "status": "ok",
    "label": "noise",
    "confidence": 0.55,
    "agreement": 3,
    "members": 4,
    "probabilities": {"noise": 0.55, "speech": 0.3},
    "votes": {"svm": "noise"},
    "signal": {
        "duration": 0.8,
        "sample_rate": 8000,
        "clipping": 0.002,
        "channels": 2,
        "format": "WAV",
        "subtype": "PCM_16",
    },
    "error": None,
}
ERROR = {
    "path": "c.wav",
    "status": "error",
    "label": None,
    "confidence": None,
    "signal": None,
    "error": {"kind": "empty", "message": "c.wav: empty"},
}


@pytest.mark.parametrize(
    ("rule", "on_ok", "on_error"),
    [
        ("label in {noise, silence}", True, False),
        ("label not in {noise}", False, False),
        ("confidence < 0.6", True, False),
        ("confidence >= 0.6", False, False),
        ("clipping > 0.001", True, False),
        ("duration < 1", True, False),
        ("sample_rate != 16000", True, False),
        ("sample_rate == 8000", True, False),
        ("status != ok", False, True),
        ("error.kind == empty", False, True),
        ("probabilities.speech >= 0.3", True, False),
        ("votes.svm == noise", True, False),
        ("label == 'noise' and (agreement < 2 or channels > 1)", True, False),
        ("not label == noise", False, True),
        ("confidence < 0.5 or status == error", False, True),
        # libsndfile's names are upper case; a rule's may be either
        ("format == wav", True, False),
        ("subtype in {pcm_16, pcm_24}", True, False),
        ("format != WAV", False, False),
    ],
)
def test_rules(rule: str, on_ok: bool, on_error: bool) -> None:
    parsed = parse_rule(rule)
    assert parsed.fails(RECORD) is on_ok
    assert parsed.fails(ERROR) is on_error


@pytest.mark.parametrize(
    ("rule", "points_at"),
    [
        ("lable == x", 0),
        ("confidence < high", 13),
        ("label in {a, b", 14),
        ("confidence ~ 3", 11),
        ("(label == x", 11),
        ("label == x extra", 11),
        ("label", 5),
        ("label < 3", 6),  # a word is never less than a number
        ("error.message >= 2", 14),
        ("status == okk", 10),  # statuses and error kinds are known without a model
        ("error.kind in {empty, trunc}", 22),
        # a typo that could never match (or always would) must not turn a gate off
        ("channels == stereo", 12),
        ("confidence == noise", 14),
        ("sample_rate not in {8k, 16000}", 20),
        ("probabilities.music != high", 23),
        ("format == wave", 10),
        ("subtype == pcm16", 11),
    ],
)
def test_bad_rules_point_at_the_mistake(rule: str, points_at: int) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(rule)
    caret_line = str(caught.value).splitlines()[-1]
    assert caret_line.index("^") - 2 == points_at


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ("confidence < 0.5 and", "expected a field, found 'the end'"),
        ("label = noise", "unexpected character '=' (equality is ==)"),
        ("path == a/x.wav", "quote a value that holds it"),
        ("lable == noise", "unknown field 'lable' (did you mean 'label'?)"),
        ("fraction_speech > 0.5", "(did you mean 'fraction.speech'?)"),
        ("probability.speech > 0.5", "(did you mean 'probabilities.speech'?)"),
        ("error_kind == timeout", "(did you mean 'error.kind'?)"),
        ("colour == red", "unknown field 'colour'; fields are"),
    ],
)
def test_bad_rules_say_what_was_meant(rule: str, says: str) -> None:
    with pytest.raises(RuleError, match=re.escape(says)):
        parse_rule(rule)


def test_a_rule_is_named_without_the_spaces_around_it() -> None:
    # from a variable's line, '   label == music  ' was listed with its spaces
    assert parse_rule("   label == music  ").text == "label == music"


def test_rules_record_the_values_they_compare_with() -> None:
    rule = parse_rule("label in {music, 'unknown'} or votes.svm != noise and confidence < 0.5")
    assert rule.values == (("label", "music"), ("label", "unknown"), ("votes.svm", "noise"))


def test_violations_lists_the_failed_rules() -> None:
    rules = [parse_rule("confidence < 0.6"), parse_rule("label == music")]
    assert violations(rules, RECORD) == ["confidence < 0.6"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write(tmp_path / "set" / "quiet.wav", silence(1.0))
    write(tmp_path / "set" / "sub" / "notes.wav", chord(2.0))
    return tmp_path / "set"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["scan", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_failing_rule_exits_1_and_names_the_files(folder: Path) -> None:
    code, out, err = run(str(folder), "-j", "1", "-f", "jsonl", "--fail-on", "label == silence")
    assert code == EXIT_RULES
    assert len(out.splitlines()) == 2  # results are still written
    assert "1 file(s) failed --fail-on rules" in err and "quiet.wav: label == silence" in err
    code, _, _ = run(str(folder), "-j", "1", "--fail-on", "label == speech and duration > 60")
    assert code == 0


def test_bad_rule_is_a_usage_error_before_any_work(folder: Path, isolated_cache: Path) -> None:
    code, out, err = run(str(folder), "--fail-on", "confidence < high")
    assert code == EXIT_USAGE and out == "" and "needs a number" in err and "^" in err
    assert not isolated_cache.exists()


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("probabilities.bogus > 0.1", "unknown class 'bogus'"),
        ("votes.bogus == music", "unknown member 'bogus'"),
        # A label value the model never gives: a typo that would turn the gate off.
        ("label in {silnce}", "unknown class 'silnce' in 'label in {silnce}'"),
        ("label == Music", "the model's are music, noise, silence, speech (and unknown)"),
        ("votes.gboost != speach", "unknown class 'speach'"),
        ("votes.gboost == unknown", "the model's are music, noise, silence, speech\n"),
    ],
)
def test_rules_on_a_class_or_member_the_model_lacks_are_refused(
    folder: Path, rule: str, message: str
) -> None:
    code, _, err = run(str(folder), "--fail-on", rule)
    assert code == EXIT_USAGE and message in err


def test_errors_take_precedence_over_rules(folder: Path) -> None:
    (folder / "broken.wav").write_bytes(b"not audio")
    code, _, _ = run(str(folder), "-j", "1", "--fail-on", "status != ok")
    assert code == EXIT_ERRORS
    code, _, _ = run(str(folder), "-j", "1", "--fail-on", "status != ok", "--allow-errors")
    assert code == EXIT_RULES


def test_junit_report(folder: Path, tmp_path: Path) -> None:
    (folder / "broken.wav").write_bytes(b"not audio")
    report = tmp_path / "junit.xml"
    code, _, _ = run(
        str(folder),
        "-j",
        "1",
        "--junit",
        str(report),
        "--allow-errors",
        "--fail-on",
        "label == silence",
    )
    assert code == EXIT_RULES
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"broken.wav", "quiet.wav", "notes.wav"}
    assert cases["notes.wav"].get("classname") == str(folder / "sub")
    failure = cases["quiet.wav"].find("failure")
    assert failure is not None and "label == silence" in failure.get("message", "")
    assert json.loads(failure.text or "")["label"] == "silence"
    error = cases["broken.wav"].find("error")
    assert error is not None and error.get("type") == "unsupported"
    assert cases["notes.wav"].find("failure") is None and cases["notes.wav"].find("error") is None


def test_baseline_reports_new_removed_and_relabeled(folder: Path, tmp_path: Path) -> None:
    before = tmp_path / "before.jsonl"
    code, _, _ = run(str(folder), "-j", "1", "-o", str(before))
    assert code == 0
    rows = [json.loads(line) for line in before.read_text().splitlines()]
    quiet = next(r for r in rows if r["path"].endswith("quiet.wav"))
    quiet["label"] = "speech"  # pretend it used to be heard otherwise
    rows.append({**quiet, "path": str(folder / "gone.wav")})
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(rows))  # a JSON list works as well as JSONL
    write(folder / "added.wav", chord(1.0, seed=7))
    code, _, err = run(str(folder), "-j", "1", "--baseline", str(edited))
    assert code == 0
    assert "baseline: 1 new, 1 removed, 0 moved, 1 relabeled" in err
    assert "quiet.wav: speech -> silence" in err and "gone.wav" in err and "added.wav" in err
    junit = tmp_path / "junit.xml"
    code, _, _ = run(
        str(folder), "-j", "1", "--baseline", str(edited), "--fail-on-change", "--junit", str(junit)
    )
    assert code == EXIT_RULES
    # What made it exit 1 fails in the report a CI server shows (it showed nothing failing).
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("4", "3")
    failed = {
        case.get("name"): failure.get("message")
        for case in suite.iter("testcase")
        if (failure := case.find("failure")) is not None
    }
    assert failed == {
        "added.wav": "new since the baseline",
        "gone.wav": "removed since the baseline",
        "quiet.wav": "relabeled since the baseline: speech -> silence",
    }
    run(str(folder), "-j", "1", "--baseline", str(edited), "--junit", str(junit))
    assert ET.parse(junit).getroot().get("failures") == "0"  # changes alone do not fail
    code, _, _ = run(str(folder), "-j", "1", "--baseline", str(before), "--fail-on-change")
    assert code == EXIT_RULES  # added.wav is new
    assert run(str(folder), "--fail-on-change")[0] == EXIT_USAGE
    (tmp_path / "junk.json").write_text("{not json")
    assert run(str(folder), "--baseline", str(tmp_path / "junk.json"))[0] == EXIT_USAGE
    (tmp_path / "object.json").write_text("{}")
    code, _, err = run(str(folder), "--baseline", str(tmp_path / "object.json"))
    assert code == EXIT_USAGE and "(a record has no path)" in err


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"RIFF\x24\xf4\x00\x00WAVEfmt ", "it is not UTF-8 text"),  # an audio file by mistake
        (b"[1, 2]", "a record has no path"),
        (b"null", "a record has no path"),
        (b'{"path": null, "label": "noise"}', "a record has no path"),
        (b'{"path": "a.wav", "label": "noise"}\n{"path": "b.wa', "line 2: "),
    ],
)
def test_a_baseline_that_is_not_a_result_file_is_refused_clearly(
    tmp_path: Path, content: bytes, why: str
) -> None:
    baseline = tmp_path / "baseline.jsonl"
    baseline.write_bytes(content)
    with pytest.raises(UsageError, match="is not a harken JSON or JSONL result file") as caught:
        load_baseline(baseline)
    assert f"({why}" in str(caught.value)


def test_a_baseline_record_without_a_text_label_counts_by_its_status(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.jsonl"
    baseline.write_text(
        '{"path": "a.wav", "label": ["x"], "status": "ok"}\n'
        '{"path": "b.wav", "label": "", "status": "error"}\n'
    )
    entries = load_baseline(baseline)
    assert entries["a.wav"].outcome == "ok" and entries["b.wav"].outcome == "error"


def test_baseline_reports_a_renamed_file_as_moved(folder: Path, tmp_path: Path) -> None:
    before = tmp_path / "before.jsonl"
    assert run(str(folder), "-j", "1", "-o", str(before))[0] == 0
    (folder / "sub" / "notes.wav").rename(folder / "notes-renamed.wav")
    code, _, err = run(str(folder), "-j", "1", "--baseline", str(before))
    assert code == 0
    assert "baseline: 0 new, 0 removed, 1 moved, 0 relabeled" in err
    assert f"moved     {folder / 'sub' / 'notes.wav'} -> {folder / 'notes-renamed.wav'}" in err
    junit = tmp_path / "junit.xml"
    code, _, _ = run(
        str(folder), "-j", "1", "--baseline", str(before), "--fail-on-change", "--junit", str(junit)
    )
    assert code == EXIT_RULES  # a rename is a change of the data set
    failures = [f.get("message") for f in ET.parse(junit).getroot().iter("failure")]
    assert failures == [f"moved from {folder / 'sub' / 'notes.wav'} since the baseline"]
    # A changed file that cannot be analyzed now says both.
    (folder / "quiet.wav").write_bytes(b"not audio any more")
    run(
        str(folder), "-j", "1", "--baseline", str(before), "--fail-on-change", "--junit", str(junit)
    )
    errors = [e.get("message") for e in ET.parse(junit).getroot().iter("error")]
    assert errors == ["error: unsupported; relabeled since the baseline: silence -> error"]


def _result(path: str, label: str, digest: str | None) -> FileResult:
    prediction = Prediction(label, 0.9, {label: 0.9}, {"svm": label}, 1)
    return FileResult(path, "ok", prediction=prediction, content_hash=digest)


def test_moves_pair_copies_in_path_order_and_keep_label_changes() -> None:
    baseline = {
        "/d/a.wav": Entry("speech", "h1"),
        "/d/b.wav": Entry("speech", "h1"),
        "/d/c.wav": Entry("music", "h2"),
        "/d/gone.wav": Entry("not_found", None),
        "/d/kept.wav": Entry("noise", "h3"),
        "/d/empty.wav": Entry("error", hash_bytes(b"")),
    }
    results = [
        _result("/e/x.wav", "speech", "h1"),
        _result("/e/y.wav", "speech", "h1"),
        _result("/e/z.wav", "speech", "h1"),  # a third copy is new
        _result("/e/c.wav", "noise", "h2"),
        _result("/e/other.wav", "noise", None),
        _result("/d/kept.wav", "noise", "h3"),
        _result("/e/kept-copy.wav", "noise", "h3"),  # a copy of a file still there: new
        FileResult("/e/empty.wav", "error", content_hash=hash_bytes(b"")),  # nothing moved
    ]
    changes = compare(baseline, results)
    assert changes.moved == [
        Move("/d/c.wav", "/e/c.wav", "music", "noise"),
        Move("/d/a.wav", "/e/x.wav", "speech", "speech"),
        Move("/d/b.wav", "/e/y.wav", "speech", "speech"),
    ]
    assert changes.new == ["/e/empty.wav", "/e/kept-copy.wav", "/e/other.wav", "/e/z.wav"]
    assert changes.removed == ["/d/empty.wav", "/d/gone.wav"]
    assert changes.changed == []


def test_baseline_matches_one_file_however_its_folder_is_spelled(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(folder.parent)
    before = tmp_path / "before.jsonl"
    assert run(folder.name, "-j", "1", "-o", str(before))[0] == 0
    for spelling in (f"./{folder.name}", f"{folder.name}//", str(folder)):
        code, _, err = run(spelling, "-j", "1", "--baseline", str(before), "--fail-on-change")
        assert code == 0, (spelling, err)


def test_an_emptied_folder_still_checks_the_baseline_and_writes_junit(
    folder: Path, tmp_path: Path
) -> None:
    """A data set renamed or emptied in CI must not pass for an unchanged one."""
    before = tmp_path / "before.jsonl"
    assert run(str(folder), "-j", "1", "-o", str(before))[0] == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    junit = tmp_path / "empty.xml"
    args = (str(empty), "--baseline", str(before), "--junit", str(junit))
    code, _, err = run(*args, "--fail-on-change")
    assert code == EXIT_RULES and "removed" in err
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("failures") == root.get("tests") == "2"
    code, _, _ = run(*args)
    assert code == 0
    dry = tmp_path / "dry.xml"
    assert run(str(empty), "--dry-run", "--junit", str(dry))[0] == EXIT_USAGE
    assert not dry.exists()  # a dry run writes nothing, files or none, and says so
    code, _, err = run(str(folder), "--junit", str(tmp_path / "no" / "such" / "j.xml"))
    assert code == EXIT_USAGE and "--junit" in err


def test_junit_tells_apart_files_whose_folders_differ_by_a_dot(tmp_path: Path) -> None:
    for folder in ("a.b", "a/b"):
        write(tmp_path / "set" / folder / "c.wav", silence(0.5))
    report = tmp_path / "report.xml"
    code, _, _ = run(str(tmp_path / "set"), "-j", "1", "-q", "--junit", str(report))
    assert code == 0
    cases = {(c.get("classname"), c.get("name")) for c in ET.parse(report).iter("testcase")}
    assert cases == {(str(tmp_path / "set" / f), "c.wav") for f in ("a.b", "a/b")}


def test_junit_survives_control_characters_in_names(folder: Path, tmp_path: Path) -> None:
    write(folder / "ctl\x1bname.wav", chord(1.0))
    report = tmp_path / "junit.xml"
    code, _, _ = run(str(folder), "-j", "1", "--junit", str(report))
    assert code == 0
    names = {case.get("name") for case in ET.parse(report).getroot().iter("testcase")}
    assert "ctl\ufffdname.wav" in names


def test_control_characters_in_names_never_reach_the_terminal(folder: Path) -> None:
    """A name can hold an escape sequence (or a newline, faking a log line): the
    table, -v, the rule report and --dry-run show it escaped; JSON keeps it."""
    name = "ctl\x1b[31mred\nfake.wav"
    write(folder / name, chord(1.0))
    (folder / "ctl\x1b[2Jbroken.wav").write_bytes(b"not audio")
    for args in (
        ["-f", "table", "--allow-errors"],
        ["-v", "-f", "jsonl", "--fail-on", "label != silence", "--allow-errors"],
        ["--dry-run"],
    ):
        _, out, err = run(str(folder), "-j", "1", *args)
        shown = err if "jsonl" in args else out + err
        assert "\x1b" not in shown and "red\nfake" not in shown, args
        assert "\\x1b" in shown, args  # (the table may fold the name)
        if "table" not in args:
            assert "ctl\\x1b[31mred\\x0afake.wav" in shown, args
        if "jsonl" in args:
            assert {json.loads(line)["path"] for line in out.splitlines()} >= {str(folder / name)}


def test_emoji_codes_in_names_are_printed_as_they_are(folder: Path) -> None:
    # -v, the rule report and the errors showed ':warning:.wav' as '⚠.wav'
    write(folder / ":warning:.wav", chord(1.0))
    (folder / ":fire:.wav").write_bytes(b"not audio")
    _, out, err = run(str(folder), "-j", "1", "-v", "--fail-on", "status == ok", "-f", "table")
    assert err.count(":warning:.wav") >= 2 and ":fire:.wav" in err
    assert "\u26a0" not in err and "\U0001f525" not in err and ":warning:" in out


def test_numbers_compare_alike_in_sets_and_equality() -> None:
    assert parse_rule("sample_rate in {8000.0, 16000}").fails(RECORD)
    assert parse_rule("duration in {0.8}").fails(RECORD)
    with pytest.raises(RuleError, match="needs a number"):
        parse_rule("confidence < nan")
    with pytest.raises(RuleError, match="nested"):
        parse_rule("(" * 60 + "label == x" + ")" * 60)


def test_dry_run_with_an_unusable_model_is_a_usage_error(folder: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.skops"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    assert run(str(folder), "--dry-run", "--model", str(junk))[0] == EXIT_USAGE


def test_the_readme_lists_every_error_kind() -> None:
    """Rules are checked against ERROR_KINDS, so it must be the documented list."""
    import re

    from analyzer.results import ERROR_KINDS

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    paragraph = readme[readme.index("Error kinds:") :].split("\n\n")[0]
    documented = re.findall(r"`([a-z_]+)`(?: \(|,| and)", paragraph)
    assert sorted(set(documented)) == sorted(ERROR_KINDS)


def test_the_formats_and_subtypes_rules_know_are_soundfiles() -> None:
    import soundfile

    from analyzer.policy import FORMATS, SUBTYPES

    assert set(soundfile.available_formats()) <= set(FORMATS)
    assert set(soundfile.available_subtypes()) <= set(SUBTYPES)


def test_classes_named_in_any_script_or_with_spaces() -> None:
    """harken train takes any folder name as a class; rules could not name
    ``café`` at all, nor ``probabilities.<class>`` of ``bip bop``."""
    record = {
        "label": "café",
        "probabilities": {"café": 0.3, "bip bop": 0.7},
        "votes": {"my svm": "bip bop"},
    }
    assert parse_rule("label == café").fails(record)
    assert parse_rule("probabilities.café < 0.5").fails(record)
    spaced = parse_rule('probabilities."bip bop" > 0.5')
    assert spaced.fields == ("probabilities.bip bop",) and spaced.fails(record)
    voted = parse_rule("votes.'my svm' == 'bip bop'")
    assert voted.values == (("votes.my svm", "bip bop"),) and voted.fails(record)
    with pytest.raises(RuleError, match="quote a name that is not one word"):
        parse_rule("probabilities.bip bop > 0.5")
    # 'é' typed as e and a combining accent is the class (named in NFC form)
    decomposed = "cafe\u0301"
    assert parse_rule(f"label == {decomposed}").values == (("label", "café"),)
    assert parse_rule(f"label == '{decomposed}'").fails(record)
    assert parse_rule(f"probabilities.{decomposed} < 0.5").fails(record)
    assert parse_rule("label in {नमस्ते, café}").values == (("label", "नमस्ते"), ("label", "café"))
    # and a model trained before labels were NFC names its class the other way
    older = {"label": decomposed, "probabilities": {decomposed: 0.3}, "votes": {"m": decomposed}}
    for rule in ("label == café", "probabilities.café < 0.5", "votes.m == café"):
        assert parse_rule(rule).fails(older), rule
