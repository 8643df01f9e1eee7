"""Torch eager against ONNX Runtime on this CPU: a DARTS network, and cells of one op each.

Median latencies (ms) of ``NetworkCIFAR(C, 10, layers, False, DARTS_V2)`` at batch 1, then of a
normal cell (C=16, 16x16) with the same op on all 14 edges, as a ratio to the cell of skip
connections and to the cell of dil_conv_3x3: the ops' relative costs in each runtime.

    .venv/bin/python benchmarks/onnx_latency.py                 # one thread, 200 passes each
    .venv/bin/python benchmarks/onnx_latency.py --threads 2 --repeats 500
"""

from __future__ import annotations

import argparse

import torch

import lenna_core as lc
from lenna_core.latency.blocks import CellBank
from lenna_core.latency.onnx_runtime import OnnxRuntimeCpu, measure_onnx_latency
from lenna_core.latency.profiler import measure_latency
from lenna_core.latency.reference_clock import REFERENCE_CONTEXT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=200, help="timed passes per figure")
    args = parser.parse_args()
    torch.manual_seed(0)
    runtime = OnnxRuntimeCpu(threads=args.threads)

    def both(module: torch.nn.Module, shapes) -> tuple[float, float]:
        eager = measure_latency(module, shapes, repeats=args.repeats, warmup=20,
                                threads=args.threads).median
        onnx = measure_onnx_latency(runtime.session(module, shapes), repeats=args.repeats,
                                    warmup=20).median
        return eager, onnx

    net = lc.NetworkCIFAR(args.C, 10, args.layers, False, lc.DARTS_V2)
    eager, onnx = both(net, [(1, 3, 32, 32)])
    print(f"NetworkCIFAR({args.C}, 10, {args.layers}, DARTS_V2), batch 1, {args.threads} "
          f"thread(s): torch eager {eager:.2f} ms, onnxruntime {onnx:.3f} ms "
          f"({eager / onnx:.1f}x faster)")
    bank = CellBank(REFERENCE_CONTEXT)
    cells = {name: both(bank.select([k] * 14), REFERENCE_CONTEXT.input_shapes)
             for k, name in enumerate(bank.space.primitives)}
    print("normal cell, C=16, 16x16, one op on all 14 edges (ms; ratio to skip_connect, "
          "to dil_conv_3x3):")
    for name, (eager, onnx) in cells.items():
        skip, dil = cells["skip_connect"], cells["dil_conv_3x3"]
        print(f"  {name:14s} torch eager {eager:6.3f} ({eager / skip[0]:4.2f}, "
              f"{eager / dil[0]:4.2f})   onnxruntime {onnx:6.3f} ({onnx / skip[1]:4.2f}, "
              f"{onnx / dil[1]:4.2f})")


if __name__ == "__main__":
    main()
