"""``harken scan``: analyze audio files and report one result per file."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from analyzer.analysis import DEFAULT_MAX_DURATION, DEFAULT_TIMEOUT
from analyzer.interrupts import Terminated, signals_held, signals_raised
from analyzer.segments import DEFAULT_SMOOTHING, MIN_WINDOW, SegmentSpec
from analyzer.writers import FORMATS
from cli.options import CountRange, NumberRange, cache_dir_option

if TYPE_CHECKING:
    from rich.console import Console

    from analyzer.baseline import Changes
    from analyzer.policy import Rule
    from analyzer.results import FileResult
    from analyzer.scan import Outcome, ScanConfig

EXIT_OK, EXIT_RULES, EXIT_USAGE, EXIT_ERRORS, EXIT_OUTPUT = 0, 1, 2, 3, 4
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock; try again later
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: the Dask cluster was lost mid-scan
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
SUFFIX_FORMATS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
SIZE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


class HarkenUsageError(click.ClickException):
    """A usage problem found after parsing (an unusable model file, say): exit 2."""

    exit_code = EXIT_USAGE


class OutputError(click.ClickException):
    """An output file could not be written (a full disk, say): exit 4."""

    exit_code = EXIT_OUTPUT


def _lines(text: str) -> list[str]:
    """A variable's values, one a line; blank lines are none (a YAML ``|``
    block in a CI file ends with a newline)."""
    return [line for line in (text or "").split("\n") if line.strip()]


class Line(click.ParamType):
    """A string option given many times; from a variable, one value per line
    (Click would split on spaces, which rules and globs contain)."""

    name = "TEXT"

    def split_envvar_value(self, rv: str) -> list[str]:
        return _lines(rv)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return str(value)


class Glob(Line):
    """An --include pattern; an empty one matches no file."""

    name = "GLOB"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not str(value):  # a run that found nothing would exit 0
            self.fail("an empty pattern matches no file", param, ctx)
        return str(value)


class PathLines(click.Path):
    """A path option given many times; from a variable, one path a line
    (click.Path would split it at ':', as it does PATH)."""

    def split_envvar_value(self, rv: str) -> list[str]:
        return _lines(rv)


class ByteSize(click.ParamType):
    """A size such as ``512M``, ``2G`` or ``1500000`` (bytes)."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", str(value).lower())
        if not match or float(match[1]) <= 0:
            self.fail(f"{value!r} is not a size like 512M or 2G", param, ctx)
        return int(float(match[1]) * SIZE_UNITS[match[2]])


def room_for_a_file(max_memory: int | None) -> int | None:
    """``--max-memory``, if any file fits under it: decoding and the features
    need ``BASE_MEMORY`` whatever the file (under it, even loading the
    resampler failed, and every file was an internal error)."""
    if max_memory is None:
        return None
    from analyzer.decode import BASE_MEMORY  # (numpy and libsndfile: only when asked)

    if max_memory <= BASE_MEMORY:
        raise click.BadParameter(
            f"{max_memory / 2**20:.3g} MiB leaves no room for any file: decoding and"
            f" the features need about {BASE_MEMORY >> 20} MiB plus 16 kB per second"
            " of audio; give more, e.g. 256M",
            param_hint="--max-memory",
        )
    return max_memory


def output_format(asked: str | None, output: str | None) -> str:
    """The format asked for, else the one the output file's suffix names, else a table."""
    if asked:
        if asked == "table" and output:
            raise click.BadParameter(
                "a table goes to the terminal; choose json, jsonl or csv for -o",
                param_hint="--format",
            )
        return asked
    if output:
        suffix = os.path.splitext(output)[1].lower()
        if suffix not in SUFFIX_FORMATS:
            junit = " (a JUnit report goes to --junit FILE)" if suffix == ".xml" else ""
            raise click.BadParameter(
                f"cannot tell the format of {output!r}; add --format{junit}",
                param_hint="--output",
            )
        return SUFFIX_FORMATS[suffix]
    return "table"


def check_output_folder(output: str, option: str = "--output", *, create: bool = False) -> None:
    """Refuse, before any work, an output that cannot be written: its folder
    is missing (made instead with ``create``) or a file cannot be made there.
    A probe file, not ``os.access``: root passes every access check, even on /proc."""
    import tempfile

    from analyzer.writers import is_special_output

    if is_special_output(output):  # /dev/stdout, a FIFO: written to, its folder untouched
        if not os.access(output, os.W_OK):
            raise click.BadParameter(f"{output!r} is not writable", param_hint=option)
        return
    folder = os.path.dirname(os.path.realpath(output))  # a symlink's target is written
    try:
        if create:
            os.makedirs(folder, exist_ok=True)
        elif not os.path.isdir(folder):
            raise click.BadParameter(f"folder {folder!r} does not exist", param_hint=option)
        fd, probe = tempfile.mkstemp(prefix=".harken-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise click.BadParameter(
            f"cannot write to folder {folder!r}: {exc.strerror or exc}", param_hint=option
        ) from None


def refuse_one_file_twice(*outputs: tuple[str | None, str]) -> None:
    """Refuse two outputs (file, option) that name one file: the second
    written would replace the first without a word. Devices and pipes
    (``/dev/stdout``, ``/dev/stderr``, one terminal) are written to, not
    replaced: both may go there."""
    from analyzer.writers import is_special_output

    seen: dict[str, str] = {}
    for target, option in outputs:
        if target and not is_special_output(target):
            where = os.path.realpath(target)
            if where in seen:
                raise click.UsageError(
                    f"{seen[where]} and {option} name the same file ({target}): give each its own"
                )
            seen[where] = option


@click.command("scan")
# Not checked here (click would refuse an unreadable one and stop the batch):
# every path gets its row.
@click.argument("paths", nargs=-1, type=click.Path(readable=False, path_type=str))
@click.option(
    "--files-from",
    metavar="FILE",
    type=PathLines(exists=True, dir_okay=False, allow_dash=True, path_type=str),
    multiple=True,
    help="Read more paths from FILE, one a line ('#' starts a comment line) or"
    " NUL-separated ('-' for standard input); may be given more than once.",
)
@click.option(
    "--include",
    multiple=True,
    type=Glob(),
    metavar="GLOB",
    help="Only files matching GLOB, case-sensitive (replaces the default audio"
    " extensions, which match any case; repeatable).",
)
@click.option(
    "--exclude",
    multiple=True,
    type=Line(),
    metavar="GLOB",
    help="Skip files matching GLOB (repeatable).",
)
@click.option(
    "-j",
    "--jobs",
    type=CountRange(min=1),
    help="Worker processes [default: all cores; 1 runs in-process]; with --backend dask"
    " and no --scheduler, the LocalCluster's workers.",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Where files are analyzed: this machine's process pool, or a Dask cluster"
    " (pip install 'harken[dask]'; see README, Running on a cluster).",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="With --backend dask: the scheduler to use, e.g. tcp://host:8786"
    " [default: start a LocalCluster].",
)
@click.option(
    "--ship-audio",
    is_flag=True,
    help="With --backend dask: send the files' bytes to the workers, which then need"
    " not see this machine's files.",
)
@click.option(
    "--connect-timeout",
    type=NumberRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="With --backend dask: give up when the scheduler or its first worker is not"
    " there within this long (exit 2).",
)
@click.option(
    "-f",
    "--format",
    type=click.Choice(FORMATS),
    help="Output format [default: table, or from the -o suffix].",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=str),
    help="Write results to this file (atomically) instead of standard output.",
)
@click.option(
    "--model",
    type=click.Path(exists=True, dir_okay=False, path_type=str),
    help="A .skops model file [default: the shipped model].",
)
@click.option(
    "--trust-model", is_flag=True, help="Load a model file even if it holds untrusted types."
)
@cache_dir_option
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@click.option(
    "--cache-size",
    type=ByteSize(),
    help="Cache size limit, e.g. 2G [default: 4G]; the oldest entries beyond it are"
    " evicted after the run, and the run says so.",
)
@click.option(
    "--lock",
    is_flag=True,
    help="Run only if no other locked run uses this cache (else exit 75).",
)
@click.option("--wait", is_flag=True, help="Like --lock, but wait for the other run to finish.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Say what would happen to each file (new, changed, cached, ...) and stop.",
)
@click.option(
    "--changed-only",
    is_flag=True,
    help="Output only results new to --changed-only: files analyzed now (new or changed), or"
    " since its last run by another scan or by a run that stopped before writing them out.",
)
@click.option("--refresh", is_flag=True, help="Analyze every file again and update the cache.")
@click.option("--retry-failed", is_flag=True, help="Analyze again files whose failure is cached.")
@click.option(
    "--timeout",
    type=NumberRange(min=0),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="Give up on a file after this long (its worker is replaced); 0: no limit.",
)
@click.option(
    "--max-memory",
    type=ByteSize(),
    callback=lambda ctx, param, value: room_for_a_file(value),
    help="Memory one worker may allocate for one file, e.g. 512M [default: no limit].",
)
@click.option(
    "--max-duration",
    type=NumberRange(min=0, min_open=True),
    default=DEFAULT_MAX_DURATION,
    show_default=True,
    metavar="SECONDS",
    help="Refuse longer files.",
)
@click.option(
    "--min-confidence",
    type=NumberRange(0, 1),
    metavar="P",
    help="Label results below this confidence 'unknown' [default: the model card's].",
)
@click.option(
    "--segments",
    type=NumberRange(min=MIN_WINDOW),
    metavar="SECONDS",
    help="Also label windows of SECONDS (2 is a good choice) and give a timeline of"
    " smoothed segments per file (see README, Segments).",
)
@click.option(
    "--hop",
    type=NumberRange(min=0, min_open=True),
    metavar="SECONDS",
    help="With --segments: seconds between window starts, 0.25 to the window"
    " [default: half the window].",
)
@click.option(
    "--smoothing",
    type=NumberRange(0, 1, max_open=True),
    metavar="P",
    help="With --segments: probability of a change of class between consecutive windows"
    f" in the smoother; smaller is stickier, 0 turns it off [default: {DEFAULT_SMOOTHING:g}].",
)
@click.option(
    "--labels-dir",
    type=click.Path(file_okay=False, path_type=str),
    metavar="DIR",
    help="With --segments: write an Audacity label track per file into DIR (<file>.txt).",
)
@click.option(
    "--fail-on",
    "fail_on",
    multiple=True,
    type=Line(),
    metavar="EXPR",
    help="Exit 1 when a file matches EXPR, e.g. 'label in {noise, silence}' or"
    " 'confidence < 0.6' (repeatable; see README, Rules).",
)
@click.option(
    "--junit",
    type=click.Path(dir_okay=False, path_type=str),
    help="Also write a JUnit XML report: a testcase per file.",
)
@click.option(
    "--baseline",
    type=click.Path(exists=True, dir_okay=False, path_type=str),
    help="Compare with an earlier JSON/JSONL result: report new, removed, moved and relabeled"
    " files.",
)
@click.option(
    "--fail-on-change", is_flag=True, help="With --baseline: exit 1 when anything changed."
)
@click.option(
    "--allow-errors",
    is_flag=True,
    help="Files that could not be analyzed do not make the exit code 3 (a failed rule still"
    " gives 1).",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="No progress and no summary (rule violations, changes and, for exit 3, the files"
    " that could not be analyzed are still listed).",
)
@click.option("-v", "--verbose", is_flag=True, help="A line per file as it finishes.")
def scan_command(
    paths: tuple[str, ...],
    files_from: tuple[str, ...],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    jobs: int | None,
    backend: str,
    scheduler: str | None,
    ship_audio: bool,
    connect_timeout: float,
    format: str | None,
    output: str | None,
    model: str | None,
    trust_model: bool,
    cache_dir: str | None,
    no_cache: bool,
    cache_size: int | None,
    lock: bool,
    wait: bool,
    dry_run: bool,
    changed_only: bool,
    refresh: bool,
    retry_failed: bool,
    timeout: float,
    max_memory: int | None,
    max_duration: float,
    min_confidence: float | None,
    segments: float | None,
    hop: float | None,
    smoothing: float | None,
    labels_dir: str | None,
    fail_on: tuple[str, ...],
    junit: str | None,
    baseline: str | None,
    fail_on_change: bool,
    allow_errors: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    """Classify the audio files in PATHS (files or folders, searched recursively).

    \b
      harken scan recordings/
      harken scan recordings/ --jobs 4 -o results.jsonl
      harken scan /shared/audio --backend dask --scheduler tcp://head:8786
      find . -name '*.wav' | harken scan --files-from -
      harken scan podcast.flac --segments 2 --labels-dir labels/ -f json
    """
    from analyzer.baseline import compare, load_baseline
    from analyzer.cache import default_cache_dir
    from analyzer.delivery import Undelivered
    from analyzer.discover import discover
    from analyzer.errors import HarkenError
    from analyzer.lock import LockHeld, RunLock
    from analyzer.policy import RuleError, parse_rule
    from analyzer.scan import ScanConfig
    from cli.render import make_console, summary_line

    if not paths and not files_from:
        raise click.UsageError("give at least one file or folder, or --files-from")
    if "-" in paths and not os.path.lexists("-"):
        raise click.UsageError(
            "no file is named '-' here; to read paths from standard input, give --files-from -"
        )
    quiet, verbose = _quiet_or_verbose(quiet, verbose)
    source = click.get_current_context().get_parameter_source

    def typed(name: str) -> bool:
        return source(name) == ParameterSource.COMMANDLINE

    # Defaults from harken.toml or the environment for options that only go
    # with another (--hop with --segments) wait for it; typed here, the
    # checks below refuse them. (A file setting smoothing for its segment
    # runs made every other scan a usage error.)
    if segments is None:
        hop = hop if typed("hop") else None
        smoothing = smoothing if typed("smoothing") else None
        labels_dir = labels_dir if typed("labels_dir") else None
    if not baseline and not typed("fail_on_change"):
        fail_on_change = False
    if backend != "dask":
        scheduler = scheduler if typed("scheduler") else None
        ship_audio = ship_audio and typed("ship_audio")
    if dry_run:  # it writes nothing: an output asked for here would be missing, not stale
        for given, name, option in (
            (output, "output", "-o"),
            (junit, "junit", "--junit"),
            (labels_dir, "labels_dir", "--labels-dir"),
        ):  # (harken.toml's or the environment's are for the real runs)
            plan_too = option == "-o" and given == "-"  # standard output, where the plan goes
            if given and not plan_too and typed(name):
                raise click.UsageError(
                    f"--dry-run prints its plan on standard output; {option} does not apply"
                )
    if output == "-":  # standard output, as `--files-from -` is standard input
        output = None
    if junit == "-":
        if output is None and not dry_run:
            raise click.UsageError("--junit - and the results would both go to standard output")
        junit = "/dev/stdout"
    # A format from harken.toml or the environment (a terminal's table, say)
    # yields to the suffix of an -o typed here: CSV went into today.jsonl.
    named = output and os.path.splitext(output)[1].lower() in SUFFIX_FORMATS
    if named and typed("output") and not typed("format"):
        format = None
    format = output_format(format, output)
    for target, option in ((output, "--output"), (junit, "--junit")):
        if target:
            check_output_folder(target, option)
    refuse_one_file_twice((output, "--output"), (junit, "--junit"), (labels_dir, "--labels-dir"))
    try:
        rules = [parse_rule(text) for text in fail_on]
    except RuleError as exc:
        raise _bad_rule(str(exc)) from None
    spec = _segment_spec(segments, hop, smoothing, labels_dir)
    err = make_console(stderr=True)
    with warnings_to(err):  # reading the model card may warn
        _check_rule_fields(rules, spec, model)
    if fail_on_change and not baseline:
        raise click.UsageError("--fail-on-change needs --baseline FILE")
    if backend != "dask" and (scheduler or ship_audio or typed("connect_timeout")):
        raise click.UsageError(
            "--scheduler, --ship-audio and --connect-timeout need --backend dask"
        )
    try:
        before = load_baseline(baseline) if baseline else None
    except HarkenError as exc:
        raise click.BadParameter(str(exc), param_hint="--baseline") from None
    try:
        files = discover(paths, include=include, exclude=exclude, files_from=files_from)
    except HarkenError as exc:
        raise click.BadParameter(str(exc), param_hint="--files-from") from None
    if not files:
        if model is not None:  # a CI job's broken model is an error, files or not
            from analyzer.modelfile import resolve_model

            try:
                resolve_model(model)
            except HarkenError as exc:
                raise HarkenUsageError(str(exc)) from None
        if not quiet:
            err.print("no audio files found")
        if dry_run:
            sys.exit(EXIT_OK)
        _emit([], format, output, segments=spec is not None, model=model)
        # An emptied or renamed data set is a change: every baseline file is gone.
        changes = compare(before, []) if before is not None else None
        if junit:
            _write_junit([], {}, junit, 0.0, changes if fail_on_change else None)
        if changes:
            _report_changes(err, changes)
            if fail_on_change:
                sys.exit(EXIT_RULES)
        sys.exit(EXIT_OK)
    config = ScanConfig(
        jobs=jobs,
        backend=backend,
        scheduler=scheduler,
        ship_audio=ship_audio,
        connect_timeout=connect_timeout,
        timeout=timeout or None,
        max_memory=max_memory,
        cache_dir=cache_dir,
        use_cache=not no_cache,
        refresh=refresh,
        retry_failed=retry_failed,
        model=model,
        trust_model=trust_model,
        max_duration=max_duration,
        min_confidence=min_confidence,
        segments=spec,
    )
    directory = None if no_cache else (cache_dir or default_cache_dir())
    # --wait implies --lock; the lock is held until the outputs are written.
    locked = directory or default_cache_dir()

    def waiting(holder: str) -> None:
        if not quiet:  # a log then tells a wait from a hang
            when = "" if err.is_terminal else time.strftime("%Y-%m-%d %H:%M:%S ")
            err.print(f"{when}waiting: {holder} holds the lock on {locked}")

    held = RunLock(locked, wait=wait, on_wait=waiting) if lock or wait else nullcontext()
    try:
        if dry_run:
            _dry_run(files, config, quiet)
            sys.exit(EXIT_OK)
        with held, warnings_to(err):
            stream = Undelivered(directory) if changed_only and directory else None
            if stream:
                stream.start()
            pending = stream.listed() if stream else None
            # Ctrl-C and SIGTERM stop the analysis (_run), and wait while what
            # it finished is written out: after the last file, they lost it all.
            with signals_held(None) as caught:
                run = _run(
                    files,
                    config,
                    directory,
                    err,
                    caught,
                    quiet=quiet,
                    verbose=verbose,
                    cache_size=cache_size,
                )
                results = [o.result for o in run.outcomes]
                failed_rules = _check_rules(rules, results)
                shown = results
                if changed_only:
                    # Analyzed now, new at its path (copied, renamed), or earlier but
                    # never written out.
                    shown = [
                        o.result
                        for o in run.outcomes
                        if not o.cached
                        or o.arrived
                        or (pending is not None and o.result.path in pending)
                    ]
                _emit(shown, format, output, segments=spec is not None, model=model)
                if labels_dir:  # every file's track, cached or not
                    _write_labels(results, labels_dir)
                changes = compare(before, results) if before is not None else None
                if junit:
                    failing = changes if fail_on_change else None
                    _write_junit(results, failed_rules, junit, run.seconds, failing)
                if stream and run.stopped is None:
                    stream.remove((r.path for r in shown), files)
            stopped = run.stopped
            if stopped is None and caught:  # every file done, and written out
                stopped = EXIT_INTERRUPTED if caught[0] == signal.SIGINT else EXIT_TERMINATED
            if not quiet:
                stamp = "" if err.is_terminal else time.strftime("%Y-%m-%d %H:%M:%S ")
                err.print(stamp + summary_line(results, cached=run.cached, seconds=run.seconds))
            _report_violations(err, failed_rules)  # even with -q: they are why the exit code is 1
            if changes is not None and (changes or not quiet):
                _report_changes(err, changes)
            if run.evicted:
                err.print(
                    f"cache: evicted {run.evicted} of the oldest entries to stay under its limit"
                )
            if stopped is not None:
                kept = (
                    "finished results are cached, run again to resume"
                    if directory
                    else ("nothing was cached (--no-cache)")
                )
                if run.stopped is None:  # after the last file, before the outputs were written
                    kept = "the outputs are complete"
                err.print(f"interrupted: {len(results)} of {len(files)} files done; {kept}")
                sys.exit(stopped)
            if not allow_errors and any(r.status != "ok" for r in results):
                # Even with -q and --changed-only: they are why the exit code is 3.
                _report_failures(err, [r for r in results if r.status != "ok"])
                sys.exit(EXIT_ERRORS)
            if failed_rules or (fail_on_change and changes):
                sys.exit(EXIT_RULES)
    except HarkenError as exc:
        if isinstance(exc, LockHeld):
            err.print(f"harken: {exc}")
            sys.exit(EXIT_LOCKED)
        raise HarkenUsageError(str(exc)) from None


def _quiet_or_verbose(quiet: bool, verbose: bool) -> tuple[bool, bool]:
    """-q and -v contradict each other: as for any option, the command line wins
    over the environment, which wins over a config file; both from one place
    is a usage error."""
    if not (quiet and verbose):
        return quiet, verbose
    ctx = click.get_current_context()
    quiet_from, verbose_from = (
        ctx.get_parameter_source("quiet"),
        ctx.get_parameter_source("verbose"),
    )
    if quiet_from == verbose_from:
        raise click.UsageError("-q/--quiet and -v/--verbose contradict each other; give one")
    # The command line wins over the environment, which wins over a config
    # file (by position: ParameterSource has no order before click 8.3.3).
    order = [
        click.core.ParameterSource.COMMANDLINE,
        click.core.ParameterSource.ENVIRONMENT,
        click.core.ParameterSource.DEFAULT_MAP,
    ]
    quiet_wins = (
        quiet_from in order
        and verbose_from in order
        and order.index(quiet_from) < order.index(verbose_from)
    )
    return quiet_wins, not quiet_wins


def _segment_spec(
    window: float | None, hop: float | None, smoothing: float | None, labels_dir: str | None
) -> SegmentSpec | None:
    """The ``SegmentSpec`` of --segments, or None; its companions need it."""
    if window is None:
        for name, value in (
            ("--hop", hop),
            ("--smoothing", smoothing),
            ("--labels-dir", labels_dir),
        ):
            if value is not None:
                raise click.UsageError(f"{name} needs --segments SECONDS")
        return None
    try:
        return SegmentSpec.make(window, hop, DEFAULT_SMOOTHING if smoothing is None else smoothing)
    except ValueError as exc:
        text = str(exc)
        hint = "--hop" if "hop" in text else "--smoothing" if "smoothing" in text else "--segments"
        raise click.BadParameter(text, param_hint=hint) from None


def _check_rule_fields(rules: list[Rule], spec: SegmentSpec | None, model: str | None) -> None:
    """Refuse rules on segment fields without --segments, and rules on a class
    or member the model does not have (they could never match)."""
    from analyzer.errors import HarkenError
    from analyzer.modelfile import resolve_model
    from analyzer.policy import nfc

    segment = [(rule, field) for rule in rules for field in rule.segment_fields()]
    if segment and spec is None:
        rule, field = segment[0]
        raise _bad_rule(f"{field} (in {rule.text!r}) needs --segments SECONDS")
    named = [
        (rule, prefix, name)
        for rule in rules
        for prefix, _, name in (field.partition(".") for field in rule.fields)
        if prefix in ("fraction", "probabilities", "votes")
    ]
    labels = [
        (rule, field, value)
        for rule in rules
        for field, value in rule.values
        if field == "label" or field.startswith("votes.")
    ]
    if not named and not labels:
        return
    try:
        card = resolve_model(model).card
    except HarkenError as exc:
        raise HarkenUsageError(str(exc)) from None
    classes = [nfc(c) for c in card.classes]  # as rules name them
    for rule, prefix, name in named:
        what, known = ("member", card.members) if prefix == "votes" else ("class", classes)
        if name not in known:
            raise _bad_rule(
                f"unknown {what} {name!r} in {rule.text!r}; the model's are {', '.join(known)}"
            )
    for rule, field, value in labels:
        # A file's label may also be "unknown" (below --min-confidence); a vote may not.
        unknown = " (and unknown)" if field == "label" else ""
        if value not in classes and not (unknown and value == "unknown"):
            raise _bad_rule(
                f"unknown class {value!r} in {rule.text!r}; the model's are"
                f" {', '.join(card.classes)}{unknown}"
            )


def _bad_rule(message: str) -> click.BadParameter:
    """A --fail-on error tied to the option, so it can say where a rule from a
    variable or a config file came from."""
    ctx = click.get_current_context()
    option = next(p for p in ctx.command.params if p.name == "fail_on")
    return click.BadParameter(message, ctx=ctx, param=option)


def _write_labels(results: list[FileResult], folder: str) -> None:
    from analyzer.writers import displayed, write_labels

    try:
        write_labels(results, folder)
    except OSError as exc:
        which = f" ({displayed(exc.filename)})" if isinstance(exc.filename, str) else ""
        raise OutputError(
            f"cannot write label tracks to {folder}{which}: {exc.strerror or exc}"
        ) from None


def _report_changes(console: Console, changes: Changes, limit: int = 20) -> None:
    """``baseline: 2 new, 1 removed, 1 moved, 3 relabeled`` and the first of each."""
    from analyzer.writers import displayed

    console.print(
        f"baseline: {len(changes.new)} new, {len(changes.removed)} removed,"
        f" {len(changes.moved)} moved, {len(changes.changed)} relabeled"
    )
    lines = [f"  new       {displayed(p)}" for p in changes.new]
    lines += [f"  removed   {displayed(p)}" for p in changes.removed]
    for move in changes.moved:
        paths = f"{displayed(move.old_path)} -> {displayed(move.new_path)}"
        labels = f"{move.old_label} -> {move.new_label}"
        lines.append(
            f"  moved     {paths}" + (f": {labels}" if move.old_label != move.new_label else "")
        )
    lines += [f"  relabeled {displayed(p)}: {old} -> {now}" for p, old, now in changes.changed]
    for line in lines[:limit]:
        console.print(line)
    if len(lines) > limit:
        console.print(f"  ... and {len(lines) - limit} more")


@dataclass
class Finished:
    """What ``_run`` brings back: the outcomes in file order and how it ended."""

    outcomes: list[Outcome]
    seconds: float
    cached: int
    stopped: int | None  # the exit code of an interruption, else None
    evicted: int  # cache entries evicted to honour the size limit


def _run(
    files: list[str],
    config: ScanConfig,
    directory: str | None,
    err: Console,
    held: list[int],
    *,
    quiet: bool,
    verbose: bool,
    cache_size: int | None,
) -> Finished:
    """Scan with progress, a run record, signal handling (``signals_raised``:
    ``held`` has a signal that came before) and the cache size limit."""
    from analyzer.cache import enforce_cache_limit
    from analyzer.errors import ClusterLost
    from analyzer.modelfile import resolve_model
    from analyzer.runs import start_run
    from analyzer.scan import scan
    from cli.progress import ScanProgress

    order = {path: i for i, path in enumerate(files)}
    outcomes: list[Outcome] = []
    start = time.monotonic()
    stopped: int | None = None
    evicted = 0
    progress = ScanProgress(err, len(files), enabled=not quiet)
    with warnings_to(err):
        runlog = None
        if directory is not None:
            model_id = resolve_model(config.model).model_id
            arguments = {
                k: v
                for k, v in click.get_current_context().params.items()
                if v not in (None, False, ())
            }
            runlog = start_run(directory, arguments=arguments, files=len(files), model=model_id)
        try:
            with progress, signals_raised(held):
                for outcome in scan(files, config):
                    outcomes.append(outcome)
                    progress.advance(cached=outcome.cached, failed=outcome.result.status != "ok")
                    if runlog is not None:
                        runlog.add(outcome.result, cached=outcome.cached)
                    if verbose:
                        err.print(_verbose_line(outcome.result, outcome.cached))
        except KeyboardInterrupt:
            stopped = EXIT_INTERRUPTED
        except ClusterLost as exc:
            err.print(f"harken: {exc}")
            stopped = EXIT_UNAVAILABLE
        except Terminated:
            stopped = EXIT_TERMINATED
        outcomes.sort(key=lambda o: order.get(o.result.path, len(order)))
        if runlog is not None:
            state = "finished" if stopped is None else "interrupted"
            runlog.finish([o.result for o in outcomes], state=state)
        if directory is not None:
            evicted = enforce_cache_limit(directory, cache_size)
    return Finished(outcomes, time.monotonic() - start, progress.cached, stopped, evicted)


def _dry_run(files: list[str], config: ScanConfig, quiet: bool) -> None:
    """Print what a scan would do with each file, and the counts."""
    from collections import Counter

    from analyzer.scan import plan
    from analyzer.writers import displayed

    counts: Counter[str] = Counter()
    for path, state in plan(files, config):
        counts[state] += 1
        # Escaped even when piped: a grep's output reaches a terminal too, and a
        # newline in a name would split its line.
        sys.stdout.write(f"{state}\t{displayed(path)}\n")
    if not quiet:
        summary = ", ".join(f"{n} {state}" for state, n in counts.most_common())
        sys.stderr.write(f"dry run, nothing analyzed: {summary}\n")


def _check_rules(rules: list[Any], results: list[FileResult]) -> dict[str, list[str]]:
    """``path -> the rules it fails``, for the files that fail any."""
    from analyzer.policy import violations
    from analyzer.writers import record

    failed = {}
    for result in results:
        broken = violations(rules, record(result)) if rules else []
        if broken:
            failed[result.path] = broken
    return failed


def _report_failures(console: Console, failed: list[FileResult]) -> None:
    reasons = [(r.path, r.error.kind if r.error else r.status) for r in failed]
    _list_files(console, f"{len(failed)} file(s) could not be analyzed:", reasons)


def _report_violations(console: Console, failed: dict[str, list[str]]) -> None:
    reasons = [(path, "; ".join(rules)) for path, rules in failed.items()]
    _list_files(console, f"{len(failed)} file(s) failed --fail-on rules:", reasons)


def _list_files(console: Console, heading: str, reasons: list[tuple[str, str]]) -> None:
    """``heading``, then ``path: reason`` for the first 20 files (if any)."""
    from analyzer.writers import displayed

    if not reasons:
        return
    console.print(heading)
    for path, reason in reasons[:20]:
        console.print(f"  {displayed(path)}: {reason}")
    if len(reasons) > 20:
        console.print(f"  ... and {len(reasons) - 20} more")


def _write_junit(
    results: list[FileResult],
    failed: dict[str, list[str]],
    path: str,
    seconds: float,
    changes: Changes | None,
) -> None:
    """``changes``: with --fail-on-change, what fails since the baseline."""
    from analyzer.writers import write_junit

    try:
        write_junit(results, failed, path, seconds=seconds, changes=changes)
    except OSError as exc:
        raise OutputError(
            f"cannot write {path}: {exc.strerror or exc}; the previous file is unchanged"
        ) from None


@contextmanager
def warnings_to(console: Console) -> Iterator[None]:
    """Show library warnings (a cache that cannot be used, a model too old to
    check its answers) as one plain line each, each once."""

    shown: set[str] = set()

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        # Once each: a run record that cannot be written fails every second.
        if (line := f"warning: {message}") not in shown:
            shown.add(line)
            console.print(line)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        # (a file an interrupted import left open is Python's business, not the user's)
        warnings.simplefilter("ignore", ResourceWarning)
        warnings.showwarning = show
        yield


def _verbose_line(result: FileResult, cached: bool) -> str:
    from analyzer.writers import displayed

    if result.prediction is not None:
        what = f"{result.prediction.label} {result.prediction.confidence:.2f}"
    else:
        what = f"{result.status}: {result.error.kind if result.error else ''}"
    return f"{displayed(result.path)}: {what}{' (cached)' if cached else ''}"


def _emit(
    results: list[FileResult],
    format: str,
    output: str | None,
    *,
    segments: bool = False,
    model: str | None = None,
) -> None:
    """Write results to ``output`` or standard output in ``format``; CSV has
    ``model``'s columns whatever the results hold."""
    from analyzer.writers import write, write_file
    from cli.render import make_console, results_table

    columns = model_columns(model) if format == "csv" else ((), ())
    if output:
        try:
            write_file(results, format, output, segments=segments, columns=columns)
        except OSError as exc:
            raise OutputError(
                f"cannot write {output}: {exc.strerror or exc}; the previous file is unchanged"
            ) from None
        return
    # A write that fails (a full disk, a closed standard output) is exit 4 in
    # cli.HarkenGroup.
    if format == "table":
        if results:
            make_console(stderr=False).print(results_table(results))
    else:
        write(results, format, sys.stdout, segments=segments, columns=columns)
    sys.stdout.flush()  # here, not at exit, where an error would go unreported


def model_columns(model: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The classes and members of ``model`` (its card only), or none if it
    cannot be read (the scan has said why)."""
    from analyzer.errors import HarkenError
    from analyzer.modelfile import resolve_model

    try:
        card = resolve_model(model).card
    except HarkenError:
        return (), ()
    return tuple(card.classes), tuple(card.members)
