"""Time and noise grids of the samplers: respaced DDPM indices, log-SNR grids, the VE-SDE grid, Karras sigmas.

The sigma-space solvers take their grid as data: a decreasing list of noise levels ending with 0
(`sigmas_at_steps` turns DDPM indices into one, `karras_sigmas` makes one for any process).
"""
from __future__ import annotations

import numpy as np
import torch

from ctmri.diffusion.processes import DDPM, VESDE


def check_steps(steps: int) -> int:
    """A positive integer number of steps, or one clear error."""
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    return int(steps)


def respaced_timesteps(num_steps: int, steps: int) -> np.ndarray:
    """Evenly spaced 0-based DDPM indices tau_S > ... > tau_1, from T-1 down to 0 (Nichol & Dhariwal 2021)."""
    steps = check_steps(steps)
    if steps > num_steps:
        raise ValueError(f"steps = {steps} exceeds the DDPM's T = {num_steps}.")
    return np.round(np.linspace(num_steps - 1, 0, steps)).astype(np.int64)


def logsnr_timesteps(process: DDPM, steps: int) -> np.ndarray:
    """0-based DDPM indices from T-1 to 0 closest to an evenly spaced grid in lambda = log(alpha/sigma) (Lu et al. 2022), deduplicated."""
    steps = check_steps(steps)
    abar = process.alphas_cumprod.numpy()
    lam = 0.5 * np.log(abar / (1 - abar))                      # increasing as the index decreases
    targets = np.linspace(lam[-1], lam[0], steps)
    idx = np.abs(lam[None, :] - targets[:, None]).argmin(axis=1)
    return np.unique(idx)[::-1].copy()


def vesde_times(process: VESDE, steps: int) -> np.ndarray:
    """t_i = 1 - i dt, i = 0..N-1, dt = (1 - eps_s) / N: the N evaluation times of eq. (30); t_N = eps_s."""
    steps = check_steps(steps)
    return 1.0 - np.arange(steps) * (1.0 - process.eps_sample) / steps


def karras_sigmas(sigma_max: float, sigma_min: float, steps: int, rho: float = 7.0) -> np.ndarray:
    """rho-spaced grid sigma_0 = sigma_max > ... > sigma_{N-1} = sigma_min, then sigma_N = 0 (Karras et al. 2022, eq. 5)."""
    steps = check_steps(steps)
    ramp = np.linspace(0.0, 1.0, steps)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return np.append((hi + ramp * (lo - hi)) ** rho, 0.0)


def sigmas_at_steps(process: DDPM, taus: np.ndarray) -> list[float]:
    """The DDPM's noise levels sigma(tau) = sqrt((1 - abar)/abar) at indices `taus`, then 0 (x0 at the end)."""
    return [*process.sigma_of_t(torch.from_numpy(np.asarray(taus))).tolist(), 0.0]


def process_karras_sigmas(process: DDPM | VESDE, steps: int, rho: float = 7.0) -> list[float]:
    """Karras grid from the process's sigma_max to its sigma_min, then 0."""
    return karras_sigmas(process.sigma_max, process.sigma_min, steps, rho).tolist()
