"""Diffusion training losses: eps-MSE (DDPM) and denoising score matching (VE-SDE); the baselines' are in train/losses.py.

Randomness (t, noise, interpolation weights) comes from `generator`: one torch.Generator, or a list
with one per batch element (element b then draws everything from generator b, in a fixed order).
Draws happen on the generator's device and are moved to the data's device.
"""
from __future__ import annotations

import re

import torch

from ctmri.diffusion.processes import DDPM, VESDE, bcast
from ctmri.rng import GeneratorArg, device_of, noise_like, per_sample, randint, uniform


def snr_weight(process: DDPM, t: torch.Tensor, weighting: str) -> torch.Tensor:
    """Per-sample weight of the eps loss: 1 ("eps", eq. 23) or min(SNR, γ)/SNR ("min-snr-γ", Hang et al. 2023)."""
    if weighting == "eps":
        return torch.ones(t.shape[0])
    match = re.fullmatch(r"min-snr-([0-9.]+)", weighting)
    if not match:
        raise ValueError(f"Unknown DDPM loss weighting {weighting!r}; expected 'eps' or 'min-snr-<gamma>'.")
    snr = process.snr(t.cpu())
    return torch.clamp(snr, max=float(match.group(1))) / snr


def _per_sample_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).pow(2).flatten(1).mean(1)


def eps_loss(convention, process: DDPM, x0: torch.Tensor, y: torch.Tensor, generator: GeneratorArg,
             weighting: str = "eps") -> torch.Tensor:
    """E_t,eps w(t) ‖eps − eps_θ(√ᾱ_t x0 + √(1−ᾱ_t) eps, y, t)‖², t ~ U{0..T−1} (study eq. 23; Ho et al. 2020 Alg. 1)."""
    t = randint(process.num_steps, x0.shape[0], generator)
    eps = noise_like(x0, generator)
    t = t.to(x0.device)
    pred = convention.eps(process.perturb(x0, t, eps), y, t)
    w = snr_weight(process, t, weighting).to(x0.device)
    return (w * _per_sample_mse(pred, eps)).mean()


SIGMA_DISTRIBUTIONS = ("lognormal", "uniform-t")
DSM_WEIGHTINGS = ("edm", "std2")


def sample_sigma(process: VESDE | DDPM, n: int, generator: GeneratorArg, distribution: str = "lognormal",
                 p_mean: float = -1.2, p_std: float = 1.2) -> torch.Tensor:
    """Training noise levels (n,), float64: "uniform-t" t uniform (VE: t ~ U(eps, 1), sigma = std(t), study eq. 28;
    DDPM: a uniform step of the schedule, eq. 23's t), or "lognormal" ln sigma ~ N(p_mean, p_std^2) (Karras et al.
    2022, Table 1) clamped to the process's range (VE: [std(eps), std(1)]; DDPM: [sigma_min, sigma_max])."""
    if distribution not in SIGMA_DISTRIBUTIONS:
        raise ValueError(f"Unknown sigma distribution {distribution!r}; expected one of {', '.join(SIGMA_DISTRIBUTIONS)}.")
    if isinstance(process, DDPM):
        if distribution == "uniform-t":
            return process.sigma_of_t(randint(process.num_steps, n, generator)).double()
        lo, hi = process.sigma_min, process.sigma_max
    else:
        if distribution == "uniform-t":
            return process.marginal_std(uniform(n, generator, process.eps_train, 1.0))
        lo, hi = float(process.marginal_std(process.eps_train)), float(process.marginal_std(1.0))
    dev = device_of(generator)
    z = per_sample(lambda k, g: torch.randn(k, generator=g, device=dev, dtype=torch.float64), n, generator)
    return torch.exp(p_mean + p_std * z).clamp(float(lo), float(hi))


def dsm_weight(sigma: torch.Tensor, weighting: str, sigma_data: float | None = None) -> torch.Tensor:
    """Weight on ||D - x0||^2 equal to lambda(sigma) ||s + z/sigma||^2 of eq. 28, i.e. lambda / sigma^4:
    "std2" lambda = sigma^2 (the study) -> 1/sigma^2; "edm" lambda = sigma^2 (sigma^2 + sd^2) / sd^2 ->
    (sigma^2 + sd^2) / (sigma sd)^2, unit weight on the network output F (Karras et al. 2022, eq. 8)."""
    sigma = sigma.double()
    if weighting == "std2":
        return 1.0 / sigma ** 2
    if weighting == "edm":
        if not sigma_data or sigma_data <= 0:
            raise ValueError("The 'edm' DSM weighting needs sigma_data > 0.")
        return (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2
    raise ValueError(f"Unknown DSM weighting {weighting!r}; expected one of {', '.join(DSM_WEIGHTINGS)}.")


def dsm_loss(convention, process: VESDE | DDPM, x0: torch.Tensor, y: torch.Tensor, generator: GeneratorArg, *,
             weighting: str = "edm", sigma_data: float | None = None, sigma_distribution: str = "lognormal",
             p_mean: float = -1.2, p_std: float = 1.2) -> torch.Tensor:
    """Denoising score matching, study eq. 28, E lambda(sigma) ||s_theta(x0 + sigma z, y) + z / sigma||^2, written on the
    denoiser: s = (D - x)/sigma^2 makes it E lambda/sigma^4 ||D(x0 + sigma z, y, sigma) - x0||^2 (`dsm_weight`).

    `convention` is a denoiser on the unscaled state (the VE conventions, or the DDPM in EDM's formulation,
    `precond.VPPreconditioned`); mean over pixels, then over the batch.
    """
    sigma = sample_sigma(process, x0.shape[0], generator, sigma_distribution, p_mean, p_std)
    z = noise_like(x0, generator)
    x_t = x0 + bcast(sigma, x0) * z
    sig = sigma.to(x0.device)
    d = convention(x_t, y, sig)
    w = dsm_weight(sigma, weighting, sigma_data).float().to(x0.device)
    return (w * _per_sample_mse(d, x0)).mean()
