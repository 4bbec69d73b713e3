"""Options from files: ``harken.toml`` or ``[tool.harken]`` in ``pyproject.toml``.

The nearest file in the current folder or its parents wins. Top-level keys
are ``harken scan`` options; a table per command (``[tool.harken.train]``)
holds that command's. Keys are option names, with dashes or underscores::

    [tool.harken]
    jobs = 4
    timeout = 120
    max-memory = "1G"
    fail-on = ["label in {noise, silence}", "confidence < 0.6"]

    [tool.harken.train]
    cv = 10

The command line wins over the environment (``HARKEN_SCAN_JOBS=4``, i.e.
``HARKEN_<COMMAND>_<OPTION>``), which wins over the file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def find_config(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """The nearest ``harken.toml``, or ``pyproject.toml`` with ``[tool.harken]``."""
    for folder in [start, *start.parents]:
        for name in ("harken.toml", "pyproject.toml"):
            path = folder / name
            if not path.is_file():
                continue
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise click.UsageError(f"cannot read {path}: {exc}") from None
            if name == "harken.toml":
                return path, data
            section = data.get("tool", {}).get("harken")
            if isinstance(section, dict):
                return path, section
    return None


def default_map(group: click.Group, path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Click's ``default_map`` for ``group`` from a config table; unknown keys are errors."""
    result: dict[str, dict[str, Any]] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            command, values = key, value
        else:
            command, values = "scan", {key: value}
        target = group.commands.get(command)
        if not isinstance(target, click.Command) or isinstance(target, click.Group):
            raise click.UsageError(f"{path}: [{key}] is not a harken command with options")
        known = {p.name for p in target.params if isinstance(p, click.Option)}
        for option, setting in values.items():
            name = option.replace("-", "_")
            if name not in known:
                raise click.UsageError(f"{path}: unknown option {option!r} for harken {command}")
            result.setdefault(command, {})[name] = setting
    return result


def effective_settings(group: click.Group, ctx: click.Context) -> list[dict[str, Any]]:
    """Every option of every command with options: value in effect and where it came from.

    Sources: ``environment (NAME)``, the config file's path, or ``default``
    (the command line is not known here; it wins over all of these).
    """
    import os

    rows = []
    defaults = ctx.default_map or {}
    found = find_config(Path.cwd())
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            continue
        for param in command.params:
            if not isinstance(param, click.Option) or param.name in (None, "help"):
                continue
            given = param.envvar if isinstance(param.envvar, (list, tuple)) else [param.envvar]
            envvars = [str(e) for e in given if e] or [f"HARKEN_{name}_{param.name}".upper()]
            from_env = next((e for e in envvars if e in os.environ), None)
            value: Any
            if from_env is not None:
                value, source = os.environ[from_env], f"environment ({from_env})"
            elif param.name in defaults.get(name, {}):
                value, source = defaults[name][param.name], str(found[0]) if found else "file"
            else:  # a fresh context: the plain default, not the file's
                value, source = param.get_default(click.Context(command)), "default"
                if value is not None and not isinstance(value, (str, int, float, bool, tuple)):
                    value = None  # click's "no default" marker
            rows.append(
                {"command": name, "option": param.opts[-1], "value": value, "source": source}
            )
    return rows
