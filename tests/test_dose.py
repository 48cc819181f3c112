"""The dose stage (lib/ctmri/dose, issue 18): identity, HU offsets move protons more than photons, clear refusals,
`ctmri dose` on a NIfTI pair."""
import json

import numpy as np
import pytest

pytest.importorskip("pyRadPlan")
pytest.importorskip("pymedphys")

from ctmri.config import DoseConfig  # noqa: E402
from ctmri.data.phantom import make_case  # noqa: E402
from ctmri.dose.hu_tables import default_table, table_from_csv  # noqa: E402
from ctmri.dose.pair import check_inputs, dose_pair  # noqa: E402
from ctmri.dose.structures import TARGET, phantom_structures  # noqa: E402

CFG = DoseConfig(grid_mm=5.0, photon_beams=5, bixel_mm=6.0, gamma_points=500)


@pytest.fixture(scope="module")
def case():
    c = make_case(3, (12, 48, 48), (5.0, 4.0, 4.0))
    return c, phantom_structures(c.labels, c.mask, c.spacing, 7.0)


@pytest.fixture(scope="module")
def offset_rows(case):
    c, s = case
    sct = c.ct + 60.0 * c.mask
    rows, _ = dose_pair(c.ct, sct, c.spacing, s, TARGET, CFG, default_table())
    return {r["modality"]: r for r in rows}


@pytest.fixture(scope="module")
def identity(case):
    """The proton plan recomputed on an sCT equal to the CT, counting pymedphys' gamma calls."""
    import pymedphys

    c, s = case
    calls = []
    real = pymedphys.gamma
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pymedphys, "gamma", lambda *a, **k: calls.append(1) or real(*a, **k))
        rows, cubes = dose_pair(c.ct, c.ct.copy(), c.spacing, s, TARGET, CFG, default_table(), modalities=("protons",))
    return rows, cubes, len(calls)


def test_same_ct_gives_identical_dose(identity):
    rows, cubes, gamma_calls = identity
    assert rows[0]["gamma_2_2"] == 100.0 and rows[0]["gamma_1_1"] == 100.0
    assert gamma_calls == 2                                   # both gammas computed, no shortcut for equal doses
    assert rows[0]["dose_mae_pct"] == 0.0 and abs(rows[0]["d_PTV_D98"]) == 0.0
    assert cubes["protons"]["ct"].max() > 0.5 * CFG.fraction_gy
    assert rows[0]["hu_table"] == "pyRadPlan-default" and len(rows[0]["hu_table_digest"]) == 16


def test_gamma_of_a_planted_5_percent_dose_change_fails_points(identity, case):
    """The same gamma that passes identical doses at 100 % fails points of the plan's dose scaled by 1.05."""
    from ctmri.dose.metrics import gamma_pass

    ref = identity[1]["protons"]["ct"]
    spacing = case[0].spacing
    assert gamma_pass(ref, ref.copy(), spacing, 2.0, 2.0, 500) == 100.0
    assert gamma_pass(ref, 1.05 * ref, spacing, 2.0, 2.0, 500) < 100.0
    assert gamma_pass(ref, 1.05 * ref, spacing, 1.0, 1.0, 500) < 90.0
    assert gamma_pass(ref, 1.005 * ref, spacing, 2.0, 2.0, 500) == 100.0   # within 2 %: passes


def test_denser_body_moves_protons_more_and_lowers_their_d98(offset_rows):
    ph, pr = offset_rows["photons"], offset_rows["protons"]
    assert pr["d_PTV_D98"] < 0
    assert pr["dose_mae_pct"] > ph["dose_mae_pct"]
    assert abs(pr["d_PTV_D98"]) > abs(ph["d_PTV_D98"])


def test_refusals_are_one_sentence(case):
    c, s = case
    with pytest.raises(ValueError, match="does not match the CT grid"):
        check_inputs(c.ct, {"sCT": c.ct[1:]}, s, TARGET)
    with pytest.raises(ValueError, match="No target structure 'GTV'"):
        check_inputs(c.ct, {"sCT": c.ct}, s, "GTV")
    with pytest.raises(ValueError, match="outside the HU range"):
        check_inputs(c.ct, {"sCT": c.ct / 1000.0 - 5000.0}, s, TARGET)


def test_user_hu_table(tmp_path):
    f = tmp_path / "curve.csv"
    f.write_text("hu,red\n-1024,0.001\n0,1.0\n3000,2.5\n")
    t = table_from_csv(f)
    assert t.name == "csv:curve.csv" and t.as_array().shape == (3, 2) and t.digest != default_table().digest
    f.write_text("1,2,3\n")
    with pytest.raises(ValueError, match="row 1 .* is not two numeric columns"):
        table_from_csv(f)


def test_cli_dose_on_nifti_pair(tmp_path, case, capsys):
    from ctmri.cli import main
    from ctmri.data.volumes import write_nifti

    c, s = case
    write_nifti(tmp_path / "ct.nii.gz", c.ct, c.spacing)
    write_nifti(tmp_path / "sct.nii.gz", c.ct + 20.0 * c.mask, c.spacing)
    write_nifti(tmp_path / "ptv.nii.gz", s[TARGET].astype(np.uint8), c.spacing)
    write_nifti(tmp_path / "body.nii.gz", s["BODY"].astype(np.uint8), c.spacing)
    out = tmp_path / "out"
    main(["dose", "--ct", str(tmp_path / "ct.nii.gz"), "--sct", str(tmp_path / "sct.nii.gz"), "--structures",
          f"PTV={tmp_path / 'ptv.nii.gz'}", f"BODY={tmp_path / 'body.nii.gz'}", "--target", "PTV", "--out", str(out),
          "--modality", "protons", "--grid-mm", "5"])
    rows = json.loads((out / "dose.json").read_text())["rows"]
    assert rows[0]["modality"] == "protons" and rows[0]["gamma_2_2"] > 50
    assert (out / "dose.csv").exists() and "gamma" in capsys.readouterr().out
    assert main(["dose", "--ct", str(tmp_path / "ct.nii.gz"), "--sct", str(tmp_path / "sct.nii.gz"), "--structures",
                 f"PTV={tmp_path / 'ptv.nii.gz'}", "--target", "CTV", "--out", str(out)]) == 2
    assert "No target structure 'CTV'" in capsys.readouterr().err


def _rtstruct(path, image, rois: dict) -> None:
    """A minimal RT Structure Set: ROI name -> list of (slice k, [(i, j), ...] polygon in voxel units)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.Modality, ds.SOPClassUID, ds.SOPInstanceUID = "RTSTRUCT", meta.MediaStorageSOPClassUID, generate_uid()
    ds.StructureSetROISequence, ds.ROIContourSequence = Sequence(), Sequence()
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName = number, name
        ds.StructureSetROISequence.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber, rc.ContourSequence = number, Sequence()
        for k, poly in contours:
            ijk = np.array([[i, j, k, 1.0] for i, j in poly])
            c = Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.ContourData = [float(v) for v in (image.affine_lps @ ijk.T)[:3].T.ravel()]
            c.NumberOfContourPoints = len(poly)
            rc.ContourSequence.append(c)
        ds.ROIContourSequence.append(rc)
    ds.save_as(path, enforce_file_format=True)


def _square(lo: float, hi: float) -> list[tuple[float, float]]:
    return [(lo, lo), (hi, lo), (hi, hi), (lo, hi)]


def test_rtstruct_contours_fill_the_voxels_they_enclose_on_nifti_and_dicom_ct(tmp_path, case):
    """Squares with corners between voxel centres fill exactly the voxels inside, on the CT read from NIfTI and from
    its DICOM series (one patient frame); a nested contour cuts a hole; bad files are refused in one sentence."""
    from ctmri.data.volumes import read_image, write_nifti
    from ctmri.data.writers import write_dicom_series
    from ctmri.dose.rtstruct import masks_from_rtstruct, rtstruct_names

    c, _ = case
    write_nifti(tmp_path / "ct.nii.gz", c.ct, c.spacing)
    nifti = read_image(tmp_path / "ct.nii.gz")
    write_dicom_series(tmp_path / "ct_dicom", nifti, nifti.array)
    rois = {"PTV": [(k, _square(19.5, 27.5)) for k in (4, 5, 6)],
            "Body": [(k, _square(1.5, 45.5)) for k in range(12)],
            "RING": [(5, _square(9.5, 37.5)), (5, _square(19.5, 27.5))]}
    _rtstruct(tmp_path / "rs.dcm", nifti, rois)
    assert rtstruct_names(tmp_path / "rs.dcm") == ["PTV", "Body", "RING"]
    expect = np.zeros(c.ct.shape, bool)
    expect[4:7, 20:28, 20:28] = True
    for ct in (nifti, read_image(tmp_path / "ct_dicom")):
        m = masks_from_rtstruct(tmp_path / "rs.dcm", ct)
        np.testing.assert_array_equal(m["PTV"], expect)
        assert m["Body"].sum() == 12 * 44 * 44
        ring = np.zeros(c.ct.shape, bool)
        ring[5, 10:38, 10:38] = True
        ring[5, 20:28, 20:28] = False
        np.testing.assert_array_equal(m["RING"], ring)
        check_inputs(ct.array, {"sCT": ct.array}, m, "PTV")     # "Body" counts as the outline
    with pytest.raises(ValueError, match="has no ROI 'CTV'"):
        masks_from_rtstruct(tmp_path / "rs.dcm", nifti, ["CTV"])
    with pytest.raises(ValueError, match="not an RT Structure Set"):
        masks_from_rtstruct(next((tmp_path / "ct_dicom").iterdir()), nifti)
    _rtstruct(tmp_path / "off.dcm", nifti, {"PTV": [(40, _square(19.5, 27.5))]})
    with pytest.raises(ValueError, match="not on a slice of the CT"):
        masks_from_rtstruct(tmp_path / "off.dcm", nifti)
    with pytest.raises(ValueError, match="No BODY / EXTERNAL structure"):
        check_inputs(c.ct, {"sCT": c.ct}, {"PTV": expect}, "PTV")


def test_cli_dose_reads_an_rtstruct(tmp_path, case, capsys):
    """`ctmri dose --rtstruct`: its ROIs are the structures (checked before any dose is computed)."""
    from ctmri.cli import main
    from ctmri.data.volumes import read_image, write_nifti

    c, _ = case
    write_nifti(tmp_path / "ct.nii.gz", c.ct, c.spacing)
    _rtstruct(tmp_path / "rs.dcm", read_image(tmp_path / "ct.nii.gz"), {"Prostate": [(5, _square(19.5, 27.5))]})
    args = ["dose", "--ct", str(tmp_path / "ct.nii.gz"), "--sct", str(tmp_path / "ct.nii.gz"), "--rtstruct",
            str(tmp_path / "rs.dcm"), "--out", str(tmp_path / "out")]
    assert main(args) == 2 and "No target structure 'PTV' was given (have: Prostate)" in capsys.readouterr().err
    assert main(args + ["--target", "Prostate"]) == 2 and "No BODY / EXTERNAL" in capsys.readouterr().err


def test_a_structure_smaller_than_a_dose_voxel_does_not_break_the_proton_plan(case):
    """A one-voxel OAR (as a femoral-head fragment once was) is empty on the dose grid; pyRadPlan then returned zero
    weights and every sCT passed γ at 100 % on a zero dose. It now gets no objective, and the plan covers the PTV."""
    from ctmri.dose.plans import optimise

    c, s = case
    speck = np.zeros_like(s["BODY"])
    speck[6, 24, 10] = True
    plan = optimise(c.ct, c.spacing, {**s, "SPECK": speck}, "protons", CFG, default_table())
    assert np.median(plan.dose[s[TARGET]]) > 0.8 * CFG.fraction_gy
    assert s["FEMUR_L"].sum() > 10 and s["FEMUR_R"].sum() > 10     # both femoral heads found beside the PTV
