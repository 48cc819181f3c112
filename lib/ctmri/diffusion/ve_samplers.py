"""Samplers of the VE-SDE (model = score): Euler–Maruyama, predictor–corrector, probability-flow ODE, Heun.
Signature in `samplers.py`; few-step samplers in `ve_fast_samplers.py`."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from ctmri.diffusion.grids import karras_sigmas, vesde_times
from ctmri.diffusion.processes import VESDE, Model
from ctmri.diffusion.sampler_utils import (Callback, check_steps, initial_state, noise_like, require_process,
                                           set_nfe, step_times)
from ctmri.rng import GeneratorArg


def _ve_schedule(process: VESDE, times: np.ndarray) -> tuple[list[float], list[float]]:
    """g(t)^2 and std(t)^2 at the given times, as Python floats."""
    t = torch.from_numpy(np.asarray(times, dtype=np.float64))
    return (process.diffusion(t) ** 2).tolist(), (process.marginal_std(t) ** 2).tolist()


def _sde_grid(process: VESDE, steps: int, x: torch.Tensor):
    """Reverse-SDE grid t = 1 .. eps_s with dt = (1 - eps_s)/N: times, dt, g^2, std^2 and per-step (B,) time tensors."""
    times = vesde_times(process, steps)
    g2, std2 = _ve_schedule(process, times)
    return times, (1.0 - process.eps_sample) / len(times), g2, std2, step_times(times.tolist(), x.shape[0], x.device, x.dtype)


def _tweedie_at_eps(model: Model, process: VESDE, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Noise removal (Song et al. 2021 code, `noise_removal`): one Tweedie step x + std(eps_s)^2 s(x, eps_s) to sigma = 0."""
    t = torch.full((x.shape[0],), process.eps_sample, device=x.device, dtype=x.dtype)
    return x + float(process.marginal_std(process.eps_sample)) ** 2 * model(x, y, t)


@torch.no_grad()
def euler_maruyama(model: Model, process: VESDE, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
                   callback: Optional[Callback] = None, noise_removal: bool = True, out_channels: int = 1,
                   x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """Reverse-time SDE, Euler–Maruyama, eq. (30): x <- x + g^2 s dt + g sqrt(dt) z, t = 1 .. eps_s.

    noise_removal (default): the last step keeps its noise, so x ~ p_eps, then one Tweedie step to sigma = 0
    (`_tweedie_at_eps`, NFE = steps + 1); off: the last step returns its mean, leaving std(eps_s) of noise.
    """
    require_process("em", process, "vesde")
    return _reverse_sde(model, process, y, steps, generator, callback, 0, 0.0, "sample", noise_removal,
                        out_channels, x_init, info)


def langevin_step_size(score: torch.Tensor, z: torch.Tensor, snr: float, norm: str = "sample") -> torch.Tensor:
    """gamma = 2 (r ||z|| / ||s||)^2 (Song et al. 2021 Alg. 4 / score-SDE code), per sample (B, 1, 1, 1) or batch-averaged norms."""
    s_norm = score.flatten(1).norm(dim=1)
    z_norm = z.flatten(1).norm(dim=1)
    if norm == "batch":
        s_norm, z_norm = s_norm.mean().expand_as(s_norm), z_norm.mean().expand_as(z_norm)
    elif norm != "sample":
        raise ValueError(f"norm must be 'sample' or 'batch', got {norm!r}.")
    gamma = 2 * (snr * z_norm / s_norm.clamp(min=torch.finfo(score.dtype).tiny)) ** 2
    return gamma.reshape(-1, *([1] * (score.dim() - 1)))


@torch.no_grad()
def predictor_corrector(model: Model, process: VESDE, y: torch.Tensor, *, steps: int,
                        generator: GeneratorArg = None, callback: Optional[Callback] = None,
                        corrector_steps: int = 1, snr: float = 0.16, norm: str = "sample", noise_removal: bool = True,
                        out_channels: int = 1, x_init: Optional[torch.Tensor] = None,
                        info: Optional[dict] = None) -> torch.Tensor:
    """Predictor–corrector (Song et al. 2021 Alg. 4; study eq. 31 with Song's step): at each t, M Langevin steps
    x <- x + gamma s + sqrt(2 gamma) z, gamma = 2 (r ||z|| / ||s||)^2, then one EM predictor step (eq. 30).

    NFE = steps (corrector_steps + 1) (+ 1 with noise_removal, as in `euler_maruyama`). ||z|| is the norm of the drawn noise. norm="sample" (default)
    uses each sample's own norms so a batch element never depends on the others (MC replicates
    regenerate alone); norm="batch" averages them over the batch like Song's code.
    """
    require_process("pc", process, "vesde")
    if corrector_steps < 0:
        raise ValueError(f"corrector_steps must be >= 0, got {corrector_steps}.")
    return _reverse_sde(model, process, y, steps, generator, callback, corrector_steps, snr, norm, noise_removal,
                        out_channels, x_init, info)


def _reverse_sde(model: Model, process: VESDE, y: torch.Tensor, steps: int, generator: GeneratorArg,
                 callback: Optional[Callback], corrector_steps: int, snr: float, norm: str, noise_removal: bool,
                 out_channels: int, x_init: Optional[torch.Tensor], info: Optional[dict]) -> torch.Tensor:
    """The reverse-SDE loop of eq. (30) with M Langevin corrector steps per time (M = 0: Euler–Maruyama)."""
    x = initial_state(process, y, generator, x_init, out_channels)
    times, dt, g2, std2, ts = _sde_grid(process, steps, x)
    for i in range(len(times)):
        for j in range(corrector_steps):
            s = model(x, y, ts[i])
            if j == 0 and callback is not None:
                callback(i, x, x + std2[i] * s)
            z = noise_like(x, generator)
            gamma = langevin_step_size(s, z, snr, norm)
            x = x + gamma * s + (2 * gamma).sqrt() * z
        s = model(x, y, ts[i])
        if corrector_steps == 0 and callback is not None:
            callback(i, x, x + std2[i] * s)
        mean = x + (g2[i] * dt) * s
        last = i == len(times) - 1
        x = mean + math.sqrt(g2[i] * dt) * noise_like(x, generator) if (noise_removal or not last) else mean
    if noise_removal:
        x = _tweedie_at_eps(model, process, x, y)
    set_nfe(info, len(times) * (corrector_steps + 1) + int(noise_removal))
    return x


@torch.no_grad()
def probability_flow_ode(model: Model, process: VESDE, y: torch.Tensor, *, steps: int = 10,
                         generator: GeneratorArg = None, callback: Optional[Callback] = None,
                         rtol: float = 1e-5, atol: float = 1e-5, method: str = "RK45", noise_removal: bool = True,
                         out_channels: int = 1, x_init: Optional[torch.Tensor] = None,
                         info: Optional[dict] = None) -> torch.Tensor:
    """Probability-flow ODE, eq. (33): dx/dt = -g^2 s / 2 from t = 1 to eps_s, scipy solve_ivp (RK45) on the flattened batch.

    The state lives in float64 on the CPU; the model runs on y's device and dtype. The solver's
    step control sees the whole batch, so element b matches a run of b alone only to the solver
    tolerance. info["nfe"] is the solver's count of model evaluations (for the whole batch, i.e.
    per sample). `steps` only sets how many evenly spaced times t = 1 .. eps_s (exclusive) reach the
    callback; each such report costs one extra model evaluation, not counted in nfe. noise_removal
    (default) ends with one Tweedie step at eps_s (counted in nfe), as `euler_maruyama`.
    """
    from scipy.integrate import solve_ivp

    require_process("ode", process, "vesde")
    steps = check_steps(steps)
    x = initial_state(process, y, generator, x_init, out_channels)
    shape, device, dtype = x.shape, x.device, x.dtype
    log_sigma2 = 2 * process.log_sigma
    nfe = 0

    def score(t: float, x_t: torch.Tensor) -> torch.Tensor:
        return model(x_t, y, torch.full((shape[0],), t, device=device, dtype=dtype))

    def rhs(t: float, x_flat: np.ndarray) -> np.ndarray:
        nonlocal nfe
        nfe += 1
        x_t = torch.from_numpy(x_flat).reshape(shape).to(device=device, dtype=dtype)
        return (-0.5 * math.exp(log_sigma2 * t) * score(t, x_t)).double().cpu().numpy().ravel()

    t_eval = np.linspace(1.0, process.eps_sample, steps + 1) if callback is not None else None
    sol = solve_ivp(rhs, (1.0, process.eps_sample), x.double().cpu().numpy().ravel(), method=method,
                    rtol=rtol, atol=atol, t_eval=t_eval)
    if not sol.success:
        raise RuntimeError(f"Probability-flow ODE solver failed: {sol.message}")
    if callback is not None:
        std2 = (process.marginal_std(torch.from_numpy(t_eval)) ** 2).tolist()
        for i in range(steps):
            x_i = torch.from_numpy(sol.y[:, i]).reshape(shape).to(device=device, dtype=dtype)
            callback(i, x_i, x_i + std2[i] * score(float(t_eval[i]), x_i))
    x = torch.from_numpy(sol.y[:, -1]).reshape(shape).to(device=device, dtype=dtype)
    if noise_removal:
        x = _tweedie_at_eps(model, process, x, y)
        nfe += 1
    set_nfe(info, nfe)
    return x


@torch.no_grad()
def heun(model: Model, process: VESDE, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
         callback: Optional[Callback] = None, rho: float = 7.0, out_channels: int = 1,
         x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """Heun on the probability-flow ODE in sigma space, dx/dsigma = -sigma s (Karras et al. 2022, Alg. 1, no churn).

    Grid: `steps` rho-spaced sigmas from std(1) to std(eps_s), then sigma = 0; the last step (to
    sigma = 0) is Euler, i.e. the Tweedie denoiser at std(eps_s). NFE = 2 steps - 1.
    """
    require_process("heun", process, "vesde")
    sig = karras_sigmas(float(process.marginal_std(1.0)), float(process.marginal_std(process.eps_sample)),
                        steps, rho)
    times = process.t_of_std(torch.from_numpy(sig[:-1])).tolist()
    sig = sig.tolist()
    x = initial_state(process, y, generator, x_init, out_channels)
    ts = step_times(times, x.shape[0], x.device, x.dtype)
    n = len(times)
    for i in range(n):
        s = model(x, y, ts[i])
        if callback is not None:
            callback(i, x, x + sig[i] ** 2 * s)
        d = -sig[i] * s
        ds = sig[i + 1] - sig[i]
        x_next = x + ds * d
        if sig[i + 1] > 0:
            d2 = -sig[i + 1] * model(x_next, y, ts[i + 1])
            x_next = x + (0.5 * ds) * (d + d2)
        x = x_next
    set_nfe(info, 2 * n - 1)
    return x
