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

import difflib
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
                raw = path.read_bytes()
            except OSError as exc:
                if name == "pyproject.toml":
                    continue  # another user's project, say: not this run's settings
                raise click.UsageError(f"cannot read {path}: {exc}") from None
            try:
                data = tomllib.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                if name == "pyproject.toml" and b"harken" not in raw:
                    continue  # another project's broken file, which says nothing to harken
                raise click.UsageError(f"cannot read {path}: {exc}") from None
            if name == "harken.toml":
                return path, data
            section = data.get("tool", {}).get("harken")
            if isinstance(section, dict):
                return path, section
    return None


def _commands(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> dict[tuple[str, ...], click.Command]:
    """Every command with options, by its path (``("scan",)``, ``("cache", "prune")``)."""
    found: dict[tuple[str, ...], click.Command] = {}
    for name, command in group.commands.items():
        where = (*prefix, name)
        if isinstance(command, click.Group):
            found.update(_commands(command, where))
        else:
            found[where] = command
    return found


def _options(command: click.Command) -> dict[str, click.Option]:
    return {p.name: p for p in command.params if isinstance(p, click.Option) and p.name}


def _did_you_mean(option: str, known: list[str]) -> str:
    close = difflib.get_close_matches(option.replace("_", "-"), known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _relative_to(config: Path, value: str) -> str:
    # ~ first: joined to the file's folder first, "~/cache" made a folder named "~" there.
    return value if value == "-" else str(config.parent / Path(value).expanduser())


def _check_type(option: click.Option, value: Any, where: str) -> None:
    """Refuse a value of the wrong TOML type (``verbose = 1``, ``jobs = [1, 2]``),
    which would reach the option's code as it is: a traceback, exit 1."""
    kind = option.type
    if option.multiple:
        fits = isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
        wanted = "a string or a list of strings"
    elif option.is_flag:
        fits, wanted = isinstance(value, bool), "true or false"
    elif isinstance(kind, click.types.IntParamType):
        fits, wanted = isinstance(value, (int, str)), "a whole number"
    elif isinstance(kind, click.types.FloatParamType):
        fits, wanted = isinstance(value, (int, float, str)), "a number"
    elif isinstance(kind, (click.Path, click.Choice)):
        fits, wanted = isinstance(value, str), f"a string ({kind.name.lower()})"
    else:  # text, which a number may be (a size in bytes)
        fits, wanted = isinstance(value, (str, int, float)), "a string or a number"
    if not fits or (isinstance(value, bool) and not option.is_flag):
        shown = str(value).lower() if isinstance(value, bool) else repr(value)
        raise click.UsageError(f"{where} must be {wanted}, not {shown}")


def default_map(group: click.Group, path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Click's ``default_map`` for ``group`` from a config table; unknown keys are errors.

    Top-level keys are ``scan`` options, and ``cache-dir`` there is every
    command's; ``[<command>]`` tables (``[cache]`` for all of its subcommands,
    ``[cache.prune]`` for one) hold that command's. Relative paths are
    relative to the config file.
    """
    commands = _commands(group)
    settings: dict[tuple[str, ...], dict[str, Any]] = {}

    def put(target: tuple[str, ...], option: str, value: Any, where: str) -> None:
        name = option.replace("-", "_")
        options = _options(commands[target])
        if name not in options:
            raise click.UsageError(
                f"{path}: unknown option {option!r} for harken {where}"
                + _did_you_mean(option, [o.replace("_", "-") for o in options])
            )
        _check_type(options[name], value, f"{path}: {option}")
        if options[name].multiple and isinstance(value, str):
            value = [value]  # one rule (or glob) as a string, not a list of one
        if isinstance(options[name].type, click.Path):
            # relative to the file; absolute paths (and '-', standard input) stay as they are
            if isinstance(value, str):
                value = _relative_to(path, value)
            elif isinstance(value, list):
                value = [_relative_to(path, v) for v in value]
        settings.setdefault(target, {})[name] = value

    def table(prefix: tuple[str, ...], values: dict[str, Any]) -> None:
        """``[cache]`` (every ``cache`` subcommand's options) or ``[cache.prune]``."""
        targets = [t for t in commands if t[: len(prefix)] == prefix]
        if not targets:
            # [tool.harken] belongs in pyproject.toml; harken.toml's own keys have no prefix.
            hint = " (in harken.toml, drop the tool.harken prefix)" if prefix == ("tool",) else ""
            raise click.UsageError(
                f"{path}: [{'.'.join(prefix)}] is not a harken command with options{hint}"
            )
        # A table's own options first, then its subcommands' tables, whose
        # options win (TOML keeps [cache.prune] inside [cache], in file order).
        ordered = sorted(values.items(), key=lambda item: isinstance(item[1], dict))
        for option, setting in ordered:
            if isinstance(setting, dict):
                table((*prefix, option), setting)
                continue
            fits = [t for t in targets if option.replace("-", "_") in _options(commands[t])]
            if not fits:
                known = {o.replace("_", "-") for t in targets for o in _options(commands[t])}
                raise click.UsageError(
                    f"{path}: unknown option {option!r} for harken {' '.join(prefix)}"
                    + _did_you_mean(option, sorted(known))
                )
            for target in fits:
                put(target, option, setting, " ".join(target))

    for key, value in config.items():
        if not isinstance(value, dict):
            put(("scan",), key, value, "scan")
            if key.replace("-", "_") == "cache_dir":  # one cache for every command
                for target, command in commands.items():
                    if target != ("scan",) and "cache_dir" in _options(command):
                        put(target, key, value, " ".join(target))
            continue
        table((key,), value)
    result: dict[str, Any] = {}
    for target, values in settings.items():
        node = result
        for part in target[:-1]:
            node = node.setdefault(part, {})
        node.setdefault(target[-1], {}).update(values)
    return result


#: Variables harken reads that are not command options.
OTHER_VARIABLES = frozenset({"HARKEN_FAULT"})  # fault injection for the robustness tests


def option_variables(target: tuple[str, ...], param: click.Option) -> list[str]:
    """The environment variables an option reads: its own, else click's automatic one."""
    given = param.envvar if isinstance(param.envvar, (list, tuple)) else [param.envvar]
    return [str(e) for e in given if e] or ["_".join(("HARKEN", *target, str(param.name))).upper()]


def unknown_variables(group: click.Group, environ: dict[str, str]) -> list[str]:
    """A warning for each ``HARKEN_*`` variable no option reads (a typo is otherwise silent)."""
    options: set[str] = set()
    instead: dict[str, str] = {}  # HARKEN_SCAN_CACHE_DIR -> HARKEN_CACHE_DIR, the one read
    for target, command in _commands(group).items():
        for param in _options(command).values():
            variables = option_variables(target, param)
            options.update(variables)
            instead["_".join(("HARKEN", *target, str(param.name))).upper()] = variables[0]
    warnings = []
    for name in sorted(environ):
        if name.startswith("HARKEN_") and name not in options | OTHER_VARIABLES:
            close = [instead[name]] if name in instead else []
            close = close or difflib.get_close_matches(name, options, n=1, cutoff=0.8)
            hint = f"; did you mean {close[0]}?" if close else ""
            warnings.append(f"{name} is not a harken setting and is ignored{hint}")
    return warnings


def effective_settings(group: click.Group, ctx: click.Context) -> list[dict[str, Any]]:
    """Every option of every command with options: value in effect and where it came from.

    Sources: ``environment (NAME)``, the config file's path, or ``default``
    (the command line is not known here; it wins over all of these).
    """
    import os

    rows = []
    defaults = ctx.default_map or {}
    found = find_config(Path.cwd())
    for target, command in sorted(_commands(group).items()):
        name = " ".join(target)
        node: Any = defaults
        for part in target:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        for param in command.params:
            if not isinstance(param, click.Option) or param.name in (None, "help"):
                continue
            envvars = option_variables(target, param)
            from_env = next((e for e in envvars if e in os.environ), None)
            value: Any
            if from_env is not None:
                value, source = os.environ[from_env], f"environment ({from_env})"
            elif param.name in node:
                value, source = node[param.name], str(found[0]) if found else "file"
            else:  # a fresh context: the plain default, not the file's
                value, source = param.get_default(click.Context(command)), "default"
                if value is not None and not isinstance(value, (str, int, float, bool, tuple)):
                    value = None  # click's "no default" marker
            rows.append(
                {"command": name, "option": param.opts[-1], "value": value, "source": source}
            )
    return rows
