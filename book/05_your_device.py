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
# # 5. Your device: the latency model on the machine that builds the book
#
# **What this chapter answers.** LENNA's premise is that latency depends on the device, so
# the predictor must fit the device the search targets. The op table of chapter 1 and the
# models of chapter 4 were fit on labels measured on one machine, the *reference device*. How
# well does that model predict the machine running this chapter, and how much profiling does
# it take to adapt it?
# The chapter names both devices and what differs between them, labels fresh blocks here for
# about `budget_s` seconds, adapts the shipped model with the method cross-validation picks
# (`lenna_core.latency.transfer`), and scores the model before and after on blocks it did not see.
# Then it draws how many labelled blocks each method needs on the devices committed under
# `data/devices/` (from `benchmarks/transfer.py`). Chapter 6 reads the adapted model from
# `out_dir` and predicts its derived networks on this machine with it.
#
# | parameter | meaning | unit / range |
# |---|---|---|
# | `seed` | seed of the block draws, the calibration/test split and the fits | integer >= 0 |
# | `budget_s` | profiling time on this machine, reference-cell calibration included | seconds > 0 |
# | `calibration_share` | share of the profiled blocks the transfer may use; the rest score it | number in (0, 1) |
# | `model_path` | the shipped model (chapter 4) | path prefix |
# | `dataset_path` | the reference dataset (its metadata names the reference device) | CSV path |
# | `out_dir` | where this machine's blocks and adapted model are written | folder |
# | `curves_path` | the committed k-curves (`benchmarks/transfer.py --out`) | CSV path |
# | `onnxruntime_dir` | the committed ONNX Runtime device folder (its blocks, op table and model) | folder |
# | `torch_table_path` | the op table of the same CPU kind in torch eager, to compare op costs with | CSV path |
# | `state_earlier_path` | an earlier labelling of the ONNX Runtime folder's held-out blocks, on the same machine in another state | CSV path |
# | `figures_dir` | where figures are written, relative to `book/` | path |

# %% tags=["parameters"]
seed = 1
budget_s = 75.0
calibration_share = 0.5
model_path = "../data/mlp_latency"
dataset_path = "../data/latency_dataset.csv"
out_dir = "../runs/05_this_machine"
curves_path = "../data/devices/transfer_curves.csv"
onnxruntime_dir = "../data/devices/onnxruntime-xeon-6-167"
torch_table_path = "../data/devices/xeon-6-167/op_latency_table.csv"
state_earlier_path = "../data/machine_state/onnxruntime_precise_earlier.csv"
figures_dir = "../figures"

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from lenna_core.book.chapter import setup_book
from lenna_core.book.runtime_report import (
    calibration_table,
    labelled_at,
    model_finding,
    op_costs,
    plot_calibration_curve,
    plot_op_costs,
    plot_state_stretch,
    prior_finding,
    session_finding,
    state_finding,
    training_labels_finding,
)
from lenna_core.book.transfer_report import before_after, plot_transfer_curves, transfer_findings
from lenna_core.latency.dataset import read_dataset
from lenna_core.latency.device_folder import dataset_identity, read_device_folder
from lenna_core.latency.device_identity import (
    describe_device,
    device_identity,
    identity_differences,
)
from lenna_core.latency.device_models import evaluation_blocks
from lenna_core.latency.device_profiling import adapt_and_save, profile_device
from lenna_core.latency.label_noise import plot_parity_panels
from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.machine_state import state_stretch
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.latency.session_calibration import calibration_curve
from lenna_core.latency.transfer import METHODS

run = setup_book(seed, figures_dir=figures_dir)
figures = Path(figures_dir)
source = MLPLatency.load(model_path, check_device_here=False)  # compared below, explicitly

# %% [markdown]
# ## Two devices
#
# A device is everything a latency depends on: the backend, the processor (its name, and the
# family/model numbers that tell apart two VMs sold under one name), its vector ISA, the code
# path of torch's kernels (`scripts/cpu_isa.sh` pins AVX2), the torch build, the threads and
# the batch size.

# %% tags=["nbval-ignore-output"]
reference = dataset_identity(dataset_path)
here = device_identity("cpu", threads=1, batch_size=1)
differences = identity_differences(reference, here)
print("reference device:", describe_device(reference))
print("this machine:    ", describe_device(here))
pd.DataFrame({"reference": reference, "this machine": here}).assign(
    differs=lambda t: t.index.isin(list(differences)))

# %% [markdown]
# ## Profiling this machine
#
# Fresh blocks, drawn like the reference dataset's but with their own seed, labelled with the
# reference labeller (chapter 3): each gate reset times the sampled cell and then the
# reference cell, and the label is the mean ratio times the reference cell's latency,
# calibrated here. So these labels are this machine's own milliseconds. The labelling stops
# when `budget_s` is spent; a run interrupted here resumes from `out_dir`.

# %% tags=["nbval-ignore-output"]
blocks, seconds = profile_device(Path(out_dir) / "blocks.csv", budget_s=budget_s, seed=seed)
print(f"{len(blocks)} blocks labelled in {seconds:.0f} s "
      f"({seconds / max(len(blocks), 1):.2f} s per block)")

# %%
print("every labelled block has a positive, finite latency:",
      bool(np.isfinite(blocks["latency_ms"]).all() and (blocks["latency_ms"] > 0).all()))

# %% [markdown]
# ## Adapting the model
#
# This machine's op table is measured too, over the contexts of the profiled blocks (every op
# and fixed cost, two rounds: seconds): with it, the MLP's correction can sit on this
# machine's own op costs (`remeasured_table`). A seeded share of the blocks calibrates the
# transfer; the others only score it. Every method is cross-validated on the calibration
# blocks and the best is refit on all of them.

# %% tags=["nbval-ignore-output"]
order = np.random.default_rng(seed).permutation(len(blocks))
cut = int(round(calibration_share * len(blocks)))
calibration, test = blocks.iloc[order[:cut]], blocks.iloc[order[cut:]]
adapted, table_seconds = adapt_and_save(source, model_path, calibration, blocks, out_dir,
                                        seed=seed, seconds=seconds, notes="written by chapter 5")
print(f"op table in {table_seconds:.0f} s; chose {adapted.method} ({len(calibration)} "
      f"calibration, {len(test)} test blocks)")
pd.DataFrame(adapted.provenance["cross_validation"]).round(2)

# %%
print("the chosen method is one of the candidates:", adapted.method in METHODS)
print("calibration and test blocks are disjoint:",
      set(calibration["row_id"]).isdisjoint(test["row_id"]))

# %% tags=["nbval-ignore-output"]
predictions = {"shipped model": source.predict(test), f"adapted ({adapted.method})":
               adapted.predict(test)}
scores = before_after(test["latency_ms"], predictions)
fig = plot_parity_panels(test["latency_ms"], predictions, xlabel="label on this machine (ms)",
                         ncols=2)
fig.savefig(figures / "05_before_after.png")
plt.show()
scores.round(3)

# %% [markdown]
# ## How many blocks does each method need?
#
# On the devices committed under `data/devices/`, blocks were labelled twice with the precise
# labeller, so their labels are close to the truth; `benchmarks/transfer.py` adapts the model
# from k blocks of each device's calibration pool (each k drawn several times) and scores every
# method against them. `adapt (CV)` is the method cross-validation picks at that k.

# %% tags=["nbval-ignore-output"]
curves = pd.read_csv(curves_path)
fig = plot_transfer_curves(curves)
fig.savefig(figures / "05_transfer_curves.png")
plt.show()
curves.pivot_table(index=["device", "method"], columns="k", values="within_10_pct").round(1)

# %%
print("devices with committed curves:", sorted(curves["device"].unique()))
print("blocks labelled (k):", sorted(int(k) for k in curves["k"].unique()))

# %% [markdown]
# ## Another runtime on the same CPU: ONNX Runtime
#
# People deploy searched cells with an inference runtime, not with torch eager at batch size 1.
# ONNX Runtime's CPU provider on this kind of machine is a device of its own: the folder
# `onnxruntime_dir` holds blocks labelled there with the reference labeller (`lenna label
# --runtime onnxruntime`: each sampled cell composed from its context's ops, exported once),
# their noise floor, precise labels of the held-out blocks, two op tables and the models
# `lenna fit` fit on its blocks. Chapter 6 searches with that model as a second target. What
# does each op cost in each runtime, timed alone, relative to the reference cell's op?

# %% tags=["nbval-ignore-output"]
onnx_device = read_device_folder(onnxruntime_dir)
print("device:", describe_device(onnx_device["manifest"]["device"]))
print({role: len(frame) for role, frame in onnx_device["frames"].items()}, "blocks per file")
costs = op_costs({"torch eager": OpLatencyTable.from_csv(torch_table_path),
                  "ONNX Runtime": OpLatencyTable.from_csv(Path(onnxruntime_dir)
                                                          / "op_latency_table.csv")})
fig = plot_op_costs(costs)
fig.savefig(figures / "05_op_costs.png")
plt.show()
costs.round(4)

# %% [markdown]
# A convolution weighs far less against a pooling or a skip in ONNX Runtime than in torch
# eager, where every op pays the framework's dispatch cost; a penalty fit in one runtime
# therefore pulls the alphas by other ratios than one fit in the other.
#
# Timed alone, though, an op is a poor prior for ONNX Runtime. Alone it pays a session's
# overhead, which inside a cell it does not (the runtime also fuses ops with their
# neighbours), and it runs in a tight loop with warm caches, while the labeller times each cell
# between passes of the reference cell. So the MLP this device saves corrects another table
# (`tables.op_table` in the folder's manifest), built from *probe cells* timed exactly as
# labels are (`lenna table --probe-cells`): per context, the cell with `none` on every edge and,
# per op, the cell with that op on every edge (in a reduction cell, on its stride-2 and
# stride-1 edges apart); an op's cost is its probe's difference from the `none` probe per edge.
# `lenna fit` scores an MLP on each table against the precise labels of held-out blocks (two
# labellings with the precise rule; the noise floor and a perfect predictor beside them):

# %% tags=["nbval-ignore-output"]
onnx_metrics = pd.read_csv(Path(onnxruntime_dir) / "predictor_metrics_precise.csv",
                           index_col="model")
display(Markdown(" ".join([model_finding(onnx_metrics), prior_finding(onnx_metrics),
                           training_labels_finding(onnx_metrics)])))
onnx_metrics.round(3)

# %%
print("scored models:", sorted(onnx_metrics.index))

# %% [markdown]
# ### The machine's state is part of the device
#
# A label is a block's time over the reference cell's, timed right after it, so a slowdown that
# hits every cell alike cancels. Not every slowdown does. The folder's held-out blocks were
# labelled twice with the precise rule, by the same command on the same virtual machine, hours
# apart: the earlier labelling is kept as `state_earlier_path`, the later one is the folder's.

# %% tags=["nbval-ignore-output"]
earlier = read_dataset(state_earlier_path)
later = onnx_device["frames"]["precise"]
stretch = state_stretch(earlier, later)
precise_path = Path(onnxruntime_dir) / onnx_device["manifest"]["files"]["precise"]
display(Markdown(state_finding(stretch, labelled_at(state_earlier_path),
                               labelled_at(precise_path))))
fig = plot_state_stretch(earlier, later, stretch, ("earlier", "the folder's"))
fig.savefig(figures / "05_machine_state.png")
plt.show()

# %% [markdown]
# The blocks kept their order but not their scale: a power other than 1 moves large cells
# against small ones, as contention for the caches that large cells need would (nothing else
# ran on this virtual machine; its host is shared). No single reference cell cancels that, so a
# model is best fitted and scored on labels taken close together: the folder's pool, noise
# floor and precise labels were labelled back to back. Even so, the state can move a little
# between two labellings; `lenna fit` prints the power between the pool's own labels of the
# evaluation blocks and their precise labels, the part of the model's error that belongs to the
# machine, and `state_stretch` measures it on any two labellings of the same blocks.
#
# ### Calibrating the model to a session
#
# A power is cheap to measure, though. Label a few blocks in the session the model should
# predict, and fit the power between the model's predictions and those labels. It keeps the
# model's order of blocks and moves only its scale. `lenna fit` scores the MLP calibrated this
# way, each held-out block by a power fitted on the other half of them only. The model it saves
# for chapter 6 carries the power fitted on all of them. How many labelled blocks does the
# power need? Each k below is drawn many times; the blocks not drawn score it.

# %% tags=["nbval-ignore-output"]
onnx_model = MLPLatency.load(Path(onnxruntime_dir) / onnx_device["manifest"]["models"]["mlp"],
                             check_device_here=False)  # scored against its own folder's labels
held_out = evaluation_blocks(onnxruntime_dir, onnx_device)  # the folder read above
curve = calibration_curve(onnx_model.without_session_calibration().predict(held_out),
                          held_out["latency_ms"], seed=seed)
display(Markdown(session_finding(onnx_metrics)))
fig = plot_calibration_curve(curve)
fig.savefig(figures / "05_session_calibration.png")
plt.show()
curve.round(1)

# %% [markdown]
# The calibration fixes the scale of one session, not the next: labels taken in another state
# of the machine follow another power. Here is the saved model, as fitted and calibrated,
# against the folder's precise labels and against the earlier labelling of the same blocks:

# %% tags=["nbval-ignore-output"]
calibration_table(onnx_model, {"the folder's (calibrated to)": held_out,
                               "earlier, another state": earlier}).round(3)

# %% [markdown]
# A calibration is worth what the session it was fitted in is worth: where the state can move,
# calibrate in the session whose milliseconds you need. A search ranks cells, and the power
# keeps their order (the same Kendall tau), so chapter 6's search needs it less than these
# error figures do.

# %% [markdown]
# ## What we found

# %% tags=["nbval-ignore-output"]
display(Markdown("\n".join(f"- {line}" for line in transfer_findings(
    differences, scores, adapted.method, len(calibration), seconds + table_seconds, len(test),
    speed=float(np.median(test["latency_ms"] / predictions["shipped model"]))))))
