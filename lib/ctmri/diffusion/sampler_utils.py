"""What every sampler shares: the initial state, per-element noise, per-step tensors, NFE reporting, and the
two views of the one denoiser D(x, y, sigma) that the study's own algorithms need (eps for the ancestral DDPM,
the score for the VE-SDE samplers; docs/ALGORITHMS.md, "One denoiser contract")."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ctmri.diffusion.processes import bcast
from ctmri.rng import GeneratorArg, randn

Callback = Callable[[int, torch.Tensor, torch.Tensor], None]
Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


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


def step_tensors(values, batch: int, device, dtype) -> list[torch.Tensor]:
    """One (B,) tensor per step (a time or a noise level), built once before the loop."""
    return [torch.full((batch,), v, device=device, dtype=dtype) for v in values]


def set_nfe(info: Optional[dict], nfe: float) -> None:
    if info is not None:
        info["nfe"] = nfe


def score_from(denoiser: Denoiser, x: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """s(x, sigma) = (D(x, sigma) - x) / sigma^2: Tweedie's formula read backwards (Karras et al. 2022, eq. 3)."""
    d = denoiser(x, y, sigma)
    return ((d - x.float()) / bcast(sigma, x) ** 2).to(x.dtype)


def eps_from(denoiser: Denoiser, x_t: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor,
             scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(eps, x0_hat) of a DDPM state x_t = scale (x0 + sigma eps): D at x = x_t / scale, eps = (x - D) / sigma."""
    x = x_t / scale
    d = denoiser(x, y, sigma)
    return ((x - d) / bcast(sigma, x)).to(x_t.dtype), d.to(x_t.dtype)
