"""Dose checks the world (issue 24): CT, sCT, MC samples and masks must share the world grid (origin, spacing,
direction), not only the array shape; an MR given as the sCT, a non-positive dose grid and a bad HU table are refused
in one sentence; the dose stage takes its CT and structures from the data set, and skips a data set without them."""
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ctmri.data.phantom import LABELS_FILE, make_case, make_cases, write_synthrad
from ctmri.data.volumes import DataError, read_image
from ctmri.dose.grid import check_same_grid
from ctmri.dose.hu_tables import table_from_csv
from ctmri.dose.structures import TARGET, phantom_structures

SHAPE, SPACING = (12, 48, 48), (5.0, 4.0, 4.0)


def nifti(path: Path, vol_zyx: np.ndarray, spacing=SPACING, shift_mm=(0.0, 0.0, 0.0), flip_z: bool = False) -> str:
    """A (z, y, x) LPS volume as NIfTI like `write_nifti` (affine diag(-sx, -sy, sz)), its origin moved by `shift_mm`
    (RAS), or stored with the slice order reversed and the affine to match (the same world image)."""
    sz, sy, sx = spacing
    affine = np.diag([-sx, -sy, sz, 1.0])
    affine[:3, 3] += shift_mm
    data = np.ascontiguousarray(np.asarray(vol_zyx).transpose(2, 1, 0))
    if flip_z:
        affine[:3, 3] += affine[:3, 2] * (data.shape[2] - 1)
        affine[:3, 2] *= -1
        data = np.ascontiguousarray(data[:, :, ::-1])
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return str(path)


@pytest.fixture(scope="module")
def case():
    c = make_case(3, SHAPE, SPACING)
    return c, phantom_structures(c.labels, c.mask, c.spacing, 7.0)


@pytest.fixture
def files(tmp_path, case):
    """ct, sct, ptv, body NIfTI files of the phantom on one grid."""
    c, s = case
    return {"ct": nifti(tmp_path / "ct.nii.gz", c.ct), "sct": nifti(tmp_path / "sct.nii.gz", c.ct + 20.0 * c.mask),
            "ptv": nifti(tmp_path / "ptv.nii.gz", s[TARGET].astype(np.uint8)),
            "body": nifti(tmp_path / "body.nii.gz", s["BODY"].astype(np.uint8)),
            "mr": nifti(tmp_path / "mr.nii.gz", c.mr)}


def dose_cli(tmp_path, f: dict, *extra: str, sct: str | None = None) -> list[str]:
    return ["dose", "--ct", f["ct"], "--sct", sct or f["sct"], "--structures", f"PTV={f['ptv']}",
            f"BODY={f['body']}", "--out", str(tmp_path / "out"), "--modality", "protons", *extra]


def refused(capsys, argv: list[str]) -> str:
    """`ctmri` exits 2 with one line on stderr and computes nothing; that line."""
    from ctmri.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_an_sct_shifted_50_mm_is_refused_naming_the_file_and_its_origin(tmp_path, case, files, capsys):
    c, _ = case
    shifted = nifti(tmp_path / "shifted.nii.gz", c.ct, shift_mm=(0.0, 0.0, 50.0))
    err = refused(capsys, dose_cli(tmp_path, files, sct=shifted))
    assert f"sCT '{shifted}' has origin" in err and f"the CT '{files['ct']}' has" in err and "50.00" in err
    assert "resample it onto the CT's grid" in err and not (tmp_path / "out").exists()
    from ctmri.dose.pair import check_inputs

    ct, sct = read_image(files["ct"]), read_image(files["sct"])
    with pytest.raises(DataError, match="sCT sample 1 .* has origin"):                # the MC samples alike
        check_inputs(ct, {"sCT": sct, "sCT sample 0": sct, "sCT sample 1": read_image(shifted)}, {}, TARGET)


def test_a_ct_stored_in_flipped_voxel_order_is_refused(tmp_path, case, files, capsys):
    """The same world image with the slices stored in reverse order and the affine to match: refused (the arrays
    would pair different anatomy voxel by voxel), saying the voxels are the same in another order."""
    c, _ = case
    flipped = nifti(tmp_path / "ct_flipped.nii.gz", c.ct, flip_z=True)
    a, b = read_image(flipped), read_image(files["ct"])
    np.testing.assert_array_equal(a.array[::-1], b.array)                     # same image, other voxel order
    err = refused(capsys, dose_cli(tmp_path, {**files, "ct": flipped}))
    assert f"sCT '{files['sct']}' has direction" in err and f"the CT '{flipped}' has" in err


def test_masks_of_a_z_flipped_ct_are_refused(tmp_path, case, files, capsys):
    c, s = case
    ptv = nifti(tmp_path / "ptv_flipped.nii.gz", s[TARGET][::-1].astype(np.uint8), flip_z=True)
    err = refused(capsys, dose_cli(tmp_path, {**files, "ptv": ptv}))
    assert f"Structure 'PTV' '{ptv}' has direction" in err and "the same voxels stored in another order" in err
    coarse = nifti(tmp_path / "body_coarse.nii.gz", s["BODY"].astype(np.uint8), spacing=(5.0, 4.5, 4.0))
    assert "has spacing (5.000, 4.500, 4.000)" in refused(capsys, dose_cli(tmp_path, {**files, "body": coarse}))


def test_the_mr_given_as_sct_is_refused(tmp_path, files, capsys):
    err = refused(capsys, dose_cli(tmp_path, files, sct=files["mr"]))
    assert f"The sCT '{files['mr']}' has no value below -500" in err and "is it an MR" in err


@pytest.mark.parametrize("grid", ["-5", "0", "nan"])
def test_a_non_positive_dose_grid_is_refused(tmp_path, files, capsys, grid):
    err = refused(capsys, dose_cli(tmp_path, files, "--grid-mm", grid))
    assert f"--grid-mm {grid} is not allowed" in err and not (tmp_path / "out").exists()


def test_the_library_refuses_a_non_positive_dose_grid_before_any_plan(case):
    from ctmri.config import DoseConfig
    from ctmri.dose.hu_tables import HuTable
    from ctmri.dose.pair import dose_pair

    c, s = case
    table = HuTable("t", np.array([-1024.0, 3000.0]), np.array([0.0, 2.5]))
    with pytest.raises(DataError, match="dose grid of -5 mm is not allowed"):
        dose_pair(c.ct, c.ct, c.spacing, s, TARGET, DoseConfig(grid_mm=-5.0), table)


@pytest.mark.parametrize("text,row", [
    ("hu,red\n-1024,0.001\n0,1.0,7\n3000,2.5\n", "row 3 ('0,1.0,7') is not two numeric columns"),
    ("hu,red\n-1024,0.001\n# a comment\n0,one\n", "row 4 ('0,one') is not two numeric columns"),
    ("-1024,0.001\n500,1.3\n0,1.0\n", "row 3 has HU 0 after 500; expected HU strictly ascending"),
    ("-1024,0.001\n0,1.0\n0,1.1\n", "row 3 has HU 0 after 0"),
    ("-1024,-0.1\n0,1.0\n", "row 1 has a negative density"),
    ("hu,red\n0,1.0\n", "1 data row(s)"),
])
def test_a_malformed_or_non_monotonic_hu_table_is_refused_naming_the_file_and_row(tmp_path, text, row):
    f = tmp_path / "curve.csv"
    f.write_text(text)
    with pytest.raises(DataError) as err:
        table_from_csv(f)
    msg = str(err.value)
    assert msg.startswith(f"HU table {f}: ") and row in msg and "numpy" not in msg.lower() and "\n" not in msg


def test_ctmri_dose_refuses_a_bad_hu_table_in_one_sentence(tmp_path, files, capsys):
    f = tmp_path / "curve.csv"
    f.write_text("hu,red\n-1024,0.001\n0,1.0,7\n")
    err = refused(capsys, dose_cli(tmp_path, files, "--hu-table", str(f)))
    assert f"HU table {f}: row 3" in err and "Some errors were detected" not in err


def test_grid_check_passes_the_same_grid_and_names_each_difference(tmp_path, case):
    c, _ = case
    ct = read_image(nifti(tmp_path / "a.nii.gz", c.ct))
    check_same_grid(ct, read_image(nifti(tmp_path / "b.nii.gz", c.mr, shift_mm=(0.004, 0.0, 0.0))), "sCT")  # < 0.01
    with pytest.raises(DataError, match=r"has shape 11 × 48 × 48 voxels but the CT .* has 12 × 48 × 48"):
        check_same_grid(ct, read_image(nifti(tmp_path / "c.nii.gz", c.ct[1:])), "sCT")
    with pytest.raises(DataError, match=r"has origin .* mm \(LPS\)"):
        check_same_grid(ct, read_image(nifti(tmp_path / "d.nii.gz", c.ct, shift_mm=(0.02, 0.0, 0.0))), "sCT")


# ----------------------------------------------------------------------------------------------- the stage

def _dataset(folder: Path, labels: bool = True) -> list:
    """Three phantom patients in the SynthRAD layout; without the label maps when `labels` is False."""
    cases = make_cases(3, (8, 48, 48), (10.0, 8.0, 8.0))
    write_synthrad(cases, folder)
    if not labels:
        for c in cases:
            (folder / c.id / LABELS_FILE).unlink()
    return cases


def test_written_labels_give_the_structures_of_the_phantom(tmp_path, case):
    """prepare's raw folder holds each phantom's label map; the stage's structures from it equal those of the
    phantom in memory (so the phantom dose numbers stay); masks in structures/ override, each grid checked."""
    from ctmri.dose.stage import load_patient

    cases = _dataset(tmp_path / "raw")
    c = cases[1]
    ct, spacing, got = load_patient(tmp_path / "raw", c.id, 7.0)
    want = phantom_structures(c.labels, c.mask, c.spacing, 7.0)
    assert spacing == pytest.approx(c.spacing) and got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    np.testing.assert_array_equal(ct, np.round(c.ct))
    sub = tmp_path / "raw" / c.id / "structures"
    sub.mkdir()
    nifti(sub / "PTV.nii.gz", want[TARGET].astype(np.uint8), spacing=c.spacing)
    _, _, masks = load_patient(tmp_path / "raw", c.id, 7.0)
    assert set(masks) == {"PTV", "BODY"} and np.array_equal(masks["BODY"], c.mask)      # BODY from mask.nii.gz
    nifti(sub / "PTV.nii.gz", want[TARGET].astype(np.uint8), spacing=c.spacing, shift_mm=(0.0, 0.0, 10.0))
    with pytest.raises(DataError, match=r"Structure 'PTV' '.*PTV.nii.gz' has origin"):
        load_patient(tmp_path / "raw", c.id, 7.0)


def test_the_stage_skips_a_data_set_without_structures(tmp_path, monkeypatch, capsys):
    """A data set with CTs but no structures: one sentence, an empty dose.csv and a dose_summary.md saying it was
    skipped, no error (the rest of the study runs)."""
    import pandas as pd

    from ctmri.data.prepare import prepare_dataset
    from ctmri.dose.stage import run_dose

    monkeypatch.setenv("CTMRI_ROOT", str(tmp_path / "root"))
    _dataset(tmp_path / "real", labels=False)
    prepare_dataset("smoke", dataset="synthrad", data_dir=tmp_path / "real")
    capsys.readouterr()
    assert run_dose("smoke") == []
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1 and out.startswith("Dose stage skipped: none of the 1 test patient(s) has "
                                                         "structures")
    run = tmp_path / "root" / "runs" / "smoke"
    assert pd.read_csv(run / "dose.csv").empty and pd.read_csv(run / "dose_uncertainty.csv").empty
    assert (run / "dose_summary.md").read_text().startswith("Dose stage skipped")


@pytest.mark.slow
def test_the_stage_plans_on_the_phantom_labels_and_an_sct_equal_to_the_ct_gives_zero_difference(tmp_path, monkeypatch,
                                                                                                   capsys):
    """prepare (phantom, smoke) → a samples file whose MC mean and samples are the test CT slices → run_dose: the
    CT and structures come from the raw folder, the sCT maps back onto the same voxels: dose MAE 0, γ 100 %."""
    pytest.importorskip("pyRadPlan")
    import pandas as pd

    from ctmri.data.prepare import load_manifest, load_split, prepare_dataset
    from ctmri.diffusion.samplers import default_sampler
    from ctmri.dose.stage import run_dose
    from ctmri.sample.store import save_samples

    monkeypatch.setenv("CTMRI_ROOT", str(tmp_path))
    prepare_dataset("smoke")
    assert all((Path(load_manifest("smoke")["source"]) / p / LABELS_FILE).is_file()
               for p in load_manifest("smoke")["patients"]["test"])
    t = load_split("smoke", "test")
    save_samples("smoke", default_sampler(), samples=np.repeat(t.ct[:, None], 2, axis=1), mean=t.ct,
                 std=np.zeros_like(t.ct), target=t.ct, mask=t.mask, patient=t.patient, slice_index=t.slice_index,
                 seconds_per_sample=np.float32(0.0), nfe=np.float32(1.0))
    rows = run_dose("smoke")
    assert {r["modality"] for r in rows} == {"photons", "protons"}
    for r in rows:
        assert r["dose_mae_pct"] == 0.0 and r["gamma_2_2"] == 100.0 and r["d_PTV_D98"] == 0.0, r
    assert len(pd.read_csv(tmp_path / "runs" / "smoke" / "dose.csv")) == 2
    assert "skipped" not in capsys.readouterr().out
