# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. Baselines: a per-op lookup table and ElasticNet
#
# **What this chapter answers.** How well do the two classic latency models predict the
# expected latency of a block on this CPU? The first is ProxylessNAS's lookup table: time
# every op alone, and take a block's expected latency as a fixed cost plus
# $\sum_e \sum_j p_{ej} L(o_j)$ over its edges. It rests on additivity, which LENNA checked on
# a GPU (the 15 edge means summed to 99.8% of the block time); we test it on this CPU and
# show where it breaks. The second is ElasticNet on the encoded block features, fitted to
# chapter 3's dataset. Together they are the bar that chapter 4's predictors must clear.
#
# | parameter | meaning | unit / range |
# |---|---|---|
# | `seed` | seed of every random draw (sampled cells, train/test split, CV folds) | integer >= 0 |
# | `dataset_path` | the labelled dataset, relative to `book/` | CSV written by `lenna_core.cli.label` |
# | `noise_floor_path` | an independent re-labelling of some of its rows | CSV, same blocks |
# | `table_path` | the op latency table that later chapters read | CSV written by `OpLatencyTable.to_csv` |
# | `remeasure_table` | measure the table again on this machine and overwrite `table_path` | bool (default: load it) |
# | `table_rounds` | when remeasuring, passes over all keys; each key keeps its lowest median | integer >= 1 |
# | `sweep_channels` | channel counts of the per-primitive profile | list of even integers >= 2 |
# | `sweep_sizes` | input sizes of the per-primitive profile | list of even integers, pixels |
# | `repeats` | timed passes per measurement (the median is kept) | integer >= 1 |
# | `warmup` | untimed passes before them | integer >= 0 |
# | `additivity_contexts` | block contexts in the additivity test, spread from small to large | integer >= 2 |
# | `cells_per_context` | random single-path cells timed per context | integer >= 1 |
# | `test_size` | share of the dataset's rows held out for the error figures | number in (0, 1) |
# | `figures_dir` | where figures are written, relative to `book/` | path |
#
# Every latency is in milliseconds, batch size 1, one CPU thread.

# %% tags=["parameters"]
seed = 0
dataset_path = "../data/latency_dataset.csv"
noise_floor_path = "../data/latency_noise_floor.csv"
table_path = "../data/op_latency_table.csv"
remeasure_table = False
table_rounds = 10
sweep_channels = [8, 16, 32, 64]
sweep_sizes = [8, 16, 32]
repeats = 30
warmup = 5
additivity_contexts = 6
cells_per_context = 8
test_size = 0.2
figures_dir = "../figures"

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lenna_core.book.baseline_plots import plot_additivity, plot_test_parity
from lenna_core.book.chapter import setup_book
from lenna_core.book.plotting import readable_log_axes
from lenna_core.latency import dataset as ds
from lenna_core.latency.additivity import additivity_experiment
from lenna_core.latency.encoder import contexts_from_frame
from lenna_core.latency.linear_model import ElasticNetLatency
from lenna_core.latency.lookup_table import LookupTableModel, OpLatencyTable
from lenna_core.latency.metrics import latency_metrics, noise_floor
from lenna_core.latency.op_timing import primitive_sweep
from lenna_core.space.search_space import DARTS_SPACE

run = setup_book(seed, figures_dir=figures_dir)
figures = Path(figures_dir)
timing = {"repeats": repeats, "warmup": warmup, "threads": 1, "device": "cpu"}
print(f"seed={run['seed']} torch threads={run['torch_threads']}")

# %% [markdown]
# ## Each primitive across channels, strides and input sizes
#
# Every DARTS primitive timed alone, as a cell would build it (inference mode, batch 1, one
# thread; the median of the timed passes). Stride 2 halves the output; for `skip_connect` it
# also changes the op, from an identity to `FactorizedReduce` (two 1x1 convolutions).

# %% tags=["nbval-ignore-output"]
sweep = primitive_sweep(DARTS_SPACE.primitives, sweep_channels, (1, 2), sweep_sizes,
                        progress=False, **timing)
sweep.pivot_table(index=["primitive", "stride"], columns=["spatial_in", "C"],
                  values="latency_ms").round(3)

# %%
print("measurements:", sweep.shape[0], "=", len(DARTS_SPACE.primitives), "primitives x",
      len(sweep_channels), "channel counts x 2 strides x", len(sweep_sizes), "sizes")
assert sweep.shape[0] == len(DARTS_SPACE.primitives) * len(sweep_channels) * 2 * len(sweep_sizes)
assert np.isfinite(sweep["latency_ms"]).all() and (sweep["latency_ms"] > 0).all()

# %% tags=["nbval-ignore-output"]
grid = sns.relplot(data=sweep, x="C", y="latency_ms", hue="primitive", style="stride",
                   col="spatial_in", kind="line", markers=True, height=3.6, aspect=0.9,
                   facet_kws={"sharey": True})
grid.set(xscale="log", yscale="log")
for ax in grid.axes.flat:
    readable_log_axes(ax)
    ax.set_xticks(sweep_channels, labels=[str(c) for c in sweep_channels])
grid.set_axis_labels("channels C", "latency (ms)")
grid.set_titles("input {col_name} x {col_name}")
grid.figure.suptitle("Each primitive alone: latency vs channels (batch 1, one thread)", y=1.03)
grid.savefig(figures / "01_primitive_latency.png")
plt.show()

# %% [markdown]
# At the sizes of this dataset, batch 1 on one thread, the convolutions sit on a floor set
# by the number of torch calls they make (a separable convolution is eight modules, a
# dilated one four): on 8x8 inputs their latency hardly moves from 8 to 64 channels, and
# it grows slowly beyond. Pooling is cheap on small maps but grows fastest of all with the
# map and the channels; at 32x32, stride 1, from 16 channels up, max pooling costs as much
# as a separable convolution or more, although its multiply-add count is a small fraction
# of one. `none` and the
# stride-1 identity cost microseconds. Multiply-adds are a poor proxy for latency here.
#
# ## The op table for the dataset's blocks
#
# The table holds every (primitive, channels, input size, stride) that the dataset's blocks
# use, and a fixed cost per block context: the two preprocessing convolutions, the sums at
# the nodes, the concatenation and the Python of the cell's forward. The fixed cost is
# measured as the cell whose every edge is `none` minus those `none` ops timed alone, so the
# table predicts the all-`none` cell exactly and every other error is a failure of
# additivity. It is measured once and committed; `remeasure_table=True` measures it again,
# and should run on a core that nothing else uses (the additivity section shows why). The
# committed table was measured with both cores otherwise idle, ten times over, each key
# keeping its lowest median; its metadata records the rest. Ten rounds, not three: an op
# timed alone has no reference cell to cancel this machine's slow speed phases, and on the
# machine of 2026-12-03 a three-round table, calibrated, ranked the held-out blocks clearly
# worse against their precise labels (chapter 4) than a ten-round one.

# %%
data = ds.read_dataset(dataset_path)
ok = data[data["status"] == "ok"].reset_index(drop=True)
contexts = contexts_from_frame(ok)
if remeasure_table:
    table = OpLatencyTable.measure(sorted(set(contexts), key=str), DARTS_SPACE,
                                   rounds=table_rounds, **timing)
    table.to_csv(table_path)
table = OpLatencyTable.from_csv(table_path)
print(f"dataset: {len(ok)} labelled blocks in {len(set(contexts))} contexts")
print(f"table: {len(table.ops)} op latencies, {len(table.fixed)} fixed costs; "
      f"uncovered blocks: {len(table.missing(contexts))}")
assert table.missing(contexts) == [] and table.meta["units"]["latency"] == "ms"

# %% tags=["nbval-ignore-output"]
machine, settings = table.meta["machine"], table.meta["settings"]
print(f"measured {table.meta['measured']} on {machine['device_name']} (cores "
      f"{table.meta.get('cpu_affinity')}), torch {machine['torch']}, threads="
      f"{settings['threads']}, median of {settings['repeats']} passes after {settings['warmup']}"
      f", load average {machine['load_average_1_5_15']}")
print(f"statistic: {table.meta['statistic']}; {table.meta.get('note', '')}")

# %%
fixed = table.fixed.assign(share=table.fixed["latency_ms"] / table.fixed["zero_cell_ms"])
print("fixed cost per block (ms):", fixed["latency_ms"].describe()[["min", "50%", "max"]]
      .round(3).to_dict())
print("preprocessing share of the fixed cost (median):",
      round(float((fixed["preprocess_ms"] / fixed["latency_ms"]).median()), 2))

# %% [markdown]
# ## Additivity: does a cell cost the sum of its ops?
#
# We take a few block contexts from the dataset, spread from the smallest to the largest
# (normal and reduction), and for each one time every candidate op and the fixed cost on
# the very modules the cells are built from, then random single-path cells (one uniformly
# drawn op per edge). Ops and cells are timed the same way, a few seconds apart: the
# profiler's wall-clock median of warm passes, and the median CPU time of the thread. A
# core that other processes share counts their time slices in the wall clock but not in
# the CPU clock; `wall_over_cpu` near 1 means the core was ours. Each cell is also timed
# once straight after a different cell ran, as the dataset's labels are timed, and
# `table_ratio` compares the cell with the committed table's prediction.

# %%
unique = sorted(set(contexts), key=lambda c: (c.reduction, c.C * c.spatial ** 2, str(c)))
chosen = []
for reduction in (False, True):
    pool = [c for c in unique if c.reduction == reduction]
    picks = np.linspace(0, len(pool) - 1, (additivity_contexts + 1 - reduction) // 2)
    chosen += [pool[int(round(i))] for i in picks]
pd.DataFrame([c.to_dict() for c in chosen])

# %% tags=["nbval-ignore-output"]
cells = additivity_experiment(chosen, cells_per_context, DARTS_SPACE, table=table, seed=seed,
                              progress=False, **timing)
cells["block"] = [f"{'red' if r else 'norm'} C={c} {s}x{s}" for r, c, s in
                  cells[["reduction", "C", "spatial"]].itertuples(index=False)]
cells["first_pass_ratio"] = cells["first_pass_ms"] / cells["predicted_ms"]
cells["table_ratio"] = cells["measured_ms"] / cells["table_ms"]
cells["wall_over_cpu"] = cells["measured_ms"] / cells["measured_cpu_ms"]
by_block = cells.groupby("block", sort=False).agg(
    predicted_ms=("predicted_ms", "median"), measured_ms=("measured_ms", "median"),
    ratio=("ratio", "median"), ratio_min=("ratio", "min"), ratio_max=("ratio", "max"),
    cpu_ratio=("cpu_ratio", "median"), first_pass_ratio=("first_pass_ratio", "median"),
    table_ratio=("table_ratio", "median"), wall_over_cpu=("wall_over_cpu", "median"),
    fixed_share=("fixed_ms", "first"))
by_block["fixed_share"] /= by_block["predicted_ms"]
by_block.round(3)

# %%
print("cells timed:", len(cells), "| contexts:", cells["block"].nunique())
assert len(cells) == len(chosen) * cells_per_context
timed = ["measured_ms", "predicted_ms", "measured_cpu_ms", "predicted_cpu_ms", "first_pass_ms"]
assert (cells[timed] > 0).all().all() and np.isfinite(cells["table_ms"]).all()

# %% tags=["nbval-ignore-output"]
fig = plot_additivity(cells)
fig.savefig(figures / "01_additivity.png")
plt.show()

# %% [markdown]
# **Where additivity breaks on this CPU.** The ratios above are measured now and move from
# run to run; the findings below print this run's. On a quiet core (`wall_over_cpu` near
# 1), the median cell has cost somewhat more than its fixed cost plus the sum of its ops in
# every run we made, by either clock: a bias, where LENNA's GPU showed none (its edge means
# summed to 0.998 of the block). An op timed alone in a hot
# loop runs with its weights, its input and its kernels' code in the caches; inside a cell
# it follows other ops. Single cells scatter widely around that median (from about half
# to over twice), more than any trend with block size that our few runs could separate. On a
# shared core, additivity breaks outright: an op of a few tens of microseconds fits
# between the other processes' time slices and its median stays clean, while a cell of
# several milliseconds spans them, so by the wall clock the cell costs several times its
# sum (we saw this while other jobs ran), and even the CPU clock rises, since every switch
# evicts the cell's data from the caches. The table, the dataset and any comparison
# between them must come from a core that nothing else uses. The single first pass
# (`first_pass_ratio`), timed as the labels are, is slower still than the warm median.
#
# ## The lookup table and ElasticNet on the dataset
#
# A seeded split of the labelled blocks (80/20 by row). Three models: the pure table sum
# (ProxylessNAS: nothing is fitted), the table sum calibrated by a least-squares line on the
# training rows (`y = a * sum + b`), and ElasticNet on the encoded features, fitted to log
# latency with its penalty chosen by 5-fold cross-validation. The noise floor is the
# agreement of two independent labellings of the same blocks (chapter 3). It compares two
# noisy labels; a model that knew each block's true expected latency would be compared with
# one, so if the two labellings' errors are independent it would score about the floor's
# RMSE divided by $\sqrt{2}$. A model well inside that is fitting noise.

# %%
train, test = ds.held_out_split(data, test_size, seed)
y_train, y_test = train["latency_ms"].to_numpy(), test["latency_ms"].to_numpy()
models = {"lookup table (sum)": LookupTableModel(table),
          "lookup table (calibrated)": LookupTableModel(table, calibrate=True),
          "ElasticNet": ElasticNetLatency(random_state=seed)}
predictions = {name: model.fit(train, y_train).predict(test) for name, model in models.items()}
pairs = ds.paired_labels(data, ds.read_dataset(noise_floor_path))
rows = {"noise floor (two labellings)": noise_floor(pairs["latency_ms_first"],
                                                     pairs["latency_ms_second"])}
rows.update({name: latency_metrics(y_test, p) for name, p in predictions.items()})
results = pd.DataFrame(rows).T.astype({"n": int})
print(f"train {len(train)} blocks, test {len(test)}; noise floor on {len(pairs)} paired blocks")
print(results.round(2).to_string())
print(f"a perfect predictor against one labelling: RMSE about "
      f"{rows['noise floor (two labellings)']['rmse_ms'] / np.sqrt(2):.2f} ms")

# %%
calibrated, enet = models["lookup table (calibrated)"], models["ElasticNet"]
print(f"calibration: label = {calibrated.scale_:.3f} x table sum + {calibrated.offset_:.3f}")
print(f"ElasticNet: alpha = {enet.alpha_:.2e}, {np.count_nonzero(enet.coef_)} of "
      f"{enet.coef_.size} coefficients non-zero; the largest (log latency per std):")
print(enet.coefficients().head(8).round(3).to_string())

# %% [markdown]
# Where the errors are: the mean absolute percentage error on the test blocks, by cell type
# and by the kind of architecture probabilities (one-hot blocks are single cells; the others
# are expectations over many).

# %%
errors = test[["reduction", "alpha_kind"]].assign(
    cell=np.where(test["reduction"], "reduction", "normal"))
for name, p in predictions.items():
    errors[name] = 100 * np.abs(p - y_test) / y_test
print(errors.groupby(["cell", "alpha_kind"])[list(predictions)].mean().round(1).to_string())

# %% tags=["nbval-ignore-output"]
fig = plot_test_parity(y_test, predictions, rows, test["reduction"].to_numpy())
fig.savefig(figures / "01_parity.png")
plt.show()

# %% [markdown]
# ## What we found

# %% tags=["nbval-ignore-output"]
lut, cal, net, floor = (rows[k] for k in ("lookup table (sum)", "lookup table (calibrated)",
                                           "ElasticNet", "noise floor (two labellings)"))
print(f"Additivity, measured now on {len(cells)} random single-path cells in {len(chosen)} "
      f"contexts: cell / (fixed cost + sum of its ops) = {cells['cpu_ratio'].median():.2f} by "
      f"the CPU clock (range {cells['cpu_ratio'].min():.2f}-{cells['cpu_ratio'].max():.2f}), "
      f"{cells['ratio'].median():.2f} by the wall clock (wall / CPU time of the cells "
      f"{cells['wall_over_cpu'].median():.2f}: 1 on a core of our own); a single first pass: "
      f"{cells['first_pass_ratio'].median():.2f}. LENNA on a GPU: 0.998.")

# %%
print(f"Dataset, {len(test)} test blocks (committed data and table, seed {seed}):")
for name in ("lookup table (sum)", "lookup table (calibrated)", "ElasticNet",
             "noise floor (two labellings)"):
    m = rows[name]
    print(f"  {name:29s} MAPE {m['mape_pct']:5.1f}%  within ±10% {m['within_10_pct']:5.1f}%  "
          f"RMSE {m['rmse_ms']:.2f} ms  Kendall tau {m['kendall_tau']:.3f}  "
          f"Spearman {m['spearman']:.3f}")
print(f"  the labels sit {calibrated.offset_:.2f} ms above {calibrated.scale_:.2f} x the "
      "table sum")

# %% [markdown]
# The lines above are this chapter's findings, printed from its own data: the additivity
# ratios are measured on the machine running the chapter; the model figures are fixed by
# the committed dataset, table and seed.
#
# - **Additivity is biased on a quiet core and broken on a shared one.** A warm cell costs
#   more than its fixed cost plus the sum of its ops (the ratio printed above; LENNA's GPU:
#   0.998), with a wide scatter from cell to cell; on a core shared with other work the
#   wall-clock ratio grows several-fold, because a cell spans the other processes' time
#   slices and a single op does not.
# - **The pure table sum ranks blocks well but prices them low.** Its Kendall tau against
#   the labels is as high as the agreement of two labellings, but every block is predicted
#   well below its label (the calibration line). The labels are expressed in units of a
#   reference cell timed once for the whole dataset (chapter 3), so that timing sets their
#   scale; cells also cost more than their warm sums, and a single first pass more again.
#   A least-squares line fitted on the training blocks removes the gap and brings the table
#   to the noise floor.
# - **ElasticNet does worse than the calibrated table.** A model linear in the encoded
#   features cannot form the products of probabilities and per-op costs that the table has
#   built in; its largest coefficients are the expected multiply-adds and the expected
#   number of separable convolutions. Multiply-adds are a weak guide on this CPU at these
#   sizes: convolutions sit on a floor of per-call overhead, and max pooling on a 32x32
#   map costs as much as a separable convolution.
# - **The bar for chapter 4 is the calibrated table, and it is at the noise floor.** Two
#   independent labellings of the same blocks disagree about as much as the calibrated
#   table disagrees with one labelling; a predictor that claims to do much better than
#   that on these labels is fitting their noise.
