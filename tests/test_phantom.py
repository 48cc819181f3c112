"""The pelvis phantom (data/README.md, "The phantom"): determinism, tissue values, the air/bone ambiguity."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ctmri.data import phantom as P
from ctmri.data.readers import read_synthrad

SHAPE, SPACING = (10, 160, 160), (6.0, 2.4, 2.4)  # fine enough in-plane for voxels of one pure tissue


@pytest.fixture(scope="module")
def cases() -> list:
    return [P.make_case(seed, SHAPE, SPACING) for seed in range(4)]


def pure(labels: np.ndarray, label: int) -> np.ndarray:
    """Voxels whose 3×3 in-plane neighbourhood is all `label` (no partial volume, little blur)."""
    return ndimage.binary_erosion(labels == label, structure=np.ones((1, 3, 3), bool))


def test_same_seed_same_volumes() -> None:
    a, b = P.make_case(7, (6, 48, 48), (8.0, 8.0, 8.0)), P.make_case(7, (6, 48, 48), (8.0, 8.0, 8.0))
    for name in ("mr", "ct", "mask", "labels"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = P.make_case(8, (6, 48, 48), (8.0, 8.0, 8.0))
    assert not np.array_equal(a.ct, c.ct)


def test_case_contract(cases: list) -> None:
    case = cases[0]
    assert case.mr.shape == case.ct.shape == case.mask.shape == case.labels.shape == SHAPE
    assert case.mr.dtype == case.ct.dtype == np.float32 and case.mask.dtype == bool
    assert case.spacing == SPACING and case.id == "phantom000"
    assert case.mr.min() >= 0 and -1024 <= case.ct.min() and case.ct.max() <= 3071
    assert not case.mask[:, 0, :].any() and case.mask[:, SHAPE[1] // 2, SHAPE[2] // 2].all()


@pytest.mark.parametrize("label, lo, hi", [(P.FAT, -125, -75), (P.MUSCLE, 25, 60), (P.URINE, -10, 20),
                                           (P.MARROW, 200, 420), (P.AIR, -1010, -990)])
def test_tissue_hu_close_to_table(cases: list, label: int, lo: float, hi: float) -> None:
    values = np.concatenate([c.ct[pure(c.labels, label)] for c in cases])
    assert values.size > 20
    assert lo <= values.mean() <= hi, (label, values.mean())


def test_cortical_bone_and_mr_contrast(cases: list) -> None:
    for c in cases:
        bone = c.ct[c.labels == P.CORTICAL]
        assert 900 <= np.percentile(bone, 95) <= 1700
        med = {lab: np.median(c.mr[pure(c.labels, lab)]) for lab in (P.URINE, P.FAT, P.MUSCLE)}
        assert med[P.URINE] > med[P.FAT] > 2 * med[P.MUSCLE]


def test_every_structure_appears(cases: list) -> None:
    seen = set(np.unique(np.concatenate([c.labels.ravel() for c in cases])))
    assert seen == set(P.LABELS.values())


def test_anatomy_varies_by_seed(cases: list) -> None:
    urine = [int((c.labels == P.URINE).sum()) for c in cases]
    body = [int(c.mask.sum()) for c in cases]
    assert len(set(urine)) == len(cases) and len(set(body)) == len(cases)


def test_air_and_bone_both_dark_on_mr_but_2000_hu_apart(cases: list) -> None:
    with_gas = [c for c in cases if (c.labels == P.GAS).any()]
    assert with_gas
    for c in with_gas:
        fat = np.median(c.mr[pure(c.labels, P.FAT)])
        gas = (c.labels == P.GAS) & (c.ct < -700)
        bone = (c.labels == P.CORTICAL) & (c.ct > 900)
        assert gas.any() and bone.any()
        assert c.mr[gas].mean() < 0.2 * fat and c.mr[bone].mean() < 0.2 * fat
        assert c.meta["hu"]["cortical_bone"] - c.meta["hu"]["rectal_gas"] >= 2000     # the tissues
        bright = np.percentile(c.ct[c.labels == P.CORTICAL], 95)                     # the voxels
        dark = np.percentile(c.ct[c.labels == P.GAS], 5)
        assert bright - dark >= 1900, (bright, dark)


def test_rectal_gas_can_lie_next_to_bone() -> None:
    near = 0
    for seed in range(8):
        c = P.make_case(seed, (24, 96, 96), (5.0, 4.0, 4.0))
        gas = c.labels == P.GAS
        if gas.any():
            dist = ndimage.distance_transform_edt(c.labels != P.CORTICAL, sampling=c.spacing)
            near += dist[gas].min() <= 8.0
    assert near >= 3


def test_noise_and_bias_present(cases: list) -> None:
    c = cases[0]
    air = pure(c.labels, P.AIR)
    assert 8 <= c.ct[air].std() <= 22            # CT noise ~10–20 HU
    assert 0.005 <= c.mr[air].mean() <= 0.06     # Rician floor of the background
    assert 0.1 <= c.meta["mr_bias_amplitude"] <= 0.3


def test_write_synthrad_round_trip(tmp_path) -> None:
    cases = P.make_cases(2, (6, 40, 48), (7.0, 8.0, 7.5), first_seed=3)
    folders = P.write_synthrad(cases, tmp_path)
    assert [f.name for f in folders] == ["phantom003", "phantom004"]
    for f in folders:
        assert {p.name for p in f.iterdir()} == {"mr.nii.gz", "ct.nii.gz", "mask.nii.gz", "phantom_labels.nii.gz"}
    import nibabel as nib
    img = nib.load(str(folders[0] / "ct.nii.gz"))
    assert img.shape == (48, 40, 6)                                   # (x, y, z) on disk
    np.testing.assert_allclose(np.abs(np.diag(img.affine))[:3], (7.5, 8.0, 7.0))
    back = read_synthrad(tmp_path)
    assert [c.id for c in back] == ["phantom003", "phantom004"]
    for a, b in zip(cases, back):
        assert b.spacing == pytest.approx(a.spacing)
        np.testing.assert_array_equal(b.mr, a.mr)
        np.testing.assert_array_equal(b.ct, np.round(a.ct))
        np.testing.assert_array_equal(b.mask, a.mask)


def test_misregistration_moves_only_the_mr_by_at_most_the_amplitude() -> None:
    """The smooth MR-CT warp: CT, labels and mask unchanged; the MR moves; the largest displacement is the asked
    amplitude in mm; amplitude 0 leaves the patient as it was."""
    from ctmri.data.phantom import _misregistration

    shape, spacing = (12, 64, 64), (3.0, 3.0, 3.0)
    exact, moved = P.make_case(5, shape, spacing), P.make_case(5, shape, spacing, misregistration_mm=2.0)
    assert np.array_equal(exact.ct, moved.ct) and np.array_equal(exact.labels, moved.labels)
    assert np.array_equal(exact.mask, moved.mask) and not np.allclose(exact.mr, moved.mr)
    assert np.array_equal(P.make_case(5, shape, spacing, misregistration_mm=0.0).mr, exact.mr)
    d = _misregistration(5, shape, spacing, 2.0) * np.asarray(spacing[1:])[:, None, None, None]
    assert np.sqrt((d ** 2).sum(axis=0)).max() == pytest.approx(2.0, rel=1e-4)
    assert moved.meta["misregistration_mm"] == 2.0
