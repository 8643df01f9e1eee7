"""Single-path cells made ready for ONNX Runtime per second: exported one by one, or composed.

(a) ``torch.onnx.export`` of each sampled cell (``lenna_core.latency.onnx_export``); (b) the
cell assembled from its context's ops, each exported once (``lenna_core.latency.onnx_compose``),
whose one-off cost is printed apart. Both then open an inference session, which every labelled
block needs whichever way it was made; the outputs of (a) and (b) are compared on every cell.

    .venv/bin/python benchmarks/onnx_export.py                    # 30 cells per context
    .venv/bin/python benchmarks/onnx_export.py --cells 100 --C 16 --spatial 16
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lenna_core.latency.blocks import CellBank, CellContext
from lenna_core.latency.onnx_compose import OnnxCellComposer
from lenna_core.latency.onnx_export import export_onnx
from lenna_core.latency.onnx_runtime import OnnxRuntimeCpu
from lenna_core.space.single_path import sample_active


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=30, help="sampled cells per context")
    parser.add_argument("--C", type=int, default=16, help="channels per node")
    parser.add_argument("--spatial", type=int, default=16, help="input side (pixels)")
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    runtime = OnnxRuntimeCpu(threads=args.threads)
    print(f"torch {torch.__version__}, onnxruntime {runtime.fingerprint()['onnxruntime']}, "
          f"{args.cells} cells per context, {args.threads} thread(s)")
    for reduction in (False, True):
        context = CellContext.in_network(args.C, reduction, False, args.spatial)
        bank = CellBank(context)
        generator = torch.Generator().manual_seed(args.seed)
        samples = [sample_active(torch.full((14, 8), 1 / 8), generator=generator)
                   for _ in range(args.cells)]
        start = time.perf_counter()
        exported = [export_onnx(bank.select(active), context.input_shapes) for active in samples]
        export_s = time.perf_counter() - start
        start = time.perf_counter()
        composer = OnnxCellComposer(bank)
        setup_s = time.perf_counter() - start
        start = time.perf_counter()
        composed = [composer.compose(active) for active in samples]
        compose_s = time.perf_counter() - start
        start = time.perf_counter()
        sessions = [runtime.load(model, context.input_shapes) for model in composed]
        session_s = time.perf_counter() - start
        worst = max(float(np.abs(runtime.load(a, context.input_shapes).run()[0]
                                 - s.run()[0]).max()) for a, s in zip(exported, sessions))
        kind = "reduction" if reduction else "normal"
        n = args.cells
        print(f"{kind} cell, C={args.C}, {args.spatial}x{args.spatial}:")
        print(f"  (a) torch.onnx.export per cell: {n / export_s:8.1f} cells/s "
              f"({1e3 * export_s / n:.1f} ms each)")
        print(f"  (b) composed from ops:          {n / compose_s:8.1f} cells/s "
              f"({1e3 * compose_s / n:.2f} ms each; once per context: {setup_s:.1f} s "
              f"exporting {sum(map(len, bank.ops)) + 2} graphs)")
        print(f"  opening a session:              {n / session_s:8.1f} cells/s "
              f"({1e3 * session_s / n:.1f} ms each)")
        print(f"  ready to time, (a) vs (b):      {n / (export_s + session_s):8.1f} vs "
              f"{n / (compose_s + session_s):.1f} cells/s; "
              f"largest |(a) - (b)| output difference {worst:.1e}")


if __name__ == "__main__":
    main()
