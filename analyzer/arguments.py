"""Checks of the Python API's arguments, as the command line's option types
check them: a bad value raises ``TypeError`` or ``ValueError`` before any work,
rather than making every file ``too_long`` or every label ``unknown``."""

from __future__ import annotations

import math
import numbers
from typing import Any


def number(
    name: str,
    value: Any,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    whole: bool = False,
) -> float:
    """``value``, as a float, if it is a (whole) number in ``[low, high]``
    (``(low, high]`` with ``low_open``); else ``TypeError`` or ``ValueError``
    naming ``name``."""
    kinds = numbers.Integral if whole else numbers.Real  # numpy's scalars too
    if isinstance(value, bool) or not isinstance(value, kinds):
        wanted = "a whole number" if whole else "a number"
        raise TypeError(f"{name} must be {wanted}, not {value!r}")
    as_float = float(value)
    if math.isnan(as_float) or not low <= as_float <= high or (low_open and as_float == low):
        bound = f"over {low:g}" if low_open else f"at least {low:g}"
        if high < math.inf:
            bound += f" and at most {high:g}"
        raise ValueError(f"{name} must be {bound}, not {value!r}")
    return as_float


def flag(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False``; else ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}")
    return value


def globs(name: str, value: Any) -> tuple[str, ...]:
    """Glob patterns as a tuple: one string is one pattern (not its characters)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = (value,)
    try:
        patterns = tuple(value)
    except TypeError:  # (3: "'int' object is not iterable", without a name)
        patterns = (value,)
    if not all(isinstance(p, str) for p in patterns):
        raise TypeError(f"{name} must be a string or strings, not {value!r}")
    return patterns
