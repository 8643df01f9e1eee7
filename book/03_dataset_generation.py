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
# # 3. The latency dataset
#
# **What this chapter answers.** What does the data that trains the latency predictor look
# like, how was it measured, and how close can any predictor possibly get to it?
#
# Each row is one block: a cell taken from a randomly drawn DARTS network (its input channels,
# spatial size, whether it and its predecessor reduce) and one draw of architecture
# probabilities, from near-uniform (where a search starts) to one-hot (where it ends). The
# label is the block's expected latency under binary gates: the mean over gate resets of the
# measured latency of the sampled single-path cell, with resets added until the standard
# error of that mean is below 4% (the rule chapter 2 compares with LENNA's). The very draw
# of probabilities stored as the row's features is the one the gates sample from.
#
# Timing on this machine drifts in phases (shown below), so every reset times the sampled cell
# and then a fixed reference cell (16 channels, 16x16, `sep_conv_3x3` on every edge), and
# records their ratio; the label is the mean ratio times the reference cell's latency,
# calibrated once for the dataset and stored in its metadata. Both cells see the same phase,
# and it cancels.
#
# The reference dataset was measured on the machine named below, with
#
# ```bash
# lenna label --out data/latency_dataset.csv --rows 3000 --core 1
# lenna label --out data/latency_noise_floor.csv --rows 300 --run-tag repeat --scale-from data/latency_dataset.csv --core 1
# ```
#
# The second command re-labels the first 300 blocks with independent gate draws and timings
# (and the first dataset's calibrated reference latency): the noise floor. To use your own device, run the same commands (add `--device cuda` for a
# GPU) into new files and point `dataset_path` and `noise_floor_path` at them.
#
# The 600 blocks chapter 4 holds out were then labelled twice more, to a 1% standard error:
#
# ```bash
# lenna label --out data/latency_dataset_precise.csv --rows 3000 --held-out-of data/latency_dataset.csv --target-rel-error 0.01 --timings-per-reset 3 --control-table data/op_latency_table.csv --run-tag precise --scale-from data/latency_dataset.csv --core 0
# ```
#
# and the same with `--run-tag precise_repeat` into `latency_dataset_precise_repeat.csv`:
# three pass pairs per reset, and the op table's prediction for each drawn cell as a control
# variate (the seconds per block are in the files' `seconds` column). Chapter 4 prints how far
# apart the two precise labellings are, against two standard ones: closer, but by less than
# their claimed standard errors promise; part of a label's error does not shrink with more
# resets.
#
# Labels from another machine cannot join a dataset. The same blocks, timed on the machine of
# 2026-12-03, ran slower, relative to the reference cell, than on the machine that labelled
# the first reference dataset (2026-11-23), by more than a label's standard error. So that day
# the dataset, its noise floor,
# the derived-cell blocks, the op table (chapter 1) and the precise labels were all measured
# again, in one session, on one machine.
#
# | parameter | meaning | unit / range |
# |---|---|---|
# | `seed` | seed of the demonstration run | integer >= 0 |
# | `dataset_path` | the labelled dataset, relative to `book/` | CSV written by `lenna_core.cli.label` |
# | `noise_floor_path` | the independent re-measurement of some of its rows | CSV, same blocks, other `--run-tag` |
# | `demo_rows` | rows the live demonstration labels (0 skips it) | integer >= 0 |
# | `figures_dir` | where figures are written, relative to `book/` | path |

# %% tags=["parameters"]
seed = 0
dataset_path = "../data/latency_dataset.csv"
noise_floor_path = "../data/latency_noise_floor.csv"
demo_rows = 3
figures_dir = "../figures"

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

from lenna_core.book.chapter import setup_book
from lenna_core.book.plotting import CELL_COLOURS, legend_outside, readable_log_axes
from lenna_core.latency import dataset as ds
from lenna_core.latency.labeller import DEFAULT_RULE, make_labeler
from lenna_core.latency.metrics import noise_floor
from lenna_core.latency.reference_clock import ReferenceClock

run = setup_book(seed, figures_dir=figures_dir)
figures = Path(figures_dir)

# %% [markdown]
# ## Generating rows, and resuming
#
# A small live run shows the mechanics: rows are appended one complete line at a time, and a
# second call with more rows skips those already written. (Its latencies are measured now, on
# the machine running this chapter.)

# %% tags=["nbval-ignore-output"]
with tempfile.TemporaryDirectory() as tmp:
    demo = Path(tmp) / "demo.csv"
    reference_ms = ds.read_metadata(dataset_path)["settings"]["rule"]["reference_ms"]
    labeler = make_labeler(DEFAULT_RULE, ReferenceClock(), reference_ms)
    rule = {"name": type(DEFAULT_RULE).__name__}
    first = ds.label_dataset(demo, range(max(demo_rows - 1, 0)), labeler, rule, seed=seed,
                             progress=False)
    second = ds.label_dataset(demo, range(demo_rows), labeler, rule, seed=seed,
                              progress=False)
    demo_frame = ds.read_dataset(demo)
demo_frame[["row_id", "alpha_kind", "reduction", "C", "spatial", "latency_ms", "resets"]]

# %%
print("first call:", first)
print("second call:", second)
assert sorted(demo_frame["row_id"]) == list(range(demo_rows))

# %% [markdown]
# ## The reference dataset

# %%
data = ds.read_dataset(dataset_path)
meta = ds.read_metadata(dataset_path)
ok = data[data["status"] == "ok"]
print(f"rows: {len(data)}, labelled: {len(ok)}, failed: {(data['status'] == 'failed').sum()}")
print("schema version:", meta["schema_version"], "| latency unit:", meta["units"]["latency"])
print("stopping rule:", {k: v for k, v in meta["settings"]["rule"].items()})
assert len(ok) >= 3000 and ok["latency_ms"].gt(0).all()

# %% [markdown]
# Where and how it was measured (the machine, its load before and after each session, and
# the wall time the labels took):

# %% tags=["nbval-ignore-output"]
machine = meta["machine"]
print(f"device: {machine['device']} ({machine['device_name']}), {machine['cpu_count']} cores, "
      f"torch {machine['torch']}, threads={meta['settings']['threads']}, "
      f"batch size {meta['settings']['spec']['batch_size']}")
for session in meta["sessions"]:
    print(f"session {session['started']}: core {session['cpu_core']}, "
          f"{session.get('rows_written', '?')} rows, load before {session['load_average_before']}"
          f" after {session.get('load_average_after')}")
print(f"labelling time: {data['seconds'].sum() / 60:.1f} min in total, "
      f"{data['seconds'].median():.2f} s per block (median)")

# %% tags=["nbval-ignore-output"]
ds.describe_dataset(data)

# %%
summary = ds.describe_dataset(data)
print("cell types x kinds of probabilities:", summary.shape[0])
print("every kind present for both cell types:",
      summary.reset_index().groupby("cell")["alpha_kind"].nunique().eq(4).all())

# %% [markdown]
# Latency grows with the work in a block, and the probabilities matter: at the same context,
# a block whose probabilities favour convolutions is slower than one that favours pooling
# and skips. The figure shows the labels against the block's input size.

# %% tags=["nbval-ignore-output"]
plot = ok.assign(cell=ok["reduction"].map({True: "reduction", False: "normal"}),
                 activations=ok["C_prev"] * ok["spatial"] ** 2)
fig, axes = plt.subplots(1, 2, figsize=(14, 4.2), layout="constrained")
sns.scatterplot(data=plot, x="activations", y="latency_ms", hue="alpha_kind", style="cell",
                s=14, alpha=0.6, ax=axes[0])
axes[0].set(xscale="log", yscale="log", xlabel="input activations per sample, C_prev x H x W",
            ylabel="expected latency (ms)", title="Labels vs block input size")
readable_log_axes(axes[0])
legend_outside(axes[0], fontsize=8)
sns.histplot(data=plot, x="latency_ms", hue="cell", palette=CELL_COLOURS, log_scale=True,
             ax=axes[1])
readable_log_axes(axes[1], "x")
axes[1].set(xlabel="expected latency (ms)", ylabel="blocks", title="Distribution of labels")
fig.savefig(figures / "03_dataset_overview.png")
plt.show()

# %% [markdown]
# ## The noise floor
#
# The same blocks, labelled a second time with independent gate draws and timings. The
# disagreement between the two runs is what any predictor inherits from its labels.

# %% tags=["nbval-ignore-output"]
repeat = ds.read_dataset(noise_floor_path)
pairs = ds.paired_labels(data, repeat)
floor = noise_floor(pairs["latency_ms_first"], pairs["latency_ms_second"])
print({k: round(v, 3) for k, v in floor.items()})

# %%
print("paired rows:", len(pairs), "| repeat uses other gate draws:",
      ds.read_metadata(noise_floor_path)["settings"]["run_tag"] != meta["settings"]["run_tag"])
assert len(pairs) >= 250 and set(pairs["row_id"]) <= set(ok["row_id"])

# %% tags=["nbval-ignore-output"]
fig, ax = plt.subplots(figsize=(5, 5))
ax.scatter(pairs["latency_ms_first"], pairs["latency_ms_second"], s=10, alpha=0.6)
lims = [pairs[["latency_ms_first", "latency_ms_second"]].min().min() * 0.9,
        pairs[["latency_ms_first", "latency_ms_second"]].max().max() * 1.1]
ax.plot(lims, lims, color="0.3", lw=1)
ax.set(xscale="log", yscale="log", xlim=lims, ylim=lims, xlabel="first run (ms)",
       ylabel="second run (ms)",
       title=f"Noise floor: MAPE {floor['mape_pct']:.1f}%, {floor['within_10_pct']:.0f}% within ±10%")
readable_log_axes(ax)
fig.savefig(figures / "03_noise_floor.png")
plt.show()

# %% [markdown]
# ### Why two labellings can disagree this much
#
# The cell below times one fixed single-path cell in consecutive windows of 50 passes and
# prints how far the window medians move, against a label's 4% standard-error target; when
# they move by more, within seconds and on an idle machine too, a label made of plain timings
# inherits the phase it was measured in. In our first attempt, two labellings of the same
# 300 blocks disagreed by several times the standard error each label claimed. The
# interleaved reference cell divides the phase out; the noise floor above is what remains.

# %% tags=["nbval-ignore-output"]
drift = ds.timing_drift(data.iloc[0], space=None, windows=6, passes=50)
drift

# %%
print("windows:", len(drift), "| columns:", list(drift.columns))

# %% tags=["nbval-ignore-output"]
print(f"{len(ok)} blocks labelled on {machine['device_name']} in "
      f"{data['seconds'].sum() / 60:.0f} min ({data['resets'].median():.0f} gate resets per "
      f"label, median). Two independent labellings of {len(pairs)} blocks differ by "
      f"{floor['mape_pct']:.1f}% on average (MAPE); {floor['within_10_pct']:.0f}% agree within "
      f"±10%, Kendall tau {floor['kendall_tau']:.3f}.")

# %% [markdown]
# ## What we found
#
# The line above states this chapter's findings from its own data: the number of labelled
# blocks, the time they took on the recorded machine, and the noise floor. The noise floor is the bar for
# chapter 4: a predictor whose error against these labels approaches the floor's MAPE is as
# good as the measurements allow; one that claims to beat it is fitting noise.
