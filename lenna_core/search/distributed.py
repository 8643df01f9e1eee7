"""A search on several processes: the process group ``torchrun`` describes, each rank's share
of a global batch, and the gradients, sums and buffers the ranks exchange.

    torchrun --standalone --nproc_per_node=2 -m lenna_core.cli.search --out runs/ddp

Every rank builds the same network from the same seed and draws the same batch order; it
takes a disjoint contiguous slice of each global batch (:meth:`DistributedContext.shard`),
and after every backward pass the gradients of the parameter group being stepped are
averaged over the ranks, each rank weighted by its share of the global batch. The mean loss
over the global batch has exactly that gradient, so alphas, weights, optimiser states and
the random draws of binary mode stay identical on every rank. The latency term depends on
the alphas alone: every rank computes it and gets the same value, so the average adds
exactly its own gradient once. Rank 0 writes the folder; every rank waits at a barrier after
each checkpoint and resumes from the same file.

What differs from one process: BatchNorm normalises each rank's slice by that slice's own
mean and variance (a search runs in training mode, on batch statistics), so the averaged
gradient is the mean of the per-slice gradients, not the gradient of the whole batch
normalised at once; a two-rank search is another search than a one-process one, and its
folder records ``world_size``. On the test's tiny search (digits, C=2, 3 cells, 16 images
per global batch, 8 per rank) the alpha gradient of one step equals the mean of the two
one-process half-batch gradients bit for bit, and differs from the one-process full-batch
gradient by 0.58 in relative L2 (cosine 0.84). The gap shrinks with the images per rank:
0.31 with 32, 0.11 with 128 (2 ranks), and is float rounding (1e-7) with BatchNorm's
statistics fixed (``benchmarks/distributed_gradient.py``). The running statistics, which
only an evaluation would read, are averaged over the ranks before each checkpoint so that
every rank holds what the file holds.

Gradients are averaged by an explicit all-reduce rather than by wrapping the network in
DistributedDataParallel: DDP averages in hooks of ``backward()`` over the parameters of one
wrapped forward, while DARTS alternates two parameter groups with two optimisers and takes
the alpha gradient with ``torch.autograd.grad`` (which DDP does not support), and binary
mode leaves unsampled paths without gradients (DDP would need ``find_unused_parameters``).
One all-reduce per step and group, called where the step functions take their
``average_gradients`` hook, keeps both steps as they are in one process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from lenna_core.validation import check_int

ENVIRONMENT = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistributedContext:
    """This process's place among the ranks of an initialised process group."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device  # where the tensors the ranks exchange live (gloo: cpu, nccl: cuda)

    def __post_init__(self) -> None:
        check_int("world_size", self.world_size, 2)
        check_int("rank", self.rank, 0, self.world_size - 1)
        check_int("local_rank", self.local_rank, 0)

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one that writes files."""
        return self.rank == 0

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch; the slices are disjoint, cover the
        batch, and differ in size by at most one sample."""
        if len(index) < self.world_size:
            raise ValueError(f"a global batch of {len(index)} samples cannot give each of "
                             f"{self.world_size} ranks at least one; raise batch_size")
        return index.tensor_split(self.world_size)[self.rank]

    def gradient_averager(self, local_n: int, global_n: int
                          ) -> Callable[[Sequence[nn.Parameter]], None]:
        """A hook for the step functions that averages gradients over the ranks, this rank's
        gradient weighted by ``local_n / global_n`` (its share of the global batch)."""
        check_int("local_n", local_n, 1, global_n)
        return lambda params: self.average_gradients(params, local_n / global_n)

    def average_gradients(self, params: Sequence[nn.Parameter], share: float) -> None:
        """Replace each gradient by the sum over ranks of ``share * gradient``, in place.

        One all-reduce of the flattened gradients. Parameters without a gradient are left
        alone: binary mode leaves the same unsampled paths without one on every rank.
        """
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads]).mul_(share)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        for g, part in zip(grads, flat.split([g.numel() for g in grads])):
            g.copy_(part.view_as(g))

    def sum_values(self, values: dict[str, float | int]) -> dict[str, float | int]:
        """The sum over ranks of each value (an int stays an int), the same on every rank."""
        names = sorted(values)
        flat = torch.tensor([float(values[k]) for k in names], dtype=torch.float64,
                            device=self.device)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        return {k: round(v) if isinstance(values[k], int) else v
                for k, v in zip(names, flat.tolist())}

    def average_buffers(self, module: nn.Module) -> None:
        """Average the floating-point buffers (BatchNorm running statistics) over the ranks."""
        for buffer in module.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
                buffer.div_(self.world_size)

    def check_identical(self, tensors: Sequence[torch.Tensor], what: str) -> None:
        """Raise RuntimeError on every rank unless ``tensors`` equal rank 0's bit for bit."""
        flat = torch.cat([t.detach().reshape(-1) for t in tensors]).to(self.device)
        main = flat.clone()
        dist.broadcast(main, src=0)
        differs = torch.tensor([float(not torch.equal(flat, main))], device=self.device)
        dist.all_reduce(differs, op=dist.ReduceOp.SUM)
        if differs.item():
            raise RuntimeError(f"{what} differ between ranks on {int(differs.item())} of "
                               f"{self.world_size} ranks: the search is not reproducible "
                               "across processes")

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        dist.barrier()


def init_from_environment(device: str = "cpu") -> DistributedContext | None:
    """Join the process group torchrun describes in the environment (gloo for ``device``
    'cpu', nccl for 'cuda'); None when there is one process, which then runs as it always did.
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}: a distributed search runs on 'cpu' (gloo) or "
                         "'cuda' (nccl)")
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    missing = [name for name in ENVIRONMENT if name not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE is set but {', '.join(missing)} are not: launch with "
                         "torchrun, which sets them all")
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    where = torch.device("cpu")
    if device == "cuda":
        if torch.cuda.device_count() <= local_rank:
            raise ValueError(f"LOCAL_RANK={local_rank}: this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s); start at most that "
                             "many processes per node")
        where = torch.device("cuda", local_rank)
        torch.cuda.set_device(where)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo", init_method="env://",
                                rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, local_rank, where)


def close() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()
