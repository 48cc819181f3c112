"""Losses: eps-MSE (+ Min-SNR-γ), DSM, MSE, WGAN-GP; explicit generators; exact models score lower."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ctmri.diffusion import losses
from ctmri.diffusion.processes import DDPM, VESDE


pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


MU, S = 0.3, 0.2  # x0 ~ N(MU, S^2): the exact eps / score is known (docs/ALGORITHMS.md)


def gaussian_batch(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    x0 = MU + S * torch.randn(n, 1, 4, 4, generator=gen(123))
    return x0, torch.zeros_like(x0)


class ExactEps(nn.Module):
    def __init__(self, process: DDPM):
        super().__init__()
        self.p = process

    def forward(self, x, y, t):
        a = self.p.abar(t, x)
        return (1 - a).sqrt() * (x - a.sqrt() * MU) / (a * S**2 + 1 - a)


class ExactScaledScore(nn.Module):
    """std(t) * exact score: the raw net output the DSM loss expects."""

    def __init__(self, process: VESDE):
        super().__init__()
        self.p = process

    def forward(self, x, y, t):
        std = self.p.marginal_std(t).float().reshape(-1, 1, 1, 1)
        return -std * (x - MU) / (S**2 + std**2)


class Zero(nn.Module):
    def forward(self, x, y, t=None):
        return torch.zeros_like(y)


def test_eps_loss_prefers_the_exact_model_and_is_reproducible() -> None:
    ddpm, (x0, y) = DDPM(), gaussian_batch()
    exact = losses.eps_loss(ExactEps(ddpm), ddpm, x0, y, gen(0))
    zero = losses.eps_loss(Zero(), ddpm, x0, y, gen(0))
    assert exact < 0.2 * zero and abs(float(zero) - 1) < 0.2  # zero net: E‖eps‖² = 1
    assert torch.equal(exact, losses.eps_loss(ExactEps(ddpm), ddpm, x0, y, gen(0)))
    assert not torch.equal(exact, losses.eps_loss(ExactEps(ddpm), ddpm, x0, y, gen(1)))


def test_dsm_loss_prefers_the_exact_score() -> None:
    sde, (x0, y) = VESDE(), gaussian_batch()
    exact = losses.dsm_loss(ExactScaledScore(sde), sde, x0, y, gen(0))
    zero = losses.dsm_loss(Zero(), sde, x0, y, gen(0))
    assert exact < 0.5 * zero and abs(float(zero) - 1) < 0.2


def test_min_snr_weight() -> None:
    ddpm = DDPM()
    t = torch.tensor([0, 100, 500, 999])
    snr = ddpm.snr(t)
    w = losses.snr_weight(ddpm, t, "min-snr-5")
    assert torch.allclose(w, torch.clamp(snr, max=5.0) / snr)
    assert w[0] < 1e-3 and w[-1] == 1.0  # high-SNR (small t) steps are down-weighted, noisy ones kept
    assert torch.equal(losses.snr_weight(ddpm, t, "eps"), torch.ones(4))
    with pytest.raises(ValueError, match="Unknown DDPM loss weighting"):
        losses.snr_weight(ddpm, t, "v-pred")


def test_per_sample_generators_split_like_the_batch() -> None:
    """Loss on a batch with generators [g0, g1] = mean of the losses of each half (what DDP shards rely on)."""
    ddpm, (x0, y) = DDPM(), gaussian_batch(2)
    net = ExactEps(ddpm)
    whole = losses.eps_loss(net, ddpm, x0, y, [gen(7), gen(8)], "min-snr-5")
    halves = [losses.eps_loss(net, ddpm, x0[i:i + 1], y[i:i + 1], [gen(7 + i)], "min-snr-5") for i in range(2)]
    assert torch.allclose(whole, sum(halves) / 2)
    with pytest.raises(ValueError, match="3 generators for a batch of 2"):
        losses.eps_loss(net, ddpm, x0, y, [gen(1), gen(2), gen(3)])


def test_mse_loss() -> None:
    x0, y = gaussian_batch(4)
    assert torch.isclose(losses.mse_loss(Zero(), x0, y), (x0**2).mean())


class LinearCritic(nn.Module):
    """D(x, y) = <w, x>: its gradient in x has norm ‖w‖ everywhere."""

    def __init__(self, scale: float):
        super().__init__()
        self.w = nn.Parameter(torch.full((1, 1, 4, 4), scale))

    def forward(self, x, y):
        return (self.w * x).flatten(1).sum(1)


class ConstGen(nn.Module):
    def forward(self, x, y, t=None):
        return torch.full_like(y, -0.5)


def test_wgan_losses_match_their_formula() -> None:
    x0, y = gaussian_batch(8)
    critic, g = LinearCritic(0.5), ConstGen()
    w_norm = 0.5 * 4  # ‖w‖ over 16 pixels
    d_real, d_fake = (critic(x0, y)).mean(), critic(g(None, y), y).mean()
    expected = d_fake - d_real + 10.0 * (w_norm - 1) ** 2
    got = losses.critic_loss(critic, g, x0, y, gen(0), gp_lambda=10.0)
    assert torch.isclose(got, expected, atol=1e-5)
    got.backward()
    assert critic.w.grad is not None and torch.isfinite(critic.w.grad).all()  # GP is differentiable in θ
    g_loss, mse = losses.generator_loss(g, critic, x0, y, mse_weight=100.0)
    assert torch.isclose(mse, ((x0 + 0.5) ** 2).mean())
    assert torch.isclose(g_loss, -d_fake + 100.0 * mse)


def test_uniform_and_randint_ranges() -> None:
    u = losses.uniform(1000, gen(0), 1e-5, 1.0)
    assert u.min() >= 1e-5 and u.max() <= 1.0 and math.isclose(float(u.mean()), 0.5, abs_tol=0.05)
    t = losses.randint(1000, 1000, [gen(i) for i in range(1000)])
    assert t.min() >= 0 and t.max() < 1000 and t.dtype == torch.int64
