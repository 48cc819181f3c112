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
from ctmri.data.prepare import case_to_slices, context_stack
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
    """Phantom seed 500 (training used seeds 0-9), the cpu geometry (40 x 128² at 3 mm, 2 mm misregistration):
    single samples of the default sampler (10 network calls) on 4 slices, MAE in the body far below the ~1000 HU of
    a model that does not work (measured at export: 64-73 HU)."""
    p = get_profile("cpu").data
    case = make_case(500, p.phantom_shape, p.phantom_spacing, misregistration_mm=p.misregistration_mm)
    sl = case_to_slices(case, p.image_size, 0)
    idx = [8, 16, 24, 32]
    lm = load_model(WEIGHTS)
    k = int(lm.meta["config"]["model"].get("context_slices", 0))   # 2.5-D: the MR slice and its neighbours
    cond = context_stack(sl["mr"], sl["patient"], sl["slice_index"], k)[idx]
    with torch.no_grad():
        x = get_sampler(default_sampler())(lm.model, lm.process, torch.from_numpy(cond), steps=10,
                                           generator=[make_generator(i) for i in idx])
    mae = [synthrad_mae(c, h, m) for c, h, m in zip(model_to_hu(sl["ct"][idx, 0]), model_to_hu(x[:, 0].numpy()),
                                                     sl["mask"][idx])]
    assert max(mae) < 150, f"cpu study weights: MAE {np.round(mae, 1)} HU"


def test_synthesize_uses_the_committed_weights_when_nothing_was_trained(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`ctmri synthesize --profile cpu` in a fresh clone (no runs/cpu/): the committed weights, an sCT in HU."""
    import nibabel as nib

    from ctmri.sample.synthesize import synthesize

    monkeypatch.setenv("CTMRI_ROOT", str(tmp_path))
    p = get_profile("cpu").data
    case = make_case(501, (6, 128, 128), p.phantom_spacing)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(case.mr.transpose(2, 1, 0)), np.diag([3.0, 3.0, 3.0, 1.0])),
             str(tmp_path / "mr.nii.gz"))
    record = synthesize(tmp_path / "mr.nii.gz", tmp_path / "out", profile="cpu", mc_samples=2, device="cpu",
                        progress=False)
    assert Path(record["checkpoint"]).resolve() == WEIGHTS.resolve()
    sct = np.asarray(nib.load(str(tmp_path / "out" / "sct.nii.gz")).dataobj).transpose(2, 1, 0)
    body = case.mask & (case.ct > -500)
    assert np.mean(np.abs(sct[body] - case.ct[body])) < 200
    # the committed calibration (weights/cpu/vesde.calibration.json) gives the 90 % interval half-width in HU
    assert record["files"]["sct_interval90"] == "sct_interval90.nii.gz" and record["calibration"]["alpha"] == 0.1
    half = np.asarray(nib.load(str(tmp_path / "out" / "sct_interval90.nii.gz")).dataobj).transpose(2, 1, 0)
    inside = sct != -1000                                        # synthesize's own body mask (from the MR)
    assert half[inside].min() > 0 and half[~inside].max() == 0 and 20 < np.median(half[inside]) < 1000
