"""The committed cpu-study weights (weights/cpu/vesde.pt: the 3-mm study's VE-SDE model, fp16 EMA) load with
today's code, say where they come from, and turn an unseen phantom patient's MR into a CT at 3 mm with the default
sampler: `ctmri synthesize` works right after `make setup`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ctmri.config import get_profile
from ctmri.data.intensity import model_to_hu
from ctmri.data.phantom import make_case
from ctmri.data.slices import case_to_slices, context_stack
from ctmri.diffusion.samplers import default_sampler, get_sampler
from ctmri.evaluate.metrics import synthrad_mae
from ctmri.models.checkpoints import load_checkpoint, load_model
from ctmri.rng import make_generator

WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "cpu" / "vesde.pt"
pytestmark = pytest.mark.usefixtures("one_thread")


def test_study_weights_are_small_fp16_and_say_where_they_come_from() -> None:
    assert WEIGHTS.stat().st_size < 4_000_000
    state = load_checkpoint(WEIGHTS, expect_method="vesde", expect_profile="cpu")
    assert "optimizers" not in state and all(v.dtype == torch.float16 for v in state["ema"].values()
                                             if v.is_floating_point())
    assert state["provenance"]["git_commit"] and state["provenance"].get("data_digest")
    assert state["config"]["data"]["image_size"] == get_profile("cpu").data.image_size == 128


def test_study_weights_make_a_ct_of_a_patient_not_seen_in_training() -> None:
    """Phantom seed 500 (training used seeds 0-15), the cpu geometry (40 x 128² at 3 mm, 2 mm misregistration):
    single samples of the default sampler (10 network calls) on 4 slices, MAE in the body near what was measured
    (43-59 HU on these slices; a model that does not work gives ~1000 HU, a flipped input 150-200)."""
    profile = get_profile("cpu")
    p = profile.data
    case = make_case(500, p.phantom_shape, p.phantom_spacing, misregistration_mm=p.misregistration_mm)
    sl, _ = case_to_slices(case, profile)
    idx = [8, 16, 24, 32]
    lm = load_model(WEIGHTS)
    k = int(lm.meta["config"]["model"].get("context_slices", 0))   # 2.5-D: the MR slice and its neighbours
    cond = context_stack(sl["mr"], sl["patient"], sl["slice_index"], k)[idx]
    with torch.no_grad():
        x = get_sampler(default_sampler())(lm.model, lm.process, torch.from_numpy(cond), steps=10,
                                           generator=[make_generator(i) for i in idx])
    mae = [synthrad_mae(c, h, m) for c, h, m in zip(model_to_hu(sl["ct"][idx, 0]), model_to_hu(x[:, 0].numpy()),
                                                     sl["mask"][idx])]
    assert max(mae) < 80, f"cpu study weights: MAE {np.round(mae, 1)} HU"


def _synthesize(case, tmp_path: Path, name: str, **kw) -> tuple[dict, np.ndarray]:
    from ctmri.data.volumes import read_volume, write_nifti
    from ctmri.sample.synthesize import synthesize

    write_nifti(tmp_path / f"{name}.nii.gz", case.mr, case.spacing)          # LPS, as a scanner's file reads
    record = synthesize(tmp_path / f"{name}.nii.gz", tmp_path / name, device="cpu", progress=False, **kw)
    return record, read_volume(tmp_path / name / "sct.nii.gz")[0].astype(np.float64)


def test_synthesize_uses_the_committed_weights_when_nothing_was_trained(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`ctmri synthesize` without --profile in a fresh clone (no runs/): the committed weights, an sCT in HU near
    the measured MAE (51-56 HU for seed 501), and the calibrated 90 % interval at the calibrated settings."""
    from ctmri.data.render import phantom_at
    from ctmri.data.volumes import read_volume

    monkeypatch.setenv("CTMRI_ROOT", str(tmp_path))
    case = phantom_at(501, 3.0, 3.0, length_mm=36.0)
    record, sct = _synthesize(case, tmp_path, "out")
    assert Path(record["checkpoint"]).resolve() == WEIGHTS.resolve() and record["profile"] == "cpu"
    err = np.abs(sct - case.ct)[case.mask]
    assert err.mean() < 70, f"MAE {err.mean():.1f} HU"
    assert record["interval"] == {"written": True, "reason": None} and record["calibration"]["alpha"] == 0.1
    half = read_volume(tmp_path / "out" / "sct_interval90.nii.gz")[0]
    inside = sct != -1000                                        # synthesize's own body mask (from the MR)
    assert half[inside].min() > 0 and half[~inside].max() == 0
    assert 0.85 <= np.mean(err <= half[case.mask] + 0.5) <= 0.97


def test_the_same_patient_at_a_users_geometry_gives_the_same_quality(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue target: one fine rendering (1.5-mm voxels, 504-mm field of view) made coarser the way a scanner does
    (block averages) gives the model's own geometry, 1.5-mm pixels, a 504-mm field of view and 1.5-mm slices; the
    sCT of each, brought to the model geometry the same way, has an MAE within 10 % of the model geometry's.
    (Resizing by pixel count, the old behaviour, gave 151 HU against 54 at 504 mm.)"""
    from ctmri.data.render import block_mean, coarser, phantom_at

    monkeypatch.setenv("CTMRI_ROOT", str(tmp_path))
    fine = phantom_at(502, 1.5, 1.5, fov_mm=504.0, length_mm=60.0)
    ref = coarser(fine, 2, 2, fov_mm=384.0)                      # 3 x 3 x 3 mm, 384 mm: the model's geometry
    kinds = {"model": (2, 2, 384.0), "1.5-mm pixels": (2, 1, 384.0), "504-mm FOV": (2, 2, None),
             "1.5-mm slices": (1, 2, 384.0)}
    mae = {}
    for name, (bz, byx, fov) in kinds.items():
        case = coarser(fine, bz, byx, fov)
        _, sct = _synthesize(case, tmp_path, name.replace(" ", "_"), mc_samples=2, accept_contrast=True)
        if fov is None:                                          # crop the 504-mm sCT to the reference's 384 mm
            n = ref.ct.shape[1] * 2 // byx
            a = (sct.shape[1] - n) // 2
            sct = sct[:, a:a + n, a:a + n]
        sct = block_mean(sct, 2 // bz, 2 // byx)
        mae[name] = float(np.abs(sct - ref.ct)[ref.mask].mean())
    assert mae["model"] < 90, mae
    for name, value in mae.items():
        assert value <= 1.10 * mae["model"], mae
