"""Samplers of the DDPM process (model = eps): ancestral DDPM, DDIM, DPM-Solver++(2M). Signature in `samplers.py`."""
from __future__ import annotations

from typing import Optional

import torch

from ctmri.diffusion.grids import logsnr_timesteps, respaced_timesteps
from ctmri.diffusion.processes import DDPM, Model
from ctmri.diffusion.sampler_utils import (Callback, initial_state, noise_like, require_process, set_nfe,
                                           step_times)
from ctmri.rng import GeneratorArg


@torch.no_grad()
def ddpm(model: Model, process: DDPM, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
         callback: Optional[Callback] = None, variance: str = "beta_tilde", clip_x0: bool = False,
         out_channels: int = 1, x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """Ancestral sampling, Ho et al. 2020 Alg. 2 (study Table I), respaced to `steps` with beta'_i = 1 - abar_i/abar_{i-1}.

    variance: "beta_tilde" (default, sigma^2 = beta' (1 - abar_prev)/(1 - abar)) or "beta" (sigma^2 = beta');
    z = 0 at the last step. clip_x0 (default False): clip x0_hat to [-1, 1] and step with the
    posterior mean q(x_{t-1} | x_t, x0_hat) (identical to the eps form when not clipping).
    """
    require_process("ddpm", process, "ddpm")
    if variance not in ("beta_tilde", "beta"):
        raise ValueError(f"variance must be 'beta_tilde' or 'beta', got {variance!r}.")
    taus = respaced_timesteps(process.num_steps, steps)
    abar = process.alphas_cumprod[torch.from_numpy(taus)].double()
    abar_prev = torch.cat([abar[1:], abar.new_ones(1)])
    beta = 1 - abar / abar_prev
    var = beta * (1 - abar_prev) / (1 - abar) if variance == "beta_tilde" else beta.clone()
    var[-1] = 0.0
    sq_abar, sq_1m = abar.sqrt().tolist(), (1 - abar).sqrt().tolist()
    eps_coef = (beta / (1 - abar).sqrt()).tolist()
    inv_sq_alpha = (1 / (1 - beta).sqrt()).tolist()
    post_x0 = (abar_prev.sqrt() * beta / (1 - abar)).tolist()            # posterior-mean coefficients
    post_xt = ((1 - beta).sqrt() * (1 - abar_prev) / (1 - abar)).tolist()
    std = var.sqrt().tolist()

    x = initial_state(process, y, generator, x_init, out_channels)
    ts = step_times(taus.tolist(), x.shape[0], x.device, torch.long)
    for i in range(len(taus)):
        eps = model(x, y, ts[i])
        x0 = (x - sq_1m[i] * eps) / sq_abar[i] if (callback is not None or clip_x0) else None
        if callback is not None:
            callback(i, x, x0)
        if clip_x0:
            mean = post_x0[i] * x0.clamp(-1, 1) + post_xt[i] * x
        else:
            mean = inv_sq_alpha[i] * (x - eps_coef[i] * eps)
        x = mean + std[i] * noise_like(x, generator) if std[i] > 0 else mean
    set_nfe(info, len(taus))
    return x


@torch.no_grad()
def ddim(model: Model, process: DDPM, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
         callback: Optional[Callback] = None, eta: float = 0.0, clip_x0: bool = False, out_channels: int = 1,
         x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """DDIM (Song, Meng & Ermon 2021, eq. 12): x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - s^2) eps + s z; eta = 0 default.

    clip_x0 (default False): clip x0_hat to [-1, 1] and recompute eps from it, as diffusers' DDIM does.
    """
    require_process("ddim", process, "ddpm")
    taus = respaced_timesteps(process.num_steps, steps)
    abar = process.alphas_cumprod[torch.from_numpy(taus)].double()
    abar_prev = torch.cat([abar[1:], abar.new_ones(1)])
    sig = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).clamp(min=0).sqrt()
    sq_abar, sq_1m, sq_abar_prev = abar.sqrt().tolist(), (1 - abar).sqrt().tolist(), abar_prev.sqrt().tolist()
    dir_coef = (1 - abar_prev - sig**2).clamp(min=0).sqrt().tolist()
    sig = sig.tolist()

    x = initial_state(process, y, generator, x_init, out_channels)
    ts = step_times(taus.tolist(), x.shape[0], x.device, torch.long)
    for i in range(len(taus)):
        eps = model(x, y, ts[i])
        x0 = (x - sq_1m[i] * eps) / sq_abar[i]
        if clip_x0:
            x0 = x0.clamp(-1, 1)
            eps = (x - sq_abar[i] * x0) / sq_1m[i]
        if callback is not None:
            callback(i, x, x0)
        x = sq_abar_prev[i] * x0 + dir_coef[i] * eps
        if sig[i] > 0:
            x = x + sig[i] * noise_like(x, generator)
    set_nfe(info, len(taus))
    return x


@torch.no_grad()
def dpmpp_2m(model: Model, process: DDPM, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
             callback: Optional[Callback] = None, spacing: str = "logsnr", clip_x0: bool = False, out_channels: int = 1,
             x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """DPM-Solver++(2M), data prediction (Lu et al. 2022, Alg. 2), timesteps T-1 .. 0.

    spacing: "logsnr" (default: evenly spaced in lambda, rounded to indices, as Lu et al. advise
    for low resolutions; 1.5 % error at 20 steps on the Gaussian test) or "time" (evenly spaced
    indices as `ddim`; its output std is 1.3x too large at 20 steps, see tests/test_samplers.py). NFE = steps (logsnr: the distinct indices, <= steps). The first
    step is first order; the final step from the smallest index (sigma ~ 0.01) to sigma = 0 is
    first order too, which there reduces exactly to x = D (lambda -> inf makes the
    second-order weights degenerate), as in k-diffusion. clip_x0 (default False): clip each data
    prediction D to [-1, 1] (static thresholding, Lu et al. 2022).
    """
    require_process("dpm++2m", process, "ddpm")
    if spacing == "time":
        taus = respaced_timesteps(process.num_steps, steps)
    elif spacing == "logsnr":
        taus = logsnr_timesteps(process, steps)
    else:
        raise ValueError(f"spacing must be 'time' or 'logsnr', got {spacing!r}.")
    abar = process.alphas_cumprod[torch.from_numpy(taus)].double()
    alpha, sigma = abar.sqrt(), (1 - abar).sqrt()
    lam = torch.log(alpha / sigma)
    h = lam[1:] - lam[:-1]                                     # h_i = lambda_{i+1} - lambda_i, i < M-1
    c_x = (sigma[1:] / sigma[:-1]).tolist()
    c_d = (-alpha[1:] * torch.expm1(-h)).tolist()
    r = torch.cat([h.new_ones(1), h[:-1] / h[1:]]) if len(h) else h   # r_i = h_{i-1}/h_i (unused at i = 0)
    w_cur, w_prev = (1 + 1 / (2 * r)).tolist(), (-1 / (2 * r)).tolist()
    alpha, sigma = alpha.tolist(), sigma.tolist()

    x = initial_state(process, y, generator, x_init, out_channels)
    ts = step_times(taus.tolist(), x.shape[0], x.device, torch.long)
    d_prev = None
    for i in range(len(taus)):
        eps = model(x, y, ts[i])
        d = (x - sigma[i] * eps) / alpha[i]
        if clip_x0:
            d = d.clamp(-1, 1)
        if callback is not None:
            callback(i, x, d)
        if i == len(taus) - 1:
            x = d
            break
        d_hat = d if d_prev is None else w_cur[i] * d + w_prev[i] * d_prev
        x = c_x[i] * x + c_d[i] * d_hat
        d_prev = d
    set_nfe(info, len(taus))
    return x
