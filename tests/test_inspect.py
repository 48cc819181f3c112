"""`ctmri inspect` (issue 24): patients, series, geometry and each reader's pick in a DICOM tree, a SynthRAD folder
and single files, as a table and as JSON."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ctmri.cli import main
from ctmri.data.inspection import format_report, inspect_path
from ctmri.data.volumes import DataError, axis_code, write_nifti
from test_series_selection import write_series

SAGITTAL = (0, 1, 0, 0, 0, -1)  # rows along +P, columns along -S (I); slices sorted along row × column = -x (R)


@pytest.fixture()
def tree(tmp_path: Path) -> dict[str, str]:
    """Two patients: p1 axial T2 + T1 + CTtoMR; p2 a sagittal T2 and a CTtoMR."""
    root = tmp_path / "atlas"
    uids = {"p1_t2": write_series(root / "p1" / "MR", "T2 tse ax", 4, patient_id="P1"),
            "p1_t1": write_series(root / "p1" / "MR", "T1 vibe", 4, offset=7, patient_id="P1"),
            "p1_ct": write_series(root / "p1" / "CT", "CTtoMR", 4, ct=True, patient_id="P1"),
            "p2_t2": write_series(root / "p2", "t2 sag", 5, iop=SAGITTAL, step=(4.0, 0.0, 0.0), patient_id="P2"),
            "p2_ct": write_series(root / "p2", "CTtoMR", 3, ct=True, patient_id="P2")}
    return {**uids, "root": str(root)}


def by_desc(patient: dict) -> dict[str, dict]:
    return {row["description"]: row for row in patient["series"]}


def by_uid(patient: dict) -> dict[str, dict]:
    return {row["uid"]: row for row in patient["series"]}


def test_axis_codes() -> None:
    assert axis_code(np.eye(3)) == "LPS"
    assert axis_code(np.diag([-1.0, -1.0, 1.0])) == "RAS"
    assert axis_code(np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], float)) == "PIL"
    c, s = np.cos(0.3), np.sin(0.3)
    assert axis_code(np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])) == "oblique"
    assert axis_code(np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]], float)) == "oblique"   # two axes along x


def test_dicom_tree_series_and_picks(tree: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTMRI_GOLDATLAS_MR", raising=False)
    monkeypatch.delenv("CTMRI_GOLDATLAS_CT", raising=False)
    report = inspect_path(tree["root"])
    assert report["kind"] == "dicom" and [p["id"] for p in report["patients"]] == ["p1", "p2"]
    p1, p2 = report["patients"]
    assert p1["patient_id"] == "P1" and report["notes"] == []
    t2 = by_desc(p1)["T2 tse ax"]
    assert t2 == {"modality": "MR", "description": "T2 tse ax", "size": [64, 64, 4], "spacing": [0.3125, 0.3125, 3.0],
                  "orientation": "LPS", "slices": 4, "uid": tree["p1_t2"]}
    assert [r["description"] for r in p1["series"]] == ["CTtoMR", "T1 vibe", "T2 tse ax"]
    sag = by_desc(p2)["t2 sag"]
    assert sag["orientation"] == "PIR" and sag["size"] == [64, 64, 5] and sag["spacing"][2] == pytest.approx(4.0)
    picks = p1["picks"]
    assert picks["goldatlas_mr"]["uid"] == tree["p1_t2"] and picks["goldatlas_ct"]["uid"] == tree["p1_ct"]
    assert picks["synthesize"]["matches"] == 3 and "holds 3 DICOM series" in picks["synthesize"]["error"]
    assert p2["picks"]["goldatlas_mr"]["uid"] == tree["p2_t2"]
    chosen = inspect_path(tree["root"], series="desc=*T2*", mr_series="modality=MR", ct_series="nothing")
    p1, p2 = chosen["patients"]
    assert p1["picks"]["synthesize"]["uid"] == tree["p1_t2"] and p2["picks"]["synthesize"]["uid"] == tree["p2_t2"]
    tie = max(tree["p1_t2"], tree["p1_t1"])                  # equally full: the reader's rule takes the larger uid
    assert p1["picks"]["goldatlas_mr"] == {"selector": "modality=MR", "matches": 2, "uid": tie, "modality": "MR",
                                           "description": by_uid(p1)[tie]["description"], "slices": 4}
    assert "has no registered CT series matching desc=nothing" in p1["picks"]["goldatlas_ct"]["error"]


def test_cli_table_and_json(tree: dict[str, str], capsys: pytest.CaptureFixture,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTMRI_GOLDATLAS_MR", "desc=T1")
    assert main(["inspect", tree["root"]]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{tree['root']}: DICOM tree, 2 patients")
    line = next(row for row in out.splitlines() if "T2 tse ax" in row).split()
    assert line[0] == "MR" and "64×64×4" in line and "0.3125×0.3125×3" in line and "LPS" in line
    assert line[-2:] == ["4", tree["p1_t2"]]
    assert "p1 (PatientID P1):" in out and "PIR" in out
    assert "synthesize:   none: 3 series, none chosen by default; choose with --series uid=<uid>" in out
    assert f"goldatlas MR: MR 'T1 vibe', 4 slices, uid {tree['p1_t1']}" in out           # the environment's choice
    assert main(["inspect", tree["root"], "--json", "--series", "T2"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got == json.loads(json.dumps(inspect_path(tree["root"], series="T2")))
    assert got["patients"][0]["picks"]["synthesize"]["uid"] == tree["p1_t2"]
    assert main(["inspect", str(Path(tree["root"]) / "nowhere")]) == 2
    assert "nowhere' does not exist" in capsys.readouterr().err


def test_one_patient_given_as_the_tree_is_noted(tree: dict[str, str]) -> None:
    report = inspect_path(Path(tree["root"]) / "p1")
    assert [p["id"] for p in report["patients"]] == ["CT", "MR"]
    assert "holds PatientID P1: this may be one patient's folder" in report["notes"][0]
    assert "note: every sub-folder" in format_report(report)


def test_unreadable_patient_is_reported_not_raised(tree: dict[str, str]) -> None:
    (Path(tree["root"]) / "p2" / "IM_broken").write_bytes(b"not dicom at all" * 8)
    p1, p2 = inspect_path(tree["root"])["patients"]
    assert "uid" in p1["picks"]["goldatlas_mr"]
    assert "IM_broken' is not a DICOM file" in p2["error"]
    assert "! " in format_report(inspect_path(tree["root"]))


def write_mha(path: Path, array: np.ndarray, spacing=(1.0, 1.5, 3.0), direction=None) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing)
    if direction is not None:
        img.SetDirection([float(v) for v in np.asarray(direction).ravel()])
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


def test_synthrad_folder_and_single_files(tmp_path: Path) -> None:
    pytest.importorskip("SimpleITK")
    vol = np.zeros((3, 4, 5), np.float32)
    root = tmp_path / "Task1"
    for stem in ("mr", "ct", "mask"):
        write_mha(root / "AB" / "1ABA001" / f"{stem}.mha", vol, direction=np.diag([-1.0, 1.0, 1.0]))
    write_nifti(root / "TH" / "1THB002" / "mr.nii.gz", vol, (3.0, 1.5, 1.0))
    write_nifti(root / "TH" / "1THB002" / "ct.nii.gz", vol, (3.0, 1.5, 1.0))
    report = inspect_path(root)
    assert report["kind"] == "synthrad" and [p["id"] for p in report["patients"]] == ["1ABA001", "1THB002"]
    ab, th = report["patients"]
    assert [(r["modality"], r["description"]) for r in ab["series"]] == [("MR", "mr.mha"), ("CT", "ct.mha"),
                                                                         ("mask", "mask.mha")]
    assert ab["series"][0]["size"] == [5, 4, 3] and ab["series"][0]["spacing"] == [1.0, 1.5, 3.0]
    assert ab["series"][0]["orientation"] == "RPS" and th["series"][0]["orientation"] == "LPS"
    assert ab["picks"]["synthrad_mask"]["file"].endswith("1ABA001/mask.mha")
    assert "no mask.nii.gz" in th["picks"]["synthrad_mask"]["error"]
    assert th["picks"]["synthesize"]["file"].endswith("1THB002/mr.nii.gz")
    import nibabel as nib

    nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0), np.diag([1.0, 1.5, 3.0, 1.0])), str(tmp_path / "ras.nii.gz"))
    (one,) = inspect_path(tmp_path / "ras.nii.gz")["patients"]
    assert one["series"][0]["orientation"] == "RAS" and one["series"][0]["size"] == [5, 4, 3]
    dcm = sorted((Path(write_series_dir(tmp_path))).iterdir())[0]
    (one,) = inspect_path(dcm)["patients"]
    assert one["series"][0]["slices"] == 1 and one["picks"]["synthesize"]["slices"] == 1
    with pytest.raises(DataError, match="does not exist"):
        inspect_path(tmp_path / "nowhere")


def write_series_dir(tmp_path: Path) -> Path:
    write_series(tmp_path / "dcm", "T2", 2)
    return tmp_path / "dcm"


def test_tilted_and_rotated_stacks_are_oblique(tmp_path: Path) -> None:
    """Axial rows and columns with slices stepping 1 mm back per 3 mm up (gantry tilt): the slice axis is off-axis."""
    write_series(tmp_path / "tilt", "T2 tilt", 3, step=(0.0, 1.0, 3.0))
    c, s = np.cos(0.2), np.sin(0.2)
    write_series(tmp_path / "rot", "T2 rot", 3, iop=(c, s, 0, -s, c, 0))
    (tilt,) = inspect_path(tmp_path / "tilt")["patients"][0]["series"]
    (rot,) = inspect_path(tmp_path / "rot")["patients"][0]["series"]
    assert tilt["orientation"] == rot["orientation"] == "oblique"
    assert tilt["spacing"][2] == pytest.approx(3.0)            # the spacing along the slice normal
