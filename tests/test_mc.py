"""Monte-Carlo sampling: per-replicate generators regenerate one sample alone, trajectories, output contract, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ctmri.sample import mc, settings, stage
from ctmri.diffusion.precond import EpsPrediction, VEPreconditioned
from ctmri.models.build import build_model
from ctmri.config import get_profile
from ctmri.diffusion.processes import DDPM, VESDE


def random_net(method: str) -> torch.nn.Module:
    """The smoke profile's UNet, random init, with a non-zero output layer (it is zero-initialised)."""
    torch.manual_seed(0)           # test-only: fixes the random weights
    net = build_model(method, get_profile("smoke"))["net"].eval()
    torch.nn.init.normal_(net.conv_out.weight, std=0.05)
    return net


@pytest.fixture(scope="module")
def cond() -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, size=(3, 1, 16, 16)).astype(np.float32)


@pytest.mark.parametrize("sampler,method", [("ddpm", "ddpm"), ("pc", "vesde")])
def test_one_replicate_regenerates_alone(cond, sampler, method):
    net = random_net(method)
    process = DDPM() if method == "ddpm" else VESDE()
    model = EpsPrediction(net, process) if method == "ddpm" else VEPreconditioned(net, process, 0.25)
    res = mc.monte_carlo(model, process, sampler, cond, mc_samples=3, steps=6, base_seed=11, chunk_size=4,
                         slice_ids=[5, 6, 7], device="cpu", progress=False)
    assert res["samples"].shape == (3, 3, 1, 16, 16)
    # chunks of 4 pairs split slices across chunks: (slice 1, replicate 2) sits beside other slices' replicates
    alone = mc.regenerate(model, process, sampler, cond[1], slice_id=6, replicate=2, steps=6, base_seed=11,
                          device="cpu")
    # batched vs single convolutions differ by float32 round-off (more with several threads); a wrong
    # generator would change every pixel by O(scale), so a tolerance of 1e-5 of the scale still proves it
    scale = float(np.abs(res["samples"]).max())
    np.testing.assert_allclose(alone, res["samples"][1, 2], atol=1e-5 * scale, rtol=1e-4)
    assert not np.allclose(res["samples"][1, 0], res["samples"][1, 2])
    # the same pairs in other chunk sizes give the same samples
    res2 = mc.monte_carlo(model, process, sampler, cond, mc_samples=3, steps=6, base_seed=11, chunk_size=9,
                          slice_ids=[5, 6, 7], device="cpu", progress=False)
    np.testing.assert_allclose(res2["samples"], res["samples"], atol=1e-5 * scale, rtol=1e-4)


def exact_denoiser(s: float = 0.3):
    """D(x, sigma) of x0 ~ N(y / 2, s^2): the exact model of either process in sigma space."""
    def model(x, y, sigma):
        return 0.5 * y + s * s / (s * s + sigma.to(x.dtype).view(-1, 1, 1, 1) ** 2) * (x - 0.5 * y)
    return model


def test_outputs_trajectory_and_statistics(cond):
    process = DDPM()
    res = mc.monte_carlo(exact_denoiser(), process, "ddim", cond, mc_samples=4, steps=20, chunk_size=5,
                         trajectory_slices=[0, 2], trajectory_every=5, device="cpu", progress=False)
    assert set(res) >= {"samples", "mean", "std", "seeds", "trajectory", "trajectory_x0", "trajectory_slices",
                        "trajectory_steps", "seconds_total", "seconds_per_sample", "nfe", "steps"}
    assert res["mean"].shape == res["std"].shape == (3, 1, 16, 16)
    np.testing.assert_allclose(res["mean"], res["samples"].mean(1), rtol=1e-6)
    np.testing.assert_allclose(res["std"], res["samples"].std(1, ddof=1), rtol=1e-5)
    assert res["seeds"].shape == (3, 4) and len(np.unique(res["seeds"])) == 12
    # every 5 of 20 steps: x at steps 0 (initial noise), 5, 10, 15, the last step 19, and the final sample (20)
    assert res["trajectory_steps"].tolist() == [0, 5, 10, 15, 19, 20]
    assert res["trajectory"].shape == res["trajectory_x0"].shape == (2, 6, 1, 16, 16)
    assert res["trajectory_slices"].tolist() == [0, 2]
    np.testing.assert_allclose(res["trajectory"][:, -1], res["samples"][[0, 2], 0])
    assert res["nfe"] == 20 and res["seconds_per_sample"] > 0


def test_default_trajectory_has_about_ten_frames(cond):
    process = DDPM()
    res = mc.monte_carlo(exact_denoiser(), process, "ddpm", cond[:1], mc_samples=1, steps=100,
                         trajectory_slices=[0], device="cpu", progress=False)
    assert res["trajectory_steps"].tolist() == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99, 100]


def test_one_pass_baseline(cond):
    res = mc.monte_carlo(lambda y: 0.5 * y, None, "cnn", cond, mc_samples=10, steps=1, trajectory_slices=[0],
                         device="cpu", progress=False)
    assert res["samples"].shape == (3, 1, 1, 16, 16) and res["nfe"] == 1
    np.testing.assert_allclose(res["mean"], 0.5 * cond)
    assert (res["std"] == 0).all() and res["trajectory"].shape[1] == 0


def test_ode_reports_mean_nfe(cond):
    process = VESDE()

    res = mc.monte_carlo(exact_denoiser(), process, "ode", cond, mc_samples=2, steps=4, chunk_size=4,
                         options={"rtol": 1e-4, "atol": 1e-4}, device="cpu", progress=False)
    assert res["nfe"] > 10 and np.isfinite(res["samples"]).all()


def test_errors_are_clear(tmp_path, monkeypatch, cond):
    with pytest.raises(ValueError, match="Unknown sampler 'dpm'.*cnn, wgan, ddpm.*vesde: em, pc, ode"):
        settings.sampler_method("dpm")
    with pytest.raises(ValueError, match="'em' needs a 'vesde' process"):
        mc.monte_carlo(lambda x, y, t: x, DDPM(), "em", cond, mc_samples=1, steps=2, progress=False)
    monkeypatch.setenv("CTMRI_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="ctmri train --profile smoke --method vesde.*make reproduce"):
        stage.run_sampler("smoke", "heun")
    with pytest.raises(ValueError, match="Unknown sampler"):
        stage.run_sampler("smoke", "euler")


def test_profile_overrides_a_samplers_steps_and_passes_its_options():
    """A profile's `sampler_steps` beats the record's default; options follow the profile's fields."""
    from dataclasses import replace
    cpu = get_profile("cpu")
    custom = replace(cpu, sample=replace(cpu.sample, sampler_steps={"pc": 7}, snr=0.3, noise_removal=False))
    assert settings.sampler_settings(custom, "pc") == (7, {"corrector_steps": custom.sample.pc_corrector_steps,
                                                           "snr": 0.3, "noise_removal": False})
    bare = replace(cpu, sample=replace(cpu.sample, sampler_steps={}))
    assert settings.sampler_settings(bare, "pc")[0] == 500        # the record's default: the study's 500 steps
    assert stage.evaluation_slices(32, 16).tolist()[:3] == [0, 2, 4] and stage.evaluation_slices(32, 16)[-1] == 31
