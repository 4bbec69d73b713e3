"""harken's command line. The only package that imports click or rich."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO, cast

import click

from cli.config import default_map, effective_settings, find_config, unknown_variables
from cli.manage import cache_group, runs_group
from cli.options import format_option, print_json
from cli.scan import EXIT_INTERRUPTED, OutputError, scan_command
from cli.train import evaluate_command, model_group, train_command

EXIT_CODES = """\b
Exit codes:
  0    every file analyzed and no --fail-on rule failed
  1    a --fail-on rule failed, or --fail-on-change saw a change (and every
       file was analyzed, or --allow-errors)
  2    usage error (bad option, unusable model file)
  3    at least one file could not be analyzed (unless --allow-errors)
  4    an output file could not be written (it is left as it was)
  69   --backend dask: the cluster was lost mid-scan (finished results are cached)
  75   --lock: another run holds the lock on this cache
  130  interrupted by Ctrl-C, 143 by SIGTERM (finished results are cached)
  141  the reader of standard output went away (| head)
"""
#: What a shell reports for a process killed by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141


class HarkenGroup(click.Group):
    """Exit codes a script can trust, and errors that say where they come from.

    click exits 1 (a failed rule, to a CI script) when standard output's
    reader goes away, when it cannot be written, or on Ctrl-C; harken exits
    141 as a shell does, 4 as for any output, and 130. A bad value from a
    variable or a config file says which one.
    """

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        try:
            return super().main(args, *rest, **kwargs)
        except SystemExit as exc:
            if args is None:  # the program itself (its arguments from sys.argv), not a caller
                _quiet_wind_down(exc.code)
            raise

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        with _watched_stdout():  # --help and --version print here
            return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        with _watched_stdout():
            try:
                return super().invoke(ctx)
            except click.BadParameter as exc:
                where = _where_from(exc)
                if where:
                    if "\n" in exc.message:  # (a rule with a caret under the mistake)
                        where = "\n" + where.strip()
                    raise click.BadParameter(
                        exc.message + where,
                        ctx=exc.ctx,
                        param=exc.param,
                        param_hint=exc.param_hint,
                    ) from None
                raise
            except KeyboardInterrupt:
                # Before the work starts (or while --wait waits): 130, as for Ctrl-C
                # mid-scan, not click's "Aborted!" and 1, which reads as a failed rule.
                click.echo("interrupted", err=True)
                raise click.exceptions.Exit(EXIT_INTERRUPTED) from None


def _quiet_wind_down(code: object) -> None:
    """Once the program's command is done, a Ctrl-C while Python winds down
    (joining the pool's threads, in loky's exit hook) ends the process with
    the exit code already decided; it printed a traceback. The hook runs at
    the start of that wind-down: ``threading``'s exit hooks run newest first,
    before its threads are joined, and loky's was registered when the pool
    was first used.
    """
    status = code if isinstance(code, int) else 0 if code is None else 1

    def exit_now(signum: int, frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)

    def on_wind_down() -> None:
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(signal.SIGINT, exit_now)

    register = getattr(threading, "_register_atexit", None)  # loky's own way in
    if register is not None:
        with contextlib.suppress(RuntimeError):  # already winding down
            register(on_wind_down)


@contextlib.contextmanager
def _watched_stdout() -> Iterator[None]:
    """Standard output whose failure is an exit code: 141 when its reader went
    away, 4 when it cannot be written (a full disk, or closed: ``>&-``)."""
    stdout = _Watched(sys.stdout if sys.stdout is not None else cast(TextIO, _Closed()))
    sys.stdout = cast(TextIO, stdout)
    try:
        try:
            yield
        finally:  # on sys.exit too: a full disk shows here, not in the exit-time flush
            if stdout.failed is None:
                stdout.flush()
    except BrokenPipeError:
        _to_devnull(stdout)
        raise click.exceptions.Exit(EXIT_BROKEN_PIPE) from None
    except OSError as exc:
        if exc is not stdout.failed:
            raise
        _to_devnull(stdout)
        raise OutputError(f"cannot write to standard output: {exc.strerror or exc}") from None
    finally:
        sys.stdout = stdout.stream


def _to_devnull(stdout: _Watched) -> None:
    """Nothing more can go to standard output; keep the exit-time flush quiet."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())


class _Watched:
    """Standard output, noting the write that failed: that error is an exit
    code (``_watched_stdout``); any other OSError is a bug to show."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.failed: OSError | None = None

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as exc:
            self.failed = exc
            raise

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            self.failed = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class _Closed(io.TextIOBase):
    """Standard output when the process started without one (``>&-``)."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "it is closed")

    def flush(self) -> None:
        pass  # nothing was written


def _where_from(exc: click.BadParameter) -> str:
    """`` (from HARKEN_SCAN_JOBS)`` or `` (from the config file)``, if not typed."""
    param, ctx = exc.param, exc.ctx
    if not isinstance(param, click.Option) or ctx is None or param.name is None:
        return ""
    source = ctx.get_parameter_source(param.name)
    if source == click.core.ParameterSource.ENVIRONMENT:
        names = param.envvar or f"{ctx.auto_envvar_prefix}_{param.name.upper()}"
        found = [n for n in ([names] if isinstance(names, str) else names) if n in os.environ]
        return f" (from {found[0]})" if found else " (from the environment)"
    if source == click.core.ParameterSource.DEFAULT_MAP:
        config = find_config(Path.cwd())
        return f" (from {config[0]})" if config else " (from the config file)"
    return ""


@click.group(
    cls=HarkenGroup,
    epilog=EXIT_CODES,
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
        "auto_envvar_prefix": "HARKEN",
    },
)
@click.version_option(package_name="harken", prog_name="harken")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Classify audio files with an ensemble of models over librosa features.

    \b
      harken scan recordings/                 # a table of labels
      harken scan recordings/ -f jsonl -o results.jsonl

    Options can also come from harken.toml or [tool.harken] in pyproject.toml
    (the nearest one), and from HARKEN_<COMMAND>_<OPTION> variables.
    """
    found = find_config(Path.cwd())
    if found is not None:
        ctx.default_map = default_map(main, *found)
    for warning in unknown_variables(main, dict(os.environ)):
        click.echo(f"warning: {warning}", err=True)


@main.group("config")
def config_group() -> None:
    """Settings from harken.toml, [tool.harken] and HARKEN_* variables."""


@config_group.command("show")
@format_option("table", "json")
@click.pass_context
def config_show(ctx: click.Context, format: str) -> None:
    """Print every option's value in effect and where it came from."""
    from rich.table import Table

    from cli.render import make_console

    rows = effective_settings(main, ctx.find_root())
    if format == "json":
        print_json(rows)
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("command", "option", "value", "source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["command"], row["option"], repr(row["value"]), row["source"])
    make_console(stderr=False).print(table)


main.add_command(scan_command)
main.add_command(train_command)
main.add_command(evaluate_command)
main.add_command(model_group)
main.add_command(runs_group)
main.add_command(cache_group)
