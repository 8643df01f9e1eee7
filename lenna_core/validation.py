"""Argument checks shared by every layer: each raises a ValueError that names the argument, the
value it got and the range it allows, before the value reaches torch or a file.

It imports nothing from lenna_core, so any module may use it.
"""

from __future__ import annotations

import math
import numbers


def is_integer(value: object) -> bool:
    """True for a Python or numpy integer, False for a bool (which Python counts as one)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: object, low: int = 1, high: int | None = None, *,
              optional: bool = False, hint: str = "") -> None:
    """Refuse ``value`` unless it is an integer in ``low..high`` (None: unbounded above); a bool
    is not an integer here, and ``optional`` lets None through. ``hint`` ends the message."""
    if optional and value is None:
        return
    if not is_integer(value) or value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in {low}..{high}"
        prefix = "None or " if optional else ""
        raise ValueError(f"{name}={value!r}: must be {prefix}an integer {allowed}{hint}")


def check_fraction(name: str, value: object, *, closed: bool = False) -> None:
    """Refuse ``value`` unless it is a number in (0, 1), or in [0, 1] when ``closed``; NaN and
    bools fail."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    inside = number and math.isfinite(value) and (
        0.0 <= value <= 1.0 if closed else 0.0 < value < 1.0)
    if not inside:
        interval = "[0, 1]" if closed else "(0, 1)"
        raise ValueError(f"{name}={value!r}: must be a number in {interval}")


def check_number(name: str, value: object, low: float = 0.0, *, strict: bool = False,
                 hint: str = "") -> None:
    """Refuse ``value`` unless it is a real number >= ``low`` (> ``low`` when ``strict``); NaN
    and bools fail, infinity passes."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not number or math.isnan(value) or value < low or (strict and value == low):
        relation = ">" if strict else ">="
        raise ValueError(f"{name}={value!r}: must be a number {relation} {low:g}{hint}")
