"""Training losses: eps-MSE (DDPM), denoising score matching (VE-SDE), MSE (CNN), WGAN-GP (critic and generator).

Randomness (t, noise, interpolation weights) comes from `generator`: one torch.Generator, or a list
with one per batch element (element b then draws everything from generator b, in a fixed order).
Draws happen on the generator's device and are moved to the data's device.
"""
from __future__ import annotations

import re

import torch
from torch import nn

from ctmri.diffusion.processes import DDPM, VESDE, bcast
from ctmri.rng import GeneratorArg, randn


def _device(generator: GeneratorArg) -> torch.device:
    if generator is None:
        return torch.device("cpu")
    return (generator if isinstance(generator, torch.Generator) else generator[0]).device


def _per_sample(draw, n: int, generator: GeneratorArg) -> torch.Tensor:
    """Concatenate `draw(k, g)` over the batch: one call for a single generator, one per element for a list."""
    if generator is None or isinstance(generator, torch.Generator):
        return draw(n, generator)
    if len(generator) != n:
        raise ValueError(f"Got {len(generator)} generators for a batch of {n}; expected one each.")
    return torch.cat([draw(1, g) for g in generator])


def uniform(n: int, generator: GeneratorArg, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """n draws from U(low, high), float64."""
    dev = _device(generator)
    u = _per_sample(lambda k, g: torch.rand(k, generator=g, device=dev, dtype=torch.float64), n, generator)
    return low + (high - low) * u


def randint(high: int, n: int, generator: GeneratorArg) -> torch.Tensor:
    """n integers uniform in [0, high)."""
    dev = _device(generator)
    return _per_sample(lambda k, g: torch.randint(0, high, (k,), generator=g, device=dev), n, generator)


def noise_like(x: torch.Tensor, generator: GeneratorArg) -> torch.Tensor:
    """z ~ N(0, I) shaped like x (float32), drawn from `generator`."""
    return randn(x.shape, generator, device=_device(generator)).to(x.device)


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


def sample_sigma(process: VESDE, n: int, generator: GeneratorArg, distribution: str = "lognormal",
                 p_mean: float = -1.2, p_std: float = 1.2) -> torch.Tensor:
    """Training noise levels (n,), float64: "uniform-t" t ~ U(eps, 1), sigma = std(t) (study eq. 28), or
    "lognormal" ln sigma ~ N(p_mean, p_std^2) (Karras et al. 2022, Table 1) clamped to [std(eps), std(1)]."""
    if distribution == "uniform-t":
        return process.marginal_std(uniform(n, generator, process.eps_train, 1.0))
    if distribution != "lognormal":
        raise ValueError(f"Unknown sigma distribution {distribution!r}; expected one of {', '.join(SIGMA_DISTRIBUTIONS)}.")
    dev = _device(generator)
    z = _per_sample(lambda k, g: torch.randn(k, generator=g, device=dev, dtype=torch.float64), n, generator)
    lo, hi = float(process.marginal_std(process.eps_train)), float(process.marginal_std(1.0))
    return torch.exp(p_mean + p_std * z).clamp(lo, hi)


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


def dsm_loss(convention, process: VESDE, x0: torch.Tensor, y: torch.Tensor, generator: GeneratorArg, *,
             weighting: str = "edm", sigma_data: float | None = None, sigma_distribution: str = "lognormal",
             p_mean: float = -1.2, p_std: float = 1.2) -> torch.Tensor:
    """Denoising score matching, study eq. 28, E lambda(sigma) ||s_theta(x0 + sigma z, y) + z / sigma||^2, written on the
    denoiser: s = (D - x)/sigma^2 makes it E lambda/sigma^4 ||D(x0 + sigma z, y, sigma) - x0||^2 (`dsm_weight`).

    `convention` is a VE convention of `diffusion/precond.py`; mean over pixels, then over the batch.
    """
    sigma = sample_sigma(process, x0.shape[0], generator, sigma_distribution, p_mean, p_std)
    z = noise_like(x0, generator)
    x_t = x0 + bcast(sigma, x0) * z
    sig = sigma.to(x0.device)
    d = convention(x_t, y, sig)
    w = dsm_weight(sigma, weighting, sigma_data).float().to(x0.device)
    return (w * _per_sample_mse(d, x0)).mean()


def mse_loss(net: nn.Module, x0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CNN baseline: ‖G(y) − x0‖², mean over pixels and batch."""
    return _per_sample_mse(net(None, y), x0).mean()


def critic_loss(critic: nn.Module, net: nn.Module, x0: torch.Tensor, y: torch.Tensor, generator: GeneratorArg,
                gp_lambda: float = 10.0) -> torch.Tensor:
    """WGAN-GP critic: D(G(y), y) − D(x, y) + λ (‖∇_x̃ D(x̃, y)‖₂ − 1)², x̃ = εx + (1−ε)G(y) (Gulrajani 2017, Alg. 1).

    Real, fake and interpolated images go through the critic in one batch (one forward, as DDP wants).
    """
    with torch.no_grad():
        fake = net(None, y).float()
    e = bcast(uniform(x0.shape[0], generator).float(), x0)
    mixed = (e * x0 + (1 - e) * fake).requires_grad_(True)
    n = x0.shape[0]
    scores = critic(torch.cat([x0, fake, mixed]), torch.cat([y, y, y])).float()
    real_s, fake_s, mixed_s = scores[:n], scores[n:2 * n], scores[2 * n:]
    (grad,) = torch.autograd.grad(mixed_s.sum(), mixed, create_graph=True)
    gp = (grad.float().flatten(1).norm(dim=1) - 1).pow(2).mean()
    return fake_s.mean() - real_s.mean() + gp_lambda * gp


def adversarial_weight(fidelity: torch.Tensor, adversarial: torch.Tensor, last_layer: torch.Tensor,
                       ratio: float) -> torch.Tensor:
    """Adaptive weight of the adversarial term: ratio * ||grad fidelity|| / ||grad adversarial|| at the generator's
    last layer (Esser et al. 2021, eq. 7), so the adversarial push stays a fixed fraction of the fidelity pull."""
    (g_fid,) = torch.autograd.grad(fidelity, last_layer, retain_graph=True)
    (g_adv,) = torch.autograd.grad(adversarial, last_layer, retain_graph=True)
    if torch.distributed.is_available() and torch.distributed.is_initialized():   # DDP: the whole batch's gradients
        world = torch.distributed.get_world_size()
        for g in (g_fid, g_adv):
            torch.distributed.all_reduce(g)
            g /= world
    return (ratio * g_fid.norm() / (g_adv.norm() + 1e-8)).clamp(max=1e4).detach()


def generator_loss(net: nn.Module, critic: nn.Module, x0: torch.Tensor, y: torch.Tensor,
                   mse_weight: float = 100.0, adv_ratio: float = 0.0,
                   last_layer: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """WGAN-GP generator: w_adv (-D(G(y), y)) + w ||G(y) - x0||^2 (adversarial + MSE fidelity); returns (loss, mse, w_adv).

    adv_ratio > 0 with `last_layer` balances the two terms adaptively (`adversarial_weight`); else w_adv = 1.
    """
    fake = net(None, y)
    mse = _per_sample_mse(fake, x0).mean()
    adv = -critic(fake, y).float().mean()
    fidelity = mse_weight * mse
    if adv_ratio > 0 and last_layer is not None:
        w = adversarial_weight(fidelity, adv, last_layer, adv_ratio)
    else:
        w = torch.ones((), device=fidelity.device)
    return fidelity + w * adv, mse, w
