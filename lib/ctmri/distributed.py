"""The one torchrun join of training and sampling: this process's rank in the process group that torchrun's
environment (WORLD_SIZE, RANK, LOCAL_RANK) describes, nccl on CUDA and gloo on CPU, the CPU threads shared out."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Ranks:
    """This process's place in the group; `created`: this call initialised the group (and tears it down)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    created: bool = False

    @property
    def main(self) -> bool:
        """Whether this rank writes files and reports (rank 0)."""
        return self.rank == 0


def join() -> Ranks:
    """Join torchrun's process group when WORLD_SIZE > 1; one process otherwise."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if not torch.cuda.is_available() and "OMP_NUM_THREADS" not in os.environ:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), created)


def current() -> Ranks:
    """The rank and world of an initialised process group, else one process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return Ranks()


def is_main_process() -> bool:
    """Rank 0 of a torchrun launch (from its environment), or a plain process."""
    return os.environ.get("RANK", "0") == "0"
