"""The shared argument checks: each names the argument, the value and the range it allows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lenna_core.validation import check_fraction, check_int, check_number, is_integer


def test_integers_pass_and_bools_do_not():
    assert is_integer(3) and is_integer(np.int64(3))
    assert not is_integer(True) and not is_integer(3.0) and not is_integer("3")


@pytest.mark.parametrize("value", [0, -1, 2.0, True, "1", None])
def test_check_int_refuses_what_is_not_a_positive_integer(value):
    with pytest.raises(ValueError, match=rf"^repeats={value!r}: must be an integer >= 1$"):
        check_int("repeats", value)


def test_check_int_bounds_optional_and_hint():
    check_int("warmup", 0, 0)
    check_int("k", 5, 1, 5)
    check_int("limit", None, optional=True)
    with pytest.raises(ValueError, match=r"k=6: must be an integer in 1\.\.5$"):
        check_int("k", 6, 1, 5)
    with pytest.raises(ValueError, match=r"limit=0: must be None or an integer >= 1$"):
        check_int("limit", 0, optional=True)
    with pytest.raises(ValueError, match=r"workers=0: must be an integer >= 1 \(one\)$"):
        check_int("workers", 0, hint=" (one)")


@pytest.mark.parametrize("value", [0.0, 1.0, -0.5, math.nan, True, "0.5"])
def test_check_fraction_open(value):
    with pytest.raises(ValueError, match=r"must be a number in \(0, 1\)"):
        check_fraction("val_fraction", value)


def test_check_fraction_closed_takes_the_ends():
    check_fraction("quantile", 0.0, closed=True)
    check_fraction("quantile", np.float64(1.0), closed=True)
    with pytest.raises(ValueError, match=r"quantile=1\.5: must be a number in \[0, 1\]"):
        check_fraction("quantile", 1.5, closed=True)


def test_check_number():
    check_number("temperature", 0)
    check_number("temperature", math.inf)
    with pytest.raises(ValueError, match=r"temperature=nan: must be a number >= 0 \(x\)"):
        check_number("temperature", math.nan, hint=" (x)")
    with pytest.raises(ValueError, match=r"budget_s=0: must be a number > 0"):
        check_number("budget_s", 0, strict=True)
