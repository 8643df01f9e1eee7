"""Latency-aware DARTS: the bi-level search loop, with checkpoints, logs and resume.

A search lives in one folder::

    config.json          what was asked (search settings, penalty, estimator, target)
    checkpoint.pt        weights, alphas, optimiser and scheduler states, RNG state, logs
    log.csv              one row per epoch: CE, latency term, estimates, ops per cell type
    genotypes/epoch_NNN.json   the cells derived after every epoch
    result.json          written once the last epoch is done

Run the same search again on the same folder and it resumes from the last checkpoint (one
is written every ``checkpoint_every`` steps and after every epoch) and ends exactly where an
uninterrupted run would; a folder holding another configuration is refused, not overwritten.

Under ``torchrun``, pass the :class:`~lenna_core.search.distributed.DistributedContext` of
:func:`~lenna_core.search.distributed.init_from_environment` as ``distributed``: each rank
steps on its slice of every global batch with gradients averaged over the ranks, rank 0 alone
writes the folder, and every rank resumes from the same checkpoint and ends with the same
alphas (checked). That module says what differs from one process (BatchNorm statistics per
slice). Without it, nothing here exchanges anything and a search computes what it always did.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import Dataset, default_collate
from tqdm import tqdm

from lenna_core.latency.file_checks import (
    load_torch,
    read_json,
    require_keys,
    save_torch,
    verify_digest,
    with_digest,
)
from lenna_core.latency.profiler import resolve_device
from lenna_core.search.distributed import DistributedContext
from lenna_core.search.estimators import LatencyEstimator
from lenna_core.search.penalty import LinearPenalty, Penalty
from lenna_core.search.step import ArchStep, arch_step, unrolled_arch_step, weight_step
from lenna_core.space.data import DatasetSplits, load_dataset
from lenna_core.space.genotypes import Genotype
from lenna_core.space.supernet import GATE_GRADIENTS, MODES, SearchNetwork
from lenna_core.validation import check_int

CHECKPOINT_VERSION = 1
ORDERS = ("first", "second")


@dataclass(frozen=True)
class SearchConfig:
    """Everything that decides a search's outcome besides the penalty and the estimator."""

    dataset: str = "digits"
    data_root: str | None = None
    split_seed: int = 0  # the train/val/test split: keep it fixed to compare searches
    C: int = 8
    layers: int = 5
    epochs: int = 10
    batch_size: int = 64
    mode: str = "binary"
    gate_gradient: str = "two"
    order: str = "first"
    weight_lr: float = 0.05
    weight_lr_min: float = 0.001
    weight_momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_lr: float = 3e-3
    arch_weight_decay: float = 1e-3
    grad_clip: float = 5.0
    warmup_epochs: int = 0  # epochs that train weights only, before the alphas move
    max_skip: int | None = 2  # skip connections kept per derived cell; None: no cap
    steps_per_epoch: int | None = None  # None: one pass over the smaller split
    checkpoint_every: int = 25  # steps between mid-epoch checkpoints
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        positive = ("C", "layers", "epochs", "batch_size", "checkpoint_every")
        for name in positive:
            value = getattr(self, name)
            check_int(name, value)
        for name in ("seed", "split_seed", "warmup_epochs"):
            value = getattr(self, name)
            check_int(name, value, 0)
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs={self.warmup_epochs}: must be below "
                             f"epochs={self.epochs}, or the alphas never move")
        for name in ("weight_lr", "arch_lr", "grad_clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r}: must be positive")
        for name in ("weight_lr_min", "weight_decay", "arch_weight_decay"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}={getattr(self, name)!r}: must be >= 0")
        if not 0 <= self.weight_momentum < 1:
            raise ValueError(f"weight_momentum={self.weight_momentum}: must lie in [0, 1)")
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}: allowed modes are {', '.join(MODES)}")
        if self.gate_gradient not in GATE_GRADIENTS:
            raise ValueError(f"gate_gradient={self.gate_gradient!r}: allowed values are "
                             f"{', '.join(GATE_GRADIENTS)}")
        if self.order not in ORDERS:
            raise ValueError(f"order={self.order!r}: allowed values are {', '.join(ORDERS)}")
        if self.order == "second" and self.mode != "softmax":
            raise ValueError("order='second' needs mode='softmax'")
        if self.max_skip is not None and (not isinstance(self.max_skip, int) or self.max_skip < 0):
            raise ValueError(f"max_skip={self.max_skip!r}: must be None or an integer >= 0")
        if self.steps_per_epoch is not None and (not isinstance(self.steps_per_epoch, int)
                                                 or self.steps_per_epoch < 1):
            raise ValueError(f"steps_per_epoch={self.steps_per_epoch!r}: must be None or a "
                             "positive integer")


class LatencyObjective:
    """``objective(ce, net)`` for :func:`arch_step`: the penalty applied to the estimate."""

    def __init__(self, penalty: Penalty, estimator: LatencyEstimator) -> None:
        self.penalty, self.estimator = penalty, estimator

    def __call__(self, ce: torch.Tensor, net: SearchNetwork) -> tuple[torch.Tensor, dict]:
        expected = self.estimator(net.alphas_normal, net.alphas_reduce)
        loss, term = self.penalty(ce, expected)
        return loss, {"latency_term": term, "expected": float(expected.detach())}


@dataclass
class SearchResult:
    """The outcome of a finished search."""

    genotype: Genotype
    log: pd.DataFrame
    out_dir: Path
    penalty: dict
    predicted: float | None  # the estimator's value for the derived cells (its unit)
    unit: str | None
    seconds: float
    extra: dict = field(default_factory=dict)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, stream: int
                  ) -> list[torch.Tensor]:
    """The shuffled index batches of one epoch; a pure function of its arguments.

    ``stream`` separates independent orders of the same epoch (0 train, 1 val, 2 evaluation).
    """
    if not 0 <= stream < 8:
        raise ValueError(f"stream={stream}: must lie in 0..7")
    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 8 + stream)
    return list(torch.randperm(n, generator=generator).split(batch_size))


def collate_batch(dataset: Dataset, index: torch.Tensor, device: torch.device
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples ``index`` of ``dataset`` as one (x, y) batch on ``device``."""
    x, y = default_collate([dataset[i] for i in index.tolist()])
    return x.to(device), torch.as_tensor(y).to(device)


def op_counts(genotype: Genotype) -> dict[str, int]:
    """How many edges of each derived cell use each op: {'normal/sep_conv_3x3': 2, ...}."""
    counts: dict[str, int] = {}
    for kind, gene in (("normal", genotype.normal), ("reduce", genotype.reduce)):
        for op, _ in gene:
            counts[f"{kind}/{op}"] = counts.get(f"{kind}/{op}", 0) + 1
    return counts


class LatencyAwareSearch:
    """DARTS with ``penalty(CE, E[latency of the target network])`` as the alpha loss."""

    def __init__(self, config: SearchConfig, out_dir: str | os.PathLike,
                 estimator: LatencyEstimator | None = None,
                 penalty: Penalty | None = None,
                 distributed: DistributedContext | None = None) -> None:
        self.config = config
        self.distributed = distributed
        self.network: SearchNetwork | None = None  # this rank's supernet after run() searched
        self.out_dir = Path(out_dir)
        self.estimator = estimator
        self.penalty = penalty if penalty is not None else LinearPenalty(0.0)
        if not isinstance(self.penalty, Penalty):
            raise ValueError(f"penalty must be a lenna_core.search.penalty.Penalty; got "
                             f"{type(self.penalty).__name__}")
        if self.penalty.lam > 0 and estimator is None:
            raise ValueError(f"penalty lam={self.penalty.lam} needs an estimator "
                             "(MLPEstimator, LookupTableEstimator or FlopsEstimator)")
        if distributed is not None and config.order == "second":
            raise ValueError("order='second' is not supported by a distributed search (its "
                             "virtual weight step would need averaged gradients too); use "
                             "order='first' or one process")

    # ------------------------------------------------------------------ bookkeeping

    def describe(self) -> dict:
        """What defines this search; a folder holding another description is refused."""
        from lenna_core import __version__
        described = {"config": asdict(self.config), "penalty": self.penalty.to_dict(),
                     "estimator": None if self.estimator is None else self.estimator.describe(),
                     "package_version": __version__}
        if self.distributed is not None:  # BatchNorm sees slices: another search, another folder
            described["world_size"] = self.distributed.world_size
        return described

    def _check_folder(self) -> None:
        path = self.out_dir / "config.json"
        if not path.exists():
            return
        stored = read_json(path, f"delete {self.out_dir} to start this search over")
        mine = json.loads(json.dumps(self.describe()))
        if stored != mine:
            diff = sorted(_differences(stored, mine))
            raise ValueError(f"{path} records a search with another configuration "
                             f"(differs in {', '.join(diff[:6])}); choose another out_dir "
                             "or delete that folder to start over. Nothing was overwritten.")

    def _checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def _save_checkpoint(self, state: dict) -> None:
        save_torch(state, self._checkpoint_path())

    # ------------------------------------------------------------------ the loop

    def run(self, progress: bool = True, splits: DatasetSplits | None = None,
            on_step: Callable[[int], None] | None = None) -> SearchResult:
        """Search (or resume, or return the finished result); ``on_step(global_step)`` is
        called after every step, after any checkpoint of that step is written."""
        cfg = self.config
        ranks = self.distributed
        writes = ranks is None or ranks.is_main
        self._check_folder()
        if (self.out_dir / "result.json").exists():
            return self.load_result()
        # Everything that can fail on a bad setting fails before the folder is written to: a
        # corrected run must not be refused as "another configuration".
        device = resolve_device(cfg.device, "SearchConfig.device")
        if ranks is not None:
            if ranks.device.type != device.type:
                raise ValueError(f"SearchConfig.device={cfg.device!r} but the process group "
                                 f"exchanges tensors on {ranks.device.type}: initialise it "
                                 "for the same device")
            device = ranks.device
        if splits is None:
            splits = load_dataset(cfg.dataset, cfg.data_root, seed=cfg.split_seed)
        n_steps = min(math.ceil(len(splits.train) / cfg.batch_size),
                      math.ceil(len(splits.val) / cfg.batch_size))
        if cfg.steps_per_epoch is not None:
            n_steps = min(n_steps, cfg.steps_per_epoch)
        if ranks is not None:
            _check_shards(len(splits.train), len(splits.val), cfg.batch_size, n_steps,
                          ranks.world_size)
        if writes:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "genotypes").mkdir(exist_ok=True)
            _write_atomic(self.out_dir / "config.json",
                          json.dumps(self.describe(), indent=2) + "\n")

        torch.manual_seed(cfg.seed)
        net = SearchNetwork(cfg.C, splits.num_classes, cfg.layers, in_channels=splits.in_channels,
                            mode=cfg.mode, gate_gradient=cfg.gate_gradient).to(device)
        self.network = net
        w_opt = torch.optim.SGD(net.weight_parameters(), cfg.weight_lr,
                                momentum=cfg.weight_momentum, weight_decay=cfg.weight_decay)
        a_opt = torch.optim.Adam(net.arch_parameters(), cfg.arch_lr, betas=(0.5, 0.999),
                                 weight_decay=cfg.arch_weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, cfg.epochs,
                                                               eta_min=cfg.weight_lr_min)
        estimator = None if self.estimator is None else self.estimator.to(device)
        penalty = self.penalty
        if estimator is not None and penalty.ref is None:
            with torch.no_grad():
                penalty = penalty.with_ref(float(estimator(*net.arch_parameters())))
        objective = (LatencyObjective(penalty, estimator)
                     if estimator is not None and penalty.lam > 0 else None)

        state = {"epoch": 0, "step": 0, "global_step": 0, "rows": [], "sums": {},
                 "seconds": 0.0}
        if self._checkpoint_path().exists():
            saved = load_torch(self._checkpoint_path(), "delete it to restart this search "
                               "from its first step", weights_only=False)
            if saved.get("version") != CHECKPOINT_VERSION or saved["describe"] != \
                    json.loads(json.dumps(self.describe())):
                raise ValueError(f"{self._checkpoint_path()} was written by another search "
                                 "configuration or version; delete it to start over")
            net.load_state_dict(saved["net"])
            w_opt.load_state_dict(saved["weight_optimizer"])
            a_opt.load_state_dict(saved["arch_optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            torch.set_rng_state(saved["rng"])
            if device.type == "cuda" and saved.get("cuda_rng") is not None:
                torch.cuda.set_rng_state_all(saved["cuda_rng"])
            penalty = type(self.penalty)(saved["penalty"]["lam"], saved["penalty"]["ref"])
            if objective is not None:
                objective = LatencyObjective(penalty, estimator)
            state = saved["state"]

        def checkpoint() -> None:
            if ranks is not None:
                ranks.average_buffers(net)
            if writes:
                self._save_checkpoint({
                    "version": CHECKPOINT_VERSION, "describe": json.loads(json.dumps(
                        self.describe())), "net": net.state_dict(),
                    "weight_optimizer": w_opt.state_dict(),
                    "arch_optimizer": a_opt.state_dict(),
                    "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda"
                    else None, "penalty": penalty.to_dict(), "state": state})
            if ranks is not None:  # nobody steps on before the file is whole
                ranks.barrier()

        bar = tqdm(total=cfg.epochs * n_steps, initial=state["global_step"], unit="step",
                   desc=f"search {penalty.kind} lam={penalty.lam:g} seed={cfg.seed}",
                   disable=not progress or not writes)
        started = time.perf_counter() - state["seconds"]
        for epoch in range(state["epoch"], cfg.epochs):
            train_batches = epoch_batches(len(splits.train), cfg.batch_size, cfg.seed, epoch, 0)
            val_batches = epoch_batches(len(splits.val), cfg.batch_size, cfg.seed, epoch, 1)
            net.train()
            for step in range(state["step"], n_steps):
                train_index, val_index = train_batches[step], val_batches[step]
                average_arch = average_weights = None
                if ranks is not None:
                    train_index, val_index = ranks.shard(train_index), ranks.shard(val_index)
                    average_arch = ranks.gradient_averager(len(val_index),
                                                           len(val_batches[step]))
                    average_weights = ranks.gradient_averager(len(train_index),
                                                              len(train_batches[step]))
                x, y = collate_batch(splits.train, train_index, device)
                xv, yv = collate_batch(splits.val, val_index, device)
                added = {}
                if epoch >= cfg.warmup_epochs:
                    if cfg.order == "second":
                        result = unrolled_arch_step(net, a_opt, w_opt, (x, y), (xv, yv),
                                                    objective)
                    else:
                        result = arch_step(net, a_opt, xv, yv, objective, average_arch)
                    added = _arch_sums(result, len(yv))
                train_ce = weight_step(net, w_opt, x, y, cfg.grad_clip, average_weights)
                added.update(train_ce=train_ce * len(y), train_n=len(y))
                if ranks is not None:  # the log counts the global batch on every rank
                    added = ranks.sum_values(added)
                sums = state["sums"]
                for name, value in added.items():
                    sums[name] = sums.get(name, 0) + value
                state["step"], state["global_step"] = step + 1, state["global_step"] + 1
                state["seconds"] = time.perf_counter() - started
                bar.update(1)
                bar.set_postfix(ce=f"{train_ce:.3f}")
                if state["global_step"] % cfg.checkpoint_every == 0 and step + 1 < n_steps:
                    checkpoint()
                if on_step is not None:
                    on_step(state["global_step"])
            scheduler.step()
            genotype = net.genotype(cfg.max_skip)
            if writes:
                _write_atomic(self.out_dir / "genotypes" / f"epoch_{epoch:03d}.json",
                              genotype.to_json() + "\n")
            row = self._epoch_row(epoch, state, genotype, net, estimator, scheduler)
            state["rows"].append(row)
            state.update(epoch=epoch + 1, step=0, sums={},
                         seconds=time.perf_counter() - started)
            if writes:
                _write_atomic(self.out_dir / "log.csv", pd.DataFrame(state["rows"]).to_csv(
                    index=False))
            checkpoint()
        bar.close()
        if ranks is not None:
            ranks.check_identical(net.arch_parameters(), "the alphas")
        genotype = net.genotype(cfg.max_skip)
        predicted = None if estimator is None else estimator.predict_genotype(genotype)
        result = {"genotype": json.loads(genotype.to_json()), "penalty": penalty.to_dict(),
                  "predicted": predicted,
                  "unit": None if estimator is None else estimator.unit,
                  "seconds": state["seconds"],
                  "alphas": {k: v.tolist() for k, v in net.probabilities().items()}}
        if writes:
            _write_atomic(self.out_dir / "result.json",
                          json.dumps(with_digest(result), indent=2) + "\n")
        if ranks is not None:
            ranks.barrier()
        return self.load_result()

    def _epoch_row(self, epoch: int, state: dict, genotype: Genotype, net: SearchNetwork,
                   estimator: LatencyEstimator | None, scheduler) -> dict:
        sums = state["sums"]
        val_n = sums.get("val_n", 0)
        row = {"epoch": epoch, "seed": self.config.seed,
               "train_ce": sums.get("train_ce", 0.0) / max(sums.get("train_n", 0), 1),
               "val_ce": sums["val_ce"] / val_n if val_n else float("nan"),
               "val_acc": 100.0 * sums["val_correct"] / val_n if val_n else float("nan"),
               "latency_term": sums["latency_term"] / val_n if "latency_term" in sums
               else 0.0,
               "weight_lr": scheduler.get_last_lr()[0],
               "seconds": state["seconds"]}
        if estimator is not None:
            with torch.no_grad():
                row["expected"] = float(estimator(*net.arch_parameters()))
            row["predicted_derived"] = estimator.predict_genotype(genotype)
            row["unit"] = estimator.unit
        row.update(op_counts(genotype))
        return row

    def load_result(self) -> SearchResult:
        """The result of the finished search in :attr:`out_dir`."""
        path = self.out_dir / "result.json"
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: the search has not finished; "
                                    "run() resumes it")
        remedy = f"delete {self.out_dir} to run this search again"
        data = read_json(path, remedy)
        verify_digest(data, path, remedy)
        require_keys(data, ("genotype", "penalty", "predicted", "unit", "seconds", "alphas"),
                     path, remedy)
        log = pd.read_csv(self.out_dir / "log.csv")
        return SearchResult(Genotype.from_json(json.dumps(data["genotype"])), log, self.out_dir,
                            data["penalty"], data["predicted"], data["unit"], data["seconds"],
                            {"alphas": data["alphas"]})


def _arch_sums(result: ArchStep, n: int) -> dict:
    """What one architecture step adds to the epoch's sums (n: its batch size)."""
    added = {"val_ce": result.ce * n, "val_correct": result.correct, "val_n": n}
    if "latency_term" in result.details:
        added["latency_term"] = result.details["latency_term"] * n
    return added


def _check_shards(n_train: int, n_val: int, batch_size: int, n_steps: int,
                  world_size: int) -> None:
    """Refuse a batch size that leaves a rank without samples in some step of an epoch."""
    smallest = min(min(batch_size, n - (n_steps - 1) * batch_size) for n in (n_train, n_val))
    if smallest < world_size:
        raise ValueError(f"batch_size={batch_size}: some step's batch has {smallest} "
                         f"samples, fewer than the {world_size} ranks; choose a batch size "
                         "or steps_per_epoch that gives every rank at least one sample")


def _differences(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".") or "(root)"]
