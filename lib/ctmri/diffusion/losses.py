"""Training losses: eps-MSE (DDPM), denoising score matching (VE-SDE), MSE (CNN), WGAN-GP (critic and generator).

Randomness (t, noise, interpolation weights) comes from `generator`: one torch.Generator, or a list
with one per batch element (element b then draws everything from generator b, in a fixed order).
Draws happen on the generator's device and are moved to the data's device.
"""
from __future__ import annotations

import re

import torch
from torch import nn

from ctmri.diffusion.processes import DDPM, VESDE, _bcast
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


def eps_loss(net: nn.Module, process: DDPM, x0: torch.Tensor, y: torch.Tensor, generator: GeneratorArg,
             weighting: str = "eps") -> torch.Tensor:
    """E_t,eps w(t) ‖eps − eps_θ(√ᾱ_t x0 + √(1−ᾱ_t) eps, y, t)‖², t ~ U{0..T−1} (study eq. 23; Ho et al. 2020 Alg. 1)."""
    t = randint(process.num_steps, x0.shape[0], generator)
    eps = noise_like(x0, generator)
    t = t.to(x0.device)
    pred = net(process.q_sample(x0, t, eps), y, t)
    w = snr_weight(process, t, weighting).to(x0.device)
    return (w * _per_sample_mse(pred, eps)).mean()


def dsm_loss(net: nn.Module, process: VESDE, x0: torch.Tensor, y: torch.Tensor,
             generator: GeneratorArg) -> torch.Tensor:
    """Denoising score matching with λ(t) = std(t)²: E ‖std(t) s_θ(x(t), y, t) + z‖², t ~ U(ε, 1) (study eq. 28).

    s_θ = net / std(t) (`VESDE.score_model`), so std(t) s_θ is the raw net output; mean over pixels.
    """
    t = uniform(x0.shape[0], generator, process.eps_train, 1.0)
    z = noise_like(x0, generator)
    x_t = process.perturb(x0, t, z)
    out = net(x_t, y, t.to(device=x0.device, dtype=torch.float32))
    return _per_sample_mse(out, -z).mean()


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
    e = _bcast(uniform(x0.shape[0], generator).float(), x0)
    mixed = (e * x0 + (1 - e) * fake).requires_grad_(True)
    n = x0.shape[0]
    scores = critic(torch.cat([x0, fake, mixed]), torch.cat([y, y, y])).float()
    real_s, fake_s, mixed_s = scores[:n], scores[n:2 * n], scores[2 * n:]
    (grad,) = torch.autograd.grad(mixed_s.sum(), mixed, create_graph=True)
    gp = (grad.float().flatten(1).norm(dim=1) - 1).pow(2).mean()
    return fake_s.mean() - real_s.mean() + gp_lambda * gp


def generator_loss(net: nn.Module, critic: nn.Module, x0: torch.Tensor, y: torch.Tensor,
                   mse_weight: float = 100.0) -> tuple[torch.Tensor, torch.Tensor]:
    """WGAN-GP generator: −D(G(y), y) + w ‖G(y) − x0‖² (adversarial + MSE fidelity); returns (loss, mse)."""
    fake = net(None, y)
    mse = _per_sample_mse(fake, x0).mean()
    return -critic(fake, y).float().mean() + mse_weight * mse, mse
