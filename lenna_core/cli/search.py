"""Command line: one latency-aware search, in one process or on several under ``torchrun``.

    lenna search --out runs/my_search --lam 0.5 --epochs 10
    torchrun --standalone --nproc_per_node=2 -m lenna_core.cli.search --out runs/ddp --lam 0.5

Under torchrun every rank takes its slice of each global batch (``--batch-size`` is the global
batch) and averages its gradients with the others', gloo on ``--device cpu`` and nccl on
``cuda`` (:mod:`lenna_core.search.distributed`); rank 0 writes the folder and prints the
result. Run the same command again after an interruption and every rank resumes from the
folder's checkpoint.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.search import distributed
from lenna_core.search.distributed import DistributedContext
from lenna_core.search.estimators import FlopsEstimator, MLPEstimator, TargetConfig
from lenna_core.search.loop import LatencyAwareSearch, SearchConfig
from lenna_core.search.penalty import LinearPenalty

# SearchConfig fields offered as options (--batch-size for batch_size); the others keep their
# defaults.
OPTIONS = ("dataset", "data_root", "C", "layers", "epochs", "batch_size", "steps_per_epoch",
           "checkpoint_every", "mode", "gate_gradient", "arch_lr", "weight_lr", "seed", "device")
ESTIMATORS = ("mlp", "flops", "none")


def build_parser() -> argparse.ArgumentParser:
    """The options of ``lenna search``, each defaulting to SearchConfig's default."""
    parser = argparse.ArgumentParser(
        prog="lenna search", description="Run (or resume) one latency-aware DARTS search; "
        "under torchrun, on every rank with averaged gradients.")
    parser.add_argument("--out", required=True, help="the search's folder (resumable)")
    defaults = {f.name: f for f in fields(SearchConfig)}
    for name in OPTIONS:
        default = defaults[name].default
        kind = type(default) if default is not None else (str if name == "data_root" else int)
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind,
                            default=default, help=f"SearchConfig.{name} (default: %(default)s)")
    parser.add_argument("--estimator", choices=ESTIMATORS, default="mlp",
                        help="the latency estimate the penalty uses (default: %(default)s)")
    parser.add_argument("--model", default="data/mlp_latency",
                        help="the MLP latency model's path prefix (default: %(default)s)")
    parser.add_argument("--lam", type=float, default=0.5,
                        help="lambda of the linear penalty CE + lam * E[latency] / ref "
                             "(default: %(default)s; 0: plain DARTS)")
    return parser


def build_search(args: argparse.Namespace,
                 ranks: DistributedContext | None = None) -> LatencyAwareSearch:
    """The search the parsed options describe, on ``ranks`` (None: one process)."""
    config = SearchConfig(**{name: getattr(args, name) for name in OPTIONS})
    estimator = None
    if args.estimator == "mlp":
        estimator = MLPEstimator(MLPLatency.load(args.model), TargetConfig())
    elif args.estimator == "flops":
        estimator = FlopsEstimator(TargetConfig())
    return LatencyAwareSearch(config, args.out, estimator, LinearPenalty(args.lam), ranks)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, join torchrun's process group if any, search, print the cells."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ranks = distributed.init_from_environment(args.device)
    except ValueError as err:
        parser.error(str(err))
    try:
        search = build_search(args, ranks)
        result = search.run(progress=ranks is None or ranks.is_main)
    except ValueError as err:
        parser.error(str(err))
    finally:
        distributed.close()
    if ranks is None or ranks.is_main:
        unit = f" {result.unit}" if result.unit else ""
        print(f"{result.genotype}\npredicted latency of the derived cells: "
              f"{result.predicted}{unit}; {result.seconds:.1f} s; folder {args.out}")


if __name__ == "__main__":
    main()
