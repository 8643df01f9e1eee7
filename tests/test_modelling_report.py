"""Chapter 4's learning curve: one row per (size, model), sizes beyond the data skipped."""

from __future__ import annotations

import numpy as np
from test_dataset import RULE, fake_labeler

from lenna_core.book.modelling_report import learning_curve, plot_learning_curve
from lenna_core.latency.dataset import SamplingSpec, held_out_split, label_dataset, read_dataset
from lenna_core.latency.lookup_table import OpLatencyTable


def test_learning_curve_fits_both_mlps_per_size(tmp_path):
    spec = SamplingSpec(channels=(4, 8), layers=(5,), image_sizes=(8,))
    label_dataset(tmp_path / "d.csv", range(60), fake_labeler, RULE, spec=spec,
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
    from lenna_core.latency.encoder import contexts_from_frame

    return sorted({c for f in frames for c in contexts_from_frame(f)}, key=str)


def test_extra_sets_split_in_proportion_and_join_training(tmp_path):
    from lenna_core.book.modelling_report import modelling_split
    spec = SamplingSpec(channels=(4,), layers=(5,), image_sizes=(8,))
    label_dataset(tmp_path / "d.csv", range(40), fake_labeler, RULE, spec=spec, progress=False)
    label_dataset(tmp_path / "e.csv", range(20), fake_labeler, RULE, spec=spec, seed=7,
                  progress=False)
    data, extra = read_dataset(tmp_path / "d.csv"), read_dataset(tmp_path / "e.csv")
    train, test, extra_train, extra_test = modelling_split(data, [extra], 0.25, 0)
    assert (len(extra_train), len(extra_test)) == (15, 5)
    assert len(train) + len(test) == len(data) + len(extra_train)
    alone = modelling_split(data, [], 0.25, 0)
    assert alone[2].empty and alone[3].empty and len(alone[0]) + len(alone[1]) == len(data)


def test_candidate_models_are_fitted_except_the_given_mlp(tmp_path):
    from lenna_core.book.modelling_report import candidate_models
    from lenna_core.latency.mlp_model import MLPLatency
    spec = SamplingSpec(channels=(4,), layers=(5,), image_sizes=(8,))
    label_dataset(tmp_path / "d.csv", range(30), fake_labeler, RULE, spec=spec, progress=False)
    train, test = held_out_split(read_dataset(tmp_path / "d.csv"), 0.25, 0)
    table = OpLatencyTable.measure(_contexts(train, test), repeats=2, warmup=0, progress=False)
    mlp = MLPLatency(hidden=(8,), max_epochs=2, random_state=0)
    models = candidate_models(mlp, table, train, hidden=(8,), max_epochs=2, seed=0)
    assert models["MLP"] is mlp and len(models) == 5
    for name, model in models.items():
        if name != "MLP":
            assert np.isfinite(model.predict(test)).all(), name
