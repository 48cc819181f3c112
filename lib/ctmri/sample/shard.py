"""Sampling across torchrun ranks: each rank draws whole chunks of (slice, replicate) pairs, the results are summed
over the process group (gloo on CPU, nccl on GPU). Every pair has its own generator and every chunk holds the same
pairs as in one process, so the samples equal one process's (tests/test_shard.py runs 2 CPU ranks)."""
from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from ctmri.distributed import Ranks, current, join  # noqa: F401  (the one torchrun join, re-exported)


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
