"""Checks at the door: every number, flag and text a user (or a file) gives, with one error style.

Values that mean the same thing are accepted alike: numpy scalars as well as Python numbers,
a whole float (3.0) where a whole number is meant. bool is never a number here.
"""

from __future__ import annotations

import math
import numbers
import unicodedata

from .errors import KitError


def whole(value, field: str, low: int, high: int | None = None) -> int:
    """`value` as an int in low..high (no upper bound when `high` is None), or KitError naming `field`."""
    ok = not isinstance(value, bool) and (
        isinstance(value, numbers.Integral)
        or isinstance(value, numbers.Real)
        and math.isfinite(value)
        and float(value).is_integer()
    )
    if not ok or int(value) < low or high is not None and int(value) > high:
        span = f">= {low}" if high is None else f"from {low} to {high}"
        raise KitError(f"{field} must be a whole number {span}, got {value!r}")
    return int(value)


def number(value, field: str, low: float, high: float, *, low_open: bool = False) -> float:
    """`value` as a finite float in [low, high] ((low, high] with `low_open`), or KitError."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if not ok or not (low < value if low_open else low <= value) or not value <= high:
        span = f"above {low} and at most {high}" if low_open else f"from {low} to {high}"
        raise KitError(f"{field} must be a number {span}, got {value!r}")
    return float(value)


def flag(value, field: str) -> bool:
    """`value` as a bool (True/False, numpy's too), or KitError."""
    numpy_bool = type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")
    if not isinstance(value, bool) and not numpy_bool:
        raise KitError(f"{field} must be True or False, got {value!r}")
    return bool(value)


def callback(value, field: str, takes: str):
    """`value` if it is None or can be called, or KitError: `takes` says what it is called with."""
    if value is not None and not callable(value):
        raise KitError(f"{field} must be a function of {takes}, got {type(value).__name__}")
    return value


def text(value, field: str, *, limit: int, allow_empty: bool = False) -> str:
    """`value` as one line of text: whitespace runs made single spaces, control characters refused."""
    if value is None and allow_empty:
        return ""
    if not isinstance(value, str):
        raise KitError(f"{field} must be text, got {type(value).__name__}")
    if len(value) > 4 * limit:  # refuse before any work on a huge string
        raise KitError(f"{field} has {len(value)} characters; at most {limit} are accepted")
    cleaned = " ".join(value.split())
    bad = next((c for c in cleaned if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        raise KitError(f"{field} contains the control character {bad!r}: type plain text")
    if not cleaned and not allow_empty:
        raise KitError(f"{field} is empty: describe what to draw, e.g. 'portrait of an elder'")
    if len(cleaned) > limit:
        raise KitError(f"{field} has {len(cleaned)} characters; at most {limit} are accepted")
    return cleaned
