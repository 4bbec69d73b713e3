"""Options and output helpers shared by several commands."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from typing import Any

import click

#: ``--cache-dir``, the same for every command that uses the cache.
cache_dir_option = click.option(
    "--cache-dir",
    envvar="HARKEN_CACHE_DIR",
    type=click.Path(file_okay=False, path_type=str),
    help="Cache folder [env HARKEN_CACHE_DIR; default: the user cache folder].",
)


class NumberRange(click.FloatRange):
    """``click.FloatRange`` that also refuses NaN, which passes every bound
    check, and booleans (``timeout = true`` in harken.toml is not 1 s)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, bool):
            self.fail(f"{value!r} is not a number", param, ctx)
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail("nan is not a number", param, ctx)
        return number


class CountRange(click.IntRange):
    """``click.IntRange`` that refuses booleans (``jobs = true`` is not 1 job)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, bool):
            self.fail(f"{value!r} is not a number", param, ctx)
        return super().convert(value, param, ctx)


def format_option(*choices: str) -> Callable[[Any], Any]:
    """``-f/--format`` with ``choices``, the first one the default."""
    return click.option(
        "-f", "--format", type=click.Choice(choices), default=choices[0], show_default=True
    )


def print_json(data: Any) -> None:
    """``data`` as indented JSON with sorted keys on standard output."""
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
