"""DDPM v-prediction (Salimans & Ho 2022): on Gaussian data with a known posterior the exact v network gives the
exact eps, the exact denoiser and the eps network's loss; an error in F stays bounded in D at every sigma."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ctmri.config import ProcessConfig
from ctmri.diffusion import losses
from ctmri.diffusion.precond import EpsPrediction, VPrediction, convention_for, from_description
from ctmri.diffusion.processes import DDPM

from gaussian_posterior import assert_exact_denoiser  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


class ExactV(nn.Module):
    """v* = sqrt(abar) E[eps | x_t] - sqrt(1 - abar) E[x0 | x_t] for x0 ~ N(mu, s^2) (Salimans & Ho 2022, eq. 3)."""

    def __init__(self, process: DDPM, mu: float, s: float, offset: float = 0.0):
        super().__init__()
        self.p, self.mu, self.s, self.offset = process, mu, s, offset

    def forward(self, x_t, y, t):
        a = self.p.abar(t.long(), x_t).double()
        x_t = x_t.double()
        var = a * self.s ** 2 + 1 - a
        x0 = self.mu + a.sqrt() * self.s ** 2 * (x_t - a.sqrt() * self.mu) / var
        eps = (1 - a).sqrt() * (x_t - a.sqrt() * self.mu) / var
        return (a.sqrt() * eps - (1 - a).sqrt() * x0 + self.offset).float()


class ExactEpsNet(nn.Module):
    def __init__(self, process: DDPM, mu: float, s: float, offset: float = 0.0):
        super().__init__()
        self.p, self.mu, self.s, self.offset = process, mu, s, offset

    def forward(self, x_t, y, t):
        a = self.p.abar(t.long(), x_t).double()
        return ((1 - a).sqrt() * (x_t.double() - a.sqrt() * self.mu) / (a * self.s ** 2 + 1 - a) + self.offset).float()


def _gaussian(mu: float, s: float, n: int = 32) -> torch.Tensor:
    return mu + s * torch.randn(n, 1, 4, 4, generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize("s", [0.2, 1e-3])            # 1e-3: near-deterministic data, D must return mu everywhere
def test_exact_v_network_is_the_exact_denoiser_at_every_sigma(s: float) -> None:
    ddpm, mu = DDPM(), 0.3
    conv = VPrediction(ExactV(ddpm, mu, s), ddpm)
    assert_exact_denoiser(conv, ddpm, mu, s, 2e-5)


def test_v_and_eps_parametrisations_are_one_objective() -> None:
    """The same exact model written as eps or as v: the same eps, the same eq. 23 loss from the same noise."""
    ddpm, mu, s = DDPM(), 0.3, 0.2
    x0 = _gaussian(mu, s)
    v, e = VPrediction(ExactV(ddpm, mu, s), ddpm), EpsPrediction(ExactEpsNet(ddpm, mu, s), ddpm)
    t = torch.arange(0, 1000, 125)
    x_t = ddpm.perturb(x0[: len(t)], t, torch.randn(len(t), 1, 4, 4))
    assert torch.allclose(v.eps(x_t, x_t, t), e.eps(x_t, x_t, t), atol=1e-5)
    for weighting in ("eps", "min-snr-5"):
        lv = losses.eps_loss(v, ddpm, x0, x0, torch.Generator().manual_seed(1), weighting)
        le = losses.eps_loss(e, ddpm, x0, x0, torch.Generator().manual_seed(1), weighting)
        assert torch.allclose(lv, le, rtol=1e-4)
        wrong = losses.eps_loss(VPrediction(ExactV(ddpm, mu, s, offset=0.1), ddpm), ddpm, x0, x0,
                                torch.Generator().manual_seed(1), weighting)
        assert wrong - lv > 1e-3          # v off by 0.1: eps off by 0.1 sqrt(abar)


def test_an_error_in_f_stays_bounded_in_d_under_v_but_grows_with_sigma_under_eps() -> None:
    """Offset F by 0.01: D moves by <= 0.01 under v at every sigma; under eps by sigma x 0.01 (1.5 at the last step)."""
    ddpm, mu, s, delta = DDPM(), 0.3, 0.2, 0.01
    t = torch.tensor([999] * 4)
    sigma = ddpm.sigma_of_t(t).float()
    x = mu + sigma.reshape(-1, 1, 1, 1) * torch.randn(4, 1, 4, 4)
    y = torch.zeros_like(x)
    shift_v = (VPrediction(ExactV(ddpm, mu, s, delta), ddpm)(x, y, sigma)
               - VPrediction(ExactV(ddpm, mu, s), ddpm)(x, y, sigma)).abs().max().item()
    shift_e = (EpsPrediction(ExactEpsNet(ddpm, mu, s, delta), ddpm)(x, y, sigma)
               - EpsPrediction(ExactEpsNet(ddpm, mu, s), ddpm)(x, y, sigma)).abs().max().item()
    assert shift_v <= delta * 1.0001
    assert shift_e == pytest.approx(delta * sigma[0].item(), rel=1e-3) and shift_e > 100 * delta


def test_the_profile_chooses_the_parametrisation_and_checkpoints_keep_it() -> None:
    ddpm, net = DDPM(), ExactV(DDPM(), 0.0, 1.0)
    conv = convention_for("ddpm", ProcessConfig(ddpm_parametrisation="v"), net, ddpm)
    assert isinstance(conv, VPrediction)
    assert isinstance(from_description(conv.describe(), net, ddpm), VPrediction)
    assert isinstance(convention_for("ddpm", ProcessConfig(), net, ddpm), EpsPrediction)
    with pytest.raises(ValueError, match="DDPM parametrisation"):
        convention_for("ddpm", ProcessConfig(ddpm_parametrisation="x0"), net, ddpm)
