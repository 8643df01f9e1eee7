"""Chapter 4's learning curve: one row per (size, model), sizes beyond the data skipped."""

from __future__ import annotations

import numpy as np
from test_dataset import RULE, fake_labeler

from lenna_core.dataset import SamplingSpec, generate_dataset, held_out_split, read_dataset
from lenna_core.lookup_table import OpLatencyTable
from lenna_core.modelling_report import learning_curve, plot_learning_curve


def test_learning_curve_fits_both_mlps_per_size(tmp_path):
    spec = SamplingSpec(channels=(4, 8), layers=(5,), image_sizes=(8,))
    generate_dataset(tmp_path / "d.csv", range(60), fake_labeler, RULE, spec=spec,
                     progress=False)
    train, test = held_out_split(read_dataset(tmp_path / "d.csv"), 0.25, 0)
    table = OpLatencyTable.measure(_contexts(train, test),
                                   repeats=2, warmup=0, progress=False)
    curve = learning_curve(train, test, [20, 40, 10_000], hidden=(8,), max_epochs=2, seed=0,
                           table=table)
    assert list(curve["rows"]) == [20, 20, 40, 40]  # 10,000 > len(train): skipped
    assert list(curve["model"]) == ["MLP", "MLP on lookup table"] * 2
    assert np.isfinite(curve["mape_pct"]).all()
    fig = plot_learning_curve(curve, {"mape_pct": 5.0}, {"mape_pct": 30.0})
    assert len(fig.axes[0].lines) == 4  # two curves, the noise floor, the ablation


def _contexts(*frames):
    from lenna_core.encoder import contexts_from_frame

    return sorted({c for f in frames for c in contexts_from_frame(f)}, key=str)
