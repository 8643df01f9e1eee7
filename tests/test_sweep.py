"""The sweep: its grid, its summaries, and that an interrupted sweep does not redo runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lenna_core import load_dataset
from lenna_core.search import loop as search_module
from lenna_core.search.estimators import FlopsEstimator, TargetConfig
from lenna_core.search.evaluation import LatencyMeter
from lenna_core.search.loop import SearchConfig
from lenna_core.search.sweep import (
    best_at_matched_accuracy,
    check_estimators,
    findings,
    measure_session,
    pareto_mask,
    prediction_errors,
    run_sweep,
    summarise_sweep,
    sweep_points,
)


def test_grid_has_one_baseline_per_seed_and_validates_lambda():
    points = sweep_points({"mlp": [0.5, 1.0], "flops": [0.0, 2.0]}, seeds=[0, 1])
    ids = [p.run_id for p in points]
    assert ids[:2] == ["none-linear-lam0-seed0", "none-linear-lam0-seed1"]
    assert "mlp-linear-lam0.5-seed1" in ids and "flops-linear-lam2-seed0" in ids
    assert len(ids) == len(set(ids)) == 2 + 2 * 2 + 2  # flops lam 0 is the baseline itself
    with pytest.raises(ValueError, match="lam=-1"):
        sweep_points({"mlp": [-1.0]}, seeds=[0])
    for seeds in ([], "[0]", [0, -1], [1.5]):
        with pytest.raises(ValueError, match="seeds="):
            sweep_points({"mlp": [1.0]}, seeds=seeds)
    with pytest.raises(ValueError, match="lambdas="):
        sweep_points([1.0], seeds=[0])


def test_pareto_mask():
    latency = [10.0, 8.0, 12.0, 8.0, 5.0]
    acc = [95.0, 94.0, 96.0, 93.0, 90.0]
    assert pareto_mask(latency, acc).tolist() == [True, True, True, False, True]


def fake_results() -> pd.DataFrame:
    rows = []
    for seed in range(3):
        rows.append({"estimator": "none", "penalty": "linear", "lam": 0.0, "seed": seed,
                     "test_acc": 97.0 + seed * 0.1, "measured_ms": 30.0 + seed,
                     "predicted_ms_mlp": 33.0 + seed, "calibrated_ms_mlp": 30.0 + seed})
        rows.append({"estimator": "mlp", "penalty": "linear", "lam": 1.0, "seed": seed,
                     "test_acc": 96.5 + seed * 0.1, "measured_ms": 20.0 + seed,
                     "predicted_ms_mlp": 22.0 + seed, "calibrated_ms_mlp": 20.5 + seed})
        rows.append({"estimator": "mlp", "penalty": "linear", "lam": 3.0, "seed": seed,
                     "test_acc": 94.0, "measured_ms": 15.0,
                     "predicted_ms_mlp": 16.0, "calibrated_ms_mlp": 15.0})
    return pd.DataFrame(rows)


def test_summary_and_matched_accuracy():
    summary = summarise_sweep(fake_results())
    base = summary[summary["estimator"] == "none"].iloc[0]
    assert base["acc_mean"] == pytest.approx(97.1) and base["latency_mean"] == 31.0
    one = summary[summary["lam"] == 1.0].iloc[0]
    assert one["latency_change_pct"] == pytest.approx(100 * (21 / 31 - 1))
    assert one["acc_change"] == pytest.approx(-0.5)
    assert summary["pareto"].tolist() == [True, True, True]
    best = best_at_matched_accuracy(summary, tolerance=1.0)
    assert best["lam"].tolist() == [1.0]  # lam 3 is faster but 3.1 points worse
    assert best_at_matched_accuracy(summary, tolerance=5.0)["lam"].tolist() == [3.0]


def test_prediction_errors():
    errors = prediction_errors(fake_results()).set_index("prediction")
    raw = 100 * np.abs(fake_results()["predicted_ms_mlp"] / fake_results()["measured_ms"] - 1)
    assert errors.loc["predicted", "median_abs_error_pct"] == pytest.approx(np.median(raw))
    assert errors.loc["calibrated", "median_abs_error_pct"] < errors.loc[
        "predicted", "median_abs_error_pct"]


def tiny_sweep() -> tuple[SearchConfig, dict, dict]:
    """A search config, the FLOPs estimator and run_sweep's keywords for a seconds-long sweep."""
    target = TargetConfig(C=4, layers=3, image_size=8)
    config = SearchConfig(C=2, layers=3, epochs=1, batch_size=32, steps_per_epoch=2,
                          mode="softmax", gate_gradient="full")
    kwargs = {"splits": load_dataset("digits"), "meter": LatencyMeter(7.0, passes=3, warmup=1),
              "target": target, "overhead_ms": 0.0, "progress": False,
              "evaluation": {"C": 2, "layers": 3, "epochs": 1}}
    return config, {"flops": FlopsEstimator(target)}, kwargs


def test_interrupted_sweep_does_not_redo_finished_runs(tmp_path, monkeypatch):
    config, estimators, kwargs = tiny_sweep()
    first = run_sweep(sweep_points({"flops": [1.0]}, [0]), config, estimators, tmp_path,
                      **kwargs)
    assert first["run_id"].tolist() == ["none-linear-lam0-seed0", "flops-linear-lam1-seed0"]
    searched = []
    original = search_module.LatencyAwareSearch.run
    monkeypatch.setattr(search_module.LatencyAwareSearch, "run",
                        lambda self, **kw: searched.append(self.out_dir.name)
                        or original(self, **kw))
    both = run_sweep(sweep_points({"flops": [1.0]}, [0, 1]), config, estimators, tmp_path,
                     **kwargs)
    assert searched == ["none-linear-lam0-seed1", "flops-linear-lam1-seed1"]
    assert len(both) == 4
    kept = both.set_index("run_id").loc[first["run_id"], "test_acc"].tolist()
    assert kept == first["test_acc"].tolist()
    with pytest.raises(ValueError, match="no estimator named"):
        run_sweep(sweep_points({"mlp": [1.0]}, [0]), config, estimators, tmp_path, **kwargs)


def test_an_estimator_of_another_runtime_searches_without_predicting_the_networks(tmp_path):
    config, estimators, kwargs = tiny_sweep()
    out = run_sweep(sweep_points({"flops": [1.0]}, [0]), config, estimators, tmp_path,
                    predictors={}, **kwargs)
    assert out["estimator"].tolist() == ["none", "flops"]
    assert not [c for c in out if c.startswith("predicted_")]
    with pytest.raises(ValueError, match=r"no estimator named \['onnxruntime'\]; known: "
                                         r"\['flops'\]: give it, or drop it from the lambdas"):
        check_estimators(sweep_points({"onnxruntime": [1.0]}, [0]), estimators)


def test_runs_side_by_side_in_worker_processes_find_what_one_process_finds(tmp_path):
    config, estimators, kwargs = tiny_sweep()
    points = sweep_points({"flops": [3.0]}, [0, 1])
    alone = run_sweep(points, config, estimators, tmp_path / "alone", **kwargs)
    pooled = run_sweep(points, config, estimators, tmp_path / "pooled", workers=2, **kwargs)
    assert pooled["run_id"].tolist() == [p.run_id for p in points]
    columns = ["genotype", "test_acc", "final_train_loss", "search_predicted"]
    pd.testing.assert_frame_equal(pooled[columns], alone[columns])
    assert len(pd.read_csv(tmp_path / "pooled" / "results.csv")) == len(points)
    with pytest.raises(ValueError, match="workers=0"):
        run_sweep(points, config, estimators, tmp_path / "bad", workers=0, **kwargs)


def test_measurement_session_retimes_every_network_and_recalibrates():
    from lenna_core import DARTS_V1, DARTS_V2
    from lenna_core.search.evaluation import calibration_genotypes

    class Fixed(FlopsEstimator):
        unit = "ms"

    target = TargetConfig(C=4, layers=3, image_size=8)
    results = pd.DataFrame({"run_id": ["a", "b", "c"], "measured_ms": [1.0, 2.0, 3.0],
                            "genotype": [DARTS_V2.to_json(), DARTS_V1.to_json(),
                                         DARTS_V2.to_json()]})
    meter = LatencyMeter(7.0, passes=3, warmup=1)
    out, factors, table = measure_session(results, target, meter, {"fixed": Fixed(target)},
                                          0.0, calibration_genotypes(2, seed=1))
    assert out["measured_at_run_ms"].tolist() == [1.0, 2.0, 3.0]
    assert out["measured_ms"].iloc[0] == out["measured_ms"].iloc[2]  # one timing per network
    assert (out["measured_ms"] > 0).all() and len(table) == 2
    assert out["calibrated_ms_fixed"].iloc[1] == pytest.approx(
        factors["fixed"](Fixed(target).predict_genotype(DARTS_V1)))
    # A predictor the sweep did not search with gets its raw prediction from the session.
    assert out["predicted_ms_fixed"].tolist() == pytest.approx(
        [Fixed(target).predict_genotype(g) for g in (DARTS_V2, DARTS_V1, DARTS_V2)])


def test_findings_state_the_matched_setting_and_the_errors():
    results = fake_results()
    lines = findings(summarise_sweep(results), prediction_errors(results), tolerance=1.0)
    assert lines[0].startswith("Plain DARTS (lambda 0): 97.10 ± 0.10% test accuracy, 31.0")
    assert any(line.startswith("mlp: at lambda 1 the cells run 32.3% faster") for line in lines)
    assert any("mlp (calibrated): median |predicted - measured|" in line for line in lines)
    single = results[results["seed"] == 0]
    assert "one seed" in findings(summarise_sweep(single), prediction_errors(single))[0]


def test_cross_fitted_composition_never_sees_the_network_it_predicts():
    from lenna_core.search.evaluation import calibration_genotypes, cross_fitted_ms

    genotypes = calibration_genotypes(5, seed=3)
    blocks = dict(zip(genotypes, [1.0, 2.0, 3.0, 4.0, 10.0]))

    class Known:
        unit = "ms"

        def predict_genotype(self, genotype):
            return blocks[genotype]

    measured = {g: 2.0 * b + 1.0 + 0.5 for g, b in blocks.items()}  # cells, plus 0.5 overhead
    measured[genotypes[0]] += 3.0  # an outlier only its own fit would have absorbed
    table = cross_fitted_ms(Known(), genotypes, measured, overhead_ms=0.5)
    clean = {g: m for g, m in measured.items() if g != genotypes[0]}
    exact = cross_fitted_ms(Known(), genotypes[1:], clean, overhead_ms=0.5)
    assert exact["cross_fitted_ms"].round(9).tolist() == [5.5, 7.5, 9.5, 21.5]
    assert exact["extrapolated"].tolist() == [True, False, False, True]  # the ends of the range
    # The outlier is predicted from the other four, which lie on the line: 3.5, not its 6.5.
    assert table["cross_fitted_ms"].iloc[0] == pytest.approx(3.5)
    with pytest.raises(ValueError, match="at least 2"):
        cross_fitted_ms(Known(), genotypes[:1], {genotypes[0]: 1.0, genotypes[1]: 2.0}, 0.0)


def test_paired_differences_pair_each_seed_with_its_plain_darts_run():
    from scipy import stats

    from lenna_core.search.sweep import paired_differences

    d = paired_differences(fake_results(), "mlp", 1.0)
    latency = [100 * ((20 + s) / (30 + s) - 1) for s in range(3)]
    assert d["seeds"] == 3 and d["acc_change"] == pytest.approx(-0.5)
    assert d["acc_ci"] == pytest.approx(0.0, abs=1e-9)  # the same change on every seed
    assert d["latency_change_pct"] == pytest.approx(np.mean(latency))
    assert d["latency_ci"] == pytest.approx(
        stats.t.ppf(0.975, 2) * np.std(latency, ddof=1) / np.sqrt(3))
    with pytest.raises(ValueError, match="no seed"):
        paired_differences(fake_results(), "flops", 1.0)


def test_prediction_parity_has_one_panel_per_predictor_with_its_kinds():
    import matplotlib
    matplotlib.use("Agg")
    from lenna_core.book.search_plots import plot_prediction_parity

    results = fake_results().assign(predicted_ms_adapted=lambda t: t["measured_ms"] * 1.02)
    fig = plot_prediction_parity(results)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["MLP of chapter 4 (reference device)",
                                                 "MLP adapted to this machine (chapter 5)"]
    legend = [t.get_text() for t in panels[0].get_legend().get_texts()]
    assert legend[1:] == ["raw block sum (median |err| 9.4%)",
                          "random networks' fit (median |err| 0.0%)"]
    with pytest.raises(ValueError, match="no predicted_ms_"):
        plot_prediction_parity(results[["measured_ms", "test_acc"]])
