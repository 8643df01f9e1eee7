"""E[latency] of a *target* network as a differentiable function of the search's alphas.

The supernet searched is small (a proxy); the network the cells are for is described by a
:class:`TargetConfig` (channels, depth, input size, batch). Alphas are shared by all cells
of a type, so each target block gets the probabilities of its type, and the estimate is the
sum over the target's blocks. Three estimators, one interface:

* :class:`MLPEstimator`: LENNA's MLP (``MLPLatency.as_module``), ms.
* :class:`LookupTableEstimator`: ProxylessNAS's expected sum of per-op latencies (with the
  table's fixed per-block costs and an optional calibration), ms.
* :class:`FlopsEstimator`: expected multiply-adds, a proxy that needs no measurement, in
  millions of multiply-adds (MMAC).

Stem, pooling and classifier are the same for every candidate, so they are left out of the
estimate; :func:`lenna_core.search.evaluation` adds their measured cost when it compares an
estimate with a measured network.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lenna_core.latency.block_checks import warn_outside_known_range
from lenna_core.latency.blocks import CellContext, network_cell_contexts
from lenna_core.latency.device_profiling import load_adapted
from lenna_core.latency.encoder import edge_macs, feature_names, fixed_macs
from lenna_core.latency.lookup_table import LookupTableModel, OpLatencyTable, linear_expectation
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.space.genotypes import Genotype
from lenna_core.space.network import NetworkCIFAR
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace
from lenna_core.validation import check_int


@dataclass(frozen=True)
class TargetConfig:
    """The network the searched cells are for: a CIFAR-style DARTS network."""

    C: int = 16
    layers: int = 8
    image_size: int = 32
    batch_size: int = 1
    in_channels: int = 3
    num_classes: int = 10

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            check_int(f"target {name}", value)
        if self.layers < 3:
            raise ValueError(f"target layers={self.layers}: at least 3 (two are reductions)")
        if self.image_size % 4 or self.C % 2:
            raise ValueError(f"target image_size={self.image_size}, C={self.C}: the two "
                             "reductions need an image size divisible by 4 and an even C")

    def contexts(self) -> list[CellContext]:
        """Every cell of the target network in its context."""
        return network_cell_contexts(self.C, self.layers, self.image_size, self.batch_size)

    def build(self, genotype: Genotype) -> NetworkCIFAR:
        """The target network with ``genotype``'s cells (no auxiliary head)."""
        return NetworkCIFAR(self.C, self.num_classes, self.layers, False, genotype,
                            in_channels=self.in_channels)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """(batch, channels, height, width) of the target's input."""
        return (self.batch_size, self.in_channels, self.image_size, self.image_size)

    def to_dict(self) -> dict:
        """JSON-ready description."""
        return asdict(self)


def genotype_probabilities(genotype: Genotype, space: SearchSpace = DARTS_SPACE
                           ) -> dict[str, torch.Tensor]:
    """One-hot (edges x ops) matrices of a derived cell pair; edges it drops get ``none``."""
    index = {edge: e for e, edge in enumerate(space.edges)}
    out = {}
    for kind, gene in (("normal", genotype.normal), ("reduce", genotype.reduce)):
        probs = torch.zeros(space.num_edges, space.num_ops, dtype=torch.float64)
        probs[:, space.primitives.index("none")] = 1.0
        for i, (op, src) in enumerate(gene):
            e = index[(src, 2 + i // 2)]
            probs[e] = 0.0
            probs[e, space.primitives.index(op)] = 1.0
        out[kind] = probs
    return out


class LatencyEstimator(nn.Module):
    """Expected latency (in :attr:`unit`) of the target network's blocks under the alphas."""

    unit = "ms"
    name = "base"

    def __init__(self, target: TargetConfig, space: SearchSpace = DARTS_SPACE) -> None:
        super().__init__()
        self.target, self.space = target, space
        self.contexts = target.contexts()
        self.register_buffer("is_reduction", torch.tensor([c.reduction for c in self.contexts]))

    def block_probabilities(self, probs_normal: torch.Tensor,
                            probs_reduce: torch.Tensor) -> torch.Tensor:
        """(blocks, edges, ops): each target block with the probabilities of its cell type."""
        for name, probs in (("probs_normal", probs_normal), ("probs_reduce", probs_reduce)):
            self.space.check_probabilities(probs.detach(), name)
        stacked = torch.stack([probs_normal, probs_reduce])
        return stacked[self.is_reduction.long()]

    def per_block(self, block_probs: torch.Tensor) -> torch.Tensor:
        """Estimate of each block (blocks,) from its (edges x ops) probabilities."""
        raise NotImplementedError

    def forward(self, alphas_normal: torch.Tensor, alphas_reduce: torch.Tensor) -> torch.Tensor:
        """The sum over the target's blocks, differentiable in both alphas."""
        probs = self.block_probabilities(F.softmax(alphas_normal, dim=-1),
                                         F.softmax(alphas_reduce, dim=-1))
        return self.per_block(probs).sum()

    @torch.no_grad()
    def predict_genotype(self, genotype: Genotype) -> float:
        """The estimate for the discrete cells of ``genotype`` (absent edges count as none)."""
        probs = genotype_probabilities(genotype, self.space)
        device = self.is_reduction.device  # wherever the estimator was moved
        blocks = self.block_probabilities(*(probs[k].to(device, torch.float32)
                                            for k in ("normal", "reduce")))
        return float(self.per_block(blocks).sum())

    def describe(self) -> dict:
        """JSON-ready description (for logs and checkpoint checks)."""
        return {"estimator": self.name, "unit": self.unit, "target": self.target.to_dict(),
                "space": self.space.to_dict()}


class MLPEstimator(LatencyEstimator):
    """LENNA: the MLP's differentiable estimate, in ms."""

    name = "mlp"

    def __init__(self, model: MLPLatency, target: TargetConfig,
                 space: SearchSpace = DARTS_SPACE) -> None:
        super().__init__(target, space)
        if feature_names(model.space) != feature_names(space):
            raise ValueError(f"the latency model was trained for another op set or feature "
                             f"layout ({model.space.to_dict()}); the search uses "
                             f"{space.to_dict()}: retrain it on a dataset of this space")
        warn_outside_range(getattr(model, "context_range_", None), self.contexts)
        self.blocks = model.as_module(self.contexts)

    def per_block(self, block_probs: torch.Tensor) -> torch.Tensor:
        """Estimate of each block (ms)."""
        return self.blocks(block_probs).to(block_probs.dtype)


class _MatrixEstimator(LatencyEstimator):
    """An estimate linear in the probabilities: sum(p * M_block) + fixed_block, then scaled."""

    def __init__(self, target: TargetConfig, space: SearchSpace, matrices: np.ndarray,
                 fixed: np.ndarray, scale: float = 1.0, offset: float = 0.0) -> None:
        super().__init__(target, space)
        self.register_buffer("matrices", torch.tensor(matrices, dtype=torch.float32))
        self.register_buffer("fixed", torch.tensor(fixed, dtype=torch.float32))
        self.scale, self.offset = float(scale), float(offset)

    def per_block(self, block_probs: torch.Tensor) -> torch.Tensor:
        """Estimate of each block."""
        return linear_expectation(block_probs, self.matrices, self.fixed, self.scale,
                                  self.offset)


class LookupTableEstimator(_MatrixEstimator):
    """ProxylessNAS: the expected sum of per-op latencies (ms), optionally calibrated."""

    name = "lookup_table"

    def __init__(self, model: LookupTableModel | OpLatencyTable, target: TargetConfig,
                 space: SearchSpace = DARTS_SPACE) -> None:
        if isinstance(model, OpLatencyTable):
            model = _uncalibrated(model)
        if not hasattr(model, "scale_"):
            raise ValueError("fit the LookupTableModel first (or pass its OpLatencyTable for "
                             "the uncalibrated sum)")
        table = model.table
        if table.space.primitives != space.primitives:
            raise ValueError(f"the lookup table holds ops {list(table.space.primitives)}; the "
                             f"search uses {list(space.primitives)}: measure a table for it")
        matrices, fixed = table.block_arrays(
            target.contexts(), f"the target {target.to_dict()}",
            "measure them with OpLatencyTable.measure(target.contexts()) and merge")
        # A calibrated table's offset is per block: it is fitted on single blocks.
        super().__init__(target, space, matrices, fixed, model.scale_, model.offset_)


def _uncalibrated(table: OpLatencyTable) -> LookupTableModel:
    model = LookupTableModel(table)
    model.scale_, model.offset_, model.space_ = 1.0, 0.0, table.space
    return model


class FlopsEstimator(_MatrixEstimator):
    """Expected multiply-adds of the target's blocks, in millions (a proxy for latency)."""

    name = "flops"
    unit = "MMAC"

    def __init__(self, target: TargetConfig, space: SearchSpace = DARTS_SPACE) -> None:
        contexts = target.contexts()
        matrices = np.stack([edge_macs(c, space) for c in contexts]) / 1e6
        fixed = np.array([fixed_macs(c) for c in contexts]) / 1e6
        super().__init__(target, space, matrices, fixed)


def adapted_estimator(adapted_dir: str | os.PathLike | None, reference_ms: float,
                      target: TargetConfig) -> tuple[MLPEstimator | None, str]:
    """The model a profile of this machine adapted (``lenna transfer``, chapter 5) as an
    estimator in the reference-scaled ms of a session timed against the reference cell
    (``reference_ms``: that cell on the models' device), and a line saying what was loaded;
    ``(None, why)`` when ``adapted_dir`` is None or holds no profile yet."""
    if adapted_dir is None or not (Path(adapted_dir) / "manifest.json").exists():
        return None, (f"no adapted model in adapted_dir={adapted_dir!r}: profile this machine "
                      "first (chapter 5, or lenna transfer); predicting with the reference "
                      "models only")
    model, here_ms = load_adapted(adapted_dir)
    # Its labels are ratios to the reference cell times that cell's ms *here*; the session's
    # are the same ratios times its ms on the models' device.
    rescaled = model.rescaled(reference_ms / here_ms, "reference-scaled ms")
    return MLPEstimator(rescaled, target), (
        f"adapted model: {model.method} from {model.provenance.get('k')} blocks profiled "
        f"here; this machine's reference cell {here_ms:.3f} ms when they were labelled")


def warn_outside_range(known: dict | None, contexts: list[CellContext]) -> None:
    """Warn when target blocks lie outside the (C, spatial, batch) range a model was fit on."""
    observed = {name: (min(getattr(c, name) for c in contexts),
                       max(getattr(c, name) for c in contexts)) for name in (known or {})}
    warn_outside_known_range(known, observed)
