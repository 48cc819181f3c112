"""Readers of real data (data/README.md, "Bringing real data"): DICOM series, Gold Atlas, SynthRAD2023, bad input."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from ctmri.data.readers import Case, DataError, read_dataset, read_goldatlas, read_synthrad
from ctmri.data.volumes import read_dicom_series, read_volume, write_nifti
from ctmri.data.phantom import make_cases, write_synthrad


def dcm_path(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not shipped with this pydicom")
    return path


def write_series(folder: Path, template: str, description: str, n: int, rng: np.random.Generator, *,
                 size: int | None = None, offset: int = 100, step=(0.0, 0.0, 3.0), iop=None,
                 spacing: float | None = None) -> list[int]:
    """n slices of a pydicom test file: slice k = pixels + offset·k at origin + k·step; file names shuffled."""
    uid = generate_uid(entropy_srcs=[str(folder), description])
    order = rng.permutation(n)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        ds = pydicom.dcmread(dcm_path(template))
        arr = ds.pixel_array
        if size is not None:
            arr = arr[:: arr.shape[0] // size, :: arr.shape[1] // size]
            ds.Rows, ds.Columns = arr.shape
        ds.PixelData = (arr.astype(np.int32) + offset * k).astype(arr.dtype).tobytes()
        ds.SeriesDescription, ds.SeriesInstanceUID = description, uid
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[uid, str(k)])
        ds.InstanceNumber = int(order[k]) + 1                    # deliberately not the spatial order
        if iop is not None:
            ds.ImageOrientationPatient = list(iop)
        if spacing is not None:
            ds.PixelSpacing = [spacing, spacing]
        ds.ImagePositionPatient = [float(v) for v in np.array([-80.0, -90.0, 6.0]) + k * np.asarray(step)]
        ds.save_as(folder / f"{rng.integers(1 << 40):012x}")   # shuffled, meaningless file names
    return [offset * k for k in range(n)]


# ---------------------------------------------------------------------------------------------- pydicom files

def test_ct_small_gives_hu() -> None:
    vol, spacing, meta = read_dicom_series(dcm_path("CT_small.dcm"))
    assert vol.shape == (1, 128, 128) and vol.dtype == np.float32
    assert vol.min() == -896 and vol.max() == 1167
    assert meta["rescaled"] and spacing[1:] == pytest.approx((0.661468, 0.661468))


def test_mr_small_no_rescale_path() -> None:
    vol, spacing, meta = read_dicom_series(dcm_path("MR_small.dcm"))
    raw = pydicom.dcmread(dcm_path("MR_small.dcm")).pixel_array
    assert not meta["rescaled"] and meta["modality"] == "MR"
    np.testing.assert_array_equal(vol[0], raw.astype(np.float32))
    assert spacing[1:] == pytest.approx((0.3125, 0.3125))


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm"])
def test_transfer_syntaxes_give_the_same_array(name: str) -> None:
    ref, _, _ = read_dicom_series(dcm_path("MR_small.dcm"))
    vol, _, _ = read_dicom_series(dcm_path(name))
    np.testing.assert_array_equal(vol, ref)


def test_series_sorted_along_oblique_normal_with_padding(tmp_path: Path) -> None:
    # Sagittal slices: normal = row × column = (0,1,0) × (0,0,-1) = (-1,0,0), so larger x comes first.
    offsets = write_series(tmp_path, "MR_small.dcm", "t2 sag", 5, np.random.default_rng(1),
                           step=(10.0, 0.0, 0.0), iop=(0, 1, 0, 0, 0, -1))
    vol, spacing, meta = read_dicom_series(tmp_path)
    base = pydicom.dcmread(dcm_path("MR_small.dcm")).pixel_array.astype(np.float32)
    for z, k in enumerate(reversed(range(5))):
        np.testing.assert_array_equal(vol[z], base + offsets[k])
    assert spacing[0] == pytest.approx(10.0) and not meta["padding_mask"].any()
    ds = pydicom.dcmread(meta["files"][0])
    arr = ds.pixel_array.copy()
    arr[:4, :4] = 0
    ds.PixelData = arr.tobytes()
    ds.add_new(0x00280120, "SS" if ds.PixelRepresentation else "US", 0)  # PixelPaddingValue
    ds.save_as(meta["files"][0])
    vol, _, meta = read_dicom_series(tmp_path)
    assert meta["padding_mask"][0, :4, :4].all() and meta["padding_mask"].sum() == 16
    assert vol[0, 0, 0] == vol[~meta["padding_mask"]].min()


# ---------------------------------------------------------------------------------------------- Gold Atlas

@pytest.fixture()
def goldatlas(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "goldatlas"
    for patient, n in (("1_01_P", 5), ("1_02_P", 4)):
        write_series(root / patient / "MR", "MR_small.dcm", "T2 tse ax", n, rng)
        write_series(root / patient / "MR", "MR_small.dcm", "T1 vibe", n, rng, offset=7)  # a distractor
        write_series(root / patient / "CT" / "reg", "CT_small.dcm", "CTtoMR deformed", n, rng, size=64,
                     offset=10, spacing=0.3125)
        (root / patient / "readme.txt").write_text("not DICOM, skipped by its suffix")
    return root


def test_goldatlas_folder_read_in_order(goldatlas: Path) -> None:
    cases = read_goldatlas(goldatlas)
    assert [c.id for c in cases] == ["1_01_P", "1_02_P"]
    mr0 = pydicom.dcmread(dcm_path("MR_small.dcm")).pixel_array.astype(np.float32)
    ct0 = pydicom.dcmread(dcm_path("CT_small.dcm")).pixel_array[::2, ::2].astype(np.float32) - 1024
    for case, n in zip(cases, (5, 4)):
        assert case.mr.shape == case.ct.shape == (n, 64, 64) and case.mask is None
        assert case.spacing == pytest.approx((3.0, 0.3125, 0.3125))
        assert case.meta["mr_series"] == "T2 tse ax" and case.meta["ct_series"] == "CTtoMR deformed"
        for k in range(n):
            np.testing.assert_array_equal(case.mr[k], mr0 + 100 * k)
            np.testing.assert_array_equal(case.ct[k], ct0 + 10 * k)
    assert len(read_dataset("goldatlas", goldatlas)) == 2


def test_goldatlas_without_t2_series(goldatlas: Path) -> None:
    for f in (goldatlas / "1_02_P" / "MR").iterdir():
        if "T2" in str(pydicom.dcmread(f, stop_before_pixels=True).SeriesDescription):
            f.unlink()
    with pytest.raises(DataError, match=r"1_02_P.*no T2-weighted MR series.*'T1 vibe'"):
        read_goldatlas(goldatlas)


def test_goldatlas_shape_mismatch_names_case_and_shapes(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    write_series(tmp_path / "p1", "MR_small.dcm", "T2", 3, rng)
    write_series(tmp_path / "p1", "CT_small.dcm", "CTtoMR", 3, rng)
    with pytest.raises(DataError, match=re.escape("'p1'") + r".*\(3, 64, 64\).*\(3, 128, 128\)"):
        read_goldatlas(tmp_path)


def test_non_dicom_file_is_named(goldatlas: Path, tmp_path: Path) -> None:
    junk = goldatlas / "1_01_P" / "MR" / "IM_0001"
    junk.write_bytes(b"this is not a DICOM file" * 10)
    with pytest.raises(DataError, match=r"IM_0001.*not a DICOM file"):
        read_goldatlas(goldatlas)
    with pytest.raises(DataError, match=r"IM_0001.*not a DICOM file"):
        read_dicom_series([junk])


# ---------------------------------------------------------------------------------------------- SynthRAD

def test_synthrad_task1_pelvis_layout(tmp_path: Path) -> None:
    cases = make_cases(2, (4, 24, 24), (5.0, 8.0, 8.0))
    for c, name in zip(cases, ("1PA001", "1PC002")):
        c.id = name
    write_synthrad(cases, tmp_path / "Task1" / "pelvis")
    (tmp_path / "Task1" / "pelvis" / "1PA001" / "mask.nii.gz").unlink()
    for root in (tmp_path, tmp_path / "Task1" / "pelvis", tmp_path / "Task1" / "pelvis" / "1PC002"):
        got = read_synthrad(root)
        assert [c.id for c in got] == (["1PA001", "1PC002"] if root.name != "1PC002" else ["1PC002"])
    a, b = read_synthrad(tmp_path)
    assert a.mask is None and b.mask is not None and b.mask.dtype == bool
    np.testing.assert_array_equal(b.mr, cases[1].mr)
    assert len(read_dataset("phantom", tmp_path)) == len(read_dataset("synthrad", tmp_path)) == 2


def test_mha_without_simpleitk(tmp_path: Path) -> None:
    pytest.importorskip("nibabel")
    try:
        import SimpleITK  # noqa: F401
        pytest.skip("SimpleITK installed")
    except ImportError:
        pass
    (tmp_path / "p").mkdir()
    for stem in ("mr", "ct"):
        (tmp_path / "p" / f"{stem}.mha").write_bytes(b"ObjectType = Image\n")
    with pytest.raises(DataError, match=r"mr\.mha.*SimpleITK"):
        read_synthrad(tmp_path)


# ---------------------------------------------------------------------------------------------- bad input

def one_volume_case(folder: Path, mr_shape=(4, 8, 8), ct_shape=(4, 8, 8), nan: bool = False) -> None:
    ct = np.zeros(ct_shape, np.float32)
    if nan:
        ct[1, 2, 3] = np.nan
    write_nifti(folder / "mr.nii.gz", np.ones(mr_shape, np.float32), (3.0, 1.0, 1.0))
    write_nifti(folder / "ct.nii.gz", ct, (3.0, 1.0, 1.0))


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(str(tmp_path)) + ".*empty"):
        read_synthrad(tmp_path)
    with pytest.raises(DataError, match="empty"):
        read_goldatlas(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        read_synthrad(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="No patient folders"):
        read_synthrad(tmp_path)


def test_patient_folder_without_ct(tmp_path: Path) -> None:
    write_nifti(tmp_path / "1PA007" / "mr.nii.gz", np.ones((4, 8, 8), np.float32), (3.0, 1.0, 1.0))
    with pytest.raises(DataError, match=r"1PA007.*no ct\.nii\.gz"):
        read_synthrad(tmp_path)


def test_mr_ct_shape_mismatch(tmp_path: Path) -> None:
    one_volume_case(tmp_path / "1PB003", ct_shape=(4, 8, 9))
    with pytest.raises(DataError, match=r"'1PB003'.*MR shape \(4, 8, 8\) and CT shape \(4, 8, 9\)"):
        read_synthrad(tmp_path)


def test_nan_in_volume(tmp_path: Path) -> None:
    one_volume_case(tmp_path / "1PB004", nan=True)
    with pytest.raises(DataError, match=r"'1PB004'.*CT volume contains 1 NaN"):
        read_synthrad(tmp_path)
    case = Case("x", np.ones((2, 2, 2), np.float32), np.full((2, 2, 2), np.inf, np.float32))
    with pytest.raises(DataError, match="'x'.*8 NaN/inf"):
        case.validate()


def test_unreadable_nifti(tmp_path: Path) -> None:
    one_volume_case(tmp_path / "1PA009")
    (tmp_path / "1PA009" / "ct.nii.gz").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"1PA009/ct\.nii\.gz.*NIfTI"):
        read_synthrad(tmp_path)


def test_unknown_dataset_kind(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'nifti'.*phantom, synthrad, goldatlas"):
        read_dataset("nifti", tmp_path)
    with pytest.raises(DataError, match="needs a data folder"):
        read_dataset("synthrad", "")
    assert issubclass(DataError, ValueError)


# ---------------------------------------------------------------------------------------------- issue 10: bad input

def test_truncated_dicom_slice_is_named(tmp_path: Path) -> None:
    write_series(tmp_path, "CT_small.dcm", "CTtoMR", 4, np.random.default_rng(3))
    victim = sorted(tmp_path.iterdir())[1]
    raw = victim.read_bytes()
    victim.write_bytes(raw[:raw.rfind(b"\xe0\x7f\x10\x00")])         # cut just before (7FE0,0010) PixelData
    with pytest.raises(DataError, match=re.escape(victim.name) + r".*ends before its pixel data"):
        read_dicom_series(tmp_path)
    victim.write_bytes(raw[:len(raw) // 2])                           # cut inside the pixel data
    with pytest.raises(DataError, match=re.escape(victim.name) + r".*truncated or corrupt"):
        read_dicom_series(tmp_path)


def test_missing_dicom_slice_is_a_gap_not_absorbed(tmp_path: Path) -> None:
    write_series(tmp_path, "MR_small.dcm", "T2", 6, np.random.default_rng(4))
    files = {float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]): f for f in tmp_path.iterdir()}
    files[sorted(files)[3]].unlink()
    with pytest.raises(DataError, match=r"has a gap: slices .* are 6 mm apart where the others are 3 mm; a slice "
                                        r"file is missing"):
        read_dicom_series(tmp_path)


def test_two_d_nifti(tmp_path: Path) -> None:
    import nibabel as nib
    from ctmri.data.volumes import read_volume

    nib.save(nib.Nifti1Image(np.ones((8, 8), np.float32), np.eye(4)), str(tmp_path / "mr.nii.gz"))
    with pytest.raises(DataError, match=r"mr\.nii\.gz' holds a 2-D array of shape \(8, 8\); expected a 3-D volume"):
        read_volume(tmp_path / "mr.nii.gz")


def _case(mr: np.ndarray, ct: np.ndarray) -> Case:
    return Case("1PA042", mr.astype(np.float32), ct.astype(np.float32))


def test_ct_not_in_hu_swapped_and_constant_mr_name_the_patient() -> None:
    case = make_cases(1, (4, 24, 24), (5.0, 8.0, 8.0))[0]
    with pytest.raises(DataError, match=r"'1PA042'.*CT.s darkest voxels .* at \+\d+, not near -1000.*Hounsfield"):
        _case(case.mr, case.ct + 1024).check_intensities()          # air at +24: the raw stored values
    with pytest.raises(DataError, match=r"'1PA042'.*MR and CT look swapped"):
        _case(case.ct, case.mr).check_intensities()
    with pytest.raises(DataError, match=r"'1PA042'.*MR volume is constant \(7\)"):
        _case(np.full(case.mr.shape, 7.0), case.ct).check_intensities()
    _case(case.mr, case.ct).check_intensities()


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


# ---------------------------------------------------------------------------------------------- issue 24: SynthRAD2025

def write_mha(path: Path, lps: np.ndarray, spacing: tuple[float, float, float], flip_x: bool = False) -> None:
    """An (S, P, L) volume as .mha (SimpleITK); flip_x stores x running toward R (direction diag(-1, 1, 1))."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(lps[:, :, ::-1] if flip_x else lps))
    img.SetSpacing((spacing[2], spacing[1], spacing[0]))
    img.SetDirection((-1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0) if flip_x else (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    img.SetOrigin((10.0, -20.0, 30.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


def test_synthrad2025_region_layout_mha(tmp_path: Path) -> None:
    """SynthRAD2025 task 1: <region>/<patient>/{mr,ct,mask}.mha; a top folder of regions, of patients, or one."""
    pytest.importorskip("SimpleITK")
    cases = make_cases(3, (4, 24, 24), (5.0, 8.0, 8.0))
    top = tmp_path / "synthRAD2025_Task1_Train" / "Task1"
    layout = (("AB", "1ABA005", True), ("AB", "1ABC011", False), ("TH", "1THB002", True))
    for case, (region, pid, flip) in zip(cases, layout):
        for stem, vol in (("mr", case.mr), ("ct", case.ct), ("mask", case.mask.astype(np.uint8))):
            write_mha(top / region / pid / f"{stem}.mha", vol, case.spacing, flip_x=flip)
    (top / "AB" / "overview").mkdir()
    (top / "AB" / "overview" / "1_AB_train_parameters.xlsx").write_bytes(b"not a volume")
    got = read_synthrad(top)
    assert [c.id for c in got] == ["1ABA005", "1ABC011", "1THB002"]
    for case, c in zip(cases, got):
        np.testing.assert_array_equal(c.mr, case.mr)        # back in LPS order whatever the stored direction
        np.testing.assert_array_equal(c.ct, case.ct)
        np.testing.assert_array_equal(c.mask, case.mask)
        assert c.spacing == pytest.approx(case.spacing) and c.meta["files"]["mr"].endswith(".mha")
    assert [c.id for c in read_synthrad(top / "AB")] == ["1ABA005", "1ABC011"]
    assert [c.id for c in read_synthrad(top / "TH" / "1THB002")] == ["1THB002"]
    assert len(read_dataset("synthrad", tmp_path)) == 3


def test_synthrad_mixed_suffixes_and_clashing_ids(tmp_path: Path) -> None:
    """.nii.gz and .mha side by side in one patient; one patient name in two regions gets region/patient ids."""
    pytest.importorskip("SimpleITK")
    a, b = make_cases(2, (4, 24, 24), (5.0, 8.0, 8.0))
    write_mha(tmp_path / "HN" / "1X001" / "mr.mha", a.mr, a.spacing, flip_x=True)
    write_nifti(tmp_path / "HN" / "1X001" / "ct.nii.gz", a.ct, a.spacing)
    write_nifti(tmp_path / "TH" / "1X001" / "mr.nii.gz", b.mr, b.spacing)
    write_mha(tmp_path / "TH" / "1X001" / "ct.mha", b.ct, b.spacing)
    got = read_synthrad(tmp_path)
    assert [c.id for c in got] == ["HN/1X001", "TH/1X001"]
    for case, c in zip((a, b), got):
        np.testing.assert_array_equal(c.mr, case.mr)
        np.testing.assert_array_equal(c.ct, case.ct)
        assert c.mask is None
