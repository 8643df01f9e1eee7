"""Cost of the MLP's differentiable latency estimate for a whole network's blocks.

Times one call (forward, and forward + backward to the alphas) of ``MLPLatency.as_module``
for every cell of a DARTS network, as the search loss uses it.

    .venv/bin/python benchmarks/latency_module.py                      # data/mlp_latency
    .venv/bin/python benchmarks/latency_module.py --C 16 --layers 8 --image-size 32
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lenna_core.latency.blocks import network_cell_contexts
from lenna_core.latency.mlp_model import MLPLatency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="data/mlp_latency", help="saved MLP (chapter 4)")
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = MLPLatency.load(args.model)
    contexts = network_cell_contexts(args.C, args.layers, args.image_size)
    module = model.as_module(contexts)
    alphas = torch.zeros(2, 14, 8, requires_grad=True)
    kinds = torch.tensor([int(c.reduction) for c in contexts])

    def call(backward: bool) -> None:
        probs = torch.softmax(alphas, dim=-1)[kinds]  # normal or reduction alphas per cell
        total = module(probs).sum()
        if backward:
            total.backward()

    print(f"network C={args.C} layers={args.layers} input {args.image_size}x{args.image_size}: "
          f"{len(contexts)} blocks, threads={args.threads}, {args.calls} calls each")
    for backward in (False, True):
        for _ in range(50):
            call(backward)
        times = []
        for _ in range(args.calls):
            start = time.perf_counter()
            call(backward)
            times.append((time.perf_counter() - start) * 1e3)
        label = "forward + backward" if backward else "forward"
        print(f"{label:<20} median {np.median(times):.3f} ms, 90th percentile "
              f"{np.percentile(times, 90):.3f} ms per call")


if __name__ == "__main__":
    main()
