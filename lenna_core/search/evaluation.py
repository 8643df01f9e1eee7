"""What a search found, checked: train the derived network, measure its real latency.

Accuracy: the derived genotype is built with the network builder and trained from scratch
on the search task's train and val splits together, then scored on the test split.

Latency: the *target* network (:class:`~lenna_core.search.estimators.TargetConfig`) with the
derived cells is timed on this machine. Timing here drifts in phases, so
:class:`LatencyMeter` times it the way the dataset's labels were made: each pass is followed
by one pass of the reference cell, and the median ratio times the reference cell's
calibrated latency is the measured latency (the raw median is kept next to it).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, Dataset

from lenna_core.latency.profiler import as_shapes, format_shapes
from lenna_core.latency.reference_clock import ReferenceClock
from lenna_core.search.estimators import LatencyEstimator, TargetConfig
from lenna_core.search.loop import collate_batch, epoch_batches
from lenna_core.space.data import DatasetSplits
from lenna_core.space.genotypes import Genotype
from lenna_core.space.network import NetworkCIFAR, count_parameters
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace
from lenna_core.validation import check_int

if TYPE_CHECKING:  # ONNX Runtime is imported only where a meter times in it
    from lenna_core.latency.onnx_runtime import OnnxSession


@torch.no_grad()
def accuracy(net: nn.Module, dataset: Dataset, batch_size: int = 256,
             device: str = "cpu") -> float:
    """Top-1 accuracy (%) of ``net`` on ``dataset``."""
    net.eval()
    correct = 0
    for index in torch.arange(len(dataset)).split(batch_size):
        x, y = collate_batch(dataset, index, torch.device(device))
        logits = net(x)
        logits = logits[0] if isinstance(logits, tuple) else logits
        correct += int((logits.argmax(1) == y).sum())
    return 100.0 * correct / len(dataset)


def train_genotype(genotype: Genotype, splits: DatasetSplits, *, C: int = 8, layers: int = 5,
                   epochs: int = 10, batch_size: int = 64, lr: float = 0.05,
                   momentum: float = 0.9, weight_decay: float = 3e-4, grad_clip: float = 5.0,
                   seed: int = 0, device: str = "cpu") -> dict:
    """Train ``genotype``'s network from scratch on train + val; test accuracy (%) and more."""
    for name, value in (("C", C), ("layers", layers), ("epochs", epochs),
                        ("batch_size", batch_size)):
        check_int(name, value)
    started = time.perf_counter()
    torch.manual_seed(seed)
    net = NetworkCIFAR(C, splits.num_classes, layers, False, genotype,
                       in_channels=splits.in_channels).to(device)
    data = ConcatDataset([splits.train, splits.val])
    optimizer = torch.optim.SGD(net.parameters(), lr, momentum=momentum,
                                weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    losses = []
    for epoch in range(epochs):
        net.train()
        total, n = 0.0, 0
        for index in epoch_batches(len(data), batch_size, seed, epoch, 2):
            x, y = collate_batch(data, index, torch.device(device))
            loss = F.cross_entropy(net(x)[0], y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
            optimizer.step()
            total, n = total + loss.item() * len(y), n + len(y)
        scheduler.step()
        losses.append(total / n)
    return {"test_acc": accuracy(net, splits.test, device=device), "final_train_loss": losses[-1],
            "params": count_parameters(net), "train_seconds": time.perf_counter() - started,
            "eval_C": C, "eval_layers": layers, "eval_epochs": epochs}


class LatencyMeter:
    """Times modules as ratios to the reference cell, in the dataset's milliseconds.

    ``clock`` times each pass against the reference cell: by default torch eager's on
    ``device`` with ``threads``; an :class:`~lenna_core.latency.onnx_reference.OnnxReferenceClock`
    makes this an ONNX Runtime meter, which exports each module once into a session of its
    own (:func:`~lenna_core.search.onnx_evaluation.onnx_meter` builds one for a dataset
    labelled in ONNX Runtime). ``reference_ms``: the reference cell's latency on the device
    the labels were made on (None: calibrate it here).
    """

    def __init__(self, reference_ms: float | None = None, *, passes: int = 30,
                 warmup: int = 5, device: str = "cpu", threads: int | None = 1,
                 clock: ReferenceClock | None = None) -> None:
        if passes < 3:
            raise ValueError(f"passes={passes}: at least 3 for a median")
        self.clock = ReferenceClock(device=device, threads=threads) if clock is None else clock
        self.reference_ms = float(reference_ms) if reference_ms else self.clock.calibrate()
        self.passes, self.warmup = passes, warmup
        self.device, self.threads = self.clock.device, self.clock.threads

    def ready(self, module: nn.Module, input_shapes: Sequence) -> nn.Module | OnnxSession:
        """``module`` as this meter times it, its warm-up passes run: the module itself in
        torch, its session (exported once) in ONNX Runtime."""
        return self.clock.ready(module, input_shapes, self.warmup)

    def measure(self, module: nn.Module, input_shapes: Sequence) -> dict:
        """Latency of ``module`` (ms): ``latency_ms`` (reference-scaled) and ``raw_ms``."""
        timed = self.ready(module, input_shapes)
        times, ratios = [], []
        for _ in range(self.passes):
            t, ratio = self.clock.time_against(timed, input_shapes)
            times.append(t)
            ratios.append(ratio)
        shapes = as_shapes(input_shapes)
        return {"latency_ms": float(np.median(ratios)) * self.reference_ms,
                "raw_ms": float(np.median(times)),
                "ratio_iqr": float(np.subtract(*np.percentile(ratios, [75, 25]))),
                "passes": self.passes, "batch_size": shapes[0][0],
                "input_shapes": format_shapes(shapes)}


class _Stem(nn.Module):
    def __init__(self, net: NetworkCIFAR) -> None:
        super().__init__()
        self.stem = net.stem

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)


class _Head(nn.Module):
    def __init__(self, net: NetworkCIFAR) -> None:
        super().__init__()
        self.pool, self.classifier = net.global_pooling, net.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(x).flatten(1))


def measure_interleaved(genotypes: Sequence[Genotype], target: TargetConfig,
                        meter: LatencyMeter, rounds: int | None = None) -> pd.DataFrame:
    """Time the target network of every genotype in one session, taking turns pass by pass.

    Each round runs one pass of every network, each followed by a reference-cell pass, so
    slow changes of the machine's speed reach all networks alike; the latency of a network
    is its median ratio over ``rounds`` (default ``meter.passes``) times the reference's ms.
    The meter's clock decides the runtime: an ONNX Runtime meter exports every network once
    and times the sessions, in turns, against the reference cell's session.
    """
    rounds = meter.passes if rounds is None else rounds
    if rounds < 3:
        raise ValueError(f"rounds={rounds}: at least 3 for a median")
    unique = list(dict.fromkeys(genotypes))
    nets = [meter.ready(target.build(g).eval(), target.input_shape) for g in unique]
    times = np.empty((rounds, len(nets)))
    ratios = np.empty_like(times)
    for r in range(rounds):
        for i, net in enumerate(nets):
            times[r, i], ratios[r, i] = meter.clock.time_against(net, target.input_shape)
    q75, q25 = np.percentile(ratios, [75, 25], axis=0)
    return pd.DataFrame({"genotype": [g.to_json() for g in unique],
                         "latency_ms": np.median(ratios, axis=0) * meter.reference_ms,
                         "raw_ms": np.median(times, axis=0), "ratio_iqr": q75 - q25,
                         "rounds": rounds,
                         "target_input": format_shapes([target.input_shape])})


def measure_overhead(target: TargetConfig, meter: LatencyMeter) -> float:
    """Latency (ms) of the target's stem, pooling and classifier: the same for every genotype."""
    from lenna_core.space.genotypes import DARTS_V2

    net = target.build(DARTS_V2).eval()
    head_shape = (target.batch_size, net.classifier.in_features, target.image_size // 4,
                  target.image_size // 4)
    return (meter.measure(_Stem(net), target.input_shape)["latency_ms"]
            + meter.measure(_Head(net), head_shape)["latency_ms"])


def measure_target(genotype: Genotype, target: TargetConfig, meter: LatencyMeter,
                   overhead_ms: float | None = None) -> dict:
    """The target network with ``genotype``'s cells, timed (ms), with the overhead beside it."""
    whole = meter.measure(target.build(genotype).eval(), target.input_shape)
    if overhead_ms is None:
        overhead_ms = measure_overhead(target, meter)
    return {"measured_ms": whole["latency_ms"], "measured_raw_ms": whole["raw_ms"],
            "ratio_iqr": whole["ratio_iqr"], "overhead_ms": overhead_ms,
            "target_input": whole["input_shapes"], "target_batch": whole["batch_size"]}


@dataclass(frozen=True)
class Composition:
    """Cells of a whole network from the sum of their block estimates: scale * sum + offset.

    Blocks are labelled one at a time, each timing paying its own call overhead; in a
    network they run back to back. :func:`composition_factors` fits the two numbers on
    networks timed at the target.
    """

    scale: float = 1.0
    offset: float = 0.0

    def __call__(self, blocks: float) -> float:
        """Predicted latency (ms) of the cells whose block estimates sum to ``blocks``."""
        return self.scale * blocks + self.offset


def predicted_ms(estimator: LatencyEstimator, genotype: Genotype, overhead_ms: float,
                 composition: Composition | None = None) -> float:
    """The estimator's latency for the derived network: its blocks (through ``composition``
    when given) plus the measured stem and head."""
    if estimator.unit != "ms":
        raise ValueError(f"the {estimator.name} estimator works in {estimator.unit}, not ms; "
                         "only latency estimators predict a measured latency")
    blocks = estimator.predict_genotype(genotype)
    return (blocks if composition is None else composition(blocks)) + overhead_ms


def calibration_genotypes(count: int, seed: int, space: SearchSpace = DARTS_SPACE
                          ) -> list[Genotype]:
    """Genotypes from seeded random alphas, tilted from skip-heavy to convolution-heavy
    (networks no search chose, spanning the cheap and the costly end)."""
    if count < 2:
        raise ValueError(f"count={count}: at least 2 networks to fit a scale and an offset")
    generator = torch.Generator().manual_seed(seed)
    shape = (space.num_edges, space.num_ops)
    # Towards convolutions (the costly end) or towards skip connections (the cheap end, where
    # latency-penalised searches go): pooling alone is not cheap on a CPU (chapter 1).
    costly = torch.tensor([1.0 if "conv" in name else -1.0 if name == "skip_connect" else 0.0
                           for name in space.primitives])
    out = []
    for tilt in np.linspace(-3.0, 3.0, count):
        cells = [(torch.randn(shape, generator=generator) + float(tilt) * costly).softmax(-1)
                 for _ in range(2)]
        out.append(space.derive_genotype(*cells))
    return out


def composition_factors(estimators: Mapping[str, LatencyEstimator],
                        measured: Mapping[Genotype, float], overhead_ms: float
                        ) -> tuple[dict[str, Composition], pd.DataFrame]:
    """Fit, per ms estimator, measured cells = scale * (sum of block estimates) + offset.

    ``measured`` maps genotypes to their measured target-network latency (ms); use networks
    the search did not pick (:func:`calibration_genotypes`). Least squares over them; returns
    the fits and one row per network.
    """
    names = [name for name, e in estimators.items() if e.unit == "ms"]
    if len(measured) < 2:
        raise ValueError(f"{len(measured)} measured networks: at least 2 to fit a scale and an "
                         "offset")
    rows = []
    for genotype, latency in measured.items():
        row = {"genotype": genotype.to_json(), "measured_ms": latency}
        for name in names:
            row[f"blocks_ms_{name}"] = estimators[name].predict_genotype(genotype)
        rows.append(row)
    table = pd.DataFrame(rows)
    fits = {}
    for name in names:
        scale, offset = np.polyfit(table[f"blocks_ms_{name}"],
                                   table["measured_ms"] - overhead_ms, 1)
        fits[name] = Composition(float(scale), float(offset))
        table[f"fitted_ms_{name}"] = fits[name](table[f"blocks_ms_{name}"]) + overhead_ms
    return fits, table


def cross_fitted_ms(estimator: LatencyEstimator, genotypes: Sequence[Genotype],
                    measured: Mapping[Genotype, float], overhead_ms: float) -> pd.DataFrame:
    """Each of ``genotypes`` predicted through a composition fitted on every *other* measured
    network (``measured``: the calibration networks and the other derived ones), so the fit
    spans the derived networks' latencies without seeing the network it predicts.

    One row per genotype: ``cross_fitted_ms``, and ``extrapolated`` when its sum of block
    estimates lies outside the range the fit saw."""
    blocks = {g: estimator.predict_genotype(g) for g in dict.fromkeys([*measured, *genotypes])}
    rows = []
    for genotype in genotypes:
        others = [g for g in measured if g != genotype]
        if len(others) < 2:
            raise ValueError(f"{len(others)} other measured networks: at least 2 to fit a "
                             "scale and an offset")
        x = np.array([blocks[g] for g in others])
        y = np.array([measured[g] - overhead_ms for g in others])
        fit = Composition(*(float(v) for v in np.polyfit(x, y, 1)))
        rows.append({"genotype": genotype.to_json(),
                     "cross_fitted_ms": fit(blocks[genotype]) + overhead_ms,
                     "extrapolated": not x.min() <= blocks[genotype] <= x.max()})
    return pd.DataFrame(rows)
