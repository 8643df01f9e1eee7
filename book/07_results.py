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
# # Results
#
# **What this page answers.** The book's headline numbers in one place, read from the files
# the chapters wrote: how well the latency predictors of chapter 4 do next to the published
# anchors, and the accuracy/latency front of the searches of chapter 6, with the machine
# they were measured on, in torch eager and, where chapter 6 timed them there too, in ONNX
# Runtime. Nothing is measured here; the conclusions at the end pair the searches of chapter
# 6 seed by seed.
#
# | parameter | meaning | unit / range |
# |---|---|---|
# | `predictor_metrics_path` | chapter 4's comparison table | CSV path |
# | `truth_metrics_path` | chapter 4's scores against one, two and (estimated) error-free labellings | CSV path |
# | `precise_metrics_path` | chapter 4's scores against precise labels of the held-out blocks | CSV path |
# | `search_results_path` | chapter 6's table of runs | CSV path |
# | `dataset_path` | the latency dataset (its metadata names the machine) | CSV path |
# | `tolerance` | accuracy loss (points) accepted as "matched" | number >= 0 |
# | `speedup_bar_pct` | the latency gain, in a search's own runtime, the fourth conclusion checks against | percent > 0 |
# | `figures_dir` | where figures are written, relative to `book/` | path |

# %% tags=["parameters"]
predictor_metrics_path = "../data/predictor_metrics.csv"
truth_metrics_path = "../data/predictor_metrics_truth.csv"
precise_metrics_path = "../data/predictor_metrics_precise.csv"
search_results_path = "../data/search_results.csv"
dataset_path = "../data/latency_dataset.csv"
tolerance = 1.0
speedup_bar_pct = 30.0
figures_dir = "../figures"

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from lenna_core.book.chapter import setup_book
from lenna_core.book.results_page import all_conclusions, anchors_table
from lenna_core.book.search_plots import plot_runtime_fronts
from lenna_core.latency.device_folder import dataset_identity
from lenna_core.latency.device_identity import (
    describe_device,
    describe_differences,
    device_identity,
    identity_differences,
)
from lenna_core.latency.label_noise import SCORINGS
from lenna_core.search import runtimes
from lenna_core.search import sweep as sw

run = setup_book(0, figures_dir=figures_dir)
figures = Path(figures_dir)

# %% [markdown]
# ## Where each number was measured
#
# Two devices appear in the book. The *reference device* labelled the latency dataset
# (chapter 3), so the op table, the models of chapter 4 and their scores predict its
# latencies, one thread, batch size 1, in milliseconds scaled by its reference cell. The
# searches of chapter 6 were timed on the machine named in their results, in the same
# reference-scaled milliseconds. The machine that builds the book can be a third: chapter 5
# profiles it and adapts the model to it, and chapter 6 predicts its derived networks there
# with that adapted model. A device is more than a processor name (two VMs
# that both call themselves "AMD EPYC" can time the same blocks differently), so the
# family/model numbers, the vector ISA and the kernel path are listed too (a field an older record lacks reads "not
# recorded").

# %%
search = pd.read_csv(search_results_path)
reference = dataset_identity(dataset_path)
print("reference device (labelled the data):", describe_device(reference))
print("chapter 6's latencies measured on:", ", ".join(search["device_name"].unique()),
      "| target input (batch x C x H x W):", ", ".join(search["target_input"].unique()))

# %% tags=["nbval-ignore-output"]
here = device_identity("cpu", threads=1, batch_size=1)
differences = identity_differences(reference, here)
print("this page was built on:", describe_device(here))
print("differs from the reference device in:",
      describe_differences(differences) if differences else "nothing recorded")

# %% [markdown]
# ## Predicting block latency (chapter 4)
#
# Our models on 600 held-out blocks of the reference dataset, next to what the literature
# reports for its own predictors and devices (not the same task: the anchors predict whole
# models on phones and GPUs, ours predict the expected latency of a block under binary gates
# on a noisy 2-core CPU). The last two lines of our table bound what any model can show on
# these labels: the agreement of two labellings of the same blocks, and the expected score of
# a perfect predictor against one labelling.

# %%
ours = pd.read_csv(predictor_metrics_path, index_col="model")
ours[["rmse_ms", "mape_pct", "within_10_pct", "kendall_tau", "spearman"]].round(3)

# %% [markdown]
# The same models scored on the 300 blocks labelled twice, predicted out of fold: against one
# labelling, against the mean of both (half the label noise), and against error-free labels
# as estimated by SIMEX (chapter 4 explains the method and how it was checked).

# %%
truth = pd.read_csv(truth_metrics_path, index_col=["model", "labels"])
(truth[["mape_pct", "within_10_pct", "kendall_tau"]].unstack("labels")
 .reindex(columns=list(SCORINGS), level="labels").round(3))

# %% [markdown]
# And measured rather than estimated: the 600 held-out blocks labelled twice more, each label to
# a 1% standard error, the models scored against the mean of the two; the last two lines are
# the two precise labellings against each other, and a perfect predictor's expected score.

# %%
precise = pd.read_csv(precise_metrics_path, index_col="model")
precise[["rmse_ms", "mape_pct", "within_10_pct", "kendall_tau", "spearman"]].round(3)

# %%
anchors_table(ours, truth, precise)

# %% [markdown]
# ## Latency-aware search (chapter 6)
#
# The front in each runtime chapter 6 timed the derived networks in: torch eager, and ONNX
# Runtime beside it when its results hold those timings (a results table from before ONNX
# Runtime has torch eager only, and the page says so below).

# %%
timed = runtimes.timed_runtimes(search)
print("runtimes timed in chapter 6:", [r.label for r in timed], "| not timed:",
      [r.label for r in runtimes.RUNTIMES if r not in timed] or "none")

# %% tags=["nbval-ignore-output"]
summary = sw.summarise_sweep(search)
fig = plot_runtime_fronts(search, title="Accuracy vs measured latency of the target network")
fig.savefig(figures / "07_pareto.png")
plt.show()

# %% tags=["nbval-ignore-output"]
summary[["estimator", "lam", "seeds", "acc_mean", "acc_std", "latency_mean", "latency_std",
         "latency_change_pct", "acc_change", "pareto"]].round(2)

# %% [markdown]
# Every setting's networks in each runtime timed (mean and standard deviation over seeds,
# each latency's change against plain DARTS's in the same runtime):

# %% tags=["nbval-ignore-output"]
runtimes.cross_table(search).round(2)

# %% [markdown]
# ## Headline numbers

# %% tags=["nbval-ignore-output"]
errors = sw.prediction_errors(search)
display(Markdown("\n".join(f"- {line}" for line in sw.findings(summary, errors, tolerance))))

# %% [markdown]
# ## Conclusions
#
# The introduction's two questions, answered from the results above, the premise of this
# book's last chapters (a latency model fits the device it was measured on), and whether a
# search's gain in one runtime holds in the other. Each change pairs a setting's run with plain
# DARTS's run of the same seed, and carries its 95% interval over the seeds: with a few seeds
# of a short search, only a change whose interval excludes zero is a finding. The first two
# answers are in torch eager, with its predictors; the fourth asks of each runtime's own
# search whether its cells are at least `speedup_bar_pct` percent faster there than plain
# DARTS's at matched accuracy (the bar the ONNX Runtime search is held to), and whether the
# gain holds in the other runtime.

# %% tags=["nbval-ignore-output"]
display(Markdown(all_conclusions(search, summary, precise, tolerance, speedup_bar_pct)))

# %% [markdown]
# ## References
#
# - H. Liu, K. Simonyan, Y. Yang. *DARTS: Differentiable Architecture Search.* ICLR 2019.
# - H. Cai, L. Zhu, S. Han. *ProxylessNAS: Direct Neural Architecture Search on Target Task
#   and Hardware.* ICLR 2019.
# - LENNA: *Latency Estimation for Neural Network Architecture*, Yonsei University, 2020 (the
#   project this book re-implements).
# - Y. Xu et al. *Latency-Aware Differentiable Neural Architecture Search* (LA-DNAS).
#   arXiv:2001.06392.
# - L. L. Zhang et al. *nn-Meter: Towards Accurate Latency Prediction of Deep-Learning Model
#   Inference on Diverse Edge Devices.* MobiSys 2021.
# - H. Lee, S. Lee, S. Chong, S. J. Hwang. *HELP: Hardware-Adaptive Efficient Latency
#   Prediction for NAS via Meta-Learning.* NeurIPS 2021.
# - C. Feng et al. *LitePred: Transferable and Scalable Latency Prediction for Hardware-Aware
#   Neural Architecture Search.* NSDI 2024.
# - J. R. Cook, L. A. Stefanski. *Simulation-Extrapolation Estimation in Parametric
#   Measurement Error Models.* JASA 89(428), 1994 (SIMEX).
# - X. Chen et al. *P-DARTS: Bridging the Depth Gap between Search and Evaluation* (the cap
#   on skip connections). ICCV 2019.
