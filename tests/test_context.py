"""2.5-D conditioning (`ModelConfig.context_slices`): the network sees the slice's MR and its neighbours; training,
the sampling stage and `ctmri synthesize` all build the same stacked condition."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ctmri.config import get_profile
from ctmri.data.phantom import make_case

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_25d_model_trains_samples_and_synthesizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ctmri.data.prepare import load_split, prepare_dataset
    from ctmri.models.checkpoints import load_model
    from ctmri.sample.stage import run_sampler
    from ctmri.sample.synthesize import synthesize
    from ctmri.train.loop import train

    monkeypatch.setenv("CTMRI_ROOT", str(tmp_path))
    smoke = get_profile("smoke")
    prof = dataclasses.replace(smoke, model=dataclasses.replace(smoke.model, context_slices=1))
    assert prof.model.condition_channels == 3
    prepare_dataset(prof)
    r = train(prof, "vesde", steps=2, resume=False, progress=False)
    lm = load_model(r["checkpoint"])
    assert lm.net.conv_in.in_channels == 1 + 3                   # x_t and three MR slices (smoke has no stem)
    with np.load(run_sampler(prof, "dpm++2m-ve", mc_samples=2, device="cpu", progress=False)) as z:
        test = load_split(prof, "test", context=1)
        assert z["cond"].shape[1] == 3 and np.array_equal(z["cond"][:, :1], test.mr[z["test_index"]])
    case = make_case(12, (5, 40, 40), (10.0, 8.0, 8.0))
    nib.save(nib.Nifti1Image(np.ascontiguousarray(case.mr.transpose(2, 1, 0)), np.diag([8.0, 8.0, 10.0, 1.0])),
             str(tmp_path / "mr.nii.gz"))
    rec = synthesize(tmp_path / "mr.nii.gz", tmp_path / "out", checkpoint=r["checkpoint"], mc_samples=2,
                     device="cpu", progress=False)
    assert rec["slices"] == 5 and (tmp_path / "out" / "sct.nii.gz").exists()


def test_a_2d_checkpoint_refuses_a_25d_condition() -> None:
    """A condition with the wrong channel count is refused in one sentence, not broadcast."""
    import torch

    from ctmri.models.build import build_model

    net = build_model("vesde", "smoke")["net"]
    with pytest.raises(ValueError, match="condition"):
        net(torch.zeros(1, 1, 16, 16), torch.zeros(1, 3, 16, 16), torch.zeros(1))
