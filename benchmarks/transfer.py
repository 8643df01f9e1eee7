"""How many blocks measured on a new device does each transfer method need? From committed data.

For every device folder under ``data/devices/`` (see its ``manifest.json``): k blocks are drawn
from the device's calibration pool (``pool.csv``, standard labels), the reference model
``data/mlp_latency`` is adapted with each method of ``lenna_core.latency.transfer`` (and with the
method cross-validation picks, ``adapt``), and the result is scored against the device's
evaluation blocks (blocks the reference model never trained on), labelled twice with the
precise labeller (``precise.csv``, ``precise_repeat.csv``; scored against their geometric
mean). Each k is drawn ``--repeats`` times; the table shows means. Beside it: the noise floor
between the two precise labellings, and the perfect-predictor ceiling against their mean.

    .venv/bin/python benchmarks/transfer.py
    .venv/bin/python benchmarks/transfer.py --ks 0,10,50 --repeats 3 --methods scale,log_affine
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from lenna_core.latency.dataset import read_metadata
from lenna_core.latency.device_folder import read_device_folder
from lenna_core.latency.label_noise import mean_of_two
from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.metrics import latency_metrics, noise_floor, perfect_predictor_ceiling
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.latency.transfer import METHODS, adapt, available_methods, fit_method

ROOT = Path(__file__).resolve().parent.parent
SCORES = ["within_10_pct", "mape_pct", "kendall_tau"]


def load_device(folder: Path) -> dict:
    """A device folder's manifest, calibration pool and evaluation blocks with both labels."""
    checked = read_device_folder(folder)
    frames = checked["frames"]
    first = frames["precise"].set_index("row_id")
    second = frames["precise_repeat"].set_index("row_id")
    pool = frames["pool"]
    ids = sorted(set(first.index[first.status == "ok"]) & set(second.index[second.status == "ok"]))
    # Evaluation blocks must be independent of the calibration blocks: a row id stands for
    # the same block only under the same seed (newer pools are drawn with another one), and
    # then the pool gives up those blocks (as `lenna fit` does), the evaluation keeps them all.
    files = checked["manifest"]["files"]
    seeds = {role: read_metadata(folder / files[role])["settings"]["seed"]
             for role in ("pool", "precise")}
    evaluation = first.loc[ids].reset_index()
    evaluation["first_ms"] = first.loc[ids, "latency_ms"].to_numpy()
    evaluation["second_ms"] = second.loc[ids, "latency_ms"].to_numpy()
    evaluation["latency_ms"] = mean_of_two(evaluation.first_ms, evaluation.second_ms)
    pool = pool[(pool.status == "ok") & (~pool.row_id.isin(ids)
                                         | (seeds["pool"] != seeds["precise"]))]
    pool = pool.reset_index(drop=True)
    tables = checked["manifest"].get("tables", {})
    table = (OpLatencyTable.from_csv(folder / tables["op_table"]) if "op_table" in tables
             else None)
    return {"manifest": checked["manifest"], "pool": pool, "evaluation": evaluation,
            "table": table}


def score_transfers(source: MLPLatency, device: dict, ks: list[int], methods: list[str],
                    repeats: int, seed: int) -> pd.DataFrame:
    """Mean scores over ``repeats`` draws of k pool blocks, per k and method."""
    evaluation, pool = device["evaluation"], device["pool"]
    # Only methods whose tables price every block of the device (a model whose op table
    # holds batch-1 ops alone cannot price a batch-8 block, however it is adapted).
    priced = available_methods(source, max(ks), device["table"], methods,
                               X=pd.concat([pool, evaluation], ignore_index=True))
    left_out = [m for m in available_methods(source, max(ks), device["table"], methods)
                if m not in priced]
    if left_out:
        print(f"   left out: {left_out} (they predict through the model's own op table, "
              "which lacks these blocks' ops)")
    rows = []
    for k in ks:
        for r in range(repeats if k > 0 else 1):
            picked = pool.sample(n=k, random_state=seed + r) if k else pool.iloc[:0]
            y = picked["latency_ms"].to_numpy()
            table = device["table"]
            candidates = [m for m in available_methods(source, k, table, methods)
                          if m in priced]
            for method in candidates:
                started = time.perf_counter()
                try:
                    model = fit_method(source, method, picked, y, seed=seed + r, table=table)
                    scores = latency_metrics(evaluation.latency_ms, model.predict(evaluation))
                except ValueError as err:  # this draw's fit cannot price every block
                    print(f"   k={k}, repeat {r}: {method} failed ({err}); scored NaN")
                    scores = dict.fromkeys(SCORES, np.nan)
                rows.append({"k": k, "method": method, "repeat": r,
                             "fit_s": time.perf_counter() - started, **scores})
            if k >= 2:
                started = time.perf_counter()
                chosen = adapt(source, picked, y, methods=list(candidates), seed=seed + r,
                               table=table)
                try:
                    scores = latency_metrics(evaluation.latency_ms, chosen.predict(evaluation))
                except ValueError as err:
                    print(f"   k={k}, repeat {r}: adapt chose {chosen.method}, which failed "
                          f"on the evaluation blocks ({err}); scored NaN")
                    scores = dict.fromkeys(SCORES, np.nan)
                rows.append({"k": k, "method": f"adapt (chose {chosen.method})", "repeat": r,
                             "fit_s": time.perf_counter() - started, **scores})
    frame = pd.DataFrame(rows)
    frame["method"] = frame.method.where(~frame.method.str.startswith("adapt"), "adapt (CV)")
    return frame.groupby(["k", "method"], sort=False)[SCORES + ["fit_s"]].mean().reset_index()


def main() -> None:
    """Print, per device, the k-curves of every transfer method beside the noise floor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default=str(ROOT / "data" / "devices"))
    parser.add_argument("--model", default=str(ROOT / "data" / "mlp_latency"))
    parser.add_argument("--ks", default="0,10,20,50,100,200")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None,
                        help="also write the curves as CSV (chapter 5 draws them), e.g. "
                             "data/devices/transfer_curves.csv")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the source model was fit on another device: known
        source = MLPLatency.load(args.model)
    ks, methods = [int(k) for k in args.ks.split(",")], args.methods.split(",")
    folders = sorted(p.parent for p in Path(args.devices).glob("*/manifest.json"))
    if not folders:
        raise SystemExit(f"no device folders with a manifest.json under {args.devices}")
    curves = []
    for folder in folders:
        device = load_device(folder)
        ev = device["evaluation"]
        print(f"\n== {folder.name}: {device['manifest']['description']}")
        print(f"   calibration pool {len(device['pool'])} blocks; evaluation {len(ev)} blocks "
              "(precise labels, twice)")
        floor = noise_floor(ev.first_ms, ev.second_ms)
        ceiling = perfect_predictor_ceiling(ev.first_ms, ev.second_ms, ev.latency_ms,
                                            averaged=2)
        print("   noise floor (precise vs precise repeat): "
              + ", ".join(f"{k} {floor[k]:.3g}" for k in SCORES))
        print("   perfect predictor against their mean:    "
              + ", ".join(f"{k} {ceiling[k]:.3g}" for k in SCORES))
        scores = score_transfers(source, device, ks, methods, args.repeats, args.seed)
        curves.append(scores.assign(device=folder.name, noise_floor_within_10_pct=floor[
            "within_10_pct"], ceiling_within_10_pct=ceiling["within_10_pct"],
            evaluation_blocks=len(ev)))
        table = scores.pivot(index="method", columns="k", values=SCORES)
        with pd.option_context("display.width", 200, "display.max_columns", 50):
            print(table.round(3).to_string())
    if args.out:
        pd.concat(curves).round(4).to_csv(args.out, index=False)
        print(f"\ncurves written to {args.out}")


if __name__ == "__main__":
    main()
