"""Time per search step and peak memory of the supernet in softmax vs binary-gate mode.

Each mode runs in its own process so peak memory is not shared. Binary mode is shown with
both gate-gradient estimators ("full": every candidate's gate, SearchNetwork's default;
"two": ProxylessNAS's two-path update). One search step is a first-order DARTS step: a
weight step on a training batch and an arch step on a validation batch. Memory is reported
twice: the tensors autograd saves for the backward pass of one
training forward (the activations binary gates are meant to save, device-independent), and
the growth of the process's peak memory over the steps (peak resident set on CPU, which at
small sizes is dominated by fixed costs; torch.cuda.max_memory_allocated on CUDA).

    .venv/bin/python benchmarks/supernet_modes.py            # the book's default size
    .venv/bin/python benchmarks/supernet_modes.py --C 8 --layers 8 --image-size 32 --in-channels 3
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


VARIANTS = {"softmax": ("softmax", "full"), "binary-full": ("binary", "full"),
            "binary-two": ("binary", "two")}


def measure(variant: str, args: argparse.Namespace) -> dict:
    """Run warm-up and timed steps of one mode in this process; return its figures."""
    from lenna_core import SearchNetwork
    from lenna_core.search.step import arch_step, weight_step

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    mode, gate_gradient = VARIANTS[variant]
    net = SearchNetwork(args.C, 10, args.layers, in_channels=args.in_channels, mode=mode,
                        gate_gradient=gate_gradient).to(device)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=3e-4, betas=(0.5, 0.999))
    shape = (args.batch, args.in_channels, args.image_size, args.image_size)
    x, y = torch.randn(shape, device=device), torch.randint(0, 10, (args.batch,), device=device)

    def step() -> None:
        weight_step(net, w_opt, x, y)
        arch_step(net, a_opt, x, y)

    saved = saved_activation_mib(net, x, y)
    before = _rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before_cuda = torch.cuda.memory_allocated(device)
    step()  # warm-up
    times = []
    for _ in range(args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    peak = (torch.cuda.max_memory_allocated(device) - before_cuda) / 2**20 \
        if device.type == "cuda" else _peak_rss_mib() - before
    return {"variant": variant, "median_step_ms": times[len(times) // 2], "peak_mib": peak,
            "saved_mib": saved}


def saved_activation_mib(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """MiB of distinct tensors autograd keeps for the backward pass of one training forward."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = torch.nn.functional.cross_entropy(net(x), y)
    del loss
    return sum(storages.values()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--C", type=int, default=8, help="initial channels (book default 8)")
    parser.add_argument("--layers", type=int, default=5, help="cells (book default 5)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=8, help="digits are 8x8")
    parser.add_argument("--in-channels", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args)))
        return
    rows = {}
    for variant in VARIANTS:
        out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--worker", variant],
                             check=True, capture_output=True, text=True).stdout
        rows[variant] = json.loads(out.strip().splitlines()[-1])
    print(f"supernet C={args.C} layers={args.layers} batch={args.batch} input="
          f"{args.in_channels}x{args.image_size}x{args.image_size} device={args.device} "
          f"threads={args.threads} steps={args.steps} (median of timed steps)")
    print(f"{'variant':<14}{'step (ms)':>10}{'saved for backward (MiB)':>26}"
          f"{'peak process growth (MiB)':>27}{'time / softmax':>16}{'saved / softmax':>17}")
    s = rows["softmax"]
    for variant, row in rows.items():
        print(f"{variant:<14}{row['median_step_ms']:>10.1f}{row['saved_mib']:>26.2f}"
              f"{row['peak_mib']:>27.1f}{s['median_step_ms'] / row['median_step_ms']:>15.2f}x"
              f"{s['saved_mib'] / max(row['saved_mib'], 1e-9):>16.2f}x")


if __name__ == "__main__":
    main()
