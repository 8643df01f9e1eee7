"""What tests/test_distributed.py runs on every rank under torchrun: ``lenna search``'s options
plus a report per rank, a measured first architecture step and a kill.

    torchrun --standalone --nproc_per_node=2 tests/distributed_worker.py --report DIR
        [--measure-step] [--kill-rank R --kill-step S] LENNA_SEARCH_OPTIONS...

Each rank writes DIR/rank_R.json: the first global step its loop ran, its own alphas and
derived cells (from its own network, not rank 0's files), and with ``--measure-step`` the
averaged alpha gradient and the latency term of one architecture step on the first global
validation batch, taken as the loop takes its first step.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path

import torch

from lenna_core.cli.search import build_parser, build_search
from lenna_core.search import distributed
from lenna_core.search.loop import LatencyObjective, collate_batch, epoch_batches
from lenna_core.search.step import arch_step
from lenna_core.space.data import load_dataset
from lenna_core.space.supernet import SearchNetwork


def measure_step(search, ranks) -> dict:
    """One averaged architecture step from the loop's starting point on its first val batch."""
    cfg = search.config
    splits = load_dataset(cfg.dataset, cfg.data_root, seed=cfg.split_seed)
    torch.manual_seed(cfg.seed)
    net = SearchNetwork(cfg.C, splits.num_classes, cfg.layers, in_channels=splits.in_channels,
                        mode=cfg.mode, gate_gradient=cfg.gate_gradient)
    with torch.no_grad():
        penalty = search.penalty.with_ref(float(search.estimator(*net.arch_parameters())))
    objective = LatencyObjective(penalty, search.estimator)
    batch = epoch_batches(len(splits.val), cfg.batch_size, cfg.seed, 0, 1)[0]
    mine = ranks.shard(batch)
    xv, yv = collate_batch(splits.val, mine, torch.device("cpu"))
    optimizer = torch.optim.SGD(net.arch_parameters(), lr=0.0)
    result = arch_step(net, optimizer, xv, yv, objective,
                       ranks.gradient_averager(len(mine), len(batch)))
    return {"indices": mine.tolist(), "details": result.details,
            "grads": [p.grad.tolist() for p in net.arch_parameters()]}


def main() -> None:
    """Run the search on this rank and write its report."""
    worker = argparse.ArgumentParser()
    worker.add_argument("--report", required=True)
    worker.add_argument("--measure-step", action="store_true")
    worker.add_argument("--kill-rank", type=int, default=None)
    worker.add_argument("--kill-step", type=int, default=None)
    own, rest = worker.parse_known_args()
    args = build_parser().parse_args(rest)
    ranks = distributed.init_from_environment(args.device)
    search = build_search(args, ranks)
    report: dict = {"rank": ranks.rank, "world_size": ranks.world_size, "steps": []}
    if own.measure_step:
        report["step"] = measure_step(search, ranks)

    def on_step(step: int) -> None:
        report["steps"].append(step)
        if ranks.rank == own.kill_rank and step == own.kill_step:
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, as a crashed node

    result = search.run(progress=False, on_step=on_step)
    net = search.network
    report.update(genotype=json.loads(net.genotype(search.config.max_skip).to_json()),
                  alphas=[p.tolist() for p in net.arch_parameters()],
                  result_genotype=json.loads(result.genotype.to_json()))
    Path(own.report, f"rank_{ranks.rank}.json").write_text(json.dumps(report))
    distributed.close()


if __name__ == "__main__":
    main()
