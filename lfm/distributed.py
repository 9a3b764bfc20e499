"""Data-parallel training across processes (``torchrun``): NCCL on GPUs, gloo on CPUs.

``torchrun --nproc_per_node K -m lfm.cli train -f RECIPE -o RUN`` starts K processes; each reads ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` from its environment. Every rank draws the same *global* batch (the samplers and
view generators are seeded identically) and trains on its own slice of rows, so K processes with a global batch
of B follow the same trajectory as one process with batch B (tested with gloo on CPU); the gradients are averaged
by DistributedDataParallel. Rank 0 alone writes checkpoints and logs; every rank resumes from the same file.

Cost: the 2D views of the global batch are synthesised on every rank (cheap next to the model step on a GPU,
about 10 % of a step on CPU); each rank's model step is 1/K of the batch.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["Context", "setup", "world"]


class Context:
    """This process's place in the job: ``rank``, ``world`` (number of processes), ``device``."""

    def __init__(self, rank: int = 0, world: int = 1, device: torch.device | None = None):
        self.rank, self.world, self.device = rank, world, device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rows(self, n: int) -> slice:
        """This rank's rows of a global batch of ``n`` (contiguous; equal sizes when K divides n)."""
        per = -(-n // self.world)
        return slice(self.rank * per, min(n, (self.rank + 1) * per))

    def mean(self, value: float) -> float:
        """The mean of a scalar over the ranks (the value itself in one process)."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: torch.device) -> Context:
    """Join the process group started by ``torchrun`` (if any); returns this process's :class:`Context`."""
    n = world()
    if n == 1:
        return Context(0, 1, device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=n)
    return Context(rank, n, device)
