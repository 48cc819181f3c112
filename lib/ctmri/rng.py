"""Explicit randomness: noise drawn from one generator or from one generator per batch element."""
from __future__ import annotations

from typing import Sequence, Union

import torch

GeneratorArg = Union[None, torch.Generator, Sequence[torch.Generator]]


def randn(shape: Sequence[int], generator: GeneratorArg = None, *, device=None,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """N(0, I) of `shape`; with a list of generators, element b of the batch uses generator b."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(*shape, generator=generator, device=device, dtype=dtype)
    if len(generator) != shape[0]:
        raise ValueError(f"Got {len(generator)} generators for a batch of {shape[0]}; expected one each.")
    return torch.stack([torch.randn(*shape[1:], generator=g, device=device, dtype=dtype) for g in generator])


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


def replicate_seed(base_seed: int, slice_index: int, replicate: int) -> int:
    """Seed of MC replicate k of test slice i: a pure function of (base, i, k), so one sample regenerates alone."""
    return (int(base_seed) * 1_000_003 + int(slice_index) * 10_007 + int(replicate)) % (2**63 - 1)
