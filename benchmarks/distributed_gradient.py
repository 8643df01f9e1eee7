"""How far a distributed search's alpha gradient is from one process's on the same global batch.

With ``n`` ranks the averaged gradient is, bit for bit, the mean of the gradients of the ``n``
slices of the global batch (``tests/test_distributed.py`` checks it under torchrun), so it is
measured here in one process: the alpha gradient of the architecture loss (CE, and CE plus
the MLP latency penalty at lambda 0.5) at the search's starting point, on the first global
validation batch, per rank count and global batch size. The control row puts BatchNorm in
evaluation mode (fixed statistics): then slices and whole batch agree to float rounding, so
per-slice BatchNorm statistics are the whole difference.

    .venv/bin/python benchmarks/distributed_gradient.py
    .venv/bin/python benchmarks/distributed_gradient.py --C 8 --layers 5 --batches 64 256
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.search.estimators import MLPEstimator, TargetConfig
from lenna_core.search.loop import LatencyObjective, collate_batch, epoch_batches
from lenna_core.search.penalty import LinearPenalty
from lenna_core.space.data import load_dataset
from lenna_core.space.supernet import SearchNetwork

DATA = Path(__file__).resolve().parent.parent / "data"


def alpha_grad(net: SearchNetwork, splits, index: torch.Tensor, objective) -> torch.Tensor:
    """The flattened alpha gradient of the architecture loss on ``index``."""
    x, y = collate_batch(splits.val, index, torch.device("cpu"))
    ce = F.cross_entropy(net(x), y)
    loss = ce if objective is None else objective(ce, net)[0]
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, net.arch_parameters())])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--C", type=int, default=2)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256],
                        help="global batch sizes (default: %(default)s)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    splits = load_dataset("digits", seed=0)
    estimator = MLPEstimator(MLPLatency.load(DATA / "mlp_latency"), TargetConfig())
    torch.manual_seed(args.seed)
    net = SearchNetwork(args.C, splits.num_classes, args.layers, in_channels=splits.in_channels,
                        mode="softmax", gate_gradient="full")
    with torch.no_grad():
        penalty = LinearPenalty(0.5).with_ref(float(estimator(*net.arch_parameters())))
    rows = []
    for batch_size in args.batches:
        batch = epoch_batches(len(splits.val), batch_size, args.seed, 0, 1)[0]
        for ranks in args.ranks:
            for loss, objective in (("CE", None),
                                    ("CE + latency", LatencyObjective(penalty, estimator))):
                for bn in ("train", "eval"):
                    net.train(bn == "train")
                    whole = alpha_grad(net, splits, batch, objective)
                    slices = [alpha_grad(net, splits, s, objective) * (len(s) / len(batch))
                              for s in batch.tensor_split(ranks)]
                    averaged = torch.stack(slices).sum(0)
                    rows.append({"global batch": batch_size, "ranks": ranks, "loss": loss,
                                 "BatchNorm": bn,
                                 "relative L2": float((averaged - whole).norm() / whole.norm()),
                                 "cosine": float(F.cosine_similarity(averaged, whole, dim=0))})
    net.train()
    table = pd.DataFrame(rows)
    with pd.option_context("display.float_format", "{:.3g}".format):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
