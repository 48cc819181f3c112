"""Explicit randomness: noise drawn from one generator or from one generator per batch element."""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
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


def seed_of(*parts: int) -> int:
    """The project's one seeding scheme: a well-mixed 63-bit seed from integer parts (numpy SeedSequence)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> np.uint64(1))


MC_STREAM = 4  # seed_of(base, MC_STREAM, slice, replicate); training uses streams 0-3 (train/steps.py)


def replicate_seed(base_seed: int, slice_index: int, replicate: int) -> int:
    """Seed of MC replicate k of test slice i: seed_of(base, MC stream, i, k), so one sample regenerates alone."""
    return seed_of(base_seed, MC_STREAM, slice_index, replicate)


def device_of(generator: GeneratorArg) -> torch.device:
    """The device a generator (or the first of a list) draws on; cpu for None."""
    if generator is None:
        return torch.device("cpu")
    return (generator if isinstance(generator, torch.Generator) else generator[0]).device


def per_sample(draw, n: int, generator: GeneratorArg) -> torch.Tensor:
    """Concatenate `draw(k, g)` over the batch: one call for a single generator, one per element for a list."""
    if generator is None or isinstance(generator, torch.Generator):
        return draw(n, generator)
    if len(generator) != n:
        raise ValueError(f"Got {len(generator)} generators for a batch of {n}; expected one each.")
    return torch.cat([draw(1, g) for g in generator])


def uniform(n: int, generator: GeneratorArg, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """n draws from U(low, high), float64."""
    dev = device_of(generator)
    u = per_sample(lambda k, g: torch.rand(k, generator=g, device=dev, dtype=torch.float64), n, generator)
    return low + (high - low) * u


def randint(high: int, n: int, generator: GeneratorArg) -> torch.Tensor:
    """n integers uniform in [0, high)."""
    dev = device_of(generator)
    return per_sample(lambda k, g: torch.randint(0, high, (k,), generator=g, device=dev), n, generator)


def noise_like(x: torch.Tensor, generator: GeneratorArg) -> torch.Tensor:
    """z ~ N(0, I) shaped like x (float32), drawn from `generator`."""
    return randn(x.shape, generator, device=device_of(generator)).to(x.device)
