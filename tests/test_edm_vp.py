"""The DDPM in EDM's formulation (`ProcessConfig.ddpm_parametrisation = "edm"`, precond.VPPreconditioned): one training
recipe for both processes. On Gaussian data with a known posterior the exact F gives the exact denoiser at the DDPM's
own noise levels (also for near-deterministic data), the DSM loss on the DDPM's sigma range is minimised by it, and a
smoke DDPM trained this way samples with its study samplers."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from ctmri.config import ProcessConfig
from ctmri.diffusion import losses
from ctmri.diffusion.precond import VPPreconditioned, convention_for, from_description
from ctmri.diffusion.processes import DDPM

from gaussian_posterior import assert_exact_denoiser  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
MU = 0.3


class ExactF(nn.Module):
    """The F that makes VPPreconditioned's D the exact posterior mean of x0 ~ N(MU, s^2) at x = x0 + sigma n."""

    def __init__(self, s: float, sigma_data: float, offset: float = 0.0):
        super().__init__()
        self.s, self.sd, self.offset = s, sigma_data, offset

    def forward(self, x_in, y, c_noise):
        sigma = torch.exp(4 * c_noise.double() / VPPreconditioned.NOISE_SCALE).reshape(-1, 1, 1, 1)
        sd2 = self.sd ** 2
        x = x_in.double() * torch.sqrt(sigma ** 2 + sd2)
        d = (self.s ** 2 * x + sigma ** 2 * MU) / (self.s ** 2 + sigma ** 2)
        f = (d - sd2 / (sigma ** 2 + sd2) * x) / (sigma * self.sd / torch.sqrt(sigma ** 2 + sd2))
        return (f + self.offset).float()


@pytest.mark.parametrize("s", [0.2, 1e-3])            # 1e-3: near-deterministic data, D must return MU everywhere
def test_exact_f_is_the_exact_denoiser_at_the_ddpms_own_sigmas(s: float) -> None:
    ddpm = DDPM()
    conv = VPPreconditioned(ExactF(s, 0.5), ddpm, 0.5)
    assert_exact_denoiser(conv, ddpm, MU, s, 1e-4)


def test_the_ddpm_sigma_law_stays_on_its_schedule_and_the_exact_f_minimises_the_loss() -> None:
    ddpm, g = DDPM(), torch.Generator().manual_seed(0)
    sig = losses.sample_sigma(ddpm, 4000, g, "lognormal", -1.2, 1.2)
    assert sig.min() >= ddpm.sigma_min - 1e-9 and sig.max() <= ddpm.sigma_max + 1e-9
    assert (sig == ddpm.sigma_min).any()                                         # the lower clamp is the schedule's
    assert abs(float(torch.log(sig).median()) + 1.2) < 0.1                       # EDM's P_mean
    t_sig = losses.sample_sigma(ddpm, 500, g, "uniform-t")
    schedule = ddpm.sigma_of_t(torch.arange(ddpm.num_steps)).double()
    assert torch.isin(t_sig, schedule).all()                                      # eq. 23's uniform steps
    x0 = MU + 0.2 * torch.randn(64, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    kw = dict(weighting="edm", sigma_data=0.5)
    exact = losses.dsm_loss(VPPreconditioned(ExactF(0.2, 0.5), ddpm, 0.5), ddpm, x0, x0, torch.Generator().manual_seed(2), **kw)
    off = losses.dsm_loss(VPPreconditioned(ExactF(0.2, 0.5, 0.05), ddpm, 0.5), ddpm, x0, x0,
                          torch.Generator().manual_seed(2), **kw)
    assert float(off) > float(exact) + 0.5 * 0.05 ** 2                           # unit weight on F: + offset²


def test_convention_round_trips_and_a_smoke_ddpm_trains_and_samples_with_it(tmp_path: Path, monkeypatch) -> None:
    from ctmri.config import get_profile
    from ctmri.data.prepare import prepare_dataset
    from ctmri.diffusion.samplers import get_sampler
    from ctmri.models.checkpoints import load_checkpoint, load_model
    from ctmri.train.loop import train

    conv = convention_for("ddpm", ProcessConfig(ddpm_parametrisation="edm"), nn.Identity(), DDPM(), sigma_data=0.4)
    assert isinstance(conv, VPPreconditioned) and conv.describe()["kind"] == "vp-edm"
    again = from_description(conv.describe(), nn.Identity(), DDPM())
    assert isinstance(again, VPPreconditioned) and again.sigma_data == 0.4

    monkeypatch.setenv("CTMRI_ROOT", str(tmp_path))
    smoke = get_profile("smoke")
    profile = replace(smoke, process=replace(smoke.process, ddpm_parametrisation="edm"))
    prepare_dataset(profile)
    calls = []
    real = losses.dsm_loss
    monkeypatch.setattr(losses, "dsm_loss", lambda *a, **k: calls.append(1) or real(*a, **k))
    train(profile, "ddpm", steps=4, progress=False)
    assert len(calls) == 4                                                         # the VE model's loss, not eq. 23
    ckpt = tmp_path / "runs" / "smoke" / "checkpoints" / "ddpm.pt"
    assert load_checkpoint(ckpt)["convention"]["kind"] == "vp-edm"
    lm = load_model(ckpt)
    y = torch.zeros(2, 1 + 2 * smoke.model.context_slices, 16, 16)
    out = get_sampler("ddpm")(lm.model, lm.process, y, steps=5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 16, 16) and torch.isfinite(out).all()
