"""``harken runs`` and ``harken cache``: run history and cache management."""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Any

import click

from cli.options import CountRange, cache_dir_option, format_option, print_json
from cli.scan import HarkenUsageError

AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _directory(cache_dir: str | None) -> str:
    from analyzer.cache import default_cache_dir

    return cache_dir or default_cache_dir()


def _no_cache_yet(cache_dir: str | None) -> bool:
    """Whether there is no cache folder yet, so nothing to look at or remove.
    Opening would make an empty cache there: a folder that was named
    (``--cache-dir``, ``HARKEN_CACHE_DIR``, harken.toml) and does not exist
    is a usage error, as a mistyped one reported success."""
    directory = _directory(cache_dir)
    if os.path.lexists(directory):
        return False
    if cache_dir is not None:
        raise HarkenUsageError(
            f"no cache at {directory}: there is no such folder (a scan makes it); nothing was done"
        )
    return True


def _open_cache(directory: str) -> Any:
    """The cache at ``directory``; one that cannot be opened is a usable=False
    cache here, said once by the command rather than as a Python warning."""
    import warnings

    from analyzer.cache import CacheWarning, ResultCache

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        return ResultCache(directory)


def _unusable(directory: str) -> HarkenUsageError:
    """Why the cache cannot be opened, and what to do: a folder harken may not
    write (diskcache opens its database for writing) is not a damaged cache."""
    if _not_writable(directory):
        return HarkenUsageError(f"the cache at {directory} cannot be opened: {_NOT_WRITABLE}")
    return HarkenUsageError(
        f"the cache at {directory} cannot be opened; 'harken cache clear' resets it"
    )


_NOT_WRITABLE = (
    "harken may not write there (a read-only file system, or its permissions); nothing was changed"
)


def _not_writable(directory: str) -> bool:
    # os.access: root may write anywhere but on a read-only file system (EROFS)
    return os.path.isdir(directory) and not os.access(directory, os.W_OK)


@click.group("runs")
def runs_group() -> None:
    """Past and running scans (recorded next to the cache)."""


@runs_group.command("list")
@cache_dir_option
@click.option("-n", "--limit", type=CountRange(min=1), default=20, show_default=True)
@format_option("table", "json")
def runs_list(cache_dir: str | None, limit: int, format: str) -> None:
    """List runs, newest first; a running one shows its counts so far."""
    from rich.table import Table

    from analyzer.runs import list_runs
    from cli.render import make_console

    runs = list_runs(_directory(cache_dir))[:limit]
    if format == "json":
        print_json(runs)
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("run", "started", "state", "done", "cached", "statuses", "wall"):
        table.add_column(column, no_wrap=column != "statuses", min_width=4)
    for run in runs:
        end = run.get("ended") or (time.time() if run["state"] == "running" else None)
        wall = f"{end - run['started']:.1f} s" if end else "?"
        table.add_row(
            run["id"],
            time.strftime("%m-%d %H:%M", time.localtime(run["started"])),
            run["state"],
            f"{run['done']}/{run['files']}",
            str(run["cached"]),
            ", ".join(f"{k} {v}" for k, v in sorted(run["statuses"].items())),
            wall,
        )
    make_console(stderr=False).print(table)


@runs_group.command("show")
@click.argument("run", default="last")
@cache_dir_option
@format_option("table", "json", "jsonl", "csv")
def runs_show(run: str, cache_dir: str | None, format: str) -> None:
    """Print the results of RUN (an id, a prefix of one, or 'last') again, from disk."""
    from analyzer.errors import HarkenError
    from analyzer.runs import find_run, run_results
    from analyzer.writers import write
    from cli.render import make_console, results_table, summary_line
    from cli.scan import model_columns

    directory = _directory(cache_dir)
    try:
        record = find_run(directory, run)
        results = run_results(directory, record)
    except HarkenError as exc:
        raise HarkenUsageError(str(exc)) from None
    if format == "table":
        make_console(stderr=False).print(results_table(results))
        wall = (record.get("ended") or time.time()) - record["started"]
        make_console(stderr=True).print(
            f"run {record['id']} ({record['state']}): "
            + summary_line(results, cached=record["cached"], seconds=wall)
        )
    else:  # the CSV as the scan wrote it: a row per segment, the model's columns
        given = record.get("arguments") or {}
        segments = bool(given.get("segments")) or any(r.timeline for r in results)
        columns = model_columns(given.get("model")) if format == "csv" else ((), ())
        write(results, format, sys.stdout, segments=segments, columns=columns)


@click.group("cache")
def cache_group() -> None:
    """Inspect and trim the result cache."""


@cache_group.command("info")
@cache_dir_option
@format_option("table", "json")
def cache_info(cache_dir: str | None, format: str) -> None:
    """Location, size, entries and hit rate."""
    from analyzer.runs import KEEP_BYTES, KEEP_RUNS, history_size, list_runs

    directory = _directory(cache_dir)
    if _no_cache_yet(cache_dir):  # the default folder, before any scan: an empty cache
        from analyzer.cache import DEFAULT_SIZE_LIMIT

        info: dict[str, Any] = {
            "location": directory,
            "usable": True,
            "bytes": 0,
            "entries": 0,
            "size_limit": DEFAULT_SIZE_LIMIT,
        }
    else:
        cache = _open_cache(directory)
        try:
            info = cache.info()
        finally:
            cache.close()
    # The hit rate of the recorded runs: files answered from the cache / files seen.
    runs = list_runs(directory)
    info["hits"] = sum(r.get("cached", 0) for r in runs)
    info["lookups"] = sum(r.get("done", 0) for r in runs)
    info["hit_rate"] = round(info["hits"] / info["lookups"], 4) if info["lookups"] else None
    # Beside the cache, outside its size limit, with limits of its own.
    info["runs"], info["runs_bytes"] = history_size(directory)
    if format == "json":
        print_json(info)
        return
    if not info["usable"]:
        raise _unusable(directory)
    rate = "n/a" if info["hit_rate"] is None else f"{100 * info['hit_rate']:.1f} %"
    click.echo(
        f"location  {info['location']}\n"
        f"size      {info['bytes'] / 2**20:.1f} MiB of {info['size_limit'] / 2**30:.1f} GiB\n"
        f"entries   {info['entries']}\n"
        f"hit rate  {rate} ({info['hits']} of {info['lookups']} files in the recorded runs)\n"
        f"runs      {info['runs']} recorded, {info['runs_bytes'] / 2**20:.1f} MiB"
        f" (the newest {KEEP_RUNS} are kept, up to {KEEP_BYTES // 2**20} MiB)"
    )


@cache_group.command("clear")
@cache_dir_option
def cache_clear(cache_dir: str | None) -> None:
    """Remove every cached result (and reset a cache that cannot be opened)."""
    from analyzer.cache import reset_store

    directory = _directory(cache_dir)
    if _no_cache_yet(cache_dir):
        click.echo(f"removed 0 entries (no cache at {directory} yet)")
        return
    cache = _open_cache(directory)
    if not cache.enabled:
        if _not_writable(directory):
            raise HarkenUsageError(f"the cache at {directory} cannot be cleared: {_NOT_WRITABLE}")
        try:
            removed = reset_store(directory)
        except OSError as exc:
            raise HarkenUsageError(
                f"the cache at {directory} cannot be opened, nor reset: {exc.strerror or exc}"
            ) from None
        click.echo(f"the cache at {directory} could not be opened: reset ({removed} removed)")
        return
    try:
        removed = cache.clear()
    finally:
        cache.close()
    click.echo(f"removed {removed} entries")


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` -> seconds. The unit is
    required: a bare 30 meant 30 s, and pruned a whole cache meant for days."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text.lower())
    if not match:
        raise click.BadParameter(
            f"{text!r} is not an age with a unit, like 30d, 12h, 90m, 45s or 2w",
            param_hint="--older-than",
        )
    return float(match[1]) * AGE_UNITS[match[2]]


@cache_group.command("prune")
@cache_dir_option
@click.option(
    "--older-than",
    required=True,
    metavar="AGE",
    help="Remove entries stored longer ago than AGE, with its unit (30d, 12h, 90m, 45s, 2w).",
)
def cache_prune(cache_dir: str | None, older_than: str) -> None:
    """Remove old cached results."""
    age = parse_age(older_than)
    directory = _directory(cache_dir)
    if _no_cache_yet(cache_dir):
        click.echo(f"removed 0 entries older than {older_than} (no cache at {directory} yet)")
        return
    cache = _open_cache(directory)
    if not cache.enabled:
        raise _unusable(directory)
    try:
        removed = cache.prune(age)
    finally:
        cache.close()
    click.echo(f"removed {removed} entries older than {older_than}")
