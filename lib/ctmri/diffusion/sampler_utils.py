"""What every sampler shares: the process check, the initial state, per-element noise, time tensors, NFE reporting."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ctmri.rng import GeneratorArg, randn

Callback = Callable[[int, torch.Tensor, torch.Tensor], None]


def require_process(name: str, process, needed: str) -> None:
    """Fail fast (one sentence, listing the samplers that fit) when `process` is not of the kind a sampler needs."""
    kind = getattr(process, "kind", process)
    if kind != needed:
        from ctmri.diffusion.samplers import names_for
        raise ValueError(f"Sampler {name!r} needs a {needed!r} process, got {kind!r}; "
                         f"samplers for {kind!r}: {', '.join(names_for(kind)) or 'none'}.")


def check_steps(steps: int) -> int:
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    return int(steps)


def initial_state(process, y: torch.Tensor, generator: GeneratorArg, x_init: Optional[torch.Tensor],
             out_channels: int) -> torch.Tensor:
    """x_T from the prior (or the caller's `x_init`), shaped (B, out_channels, H, W) like y."""
    shape = (y.shape[0], out_channels, *y.shape[2:])
    if x_init is None:
        return process.prior_sample(shape, generator, device=y.device, dtype=y.dtype)
    if tuple(x_init.shape) != shape:
        raise ValueError(f"x_init has shape {tuple(x_init.shape)}; expected {shape} (batch, out_channels, H, W).")
    return x_init.to(device=y.device, dtype=y.dtype)


def noise_like(x: torch.Tensor, generator: GeneratorArg) -> torch.Tensor:
    return randn(x.shape, generator, device=x.device, dtype=x.dtype)


def step_times(values, batch: int, device, dtype) -> list[torch.Tensor]:
    """One (B,) time tensor per step, built once before the loop."""
    return [torch.full((batch,), v, device=device, dtype=dtype) for v in values]


def set_nfe(info: Optional[dict], nfe: float) -> None:
    if info is not None:
        info["nfe"] = nfe
