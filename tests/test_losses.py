"""Losses: eps-MSE (+ Min-SNR-γ), DSM, MSE, WGAN-GP; explicit generators; exact models score lower."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ctmri import rng
from ctmri.diffusion import losses
from ctmri.train import losses as baseline_losses
from ctmri.diffusion.precond import VEPreconditioned, VEScoreOverStd
from ctmri.diffusion.processes import DDPM, VESDE


pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


MU, S = 0.3, 0.2  # x0 ~ N(MU, S^2): the exact eps / score is known (docs/ALGORITHMS.md)


def gaussian_batch(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    x0 = MU + S * torch.randn(n, 1, 4, 4, generator=gen(123))
    return x0, torch.zeros_like(x0)


class ExactEps(nn.Module):
    """The exact eps model of the Gaussian data (eq. 23's target), behind the DDPM's `eps` convention call."""

    def __init__(self, process: DDPM):
        super().__init__()
        self.p = process

    def eps(self, x, y, t):
        return self(x, y, t)

    def forward(self, x, y, t):
        a = self.p.abar(t, x)
        return (1 - a).sqrt() * (x - a.sqrt() * MU) / (a * S**2 + 1 - a)


class ExactScaledScore(nn.Module):
    """Song's convention: F(x, y, 1000 t) = std(t) * exact score."""

    def __init__(self, process: VESDE):
        super().__init__()
        self.p = process

    def forward(self, x, y, t):
        std = self.p.marginal_std(t / 1000).float().reshape(-1, 1, 1, 1)
        return -std * (x - MU) / (S**2 + std**2)


class ExactF(nn.Module):
    """EDM convention: the F that makes D(x, sigma) the exact posterior mean (S^2 x + sigma^2 MU) / (S^2 + sigma^2)."""

    def __init__(self, sigma_data: float):
        super().__init__()
        self.sd = sigma_data

    def forward(self, x_in, y, c_noise):
        sigma = torch.exp(4 * c_noise / VEPreconditioned.NOISE_SCALE).reshape(-1, 1, 1, 1)
        sd2 = self.sd ** 2
        x = x_in * torch.sqrt(sigma**2 + sd2)
        d = (S**2 * x + sigma**2 * MU) / (S**2 + sigma**2)
        return (d - sd2 / (sigma**2 + sd2) * x) / (sigma * self.sd / torch.sqrt(sigma**2 + sd2))


class Zero(nn.Module):
    def eps(self, x, y, t):
        return self(x, y, t)

    def forward(self, x, y, t=None):
        return torch.zeros_like(y)


def test_eps_loss_prefers_the_exact_model_and_is_reproducible() -> None:
    ddpm, (x0, y) = DDPM(), gaussian_batch()
    exact = losses.eps_loss(ExactEps(ddpm), ddpm, x0, y, gen(0))
    zero = losses.eps_loss(Zero(), ddpm, x0, y, gen(0))
    assert exact < 0.2 * zero and abs(float(zero) - 1) < 0.2  # zero net: E‖eps‖² = 1
    assert torch.equal(exact, losses.eps_loss(ExactEps(ddpm), ddpm, x0, y, gen(0)))
    assert not torch.equal(exact, losses.eps_loss(ExactEps(ddpm), ddpm, x0, y, gen(1)))


@pytest.mark.parametrize("weighting", ["edm", "std2"])
@pytest.mark.parametrize("distribution", ["lognormal", "uniform-t"])
def test_dsm_loss_prefers_the_exact_score(weighting, distribution) -> None:
    """Both conventions, both weightings and sigma laws: the exact denoiser scores far below a zero network."""
    sde, (x0, y) = VESDE(), gaussian_batch()
    kw = dict(weighting=weighting, sigma_data=0.5, sigma_distribution=distribution)
    edm = losses.dsm_loss(VEPreconditioned(ExactF(0.5), sde, 0.5), sde, x0, y, gen(0), **kw)
    edm_zero = losses.dsm_loss(VEPreconditioned(Zero(), sde, 0.5), sde, x0, y, gen(0), **kw)
    song = losses.dsm_loss(VEScoreOverStd(ExactScaledScore(sde), sde), sde, x0, y, gen(0), **kw)
    song_zero = losses.dsm_loss(VEScoreOverStd(Zero(), sde), sde, x0, y, gen(0), **kw)
    off = losses.dsm_loss(VEPreconditioned(lambda *a: 1.2 * ExactF(0.5)(*a), sde, 0.5), sde, x0, y, gen(0), **kw)
    assert edm < 0.8 * edm_zero and song < 0.8 * song_zero and edm < off   # the exact model is the minimum
    assert torch.allclose(edm, song, rtol=1e-3)       # the same exact model in two conventions: one loss
    if weighting == "std2":                           # Song's zero net: E||z||^2 = 1 (study eq. 28)
        assert abs(float(song_zero) - 1) < 0.2


def test_lognormal_sigma_law_and_weights() -> None:
    sde = VESDE()
    sigma = losses.sample_sigma(sde, 20000, gen(3), "lognormal", -1.2, 1.2)
    lo, hi = float(sde.marginal_std(sde.eps_train)), float(sde.marginal_std(1.0))
    assert sigma.min() >= lo and sigma.max() <= hi
    assert abs(float(torch.log(sigma).median()) + 1.2) < 0.05     # median of ln sigma = p_mean
    assert float((sigma < 0.1).double().mean()) > 0.15           # low noise gets its share (U(0,1) in t: ~1 %)
    s = torch.tensor([0.1, 1.0])
    assert torch.allclose(losses.dsm_weight(s, "std2"), 1 / s.double() ** 2)
    assert torch.allclose(losses.dsm_weight(s, "edm", 0.5), (s.double()**2 + 0.25) / (0.5 * s.double())**2)
    with pytest.raises(ValueError, match="Unknown DSM weighting"):
        losses.dsm_weight(s, "snr")


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
    assert torch.isclose(baseline_losses.mse_loss(Zero(), x0, y), (x0**2).mean())


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
    got = baseline_losses.critic_loss(critic, g, x0, y, gen(0), gp_lambda=10.0)
    assert torch.isclose(got, expected, atol=1e-5)
    got.backward()
    assert critic.w.grad is not None and torch.isfinite(critic.w.grad).all()  # GP is differentiable in θ
    g_loss, mse, w = baseline_losses.generator_loss(g, critic, x0, y, mse_weight=100.0)
    assert torch.isclose(mse, ((x0 + 0.5) ** 2).mean())
    assert float(w) == 1.0 and torch.isclose(g_loss, -d_fake + 100.0 * mse)


def test_adaptive_adversarial_weight_balances_the_gradients() -> None:
    """w_adv makes ||grad (w_adv * adversarial)|| = ratio * ||grad fidelity|| at the last layer (Esser et al. 2021)."""
    x0, y = gaussian_batch(8)
    net = nn.Conv2d(1, 1, 3, padding=1)
    gen_net = lambda _x, cond: net(cond)  # noqa: E731
    critic = LinearCritic(3.0)
    loss, mse, w = baseline_losses.generator_loss(gen_net, critic, x0, y + 0.3, mse_weight=100.0, adv_ratio=0.1,
                                         last_layer=net.weight)
    fid = 100.0 * ((net(y + 0.3) - x0) ** 2).mean()
    adv = -critic(net(y + 0.3), y + 0.3).mean()
    g_fid = torch.autograd.grad(fid, net.weight)[0].norm()
    g_adv = torch.autograd.grad(w * adv, net.weight)[0].norm()
    assert torch.isclose(g_adv, 0.1 * g_fid, rtol=1e-4) and torch.isclose(loss, fid + w * adv, rtol=1e-5)


def test_uniform_and_randint_ranges() -> None:
    u = rng.uniform(1000, gen(0), 1e-5, 1.0)
    assert u.min() >= 1e-5 and u.max() <= 1.0 and math.isclose(float(u.mean()), 0.5, abs_tol=0.05)
    t = rng.randint(1000, 1000, [gen(i) for i in range(1000)])
    assert t.min() >= 0 and t.max() < 1000 and t.dtype == torch.int64


def test_a_fixed_adversarial_weight_does_not_grow_with_the_error_the_adaptive_one_does() -> None:
    """The runaway of the adaptive weight (ratio 1 diverged): its weight scales with the fidelity error, so a generator
    pushed off the CT is pushed further; the fixed weight stays what it was set to, and the MSE pull grows instead."""
    x0, y = gaussian_batch(8)
    y = y + 0.3
    net = nn.Conv2d(1, 1, 3, padding=1)
    gen_net = lambda _x, cond: net(cond)  # noqa: E731
    critic = LinearCritic(3.0)
    adaptive = [float(baseline_losses.generator_loss(gen_net, critic, x0 + off, y, 100.0, 1.0, net.weight)[2])
                for off in (0.5, 5.0)]
    assert adaptive[1] > 5 * adaptive[0]
    for off in (0.5, 5.0):
        loss, mse, w = baseline_losses.generator_loss(gen_net, critic, x0 + off, y, 100.0, 0.0, net.weight,
                                                      adv_weight=0.08)
        adv = -critic(net(y), y).mean()
        assert float(w) == pytest.approx(0.08) and torch.isclose(loss, 100.0 * mse + 0.08 * adv, rtol=1e-5)
