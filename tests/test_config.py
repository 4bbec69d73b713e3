"""Options from harken.toml, [tool.harken] in pyproject.toml, and HARKEN_* variables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from cli.scan import EXIT_RULES, EXIT_USAGE

from signals import silence, tone, write


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write(tmp_path / "audio" / "quiet.wav", silence(1.0))
    write(tmp_path / "audio" / "tone.wav", tone(1.0))
    (tmp_path / "deep" / "er").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "deep" / "er")  # the file is found in a parent folder
    return tmp_path


def scan(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner(env=env).invoke(main, ["scan", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_pyproject_section_sets_scan_options(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.harken]\njobs = 1\nformat = "jsonl"\n'
        'fail-on = ["label == silence"]\nmax_duration = 60\n'
    )
    code, out, err = scan(str(project / "audio"))
    assert code == EXIT_RULES, err
    assert len([json.loads(line) for line in out.splitlines()]) == 2
    code, out, _ = scan(str(project / "audio"), "--format", "csv")  # the command line wins
    assert out.startswith("path,status")


def test_numbers_are_taken_where_text_may_be_one(project: Path) -> None:
    (project / "harken.toml").write_text(
        "max-memory = 2e9\ncache-size = 5000000000\n[cache]\nolder-than = 86400\n"
    )
    code, _, err = scan(str(project / "audio"), "-j", "1", "-q")
    assert code == 0, err
    # Taken as text, and an age needs its unit: 86400 meant seconds, a bare 30 30 s.
    result = CliRunner().invoke(main, ["cache", "prune"], catch_exceptions=False)
    assert result.exit_code == EXIT_USAGE and "with a unit" in result.stderr
    (project / "harken.toml").write_text('[cache]\nolder-than = "1d"\n')
    result = CliRunner().invoke(main, ["cache", "prune"], catch_exceptions=False)
    assert result.exit_code == 0 and "older than 1d" in result.stdout, result.stderr


def test_lists_of_paths_in_the_file_are_relative_to_it(project: Path) -> None:
    (project / "lists").mkdir()
    (project / "lists" / "a.txt").write_text(f"{project / 'audio' / 'tone.wav'}\n")
    (project / "harken.toml").write_text('files-from = "lists/a.txt"\nformat = "jsonl"\njobs = 1\n')
    code, out, err = scan()
    assert code == 0, err
    assert [json.loads(line)["path"] for line in out.splitlines()] == [
        str(project / "audio" / "tone.wav")
    ]


def test_harken_toml_comes_first_and_env_beats_the_file(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.harken]\nformat = "csv"\n')
    (project / "harken.toml").write_text('format = "jsonl"\njobs = 1\n\n[train]\ncv = 3\n')
    code, out, _ = scan(str(project / "audio"))
    assert code == 0 and out.startswith("{")
    code, out, _ = scan(str(project / "audio"), env={"HARKEN_SCAN_FORMAT": "json"})
    assert code == 0 and out.startswith("[")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("jbos = 4\n", "unknown option 'jbos' for harken scan; did you mean 'jobs'?"),
        ("[train]\nmebmers = 'svm'\n", "unknown option 'mebmers' for harken train; did you mean"),
        ("[nonsense]\nx = 1\n", "[nonsense] is not a harken command"),
        ("jobs = \n", "cannot read"),
        ("jobs = true\n", "jobs must be a whole number, not true"),  # not 1 job
        ("timeout = true\n", "timeout must be a number, not true"),  # not 1 s
        # These were tracebacks and exit 1 (a rule failed, to a CI job):
        ("verbose = 1\n", "verbose must be true or false, not 1"),
        ("[tool]\n", "[tool] is not a harken command"),
        ("jobs = [1, 2]\n", "jobs must be a whole number, not [1, 2]"),
        ("cache-dir = 5\n", "cache-dir must be a string (directory), not 5"),
        ("labels-dir = true\n", "labels-dir must be a string (directory), not true"),
        ("fail-on = ['status == ok', 1]\n", "fail-on must be a string or a list of strings"),
        ("max-memory = true\n", "max-memory must be a string or a number, not true"),
    ],
)
def test_bad_config_is_a_usage_error(project: Path, text: str, message: str) -> None:
    (project / "harken.toml").write_text(text)
    code, _, err = scan(str(project / "audio"))
    assert code == EXIT_USAGE and message in err


def test_a_rule_given_as_one_string_is_one_rule(project: Path) -> None:
    # (was "Value must be an iterable": a list of one was needed)
    (project / "harken.toml").write_text('fail-on = "status == ok"\n')
    code, _, err = scan(str(project / "audio"))
    assert code == EXIT_RULES and "status == ok" in err


def test_config_show_names_the_source_of_each_setting(project: Path) -> None:
    (project / "harken.toml").write_text("jobs = 3\n\n[train]\ncv = 4\n")
    result = CliRunner(env={"HARKEN_SCAN_TIMEOUT": "50"}).invoke(
        main, ["config", "show", "-f", "json"], catch_exceptions=False
    )
    assert result.exit_code == 0
    rows = {(r["command"], r["option"]): r for r in json.loads(result.stdout)}
    assert rows["scan", "--jobs"]["value"] == 3
    assert rows["scan", "--jobs"]["source"].endswith("harken.toml")
    assert rows["train", "--cv"]["value"] == 4
    assert rows["scan", "--timeout"]["source"] == "environment (HARKEN_SCAN_TIMEOUT)"
    assert rows["scan", "--max-duration"] == {
        "command": "scan",
        "option": "--max-duration",
        "value": 7200.0,
        "source": "default",
    }
    assert rows["scan", "--cache-dir"]["source"] in ("default", "environment (HARKEN_CACHE_DIR)")
    result = CliRunner().invoke(main, ["config", "show"], catch_exceptions=False)
    assert result.exit_code == 0 and "--jobs" in result.stdout


def test_cache_dir_from_the_file_serves_every_command(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HARKEN_CACHE_DIR")  # the variable would win over the file
    (project / "harken.toml").write_text('cache-dir = "shared-cache"\njobs = 1\n')
    code, _, _ = scan(str(project / "audio"), "-q")
    assert code == 0
    assert (project / "shared-cache" / "runs").is_dir()  # relative to the file, not the cwd
    result = CliRunner().invoke(main, ["runs", "list", "-f", "json"], catch_exceptions=False)
    assert len(json.loads(result.stdout)) == 1
    result = CliRunner().invoke(main, ["cache", "info", "-f", "json"], catch_exceptions=False)
    assert json.loads(result.stdout)["location"] == str(project / "shared-cache")


def test_rules_from_a_variable_one_per_line(project: Path) -> None:
    env = {"HARKEN_SCAN_FAIL_ON": "label == silence\nduration > 3600"}
    code, _, err = scan(str(project / "audio"), "-j", "1", env=env)
    assert code == EXIT_RULES and "quiet.wav: label == silence" in err


def test_an_unknown_variable_is_warned_about_with_the_nearest_name(project: Path) -> None:
    env = {"HARKEN_SCAN_JOB": "2", "HARKEN_CACHEDIR": "x", "HARKEN_WHATEVER": "1"}
    env["HARKEN_TRAIN_CACHE_DIR"] = "y"  # every command's --cache-dir reads HARKEN_CACHE_DIR
    code, out, err = scan(str(project / "audio"), "-q", "-f", "csv", env=env)
    assert code == 0 and out.startswith("path,status")
    ignored = "is not a harken setting and is ignored"
    assert f"HARKEN_SCAN_JOB {ignored}; did you mean HARKEN_SCAN_JOBS?" in err
    assert f"HARKEN_CACHEDIR {ignored}; did you mean HARKEN_CACHE_DIR?" in err
    assert f"HARKEN_WHATEVER {ignored}\n" in err
    assert f"HARKEN_TRAIN_CACHE_DIR {ignored}; did you mean HARKEN_CACHE_DIR?" in err
    code, _, err = scan(str(project / "audio"), "-q", "-f", "csv", env={"HARKEN_SCAN_JOBS": "1"})
    assert code == 0 and "warning" not in err


def test_quiet_and_verbose_contradict_unless_one_comes_from_the_command_line(
    project: Path,
) -> None:
    code, _, err = scan(str(project / "audio"), "-q", "-v")
    assert code == EXIT_USAGE and "-q/--quiet and -v/--verbose contradict each other" in err
    (project / "harken.toml").write_text("quiet = true\n")  # a cron job's setting...
    code, _, err = scan(str(project / "audio"), "-v", "-f", "csv")  # ...and a person's -v
    assert code == 0 and "quiet.wav: silence" in err
    code, _, err = scan(str(project / "audio"), "-q", "-f", "csv", env={"HARKEN_SCAN_VERBOSE": "1"})
    assert code == 0 and err == ""
    # The environment wins over the file, as for any option.
    (project / "harken.toml").write_text("verbose = true\n")
    code, _, err = scan(str(project / "audio"), "-f", "csv", env={"HARKEN_SCAN_QUIET": "1"})
    assert code == 0 and err == ""


def test_a_bad_value_says_which_variable_or_file_it_came_from(project: Path) -> None:
    code, _, err = scan(str(project / "audio"), env={"HARKEN_SCAN_JOBS": "abc"})
    assert code == EXIT_USAGE and "'abc' is not a valid integer" in err
    assert "(from HARKEN_SCAN_JOBS)" in err
    (project / "harken.toml").write_text('timeout = "soon"\n')
    code, _, err = scan(str(project / "audio"))
    assert code == EXIT_USAGE and f"(from {project / 'harken.toml'})" in err
    code, _, err = scan(str(project / "audio"), "--timeout", "later")
    assert code == EXIT_USAGE and "(from" not in err


def test_a_bad_rule_from_a_file_says_so(project: Path) -> None:
    (project / "harken.toml").write_text('fail-on = ["label == musik"]\n')
    code, _, err = scan(str(project / "audio"))
    assert code == EXIT_USAGE and "unknown class 'musik'" in err
    assert f"(from {project / 'harken.toml'})" in err
    code, _, err = scan(str(project / "audio"), env={"HARKEN_SCAN_FAIL_ON": "status == okk"})
    assert code == EXIT_USAGE and "^\n(from HARKEN_SCAN_FAIL_ON)" in err


def test_a_format_default_yields_to_the_suffix_of_an_output_typed_here(project: Path) -> None:
    """CSV from the file's format went into today.jsonl, which --baseline then refused."""
    (project / "harken.toml").write_text('format = "csv"\njobs = 1\n')
    out = project / "today.jsonl"
    code, _, err = scan(str(project / "audio"), "-q", "-o", str(out))
    assert code == 0, err
    assert [json.loads(line)["status"] for line in out.read_text().splitlines()] == ["ok", "ok"]
    code, _, err = scan(str(project / "audio"), "-q", "-o", str(project / "t.json"), env={
        "HARKEN_SCAN_FORMAT": "table"  # a terminal's default: every -o run failed
    })  # fmt: skip
    assert code == 0, err
    code, stdout, _ = scan(str(project / "audio"), "-q")  # no -o: the file's format
    assert stdout.startswith("path,status")


def test_a_tilde_in_the_file_is_the_home_folder(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(project / "home"))
    (project / "home").mkdir()
    (project / "harken.toml").write_text('output = "~/out.jsonl"\njobs = 1\n')
    code, _, err = scan(str(project / "audio"), "-q")
    assert code == 0, err
    assert (project / "home" / "out.jsonl").is_file() and not (project / "~").exists()


def test_options_that_go_with_another_wait_for_it_when_set_as_defaults(project: Path) -> None:
    """A file that sets smoothing for its segment runs made every other scan a
    usage error ("--smoothing needs --segments"), naming a flag never typed."""
    (project / "harken.toml").write_text(
        'jobs = 1\nsmoothing = 0.05\nhop = 1.5\nlabels-dir = "labels"\n'
        'scheduler = "tcp://127.0.0.1:1"\nfail-on-change = true\n'
    )
    code, _, err = scan(str(project / "audio"), "-q", "-f", "jsonl")
    assert code == 0, err
    assert not (project / "labels").exists()
    code, _, err = scan(str(project / "audio"), "-q", "-f", "jsonl", "--hop", "1")
    assert code == EXIT_USAGE and "--hop needs --segments" in err  # typed: refused


def test_a_rules_variable_may_end_with_a_newline(project: Path) -> None:
    rules = "status != ok\nlabel == silence\n"  # a YAML | block
    code, _, err = scan(str(project / "audio"), "-q", "-j", "1", env={"HARKEN_SCAN_FAIL_ON": rules})
    assert code == EXIT_RULES, err  # was a usage error: "bad rule: it is empty"


def test_a_pyproject_section_pasted_into_harken_toml_gets_a_hint(project: Path) -> None:
    (project / "harken.toml").write_text("[tool.harken]\njobs = 1\n")
    code, _, err = scan(str(project / "audio"))
    assert code == EXIT_USAGE and "drop the tool.harken prefix" in err


def test_a_table_may_name_one_subcommand(project: Path) -> None:
    # was "unknown option 'prune' for harken cache"
    # [cache.prune] wins over [cache], wherever it is in the file
    (project / "harken.toml").write_text(
        '[cache.prune]\nolder-than = "1d"\n\n[cache]\nolder-than = "30d"\n'
    )
    assert scan(str(project / "audio"), "-q", "-j", "1")[0] == 0  # makes the cache
    result = CliRunner().invoke(main, ["cache", "prune"], catch_exceptions=False)
    assert result.exit_code == 0 and "older than 1d" in result.stdout, result.stderr
    (project / "harken.toml").write_text("[cache.prune]\nolder = 1\n")
    code, _, err = scan(str(project / "audio"))
    assert code == EXIT_USAGE and "unknown option 'older' for harken cache prune" in err
    (project / "harken.toml").write_text("[cache.purge]\nolder-than = '1d'\n")
    code, _, err = scan(str(project / "audio"))
    assert code == EXIT_USAGE and "[cache.purge] is not a harken command" in err


def test_another_projects_broken_pyproject_is_passed_over(project: Path) -> None:
    # Every scan under it was "cannot read .../pyproject.toml" (exit 2).
    (project / "pyproject.toml").write_bytes(b'[project]\nname = "caf\xe9"\n')  # not UTF-8
    code, _, err = scan(str(project / "audio"), "-q", "-j", "1")
    assert code == 0, err
    (project / "pyproject.toml").write_text('[project]\nname = "x\n')
    (project / "deep" / "harken.toml").write_text("jobs = nonsense\n")
    code, _, err = scan(str(project / "audio"), "-q")
    assert code == EXIT_USAGE and "deep/harken.toml" in err  # the nearer file still counts
    (project / "deep" / "harken.toml").unlink()
    code, _, err = scan(str(project / "audio"), "-q", "-j", "1")
    assert code == 0, err
    (project / "pyproject.toml").write_text("[tool.harken]\njobs = \n")  # harken's: an error
    code, _, err = scan(str(project / "audio"), "-q")
    assert code == EXIT_USAGE and "cannot read" in err and "pyproject.toml" in err
