"""Sampling across torchrun ranks: each rank draws whole chunks of (slice, replicate) pairs, the results are summed
over the process group (gloo on CPU, nccl on GPU). Every pair has its own generator and every chunk holds the same
pairs as in one process, so the samples equal one process's (tests/test_shard.py runs 2 CPU ranks)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Whether this rank writes the files (rank 0)."""
        return self.rank == 0


def join() -> Ranks:
    """This process's rank: joins torchrun's process group when WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if not torch.cuda.is_available() and "OMP_NUM_THREADS" not in os.environ:
            local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    return Ranks(dist.get_rank(), dist.get_world_size())


def current() -> Ranks:
    """The rank and world of an initialised process group, else one process."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


def mine(n_chunks: int, ranks: Ranks) -> list[int]:
    """The chunks this rank samples: every world-th, from its rank."""
    return list(range(ranks.rank, n_chunks, ranks.world))


def reduce(array: np.ndarray, ranks: Ranks, device: torch.device, op: str = "sum") -> np.ndarray:
    """Elementwise sum (or max) of each rank's array; for sums each rank fills only what it sampled, zeros elsewhere."""
    if ranks.world == 1:
        return array
    ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}
    if op not in ops:
        raise ValueError(f"op must be one of {', '.join(ops)}, got {op!r}.")
    backend_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.from_numpy(np.ascontiguousarray(array)).to(backend_device)
    dist.all_reduce(t, op=ops[op])
    return t.cpu().numpy().astype(array.dtype, copy=False)
