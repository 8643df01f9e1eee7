"""state_stretch: the power law between two labellings of the same blocks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lenna_core.latency.machine_state import state_stretch


def labelled(ms, row_ids=None, status=None) -> pd.DataFrame:
    ms = np.asarray(ms, dtype=float)
    return pd.DataFrame({"row_id": np.arange(len(ms)) if row_ids is None else row_ids,
                         "status": status or ["ok"] * len(ms), "latency_ms": ms})


def test_a_stretched_machine_gives_back_its_power_and_offset():
    rng = np.random.default_rng(0)
    earlier = np.exp(rng.uniform(np.log(0.04), np.log(0.4), 300))
    later = np.exp(0.3) * earlier ** 1.25 * np.exp(rng.normal(0.0, 0.01, 300))
    fit = state_stretch(labelled(earlier), labelled(later))
    assert fit["blocks"] == 300
    assert fit["slope"] == pytest.approx(1.25, abs=0.01)
    assert fit["offset"] == pytest.approx(0.3, abs=0.03)
    assert fit["residual_sd"] == pytest.approx(0.01, abs=0.002)
    assert fit["within_10_pct_fitted"] == 100.0
    assert fit["within_10_pct"] < 60.0  # as labelled, the two disagree on most blocks
    # cheaper small blocks, dearer large ones, as the fit says at the 5th / 95th percentile
    small, large = np.percentile(earlier, [5, 95])
    assert fit["ratio_small"] == pytest.approx(np.exp(0.3) * small ** 0.25, rel=0.02)
    assert fit["ratio_large"] == pytest.approx(np.exp(0.3) * large ** 0.25, rel=0.02)
    assert fit["ratio_small"] < 1.0 < fit["ratio_large"]


def test_an_unchanged_machine_has_slope_one():
    ms = np.linspace(0.05, 0.5, 40)
    fit = state_stretch(labelled(ms), labelled(ms))
    assert fit["slope"] == pytest.approx(1.0) and fit["offset"] == pytest.approx(0.0, abs=1e-9)
    assert fit["within_10_pct"] == 100.0
    assert fit["ratio_small"] == pytest.approx(1.0) == fit["ratio_large"]


def test_only_blocks_both_labelled_successfully_count():
    ms = np.linspace(0.05, 0.5, 20)
    status = ["ok"] * 19 + ["failed"]
    later = labelled(np.r_[ms[5:], ms[:5]] * 2.0,
                     row_ids=np.r_[np.arange(5, 20), 100 + np.arange(5)])
    fit = state_stretch(labelled(ms, status=status), later)
    assert fit["blocks"] == 14  # ids 5..18: id 19 failed, ids 0..4 and 100.. are in one only
    assert fit["slope"] == pytest.approx(1.0) and fit["offset"] == pytest.approx(np.log(2.0))


def test_too_few_shared_blocks_or_a_missing_column_are_refused():
    ms = np.linspace(0.05, 0.5, 9)
    with pytest.raises(ValueError, match="share 9 labelled blocks.*at least 10"):
        state_stretch(labelled(ms), labelled(ms))
    with pytest.raises(ValueError, match=r"later: .*\['status'\]"):
        state_stretch(labelled(ms), labelled(ms).drop(columns="status"))
