"""What the latency term adds to a search step: plain DARTS vs DARTS + lambda * E[latency].

One step is a first-order DARTS step (an arch step on a validation batch, then a weight
step on a training batch), as the search runs it. The two variants alternate step by step,
so drift in this machine's speed hits both alike; the figures are medians over the steps.
The estimator is evaluated for the target network (every cell of it), as in the search.

    .venv/bin/python benchmarks/latency_term.py                  # chapter 6's default size
    .venv/bin/python benchmarks/latency_term.py --C 16 --layers 8 --image-size 32 \\
        --in-channels 3 --steps 6                                # DARTS's CIFAR search size
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.search.estimators import (
    FlopsEstimator,
    LookupTableEstimator,
    MLPEstimator,
    TargetConfig,
)
from lenna_core.search.loop import LatencyObjective
from lenna_core.search.penalty import LinearPenalty
from lenna_core.search.step import arch_step, weight_step
from lenna_core.space.supernet import SearchNetwork

DATA = Path(__file__).resolve().parent.parent / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--C", type=int, default=8)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=8)
    parser.add_argument("--in-channels", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--mode", default="softmax", choices=["softmax", "binary"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    target = TargetConfig()  # C=16, 8 cells, 32x32, batch 1: the latency the search targets
    estimators = {
        "mlp": MLPEstimator(MLPLatency.load(DATA / "mlp_latency"), target),
        "lookup_table": LookupTableEstimator(
            OpLatencyTable.from_csv(DATA / "op_latency_table.csv"), target),
        "flops": FlopsEstimator(target)}
    net = SearchNetwork(args.C, 10, args.layers, in_channels=args.in_channels, mode=args.mode,
                        gate_gradient="two" if args.mode == "binary" else "full")
    w_opt = torch.optim.SGD(net.weight_parameters(), 0.01, momentum=0.9)
    a_opt = torch.optim.Adam(net.arch_parameters(), 1e-4)
    shape = (args.batch_size, args.in_channels, args.image_size, args.image_size)
    x, y = torch.randn(shape), torch.randint(0, 10, (args.batch_size,))
    variants = {"plain DARTS": None}
    for name, estimator in estimators.items():
        ref = float(estimator(*net.arch_parameters()).detach())
        variants[f"+ {name} term"] = LatencyObjective(LinearPenalty(1.0, ref), estimator)

    def step(objective) -> float:
        start = time.perf_counter()
        arch_step(net, a_opt, x, y, objective)
        weight_step(net, w_opt, x, y)
        return (time.perf_counter() - start) * 1e3

    for objective in variants.values():  # warm-up
        step(objective)
    times = {name: [] for name in variants}
    for _ in range(args.steps):
        for name, objective in variants.items():
            times[name].append(step(objective))
    term_ms = {}
    for name, estimator in estimators.items():
        calls = []
        for _ in range(200):
            start = time.perf_counter()
            estimator(*net.arch_parameters()).backward()
            calls.append((time.perf_counter() - start) * 1e3)
        net.zero_grad()
        term_ms[name] = float(np.median(calls))
    print(f"supernet C={args.C} layers={args.layers} input {'x'.join(map(str, shape))} "
          f"mode={args.mode}, threads={args.threads}; target {target.to_dict()} "
          f"({len(target.contexts())} blocks); median of {args.steps} steps per variant")
    base = float(np.median(times["plain DARTS"]))
    print(f"{'variant':<22}{'step ms':>10}{'vs plain':>10}{'estimator fwd+bwd ms':>23}")
    for name in variants:
        median = float(np.median(times[name]))
        key = name.removeprefix("+ ").removesuffix(" term")
        extra = f"{term_ms[key]:>23.3f}" if key in term_ms else f"{'':>23}"
        print(f"{name:<22}{median:>10.1f}{100 * (median / base - 1):>+9.1f}%{extra}")
    for name, ms in term_ms.items():
        print(f"{name}: the estimator call alone is {100 * ms / base:.2f}% of a plain step")


if __name__ == "__main__":
    main()
