"""Paths no other test reached: the clip_x0 branch of the DDPM-family samplers (analytic), a NIfTI stored in
RAS orientation, and the HU conversion of Monte-Carlo means and standard deviations."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ctmri.data.intensity import HU_PER_UNIT, hu_to_model, model_to_hu, std_to_hu
from ctmri.data.volumes import read_volume, write_nifti
from ctmri.diffusion.processes import DDPM
from ctmri.diffusion.grids import respaced_timesteps
from ctmri.diffusion.samplers import SAMPLERS
from ctmri.evaluate.tables import uncertainty_metrics

DP = DDPM(1000)
DDPM_FAMILY = ("ddpm", "ddim", "dpm++2m")


def eps_for_x0(target: torch.Tensor):
    """An eps "model" whose x0 prediction is `target` at every step: eps = (x - sqrt(abar) target) / sqrt(1 - abar)."""
    def model(x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = DP.abar(t, x)
        return (x - a.sqrt() * target) / (1 - a).sqrt()
    return model


# ---- clip_x0 ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", DDPM_FAMILY)
def test_clip_x0_returns_the_clipped_prediction(name: str) -> None:
    """The last step of all three goes to abar = 1, where the update is x0_hat itself: clip(x0_hat) with clip_x0."""
    x0 = torch.linspace(-3.0, 3.0, 64).reshape(1, 1, 8, 8).repeat(2, 1, 1, 1)   # mostly outside [-1, 1]
    y = torch.zeros(2, 1, 8, 8)
    run = lambda clip: SAMPLERS[name](eps_for_x0(x0), DP, y, steps=5, clip_x0=clip,  # noqa: E731
                                      generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(run(True), x0.clamp(-1, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(run(False), x0, atol=1e-4, rtol=0)


def test_ddpm_clip_x0_steps_with_the_posterior_mean_of_the_clipped_x0() -> None:
    """One ancestral step with clip_x0: x_{t-1} = c0 clip(x0_hat) + ct x_t + sigma z. With the same noise, a run
    predicting x0_hat = 2.5 and one predicting 1.0 (already in range) must agree: only clip(x0_hat) enters."""
    y = torch.zeros(3, 1, 4, 4)
    x_init = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    states = {}
    for value, clip in ((2.5, True), (1.0, True), (1.0, False), (2.5, False)):
        seen: list[torch.Tensor] = []
        SAMPLERS["ddpm"](eps_for_x0(torch.full_like(y, value)), DP, y, steps=3, clip_x0=clip, x_init=x_init,
                         generator=torch.Generator().manual_seed(3), callback=lambda i, x, x0: seen.append(x.clone()))
        states[value, clip] = seen[1]                       # the state after the first step
    torch.testing.assert_close(states[2.5, True], states[1.0, True], atol=1e-5, rtol=0)
    torch.testing.assert_close(states[1.0, True], states[1.0, False], atol=1e-5, rtol=0)   # same when in range
    taus = respaced_timesteps(DP.num_steps, 3)
    abar, abar_prev = DP.alphas_cumprod[taus[0]], DP.alphas_cumprod[taus[1]]
    c0 = float(abar_prev.sqrt() * (1 - abar / abar_prev) / (1 - abar))   # posterior-mean weight of x0
    torch.testing.assert_close(states[2.5, False] - states[1.0, False], torch.full_like(y, 1.5 * c0),
                               atol=1e-4, rtol=0)


# ---- NIfTI orientation -----------------------------------------------------------------------------------------

def test_nifti_in_ras_reads_in_the_same_lps_order(tmp_path: Path) -> None:
    """The same anatomy stored with an LPS affine diag(-sx, -sy, sz) and a RAS affine diag(sx, sy, sz) (x and y
    flipped in the file) must come back as the same (z, y, x) LPS array with the same spacing."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    vol = rng.normal(size=(3, 4, 5)).astype(np.float32)        # (z, y, x) in LPS order, no symmetry
    spacing = (3.0, 1.5, 1.0)
    write_nifti(tmp_path / "lps.nii.gz", vol, spacing)
    file_lps = vol.transpose(2, 1, 0)                          # the (i, j, k) = (x, y, z) array in the file
    ras = nib.Nifti1Image(np.ascontiguousarray(file_lps[::-1, ::-1, :]), np.diag([1.0, 1.5, 3.0, 1.0]))
    nib.save(ras, str(tmp_path / "ras.nii.gz"))
    a, sa = read_volume(tmp_path / "lps.nii.gz")
    b, sb = read_volume(tmp_path / "ras.nii.gz")
    np.testing.assert_array_equal(a, vol)
    np.testing.assert_array_equal(b, vol)
    assert sa == pytest.approx(spacing) and sb == pytest.approx(spacing)


# ---- HU conversion of MC statistics ------------------------------------------------------------------------------

def test_mc_mean_and_std_convert_to_hu_like_the_replicates() -> None:
    """The HU map is affine: the mean of HU replicates is model_to_hu(mean), their std (ddof 1) is 2012 × std."""
    rng = np.random.default_rng(1)
    reps = rng.uniform(-1, 1, size=(6, 1, 8, 8))               # K = 6 replicates in model space
    hu = model_to_hu(reps)
    np.testing.assert_allclose(hu.mean(0), model_to_hu(reps.mean(0)), atol=1e-9)
    np.testing.assert_allclose(hu.std(0, ddof=1), std_to_hu(reps.std(0, ddof=1)), rtol=1e-12)
    assert HU_PER_UNIT == 2012.0 and float(model_to_hu(1.0) - model_to_hu(-1.0)) == 4024.0
    np.testing.assert_allclose(hu_to_model(model_to_hu(reps)), reps, atol=1e-12)


def test_uncertainty_table_reports_the_std_in_hu_and_on_the_unit_scale() -> None:
    """uncertainty.csv: uncertainty_hu = mean std inside the body × 2012, uncertainty = the same on [0, 1] (std / 2)."""
    rng = np.random.default_rng(2)
    samples = rng.normal(0.0, 0.1, size=(2, 5, 1, 8, 8)).astype(np.float32)
    mask = np.zeros((2, 8, 8), bool)
    mask[:, 2:6, 2:6] = True
    d = {"name": "ddpm", "K": 5, "samples": samples, "mean": samples.mean(1), "std": samples.std(1, ddof=1),
         "target": np.zeros((2, 1, 8, 8), np.float32), "mask": mask, "patient": np.array(["a", "a"]),
         "slice_index": np.arange(2)}
    u = uncertainty_metrics(d)
    for i in range(2):
        body_std = float(d["std"][i, 0][mask[i]].mean())
        assert u["uncertainty_hu"][i] == pytest.approx(2012.0 * body_std, rel=1e-5)
        assert u["uncertainty"][i] == pytest.approx(body_std / 2, rel=1e-5)
