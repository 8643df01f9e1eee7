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
# # 6. Latency-aware DARTS
#
# **What this chapter answers.** Does adding `lambda * E[latency]` to the DARTS architecture
# loss find cells that run faster on this machine at (nearly) the same accuracy? Does LENNA's
# MLP penalty do better than the lookup-table penalty of ProxylessNAS or a FLOPs proxy? And
# does the latency the estimator promises match the latency of the network finally built?
# The MLP is the one chapter 4 saved: by default the MLP that corrects the calibrated lookup
# table (chapter 4's most accurate model; `save_with_prior=False` there gives LENNA's plain
# MLP). The searches use the models of the reference device, so that their cells are the
# same on every machine of one kind; the derived networks are then also predicted with the
# model chapter 5 adapted to the machine running this chapter.
#
# Each search runs on the embedded digits task (a small proxy supernet), but its latency
# term is evaluated for a **target network**: the DARTS CIFAR search network (16 channels,
# 8 cells, 32x32 input, batch 1) on this CPU, the configuration the latency dataset of
# chapter 3 covers. The architecture loss is `CE + lambda * E / E0` (`E0`: the estimate at
# the search's start), so one lambda means the same for the three estimators. Every derived
# genotype is then trained from scratch and tested, and the target network with its cells is
# timed with the profiler, in the same reference-cell units as the dataset's labels.
#
# **A second runtime.** People deploy cells with an inference runtime, not with torch eager.
# A fourth setting, `onnxruntime`, searches with an MLP of the same kind fitted on blocks
# labelled in ONNX Runtime on this CPU (in ONNX Runtime's milliseconds; the search itself is
# unchanged, the units cancel in `E / E0`). Every derived network, whichever runtime it was
# searched for, is then exported and timed in both runtimes: does a search's gain in one
# runtime hold in the other?
#
# | parameter | meaning | unit / range |
# |---|---|---|
# | `seed` | seed of the calibration networks and of the book set-up | integer >= 0 |
# | `seeds` | search (and training) seeds of every setting | list of integers >= 0 |
# | `lambdas` | latency weights per estimator (`mlp`, `lookup_table`, `flops`, `onnxruntime`); lambda 0 is always run | dict of lists of numbers >= 0 |
# | `penalty` | how CE and the estimate combine | `linear`, `multiplicative`, `hinge` |
# | `dataset`, `data_root` | search task; `cifar10` needs `data_root` with `cifar-10-batches-py` | `digits` or `cifar10`; path |
# | `search_C`, `search_layers` | proxy supernet: initial channels and cells | integers >= 1 (C even) |
# | `search_epochs`, `search_batch_size` | search length and batch | integers >= 1 |
# | `search_mode` | supernet mode (`binary` needs many more steps to train its weights) | `softmax` or `binary` |
# | `weight_lr` | SGD learning rate of the supernet weights, cosine-annealed (DARTS: 0.025) | > 0 |
# | `arch_lr` | Adam learning rate of the alphas (DARTS: 3e-4 over 50 epochs) | > 0 |
# | `max_skip` | skip connections kept per derived cell (None: no cap) | integer >= 0 or None |
# | `search_device` | where the search and the training run | `cpu`, `cuda` |
# | `workers` | searches run side by side, each in its own process with one thread; the results do not depend on it | integer >= 1 (at most the CPU cores; 1 on a GPU) |
# | `dask_scheduler` | run the searches on a Dask cluster instead: its scheduler's address, or `local:N` for N local worker processes (`workers` is then unused) | `tcp://host:port`, `local:N` or None |
# | `target_C`, `target_layers`, `target_image_size`, `target_batch_size` | the network the latency is for | integers (image size divisible by 4) |
# | `eval_C`, `eval_layers`, `eval_epochs` | network trained from scratch on the task per genotype | integers >= 1 |
# | `latency_device` | where latency is measured: the device the latency models were fit on | `cpu`, `cuda` |
# | `latency_passes` | timed passes (rounds) per network, each followed by a reference-cell pass | integer >= 3 |
# | `calibration_networks` | random networks timed with the derived ones, to calibrate block sums to whole networks | integer >= 2 |
# | `mlp_path`, `op_table_path`, `dataset_path` | chapter 4's MLP, chapter 1's op table, chapter 3's dataset | paths relative to `book/` |
# | `onnxruntime_mlp_path` | the MLP fitted on blocks labelled in ONNX Runtime (`lenna label --runtime onnxruntime`), in ONNX Runtime ms; None: no ONNX Runtime search or timing (then drop `onnxruntime` from `lambdas`) | path relative to `book/` (without `.pt`/`.json`) or None |
# | `onnxruntime_dataset_path` | that model's dataset: its metadata gives ONNX Runtime's threads, graph optimisation and reference-cell ms | CSV path |
# | `adapted_dir` | chapter 5's profile of this machine and its adapted model (None: predict with the reference models only) | folder or None |
# | `runs_dir` | search folders and `results.csv`; an interrupted run resumes from here | path |
# | `results_path` | copy of the results table for the results page | CSV path |
# | `figures_dir` | where figures are written, relative to `book/` | path |

# %% tags=["parameters"]
seed = 0
seeds = [0, 1, 2, 3, 4]
lambdas = {"mlp": [0.3, 1.0], "lookup_table": [1.0], "flops": [1.0], "onnxruntime": [1.0]}
penalty = "linear"
dataset = "digits"
data_root = None
search_C = 8
search_layers = 3
search_epochs = 2
search_batch_size = 64
search_mode = "softmax"
weight_lr = 0.05
arch_lr = 0.01
max_skip = 2
search_device = "cpu"
workers = 2
dask_scheduler = None
target_C = 16
target_layers = 8
target_image_size = 32
target_batch_size = 1
eval_C = 8
eval_layers = 5
eval_epochs = 4
latency_device = "cpu"
latency_passes = 20
calibration_networks = 6
mlp_path = "../data/mlp_latency"
op_table_path = "../data/op_latency_table.csv"
dataset_path = "../data/latency_dataset.csv"
onnxruntime_mlp_path = "../data/devices/onnxruntime-xeon-6-167/mlp_latency"
onnxruntime_dataset_path = "../data/devices/onnxruntime-xeon-6-167/pool.csv"
adapted_dir = "../runs/05_this_machine"
runs_dir = "../runs/06_sweep"
results_path = "../data/search_results.csv"
figures_dir = "../figures"

# %%
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display

from lenna_core import DARTS_SPACE, Genotype, load_dataset
from lenna_core.book.chapter import check_device_parameters, check_int_parameters, setup_book
from lenna_core.book.plotting import draw_cells
from lenna_core.book.search_plots import plot_prediction_parity, plot_runtime_fronts
from lenna_core.latency.dataset import read_metadata
from lenna_core.latency.device_folder import compare_devices, read_manifest
from lenna_core.latency.device_identity import device_identity
from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.latency.profiler import machine_fingerprint
from lenna_core.search import runtimes
from lenna_core.search import sweep as sw
from lenna_core.search.estimators import (
    FlopsEstimator,
    LookupTableEstimator,
    MLPEstimator,
    TargetConfig,
    adapted_estimator,
)
from lenna_core.search.evaluation import LatencyMeter, calibration_genotypes, measure_overhead
from lenna_core.search.executors import dask_executor
from lenna_core.search.gradient_check import (
    gradient_agreement,
    gradient_in_p,
    worst_relative_difference,
)
from lenna_core.search.loop import SearchConfig
from lenna_core.search.onnx_evaluation import onnx_meter

run = setup_book(seed, figures_dir=figures_dir)
figures = Path(figures_dir)

# %% [markdown]
# ## The search, the target and the estimators
#
# The settings are checked before anything runs: a lambda below zero, an unknown penalty, a
# lambda for an estimator that is not loaded or an inconsistent search configuration stops
# here with the parameter named. The three torch-eager estimators also predict the derived
# networks below; the ONNX Runtime model predicts another runtime's milliseconds, so it only
# searches.

# %%
check_int_parameters(eval_C=(eval_C, 1), eval_layers=(eval_layers, 1),
                     eval_epochs=(eval_epochs, 1), latency_passes=(latency_passes, 3),
                     calibration_networks=(calibration_networks, 2), workers=(workers, 1))
check_device_parameters(search_device=search_device, latency_device=latency_device)

# %%
points = sw.sweep_points(lambdas, seeds, penalty)
config = SearchConfig(dataset=dataset, data_root=data_root, C=search_C, layers=search_layers,
                      epochs=search_epochs, batch_size=search_batch_size, mode=search_mode,
                      weight_lr=weight_lr, arch_lr=arch_lr, max_skip=max_skip, device=search_device)
target = TargetConfig(target_C, target_layers, target_image_size, target_batch_size)
torch_estimators = {
    "mlp": MLPEstimator(MLPLatency.load(mlp_path), target),
    "lookup_table": LookupTableEstimator(OpLatencyTable.from_csv(op_table_path), target),
    "flops": FlopsEstimator(target),
}
estimators = {**torch_estimators, **({} if onnxruntime_mlp_path is None else {
    "onnxruntime": MLPEstimator(MLPLatency.load(onnxruntime_mlp_path), target)})}
sw.check_estimators(points, estimators)
splits = load_dataset(dataset, data_root, seed=config.split_seed)

# %%
print(f"{len(points)} searches: {len(seeds)} seeds x "
      f"{1 + sum(len([x for x in v if x > 0]) for v in lambdas.values())} settings")
print(f"task {splits.name}: {len(splits.train)} train / {len(splits.val)} val / "
      f"{len(splits.test)} test images; target {target.to_dict()}, "
      f"{len(estimators['mlp'].contexts)} blocks")
uniform = torch.zeros(DARTS_SPACE.num_edges, DARTS_SPACE.num_ops)
for name, estimator in estimators.items():
    print(f"{name:>12}: estimate at uniform alphas {float(estimator(uniform, uniform)):.2f} "
          f"{estimator.unit}")

# %%
print(sw.describe_sweep(config, target, {"C": eval_C, "layers": eval_layers,
                                         "epochs": eval_epochs}))

# %% [markdown]
# The search follows the gradient of the estimate in the alphas, which autograd takes through
# the softmax into each estimator's gradient in the block probabilities p. Is that the
# gradient of the estimate? Each estimator's autograd gradient in p against central finite
# differences of its own estimate (float64, at seeded random p, one entry of p moved at a
# time), relative to its largest gradient entry. And does it point where the op costs do?
# The lookup table's expectation is linear in p, so its finite differences are its op costs
# exactly; each estimator's whole gradient (both cells, every edge and op) is compared with
# the table's at the same p, by rank and by direction:

# %% tags=["nbval-ignore-output"]
gradient_checks = {name: gradient_in_p(estimator, seed=seed)
                   for name, estimator in estimators.items()}
worst_gradient = worst_relative_difference(gradient_checks)
print("largest relative difference, autograd vs finite differences:",
      {name: f"{value:.1e}" for name, value in worst_gradient.items()})
pd.DataFrame({name: gradient_agreement(estimator, estimators["lookup_table"], seed=seed)
              for name, estimator in estimators.items() if name != "lookup_table"}).T.round(3)

# %%
print("every estimator's gradient in p agrees with finite differences to 1e-6:",
      all(value < 1e-6 for value in worst_gradient.values()))

# %% [markdown]
# The stem, pooling and classifier of the target network are the same for every genotype;
# they are timed once and added to every estimate of a derived network.
#
# **Units.** Every latency on this page is *reference-scaled*: a network's time over the
# reference cell's, timed right after it on this machine, times the reference cell's latency
# on the device the latency models were fit on (the dataset's `reference_ms`). That puts
# measurements in the units of the models' labels and cancels slow changes of this machine's
# speed; `measured_raw_ms` beside it is this machine's wall clock. The two differ by how fast
# this machine runs the reference cell, so only the first compares with the models. ONNX
# Runtime's latencies are the same kind of figure in its own units: a network's session pass
# over the reference cell's session pass, times that cell's latency in the ONNX Runtime
# dataset (its metadata also gives the threads and graph optimisation the sessions use).

# %% tags=["nbval-ignore-output"]
reference_ms = read_metadata(dataset_path)["settings"]["rule"]["reference_ms"]
meter = LatencyMeter(reference_ms, passes=latency_passes, device=latency_device)
overhead_ms = measure_overhead(target, meter)
print(f"reference cell {reference_ms:.3f} ms on the models' device (from "
      f"{Path(dataset_path).name}), {meter.clock.calibrate():.3f} ms here; "
      f"stem + head {overhead_ms:.3f} ms")
print(compare_devices(read_manifest(Path(dataset_path).parent)["device"],
                      device_identity(latency_device, 1, target_batch_size)))

# %% tags=["nbval-ignore-output"]
ort_meter = None if onnxruntime_mlp_path is None else onnx_meter(
    read_metadata(onnxruntime_dataset_path)["settings"], passes=latency_passes)
if ort_meter is not None:
    print(f"ONNX Runtime: reference cell {ort_meter.reference_ms:.3f} ms in its dataset, "
          f"{ort_meter.clock.calibrate():.3f} ms here; {ort_meter.clock.runtime}")

# %% [markdown]
# Chapter 5's model predicts this machine's own milliseconds: its labels are ratios to the
# reference cell times the reference cell's latency *here*. Multiplied by the two reference
# cells' ratio (the models' device over this machine), its predictions are in this page's
# units; the relative errors below are the same in either unit.

# %% tags=["nbval-ignore-output"]
adapted, loaded = adapted_estimator(adapted_dir, reference_ms, target)
predictors = {**torch_estimators, **({"adapted": adapted} if adapted is not None else {})}
print(loaded)

# %% [markdown]
# ## The sweep
#
# Every search has its own folder under `runs_dir` (config, per-epoch log and genotypes,
# checkpoints); `results.csv` gets one row per evaluated run. Interrupt the cell and run it
# again: it resumes the searches it was in and skips the finished ones (on a Dask cluster,
# `dask_scheduler`, too: the runs land in the same folder). `workers` searches
# run side by side, one per process and CPU core; each run is seeded on its own, so they find
# what one process running them in turn would find (a unit test checks it).

# %% tags=["nbval-ignore-output"]
started = time.perf_counter()
with dask_executor(dask_scheduler) as executor:
    results = sw.run_sweep(points, config, estimators, runs_dir, splits=splits, meter=meter,
                           target=target, overhead_ms=overhead_ms,
                           evaluation={"C": eval_C, "layers": eval_layers, "epochs": eval_epochs,
                                       "device": search_device}, progress=False, report=True,
                           workers=workers if executor is None else 1, executor=executor,
                           predictors=torch_estimators)
print(f"{len(results)} runs in {time.perf_counter() - started:.0f} s")
results[["run_id", "test_acc", "measured_ms", "predicted_ms_mlp", "predicted_ms_lookup_table",
         "search_seconds", "train_seconds"]].round(2)

# %% [markdown]
# What the searches chose is deterministic for a given seed on one kind of CPU, with torch's
# kernels pinned to one code path (`scripts/cpu_isa.sh` sets AVX2; the book command and the
# test command source it): the number of parametric (convolution) edges per derived cell and
# the test accuracy of each run. Another processor family takes other float kernels in MKL
# and oneDNN and derives other cells from the same seed, which is why these outputs are not
# compared across CPU kinds.

# %% tags=["nbval-ignore-output"]
convs = results["genotype"].map(lambda g: sum("conv" in op for op, _ in
                                              Genotype.from_json(g).normal))
print(results.assign(normal_convs=convs)[["run_id", "normal_convs", "test_acc"]]
      .round(1).to_string(index=False))

# %% [markdown]
# ## One measurement session
#
# The runs above were timed minutes apart, and this machine's speed can drift between them
# (chapter 2). So every derived network is timed again in one session, the networks taking
# turns pass by pass, each pass followed by a reference-cell pass; these are the latencies
# compared below. The session also times a few networks with random cells (no search picked
# them; tilted from skip-heavy to convolution-heavy so they span cheap and costly cells). The
# latency models were fit on blocks timed one at a time, each timing paying its own call
# overhead, and on the models' device; in a network the blocks run back to back, on this
# machine. A line fitted through measured networks (measured cells = scale x sum of block
# estimates + offset) is each ms estimator's *composition*. It does not change a search (a
# scale cancels in the penalty's ratio to the starting estimate, an offset has no gradient);
# it only matters for predicting the latency of a finished network. Two fits: on the random
# networks alone (`calibrated`), and, for each derived network, on every *other* network of
# the session (`crossfit`), so that the fit spans the derived networks' latencies without
# seeing the one it predicts; a network outside the range its fit saw is flagged.

# %% tags=["nbval-ignore-output"]
results, composition, calibration = sw.measure_session(
    results, target, meter, predictors, overhead_ms,
    calibration_genotypes(calibration_networks, seed))
for name, fit in composition.items():
    print(f"{name}: measured cells = {fit.scale:.3f} x (sum of block estimates) "
          f"{fit.offset:+.2f} ms")
print(f"measured: random networks {calibration.measured_ms.min():.1f}-"
      f"{calibration.measured_ms.max():.1f} ms, derived networks "
      f"{results.measured_ms.min():.1f}-{results.measured_ms.max():.1f} ms (reference-scaled); "
      f"derived {results.measured_raw_ms.min():.1f}-{results.measured_raw_ms.max():.1f} ms "
      "by this machine's wall clock")
calibration.drop(columns="genotype").round(3)

# %%
print("networks timed in the session:", results["genotype"].nunique() + len(calibration),
      "| calibrated estimators:", sorted(set(composition) & set(estimators)))

# %% [markdown]
# And every derived network in ONNX Runtime, in a session of its own: each is exported once
# and opened in its own inference session (one intra-op thread), then the sessions take turns
# pass by pass, each pass followed by a pass of the reference cell's session.

# %% tags=["nbval-ignore-output"]
started = time.perf_counter()
if ort_meter is not None:
    results = sw.measure_runtime_session(results, target, ort_meter, "ort")
    print(f"{results['genotype'].nunique()} networks exported and timed in ONNX Runtime in "
          f"{time.perf_counter() - started:.0f} s: {results.measured_ort_ms.min():.2f}-"
          f"{results.measured_ort_ms.max():.2f} ms (reference-scaled), "
          f"{results.measured_ort_raw_ms.min():.2f}-{results.measured_ort_raw_ms.max():.2f} ms "
          "by this machine's wall clock")

# %%
print("runtimes timed:", [r.label for r in runtimes.timed_runtimes(results)])

# %% [markdown]
# ## Accuracy against measured latency
#
# Means and standard deviations over seeds per setting, latency in torch eager; lambda 0 is
# plain DARTS. Latency changes are relative to plain DARTS's mean.

# %% tags=["nbval-ignore-output"]
summary = sw.summarise_sweep(results)
summary.round(2)

# %% [markdown]
# The front in each runtime the networks were timed in, side by side (torch eager | ONNX
# Runtime), one colour per estimator in both panels.

# %% tags=["nbval-ignore-output"]
fig = plot_runtime_fronts(results, title=f"Accuracy vs latency on this CPU ({penalty} "
                          f"penalty, {len(seeds)} seeds)")
fig.savefig(figures / "06_pareto.png")
plt.show()

# %% [markdown]
# The cross table: every setting's networks in both runtimes, mean and standard deviation
# over seeds, each latency's change against plain DARTS's in the same runtime; then each
# setting paired seed by seed with plain DARTS, per runtime, each change with the half-width
# of its confidence interval.

# %% tags=["nbval-ignore-output"]
display(runtimes.cross_table(results).round(2))
runtimes.paired_table(results).round(2)

# %% tags=["nbval-ignore-output"]
matched = sw.best_at_matched_accuracy(summary, tolerance=1.0)
matched[["estimator", "lam", "acc_mean", "acc_change", "latency_mean",
         "latency_change_pct"]].round(2)

# %% [markdown]
# ## The cells
#
# Plain DARTS and the strongest MLP penalty, first seed.

# %% tags=["nbval-ignore-output"]
shown = [f"{sw.BASELINE}-{penalty}-lam0-seed{seeds[0]}"]
if lambdas.get("mlp"):
    shown.append(f"mlp-{penalty}-lam{max(lambdas['mlp']):g}-seed{seeds[0]}")
fig = draw_cells({run_id: sw.genotype_of(results, run_id) for run_id in shown})
fig.savefig(figures / "06_cells.png")
plt.show()
for run_id in shown:
    print(run_id, sw.genotype_of(results, run_id).to_json())

# %% [markdown]
# The cells found for each runtime, side by side: the torch-eager MLP penalty and the ONNX
# Runtime MLP penalty, each at its largest lambda, first seed.

# %% tags=["nbval-ignore-output"]
pair = runtimes.runs_to_draw(lambdas, penalty, seeds[0])
if pair:
    fig = draw_cells({run_id: sw.genotype_of(results, run_id) for run_id in pair},
                     side_by_side=True)
    fig.savefig(figures / "06_cells_runtimes.png")
    plt.show()
for run_id in pair:
    print(run_id, sw.genotype_of(results, run_id).to_json())

# %% [markdown]
# ## Predicted against measured latency
#
# Each derived network's latency as the estimators predict it (their blocks plus the
# measured stem and head; raw, and through either composition fit) against its measured
# latency on this machine: the reference device's MLP and lookup table, and, where chapter 5
# ran, the MLP adapted to this machine.

# %% tags=["nbval-ignore-output"]
errors = sw.prediction_errors(results)
fig = plot_prediction_parity(results)
fig.savefig(figures / "06_prediction.png")
plt.show()
flagged = {c.removeprefix("crossfit_extrapolated_"): int(results[c].sum())
           for c in results.columns if c.startswith("crossfit_extrapolated_")}
print("derived networks outside the range of their cross-fit, per estimator:", flagged)
errors.round(2)

# %% [markdown]
# One search's log: per epoch, the CE of both splits, the latency term, the estimate under
# the alphas and for the derived cells, and the ops the derived cells use.

# %% tags=["nbval-ignore-output"]
pd.read_csv(Path(runs_dir) / shown[-1] / "log.csv").round(3).T

# %%
Path(results_path).parent.mkdir(parents=True, exist_ok=True)
machine = machine_fingerprint(latency_device)
results.assign(device_name=machine["device_name"], cpu_family_model=machine["cpu_family_model"],
               torch=machine["torch"]).to_csv(results_path, index=False)
print("results written:", Path(results_path).name, len(results), "rows")

# %% [markdown]
# ## What we found

# %% tags=["nbval-ignore-output"]
display(Markdown("\n".join(f"- {line}" for line in [*sw.findings(summary, errors),
                                                     *runtimes.findings(results)])))

# %% [markdown]
# How to read these lines. The searches are short and the digits task is easy, so the
# accuracy of a setting moves from seed to seed (the standard deviations above); compare
# means, and read "within 1 point" as "no loss this sweep can detect". The MLP used here is
# a correction to the calibrated sum of its ops (chapters 1 and 4), so the MLP and the
# lookup-table penalties pull the alphas the same way. Raw, an estimator misses a finished
# network by two gaps: blocks timed one at a time against blocks run back to back (the
# composition), and this machine against the models' device. The adapted model closes only
# the second; a composition fit absorbs the first (and, for the reference models, a uniform
# part of the second), so the estimators compare fairly through the cross-fit, not raw. The
# lines above give each fit's errors on this run:
# the random networks' fit extrapolates wherever the derived networks fall outside their
# range; the cross-fit does not, and its flagged networks are counted above the table.
