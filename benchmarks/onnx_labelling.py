"""Blocks labelled per second in ONNX Runtime: each sampled cell traced, or composed from ops.

The same blocks (the ONNX Runtime dataset's first ``--blocks`` row ids, seed 0) are labelled
twice with the dataset's rule (``lenna label --runtime onnxruntime --timings-per-reset 5``):
(a) every sampled cell exported with ``torch.onnx.export`` before its session opens; (b) every
sampled cell composed from its context's ops, exported once per context
(:class:`~lenna_core.latency.onnx_compose.OnnxCellComposer`, what ``lenna label`` does). Both
print blocks per second; (b) also without the one-off exports, which a 2,000-block dataset
pays for about 150 contexts only. With ``--dataset``, the rate the committed dataset was
labelled at is printed from its ``seconds`` column.

    .venv/bin/python benchmarks/onnx_labelling.py --blocks 10 --core 1 \\
        --dataset data/devices/onnxruntime-xeon-6-167/pool.csv
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from lenna_core.latency.blocks import CellBank
from lenna_core.latency.dataset import label_dataset, read_dataset
from lenna_core.latency.labeller import DEFAULT_RULE, describe_rule, make_labeler
from lenna_core.latency.onnx_reference import OnnxReferenceClock
from lenna_core.latency.onnx_runtime import OnnxSession, runtime_record


class TracingClock(OnnxReferenceClock):
    """Route (a): every sampled cell traced by ``torch.onnx.export`` into its own session."""

    def start_block(self, bank: CellBank) -> None:
        """Nothing is exported ahead: each cell is traced when it is drawn."""

    def sampled(self, bank: CellBank, active: list[int]) -> OnnxSession:
        """The drawn cell, traced and opened, its warm-up passes run."""
        session = self.runtime.session(bank.select(active), bank.context.input_shapes)
        for _ in range(self.session_warmup):
            session.run()
        return session


def _rate(clock: OnnxReferenceClock, blocks: int, folder: Path, name: str) -> float:
    rule = replace(DEFAULT_RULE, timings_per_reset=5)
    reference_ms = clock.calibrate(200)
    started = time.perf_counter()
    label_dataset(folder / f"{name}.csv", range(blocks),
                  make_labeler(rule, clock, reference_ms),
                  describe_rule(rule, reference_ms), progress=False,
                  runtime=runtime_record(1))
    return blocks / (time.perf_counter() - started)


def main() -> None:
    """Label the same blocks both ways and print blocks per second."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10, help="blocks labelled each way")
    parser.add_argument("--core", type=int, default=None, help="pin to this core")
    parser.add_argument("--dataset", default=None,
                        help="also print the rate this labelled dataset was written at")
    args = parser.parse_args()
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    with tempfile.TemporaryDirectory() as tmp:
        traced = _rate(TracingClock(), args.blocks, Path(tmp), "traced")
        composing = OnnxReferenceClock()
        composed = _rate(composing, args.blocks, Path(tmp), "composed")
        # The same blocks again: their contexts' ops are exported already.
        warm = _rate(composing, args.blocks, Path(tmp), "composed_again")
    print(f"{args.blocks} blocks, dataset rule (4% standard error, 5 pass pairs per reset):")
    print(f"  (a) each cell traced by torch.onnx.export:     {traced:.2f} blocks/s")
    print(f"  (b) composed from ops exported once a context: {composed:.2f} blocks/s "
          f"({warm:.2f} blocks/s once the contexts' ops are exported)")
    if args.dataset:
        frame = read_dataset(args.dataset)
        print(f"  {Path(args.dataset).name}: {len(frame)} blocks in "
              f"{frame['seconds'].sum() / 60:.1f} min of labelling, "
              f"{len(frame) / frame['seconds'].sum():.2f} blocks/s")


if __name__ == "__main__":
    main()
