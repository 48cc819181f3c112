"""Preparation (ARCHITECTURE.md, processed-data contract): model space, mask, slices, patient split, load_split."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ctmri import paths
from ctmri.data.readers import DataError, read_synthrad
from ctmri.data.phantom import make_case, make_cases, write_synthrad
from ctmri.data.intensity import hu_to_model, model_to_hu, normalise_mr
from ctmri.data.prepare import SliceSet, body_mask_from_mr, load_split, prepare_dataset, select_slices, split_patients


@pytest.fixture()
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CTMRI_ROOT", str(tmp_path))
    return tmp_path


def test_hu_model_space() -> None:
    hu = np.array([-2000, -1024, 988, 3000, 5000], np.float32)
    np.testing.assert_allclose(hu_to_model(hu), [-1, -1, 0, 1, 1], atol=1e-6)
    x = np.linspace(-1, 1, 9, dtype=np.float32)
    np.testing.assert_allclose(hu_to_model(model_to_hu(x)), x, atol=1e-6)
    t = hu_to_model(torch.tensor([-1024.0, 3000.0]))
    assert isinstance(t, torch.Tensor) and torch.allclose(t, torch.tensor([-1.0, 1.0]))
    assert float(model_to_hu(0.0)) == pytest.approx(988.0)


def test_normalise_mr_percentiles_inside_mask() -> None:
    rng = np.random.default_rng(0)
    mr = rng.uniform(0, 1000, (4, 20, 20)).astype(np.float32)
    mask = np.zeros(mr.shape, bool)
    mask[:, 5:15, 5:15] = True
    out = normalise_mr(mr, mask)
    assert out.min() == -1 and out.max() == 1 and out.dtype == np.float32
    lo, hi = np.percentile(mr[mask], (0.5, 99.5))
    i = np.argwhere(mask & (mr > lo) & (mr < hi))[0]
    assert out[tuple(i)] == pytest.approx(2 * (mr[tuple(i)] - lo) / (hi - lo) - 1, abs=1e-5)
    with pytest.raises(DataError, match="constant"):
        normalise_mr(np.ones((2, 4, 4)), np.ones((2, 4, 4), bool))


def test_body_mask_from_mr_matches_phantom() -> None:
    case = make_case(3, (8, 64, 64), (8.0, 6.0, 6.0))
    est = body_mask_from_mr(case.mr)
    dice = 2 * (est & case.mask).sum() / (est.sum() + case.mask.sum())
    assert dice > 0.97


def test_select_slices() -> None:
    mask = np.zeros((20, 4, 4), bool)
    mask[3:17] = True
    np.testing.assert_array_equal(select_slices(mask, 0), np.arange(3, 17))
    np.testing.assert_array_equal(select_slices(mask, 3), [3, 10, 16])
    np.testing.assert_array_equal(select_slices(mask, 50), np.arange(3, 17))


def test_split_by_patient() -> None:
    ids = [f"p{i:02d}" for i in range(10)]
    train, test = split_patients(ids, 3, seed=1)
    assert len(test) == 3 and not set(train) & set(test) and sorted(train + test) == ids
    assert split_patients(ids[::-1], 3, seed=1) == (train, test)       # input order does not matter
    assert {tuple(split_patients(ids, 3, seed=s)[1]) for s in range(5)} != {tuple(test)}
    with pytest.raises(DataError, match="Found 2 patient.*at least 3"):
        split_patients(["a", "b"], 2, seed=0)
    with pytest.raises(DataError, match="not unique"):
        split_patients(["a", "a", "b"], 1, seed=0)


def test_prepare_smoke_contract(root: Path) -> None:
    manifest = prepare_dataset("smoke")
    out = paths.processed_dir("smoke")
    assert json.loads((out / "manifest.json").read_text()) == json.loads(json.dumps(manifest, default=str))
    assert manifest["direction"] == "mr2ct" and manifest["profile"] == "smoke"
    assert manifest["provenance"]["git_commit"] and "numpy" in manifest["provenance"]["versions"]
    train, test, val = (set(manifest["patients"][s]) for s in ("train", "test", "val"))
    assert len(train) == 2 and len(test) == 1 and len(val) == 1 and not train & test and not val & (train | test)
    raw = paths.raw_dir("smoke")
    assert sorted(p.name for p in raw.iterdir()) == sorted(train | test | val)
    assert [c.id for c in read_synthrad(raw)] == sorted(train | test | val)
    for split in ("train", "test", "val"):
        with np.load(out / f"{split}.npz") as z:
            n = z["mr"].shape[0]
            assert n == manifest["n_slices"][split] == 8 * len(manifest["patients"][split])   # every body slice
            assert z["mr"].shape == z["ct"].shape == (n, 1, 16, 16) and z["mask"].shape == (n, 16, 16)
            assert z["mr"].dtype == z["ct"].dtype == np.float32 and z["mask"].dtype == bool
            assert z["mr"].min() >= -1 and z["mr"].max() <= 1 and z["ct"].min() >= -1 and z["ct"].max() <= 1
            assert set(z["patient"]) == set(manifest["patients"][split])
            assert z["slice_index"].dtype.kind == "i" and z["pixel_spacing"].shape == (n, 2)
            np.testing.assert_allclose(z["pixel_spacing"], 48 * 8.0 / 16)
    s = load_split("smoke", "test")
    assert isinstance(s, SliceSet) and len(s) == 8 and np.array_equal(s.slice_index, np.arange(8))   # contiguous
    assert s.cond is s.mr and s.target is s.ct
    flipped = load_split("smoke", "test", direction="ct2mr")
    np.testing.assert_array_equal(flipped.cond, s.ct)
    np.testing.assert_array_equal(flipped.target, s.mr)
    before = load_split("smoke", "train")
    again = prepare_dataset("smoke", seed=0)                         # deterministic
    assert again["patients"] == manifest["patients"]
    np.testing.assert_array_equal(load_split("smoke", "train").ct, before.ct)
    np.testing.assert_array_equal(load_split("smoke", "train").mr, before.mr)


def test_prepare_ct2mr_and_bad_direction(root: Path) -> None:
    prepare_dataset("smoke", direction="ct2mr")
    s = load_split("smoke", "train")
    assert s.direction == "ct2mr" and s.cond is s.ct and s.target is s.mr
    with pytest.raises(ValueError, match="'sideways'.*mr2ct, ct2mr"):
        prepare_dataset("smoke", direction="sideways")
    with pytest.raises(ValueError, match="'valid'"):
        load_split("smoke", "valid")


def test_load_split_before_prepare(root: Path) -> None:
    with pytest.raises(DataError, match=r"profile 'smoke'.*ctmri prepare --profile smoke"):
        load_split("smoke", "train")


def test_prepare_real_synthrad_folder(root: Path, tmp_path: Path) -> None:
    cases = make_cases(3, (6, 40, 56), (5.0, 7.0, 7.0), first_seed=20)
    for c in cases:
        c.mask = None                                            # real data without masks: derived from MR
    write_synthrad(cases, tmp_path / "real")
    manifest = prepare_dataset("smoke", dataset="synthrad", data_dir=tmp_path / "real")
    assert manifest["dataset"] == "synthrad" and sum(manifest["n_slices"].values()) == 18   # every body slice
    s = load_split("smoke", "train")
    assert s.mr.shape[1:] == (1, 16, 16) and s.mask.any()
    np.testing.assert_allclose(s.pixel_spacing, 24.0)               # the model's pixel, whatever the input's
    np.testing.assert_allclose(s.ct[:, 0, 0], -1, atol=0.01)       # rows beyond the 280-mm field of view are air
    assert manifest["model_geometry"]["pixel_mm"] == 24.0
    grid = manifest["grids"][s.patient[0]]
    assert grid["source_spacing"] == [5.0, 7.0, 7.0] and grid["step"][1] == pytest.approx(24.0 / 7.0)


def test_prepare_puts_the_same_anatomy_at_any_pixel_size_on_the_same_grid(root: Path, tmp_path: Path) -> None:
    """One phantom patient at 8-mm pixels in a 384-mm field of view and at 4-mm pixels in a 504-mm one (same
    anatomy): prepared slices agree on the model's 24-mm grid; resized by pixel count they did not (the old bug)."""
    from ctmri.config import get_profile
    from ctmri.data.slices import case_to_slices
    from ctmri.data.render import phantom_at

    coarse = phantom_at(40, pixel_mm=8.0, slice_mm=10.0, fov_mm=384.0)
    fine = phantom_at(40, pixel_mm=4.0, slice_mm=10.0, fov_mm=504.0)
    a, _ = case_to_slices(coarse, get_profile("smoke"))
    b, _ = case_to_slices(fine, get_profile("smoke"))
    assert a["mr"].shape == b["mr"].shape
    body = a["mask"] & b["mask"]
    assert body.sum() > 0.8 * a["mask"].sum()
    assert np.abs(a["ct"] - b["ct"])[:, 0][body].mean() < 0.05       # model units (1 = 1500 HU ...)


def test_too_few_real_patients(root: Path, tmp_path: Path) -> None:
    write_synthrad(make_cases(1, (4, 24, 24), (5.0, 8.0, 8.0)), tmp_path / "one")
    with pytest.raises(DataError, match="Found 1 patient"):
        prepare_dataset("smoke", dataset="synthrad", data_dir=tmp_path / "one")
    with pytest.raises(DataError, match="Unknown dataset kind 'dicom'"):
        prepare_dataset("smoke", dataset="dicom", data_dir=tmp_path / "one")


def test_context_stack_puts_the_slice_first_then_its_neighbours_and_repeats_the_edges() -> None:
    """2.5-D condition: channel 0 is the slice itself, then z-1, z+1 (k = 1), within each patient, edges repeated."""
    from ctmri.data.slices import context_stack

    z = np.array([2, 0, 1, 0, 1])                     # two patients, rows out of order
    patient = np.array(["a", "a", "a", "b", "b"])
    images = (10 * (patient == "b") + z).astype(np.float32)[:, None, None, None] * np.ones((1, 1, 2, 2), np.float32)
    out = context_stack(images, patient, z, 1)
    assert out.shape == (5, 3, 2, 2)
    own, below, above = out[:, 0, 0, 0], out[:, 1, 0, 0], out[:, 2, 0, 0]
    assert own.tolist() == [2, 0, 1, 10, 11]
    assert below.tolist() == [1, 0, 0, 10, 10] and above.tolist() == [2, 1, 2, 11, 11]
    assert context_stack(images, patient, z, 0) is images
    with pytest.raises(ValueError, match="contiguous"):
        context_stack(images, patient, np.array([0, 4, 1, 0, 1]), 1)
    with pytest.raises(ValueError, match=">= 0"):
        context_stack(images, patient, z, -1)
