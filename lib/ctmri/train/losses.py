"""The baselines' training losses: MSE (CNN) and WGAN-GP (critic with gradient penalty, generator with an MSE fidelity
term and an adaptive adversarial weight). Randomness (the interpolation weights) comes from `generator` (ctmri.rng)."""
from __future__ import annotations

import torch
from torch import nn

from ctmri.diffusion.processes import bcast
from ctmri.rng import GeneratorArg, uniform


def _per_sample_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).pow(2).flatten(1).mean(1)


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
                   last_layer: torch.Tensor | None = None,
                   adv_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """WGAN-GP generator: w_adv (-D(G(y), y)) + w ||G(y) - x0||^2 (adversarial + MSE fidelity); returns (loss, mse, w_adv).

    adv_ratio > 0 with `last_layer` balances the two terms adaptively (`adversarial_weight`); else w_adv = adv_weight,
    fixed: the critic's input gradient is bounded (gradient penalty) while the fidelity pull grows with the error, so
    the generator cannot run away from the CT (the adaptive weight grows with the error too).
    """
    fake = net(None, y)
    mse = _per_sample_mse(fake, x0).mean()
    adv = -critic(fake, y).float().mean()
    fidelity = mse_weight * mse
    if adv_ratio > 0 and last_layer is not None:
        w = adversarial_weight(fidelity, adv, last_layer, adv_ratio)
    else:
        w = torch.full((), float(adv_weight), device=fidelity.device)
    return fidelity + w * adv, mse, w
