"""Solvers in sigma space on the one denoiser D(x, y, sigma), for either process (docs/ALGORITHMS.md, "Few-step
samplers"): Euler with ancestral noise (= DDIM), Heun with optional churn (Karras et al. 2022, Alg. 2),
DPM-Solver++(2M) with its SDE variant (Lu et al. 2022; k-diffusion), and the one-call read-out.

Each solver takes its noise grid as data (`grids.py`: a decreasing list ending with 0) and works on the
unscaled state x = x_t / scale (the VE-SDE's x_t itself; the DDPM's x_t / sqrt(abar)), so one implementation
serves both processes. The registered samplers below only choose a grid and a solver.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from ctmri.diffusion.grids import process_karras_sigmas, logsnr_timesteps, respaced_timesteps, sigmas_at_steps
from ctmri.diffusion.registry import register, require_process
from ctmri.diffusion.sampler_utils import Callback, Denoiser, initial_state, noise_like, set_nfe
from ctmri.rng import GeneratorArg

SigmaDenoiser = Callable[[torch.Tensor, float], torch.Tensor]        # D(x, sigma) with y bound, sigma a float
SigmaCallback = Callable[[int, torch.Tensor, float, torch.Tensor], None]  # (step, x, sigma of x, D)


# ----------------------------------------------------------------------------- the solvers

def euler_ancestral(denoise: SigmaDenoiser, x: torch.Tensor, sigmas: list[float], *, eta: float = 0.0,
                    generator: GeneratorArg = None, callback: Optional[SigmaCallback] = None) -> tuple[torch.Tensor, int]:
    """Euler on dx/dsigma = (x - D)/sigma with ancestral noise (k-diffusion `get_ancestral_step`):
    x' = D + sigma_down (x - D)/sigma + sigma_up z, sigma_up = eta sigma' sqrt(1 - sigma'^2/sigma^2). On the DDPM's
    grid this is DDIM (Song, Meng & Ermon 2021, eq. 12) with the same eta. NFE = steps."""
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = denoise(x, s)
        if callback is not None:
            callback(i, x, s, d)
        s_up = min(s_next, eta * math.sqrt(max(s_next ** 2 * (s ** 2 - s_next ** 2) / s ** 2, 0.0))) if eta else 0.0
        s_down = math.sqrt(s_next ** 2 - s_up ** 2)
        x = d + (s_down / s) * (x - d)
        if s_up > 0:
            x = x + s_up * noise_like(x, generator)
    return x, len(sigmas) - 1


def heun(denoise: SigmaDenoiser, x: torch.Tensor, sigmas: list[float], *, s_churn: float = 0.0, s_tmin: float = 0.0,
         s_tmax: float = float("inf"), s_noise: float = 1.0, generator: GeneratorArg = None,
         callback: Optional[SigmaCallback] = None) -> tuple[torch.Tensor, int]:
    """Heun on dx/dsigma = (x - D)/sigma (Karras et al. 2022, Alg. 1; with s_churn > 0 Alg. 2: raise sigma_i to
    sigma_hat = (1 + gamma) sigma_i with fresh noise, gamma = min(s_churn / N, sqrt 2 - 1) inside [s_tmin, s_tmax]).
    The last step, to sigma = 0, is Euler (it returns D). NFE = 2 steps - 1."""
    n = len(sigmas) - 1
    gamma_max = min(s_churn / n, math.sqrt(2) - 1) if s_churn > 0 else 0.0
    for i in range(n):
        gamma = gamma_max if s_tmin <= sigmas[i] <= s_tmax else 0.0
        sigma_hat = sigmas[i] * (1 + gamma)
        if gamma > 0:
            x = x + math.sqrt(sigma_hat ** 2 - sigmas[i] ** 2) * s_noise * noise_like(x, generator)
        d = denoise(x, sigma_hat)
        if callback is not None:
            callback(i, x, sigma_hat, d)
        slope = (x - d) / sigma_hat
        x_next = x + (sigmas[i + 1] - sigma_hat) * slope
        if sigmas[i + 1] > 0:
            slope2 = (x_next - denoise(x_next, sigmas[i + 1])) / sigmas[i + 1]
            x_next = x + (sigmas[i + 1] - sigma_hat) * 0.5 * (slope + slope2)
        x = x_next
    return x, 2 * n - 1


def dpmpp_2m(denoise: SigmaDenoiser, x: torch.Tensor, sigmas: list[float], *, eta: float = 0.0,
             generator: GeneratorArg = None, callback: Optional[SigmaCallback] = None) -> tuple[torch.Tensor, int]:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2 in lambda = -ln sigma), eta > 0 its SDE variant (k-diffusion
    `sample_dpmpp_2m_sde`, midpoint): x' = (sigma'/sigma) e^{-eta h} x + (1 - e^{-(1+eta) h}) D
    + (1/2)(1 - e^{-(1+eta) h})(h / h_prev)(D - D_prev) + sigma' sqrt(1 - e^{-2 eta h}) z. The first step is first
    order; the step to sigma = 0 returns D. NFE = steps."""
    d_prev, h_prev = None, None
    for i in range(len(sigmas) - 1):
        d = denoise(x, sigmas[i])
        if callback is not None:
            callback(i, x, sigmas[i], d)
        if sigmas[i + 1] == 0:
            return d, i + 1
        h = math.log(sigmas[i] / sigmas[i + 1])
        coef = -math.expm1(-h - eta * h)
        x = (sigmas[i + 1] / sigmas[i]) * math.exp(-eta * h) * x + coef * d
        if d_prev is not None:
            x = x + 0.5 * coef * (h / h_prev) * (d - d_prev)
        if eta > 0:
            x = x + sigmas[i + 1] * math.sqrt(-math.expm1(-2 * eta * h)) * noise_like(x, generator)
        d_prev, h_prev = d, h
    return x, len(sigmas) - 1


def read_out(denoise: SigmaDenoiser, x: torch.Tensor, sigmas: list[float], *, generator: GeneratorArg = None,
             callback: Optional[SigmaCallback] = None) -> tuple[torch.Tensor, int]:
    """One call D(x_T, sigma_max): a regression estimate of E[x0 | y] (Rassmann et al. 2025, "YODA"). NFE = 1."""
    d = denoise(x, sigmas[0])
    if callback is not None:
        callback(0, x, sigmas[0], d)
    return d, 1


# ----------------------------------------------------------------------------- running a solver on a process

def solve(solver, denoiser: Denoiser, process, y: torch.Tensor, sigmas: list[float], *, generator: GeneratorArg,
          callback: Optional[Callback], x_init: Optional[torch.Tensor], out_channels: int, info: Optional[dict],
          clip_x0: bool = False, **solver_options) -> torch.Tensor:
    """Draw x_T from the process's prior, unscale it, run `solver` on `sigmas`, report steps in the process's own
    scaling (callback(i, x_t, x0_hat)); clip_x0 clips every D to [-1, 1] (static thresholding)."""
    def denoise(x: torch.Tensor, sigma: float) -> torch.Tensor:
        d = denoiser(x, y, torch.full((x.shape[0],), sigma, device=x.device, dtype=x.dtype))
        return d.clamp(-1, 1) if clip_x0 else d

    def report(i: int, x: torch.Tensor, sigma: float, d: torch.Tensor) -> None:
        scale = process.scale_of_sigma(sigma)
        callback(i, x * scale if scale != 1.0 else x, d)

    x = initial_state(process, y, generator, x_init, out_channels)
    scale = process.scale_of_sigma(sigmas[0])
    x, nfe = solver(denoise, x / scale if scale != 1.0 else x, sigmas, generator=generator,
                    callback=report if callback is not None else None, **solver_options)
    set_nfe(info, nfe)
    return x.to(y.dtype)


def _ddpm_grid(process, steps: int, spacing: str) -> list[float]:
    if spacing == "time":
        return sigmas_at_steps(process, respaced_timesteps(process.num_steps, steps))
    if spacing == "logsnr":
        return sigmas_at_steps(process, logsnr_timesteps(process, steps))
    raise ValueError(f"spacing must be 'time' or 'logsnr', got {spacing!r}.")


def _clip_option(sample_cfg) -> dict:
    return {"clip_x0": sample_cfg.clip_x0}


# ----------------------------------------------------------------------------- the registered samplers

@register("ddim", method="ddpm", role="fast", label="DDIM", default_steps=50,
          nfe=lambda process, steps, o: steps, stochastic=False, options=_clip_option,
          summary="DDIM (eta = 0 deterministic): Euler in sigma space on the DDPM's respaced steps")
@torch.no_grad()
def ddim(denoiser: Denoiser, process, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
         callback: Optional[Callback] = None, eta: float = 0.0, clip_x0: bool = False, out_channels: int = 1,
         x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """DDIM (Song, Meng & Ermon 2021, eq. 12) = `euler_ancestral` on sigma(tau_S) > ... > sigma(tau_1) > 0."""
    require_process("ddim", process)
    return solve(euler_ancestral, denoiser, process, y, _ddpm_grid(process, steps, "time"), generator=generator,
                 callback=callback, x_init=x_init, out_channels=out_channels, info=info, clip_x0=clip_x0, eta=eta)


@register("dpm++2m", method="ddpm", role="fast", label="DPM++2M", default_steps=20,
          nfe=lambda process, steps, o: len(_ddpm_grid(process, steps, o.get("spacing", "logsnr"))) - 1, stochastic=False,
          options=_clip_option, summary="DPM-Solver++(2M) on the DDPM's steps, evenly spaced in log-SNR")
@torch.no_grad()
def dpmpp_2m_ddpm(denoiser: Denoiser, process, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
                  callback: Optional[Callback] = None, spacing: str = "logsnr", clip_x0: bool = False,
                  out_channels: int = 1, x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) on the DDPM's indices: "logsnr" (default, evenly spaced in lambda,
    deduplicated, NFE <= steps) or "time" (evenly spaced indices as `ddim`; its output std is 1.3x too large at
    20 steps on the Gaussian test)."""
    require_process("dpm++2m", process)
    return solve(dpmpp_2m, denoiser, process, y, _ddpm_grid(process, steps, spacing), generator=generator,
                 callback=callback, x_init=x_init, out_channels=out_channels, info=info, clip_x0=clip_x0)


@register("heun", method="vesde", role="fast", label="Heun", default_steps=20,
          nfe=lambda process, steps, o: 2 * steps - 1, stochastic=False,
          summary="Heun on the probability-flow ODE in sigma space (Karras grid)")
@torch.no_grad()
def heun_ve(denoiser: Denoiser, process, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
            callback: Optional[Callback] = None, rho: float = 7.0, out_channels: int = 1,
            x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """Heun (Karras et al. 2022, Alg. 1) on `steps` rho-spaced sigmas from std(1) to std(eps_s), then 0."""
    require_process("heun", process)
    return solve(heun, denoiser, process, y, process_karras_sigmas(process, steps, rho), generator=generator,
                 callback=callback, x_init=x_init, out_channels=out_channels, info=info)


@register("dpm++2m-ve", method="vesde", role="fast", label="DPM++2M-VE", default_steps=10,
          nfe=lambda process, steps, o: steps, stochastic=False, default=True, method_default=True,
          summary="DPM-Solver++(2M) in sigma space on the VE model (Karras grid): the default")
@torch.no_grad()
def dpmpp_2m_ve(denoiser: Denoiser, process, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
                callback: Optional[Callback] = None, rho: float = 7.0, out_channels: int = 1,
                x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2 with alpha = 1, lambda = -ln sigma) on the Karras grid."""
    require_process("dpm++2m-ve", process)
    return solve(dpmpp_2m, denoiser, process, y, process_karras_sigmas(process, steps, rho), generator=generator,
                 callback=callback, x_init=x_init, out_channels=out_channels, info=info)


@register("dpm++2m-sde", method="vesde", role="fast", label="DPM++2M-SDE", default_steps=10,
          nfe=lambda process, steps, o: steps, stochastic=True,
          summary="DPM-Solver++(2M) SDE (eta = 1) in sigma space on the VE model")
@torch.no_grad()
def dpmpp_2m_sde_ve(denoiser: Denoiser, process, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
                    callback: Optional[Callback] = None, eta: float = 1.0, rho: float = 7.0, out_channels: int = 1,
                    x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """DPM-Solver++(2M) SDE (Lu et al. 2022; k-diffusion `sample_dpmpp_2m_sde`) on the Karras grid."""
    require_process("dpm++2m-sde", process)
    return solve(dpmpp_2m, denoiser, process, y, process_karras_sigmas(process, steps, rho), generator=generator,
                 callback=callback, x_init=x_init, out_channels=out_channels, info=info, eta=eta)


@register("heun-churn", method="vesde", role="fast", label="Heun-churn", default_steps=10,
          nfe=lambda process, steps, o: 2 * steps - 1, stochastic=True,
          summary="stochastic Heun (Karras et al. 2022, Alg. 2, s_churn = 10) on the VE model")
@torch.no_grad()
def heun_churn(denoiser: Denoiser, process, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
               callback: Optional[Callback] = None, s_churn: float = 10.0, s_tmin: float = 0.0,
               s_tmax: float = float("inf"), s_noise: float = 1.0, rho: float = 7.0, out_channels: int = 1,
               x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """`heun` with churn on the Karras grid (Karras et al. 2022, Alg. 2)."""
    require_process("heun-churn", process)
    return solve(heun, denoiser, process, y, process_karras_sigmas(process, steps, rho), generator=generator,
                 callback=callback, x_init=x_init, out_channels=out_channels, info=info, s_churn=s_churn,
                 s_tmin=s_tmin, s_tmax=s_tmax, s_noise=s_noise)


@register("denoise", method="vesde", role="fast", label="D(noise)", default_steps=1,
          nfe=lambda process, steps, o: 1, stochastic=False,
          summary="one call D(x_T, sigma_max): a regression read-out (no uncertainty)")
@torch.no_grad()
def denoise_once(denoiser: Denoiser, process, y: torch.Tensor, *, steps: int = 1, generator: GeneratorArg = None,
                 callback: Optional[Callback] = None, out_channels: int = 1, x_init: Optional[torch.Tensor] = None,
                 info: Optional[dict] = None) -> torch.Tensor:
    """`read_out` from prior noise: NFE = 1 whatever `steps` (one signature); replicates nearly identical."""
    require_process("denoise", process)
    return solve(read_out, denoiser, process, y, [process.sigma_max, 0.0], generator=generator, callback=callback,
                 x_init=x_init, out_channels=out_channels, info=info)
