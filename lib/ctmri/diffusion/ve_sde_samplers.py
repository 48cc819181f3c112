"""The study's VE-SDE samplers (Table II): Euler–Maruyama, predictor–corrector, probability-flow ODE, on the score
s = (D - x) / sigma^2 of the one denoiser. Signature in `samplers.py`; few-step samplers in `sigma_solvers.py`."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from ctmri.diffusion.grids import check_steps, vesde_times
from ctmri.diffusion.processes import VESDE
from ctmri.diffusion.registry import register, require_process
from ctmri.diffusion.sampler_utils import Callback, Denoiser, initial_state, noise_like, score_from, set_nfe, step_tensors
from ctmri.rng import GeneratorArg


def _sde_grid(process: VESDE, steps: int, x: torch.Tensor):
    """Reverse-SDE grid t = 1 .. eps_s with dt = (1 - eps_s)/N: times, dt, g^2 per step, (B,) sigma tensors."""
    times = vesde_times(process, steps)
    t = torch.from_numpy(np.asarray(times, dtype=np.float64))
    sigmas = step_tensors(process.marginal_std(t.to(x.dtype).double()).tolist(), x.shape[0], x.device, torch.float32)
    return times, (1.0 - process.eps_sample) / len(times), (process.diffusion(t) ** 2).tolist(), sigmas


def _noise_removal(denoiser: Denoiser, process: VESDE, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Noise removal (Song et al. 2021 code, `noise_removal`): one Tweedie step D(x, std(eps_s)) to sigma = 0."""
    sigma = torch.full((x.shape[0],), process.sigma_min, device=x.device, dtype=torch.float32)
    return denoiser(x, y, sigma).to(x.dtype)


def _settings_sde(sample_cfg) -> dict:
    return {"noise_removal": sample_cfg.noise_removal}


def _settings_pc(sample_cfg) -> dict:
    return {"corrector_steps": sample_cfg.pc_corrector_steps, "snr": sample_cfg.snr,
            "noise_removal": sample_cfg.noise_removal}


def _settings_ode(sample_cfg) -> dict:
    return {"rtol": sample_cfg.ode_rtol, "atol": sample_cfg.ode_atol, "noise_removal": sample_cfg.noise_removal}


@register("em", evaluation="subset", method="vesde", role="study", label="EM", default_steps=1000,
          nfe=lambda process, steps, o: steps + int(o.get("noise_removal", True)), stochastic=True,
          options=_settings_sde, summary="reverse-time SDE, Euler–Maruyama (study eq. 30)")
@torch.no_grad()
def euler_maruyama(denoiser: Denoiser, process: VESDE, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
                   callback: Optional[Callback] = None, noise_removal: bool = True, out_channels: int = 1,
                   x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """Reverse-time SDE, Euler–Maruyama, eq. (30): x <- x + g^2 s dt + g sqrt(dt) z, t = 1 .. eps_s.

    noise_removal (default): the last step keeps its noise, so x ~ p_eps, then one Tweedie step to sigma = 0
    (`_noise_removal`, NFE = steps + 1); off: the last step returns its mean, leaving std(eps_s) of noise.
    """
    require_process("em", process)
    return _reverse_sde(denoiser, process, y, steps=steps, generator=generator, callback=callback, corrector_steps=0,
                        snr=0.0, norm="sample", noise_removal=noise_removal, out_channels=out_channels, x_init=x_init,
                        info=info)


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


@register("pc", evaluation="subset", method="vesde", role="study", label="PC", default_steps=500,
          nfe=lambda process, steps, o: steps * (o.get("corrector_steps", 1) + 1) + int(o.get("noise_removal", True)),
          stochastic=True, options=_settings_pc, summary="predictor–corrector, EM + Langevin (study eq. 31)")
@torch.no_grad()
def predictor_corrector(denoiser: Denoiser, process: VESDE, y: torch.Tensor, *, steps: int,
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
    require_process("pc", process)
    if corrector_steps < 0:
        raise ValueError(f"corrector_steps must be >= 0, got {corrector_steps}.")
    return _reverse_sde(denoiser, process, y, steps=steps, generator=generator, callback=callback,
                        corrector_steps=corrector_steps, snr=snr, norm=norm, noise_removal=noise_removal,
                        out_channels=out_channels, x_init=x_init, info=info)


def _reverse_sde(denoiser: Denoiser, process: VESDE, y: torch.Tensor, *, steps: int, generator: GeneratorArg,
                 callback: Optional[Callback], corrector_steps: int, snr: float, norm: str, noise_removal: bool,
                 out_channels: int, x_init: Optional[torch.Tensor], info: Optional[dict]) -> torch.Tensor:
    """The reverse-SDE loop of eq. (30) with M Langevin corrector steps per time (M = 0: Euler–Maruyama)."""
    x = initial_state(process, y, generator, x_init, out_channels)
    times, dt, g2, sigmas = _sde_grid(process, steps, x)
    for i in range(len(times)):
        for j in range(corrector_steps):
            s = score_from(denoiser, x, y, sigmas[i])
            if j == 0 and callback is not None:
                callback(i, x, x + float(sigmas[i][0]) ** 2 * s)
            z = noise_like(x, generator)
            gamma = langevin_step_size(s, z, snr, norm)
            x = x + gamma * s + (2 * gamma).sqrt() * z
        s = score_from(denoiser, x, y, sigmas[i])
        if corrector_steps == 0 and callback is not None:
            callback(i, x, x + float(sigmas[i][0]) ** 2 * s)
        mean = x + (g2[i] * dt) * s
        last = i == len(times) - 1
        x = mean + math.sqrt(g2[i] * dt) * noise_like(x, generator) if (noise_removal or not last) else mean
    if noise_removal:
        x = _noise_removal(denoiser, process, x, y)
    set_nfe(info, len(times) * (corrector_steps + 1) + int(noise_removal))
    return x


@register("ode", evaluation="subset", method="vesde", role="study", label="ODE", default_steps=10,
          nfe=lambda process, steps, o: None, stochastic=False, adaptive=True, options=_settings_ode,
          summary="probability-flow ODE, adaptive RK45 (study eq. 33); steps = frames reported")
@torch.no_grad()
def probability_flow_ode(denoiser: Denoiser, process: VESDE, y: torch.Tensor, *, steps: int = 10,
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

    require_process("ode", process)
    steps = check_steps(steps)
    x = initial_state(process, y, generator, x_init, out_channels)
    shape, device, dtype = x.shape, x.device, x.dtype
    log_sigma2 = 2 * process.log_sigma
    nfe = 0

    def score(t: float, x_t: torch.Tensor) -> torch.Tensor:
        t32 = torch.full((shape[0],), t, dtype=dtype)
        sigma = process.marginal_std(t32.double()).to(device=device, dtype=torch.float32)
        return score_from(denoiser, x_t, y, sigma)

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
        x = _noise_removal(denoiser, process, x, y)
        nfe += 1
    set_nfe(info, nfe)
    return x
