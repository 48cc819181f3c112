"""Inputs the committed cpu model cannot serve are refused before any sampling: a contrast far from the training MR's
(inverted, T1-like) in one sentence with an explicit override, while T2w inputs at other voxel sizes and with a
strong bias field pass (data/contrast.py; thresholds measured in benchmarks/results/geometry.md)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ctmri import paths
from ctmri.data.render import coarser, phantom_at, t1_like
from ctmri.data.volumes import DataError, write_nifti

WEIGHTS = paths.committed_weights("cpu", "vesde")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def case():
    return phantom_at(103)


def _contrast(mr: np.ndarray, spacing, tmp_path: Path) -> dict:
    """The contrast verdict synthesize would reach on this MR (the prepare step only, no sampling)."""
    from ctmri.config import profile_from_dict
    from ctmri.data.volumes import read_image
    from ctmri.models.checkpoints import load_model
    from ctmri.sample.synthesize import _prepare

    write_nifti(tmp_path / "x.nii.gz", mr.astype(np.float32), spacing)
    lm = load_model(WEIGHTS)
    prep = _prepare(read_image(tmp_path / "x.nii.gz"), lm, profile_from_dict(lm.meta["config"]), "mr2ct", WEIGHTS,
                    None, accept_contrast=True)
    return prep.contrast


def test_t2w_inputs_pass_the_contrast_check(case, tmp_path: Path) -> None:
    assert _contrast(case.mr, case.spacing, tmp_path)["ok"]
    biased = case.mr * (1 + 0.4 * np.linspace(-1, 1, case.mr.shape[2]))[None, None]
    assert _contrast(biased, case.spacing, tmp_path)["ok"]
    fine = phantom_at(103, 1.5, 1.5, fov_mm=450.0, length_mm=60.0)
    verdict = _contrast(coarser(fine, 1, 1).mr, fine.spacing, tmp_path)
    assert verdict["ok"] and verdict["distance"] < 0.7 * verdict["max_distance"], verdict


@pytest.mark.parametrize("kind", ["inverted", "T1-like"])
def test_other_contrasts_are_refused_before_sampling_unless_accepted(case, kind: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from ctmri.sample.synthesize import synthesize

    mr = np.where(case.mask, case.mr.max() - case.mr, case.mr) if kind == "inverted" else t1_like(case)
    write_nifti(tmp_path / "mr.nii.gz", mr, case.spacing)
    calls = []
    monkeypatch.setattr("ctmri.sample.synthesize.monte_carlo", lambda *a, **k: calls.append(1))
    with pytest.raises(DataError, match=r"mr\.nii\.gz': its intensities inside the body differ from the training MR's "
                                        r"\(distance 0\.\d\d > 0\.\d\d.*pass --accept-contrast"):
        synthesize(tmp_path / "mr.nii.gz", tmp_path / "out", device="cpu", progress=False)
    assert not calls and not (tmp_path / "out").exists()
    verdict = _contrast(mr, case.spacing, tmp_path)
    assert verdict["ok"] is False and verdict["distance"] > 1.3 * verdict["max_distance"], verdict


def test_accepting_a_contrast_is_recorded(case, tmp_path: Path) -> None:
    from ctmri.sample.synthesize import synthesize

    small = phantom_at(104, 3.0, 3.0, length_mm=9.0)
    write_nifti(tmp_path / "mr.nii.gz", t1_like(small), small.spacing)
    with pytest.warns(UserWarning, match="contrast far from the training data's"):
        rec = synthesize(tmp_path / "mr.nii.gz", tmp_path / "out", device="cpu", progress=False, mc_samples=1,
                         steps=2, accept_contrast=True)
    saved = json.loads((tmp_path / "out" / "sct.json").read_text())["contrast"]
    assert saved == rec["contrast"] and saved["ok"] is False and saved["accepted_by_user"] is True
