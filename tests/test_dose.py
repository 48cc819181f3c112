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


def test_same_ct_gives_identical_dose(case):
    c, s = case
    rows, cubes = dose_pair(c.ct, c.ct.copy(), c.spacing, s, TARGET, CFG, default_table(), modalities=("protons",))
    assert rows[0]["gamma_2_2"] == 100.0 and rows[0]["gamma_1_1"] == 100.0
    assert rows[0]["dose_mae_pct"] == 0.0 and abs(rows[0]["d_PTV_D98"]) == 0.0
    assert cubes["protons"]["ct"].max() > 0.5 * CFG.fraction_gy
    assert rows[0]["hu_table"] == "pyRadPlan-default" and len(rows[0]["hu_table_digest"]) == 16


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
    with pytest.raises(ValueError, match="two numeric columns"):
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
