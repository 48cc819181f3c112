"""Realistic-format fixtures (data/fixtures.py): a SynthRAD-style NIfTI / .mha folder and a Gold-Atlas-style DICOM
tree read back exactly by the readers and the dose stage; then the whole smoke DAG (`make reproduce`) on each, the
default sampler only, the two runs side by side (issue 24, item 7)."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctmri.config import get_profile
from ctmri.data.fixtures import write_goldatlas_fixture, write_synthrad_fixture
from ctmri.data.intensity import model_to_hu
from ctmri.data.readers import read_goldatlas, read_synthrad
from ctmri.data.volumes import read_geometry, scan_series
from ctmri.diffusion.samplers import default_sampler

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("synthrad", "goldatlas")


def _same_case(got, want, atol: float = 0.0) -> None:
    """A read case equals the fixture's truth: LPS arrays, spacing."""
    assert got.shape == want.shape, (got.id, got.shape, want.shape)
    assert got.spacing == pytest.approx(want.spacing, abs=1e-4), got.id
    np.testing.assert_allclose(got.mr, want.mr, atol=atol, err_msg=got.id)
    np.testing.assert_allclose(got.ct, want.ct, atol=atol, err_msg=got.id)


# ----------------------------------------------------------------------------------------------- the fixtures

def test_synthrad_fixture_is_heterogeneous_and_reads_back_as_rendered(tmp_path: Path) -> None:
    """Three patients, each its own voxel size, non-square field of view, slice spacing and stored orientation
    (LPS NIfTI, RAS NIfTI with a uint16 + scl_inter CT, .mha): the SynthRAD reader gives each one's rendered volumes
    in LPS order, the CT in HU."""
    import nibabel as nib

    truth = write_synthrad_fixture(tmp_path)
    stored = {p: read_geometry(next((tmp_path / p).glob("ct.*"))) for p in truth}
    assert [stored[p].orientation for p in sorted(truth)] == ["LPS", "RAS", "LPS"]
    scaled = nib.load(tmp_path / "1PA002" / "ct.nii.gz")
    assert scaled.get_data_dtype() == np.uint16 and (scaled.dataobj.slope, scaled.dataobj.inter) == (1.0, -1024.0)
    assert (tmp_path / "1PA003" / "mr.mha").is_file() and (tmp_path / "1PA001" / "mask.nii.gz").is_file()
    assert len({c.spacing for c in truth.values()}) == 3 and all(c.shape[1] != c.shape[2] for c in truth.values())
    cases = read_synthrad(tmp_path)
    assert [c.id for c in cases] == sorted(truth)
    for c in cases:
        _same_case(c, truth[c.id])
        np.testing.assert_array_equal(c.mask, truth[c.id].mask)


def test_goldatlas_fixture_holds_every_series_and_reads_back_in_hu(tmp_path: Path) -> None:
    """Per patient a T2, a T1, the registered CT (int16, RescaleSlope / Intercept, padding), an unregistered CT and an
    RTSTRUCT; one patient oblique and feet-first: the Gold Atlas reader picks the T2 and the CTtoMR and gives them in
    HU, LPS order, exactly as rendered."""
    import pydicom

    truth = write_goldatlas_fixture(tmp_path)
    for pid, want in truth.items():
        series = scan_series(tmp_path / pid)
        assert sorted(s.modality for s in series) == ["CT", "CT", "MR", "MR"], pid
        rtstructs = [f for f in (tmp_path / pid).rglob("RS.*.dcm")]
        assert len(rtstructs) == 1, pid
        ct = next(s for s in series if "CTtoMR" in s.description)
        first = ct.first
        assert first.PixelRepresentation == 1 and float(first.RescaleSlope) == want.meta["rescale"][0], pid
        assert float(first.RescaleIntercept) == want.meta["rescale"][1] and "PixelPaddingValue" in first, pid
        assert pydicom.dcmread(rtstructs[0]).Modality == "RTSTRUCT"
    orientations = {pid: read_geometry(tmp_path / pid, series="desc=CTtoMR").orientation for pid in truth}
    assert orientations == {"1_01_P": "LPS", "1_02_P": "LPS", "1_03_P": "oblique"}
    assert {c.meta["rescale"][0] for c in truth.values()} == {1.0, 0.5}
    cases = read_goldatlas(tmp_path)
    assert [c.id for c in cases] == sorted(truth)
    for c in cases:
        assert c.meta["ct_series"].startswith("CTtoMR") and "T2" in c.meta["mr_series"]
        _same_case(c, truth[c.id])


def test_the_dose_stage_reads_a_goldatlas_patient(tmp_path: Path) -> None:
    """The dose stage takes a DICOM patient's registered CT (HU, LPS order) and the structures of the RTSTRUCT that
    references it, found below the patient folder (subfolders or flat): equal to the rendered phantom's."""
    from ctmri.dose.stage import load_patient

    truth = write_goldatlas_fixture(tmp_path)
    for pid, want in truth.items():
        got = load_patient(tmp_path, pid, 7.0)
        assert not isinstance(got, str), got
        ct, spacing, structures = got
        assert spacing == pytest.approx(want.spacing, abs=1e-4)
        outside = want.meta["padding"]
        np.testing.assert_array_equal(ct[~outside], want.ct[~outside], err_msg=pid)
        assert structures.keys() == want.meta["structures"].keys()
        for name, mask in want.meta["structures"].items():
            np.testing.assert_array_equal(structures[name], mask, err_msg=f"{pid} {name}")


# ----------------------------------------------------------------------------------------------- the DAG

def _make(root: Path, dataset: str, data_dir: Path) -> subprocess.Popen:
    """`make reproduce` at smoke size on one fixture, the default sampler only, into a scratch ROOT."""
    env = {k: v for k, v in os.environ.items() if k not in ("CTMRI_ROOT", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env["OMP_NUM_THREADS"] = "1"                        # two DAGs share the two cores
    argv = ["make", "-j2", "-C", str(REPO), "reproduce", "PROFILE=smoke", f"DATASET={dataset}", f"DATA_DIR={data_dir}",
            f"ROOT={root / 'run'}", f"SAMPLERS={default_sampler()}"]
    with open(root / "make.log", "w") as log:           # the child keeps its own handle
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def dags() -> dict[str, dict]:
    """Both fixtures written, both DAGs run side by side; per dataset its root, truth and wall seconds."""
    base = REPO / "build" / "test-root" / "fixtures"
    subprocess.run(["rm", "-rf", str(base)], check=True)
    first = subprocess.run(["make", "-s", "-C", str(REPO), "--no-print-directory", "print-METHODS"],
                           capture_output=True, text=True, timeout=300)      # build/make/vars.mk, once, before both
    assert first.returncode == 0, first.stderr
    out = {}
    for dataset, write in (("synthrad", write_synthrad_fixture), ("goldatlas", write_goldatlas_fixture)):
        root = base / dataset
        root.mkdir(parents=True)
        out[dataset] = {"root": root / "run", "truth": write(root / "data"), "data": root / "data"}
    start = time.perf_counter()
    procs = {d: _make(base / d, d, out[d]["data"]) for d in DATASETS}
    for d, proc in procs.items():
        proc.wait(timeout=900)
        out[d]["seconds"] = time.perf_counter() - start
        out[d]["returncode"] = proc.returncode
        out[d]["log"] = (base / d / "make.log").read_text()
    print({d: round(out[d]["seconds"]) for d in DATASETS})
    return out


def _manifest(root: Path) -> dict:
    return json.loads((root / "data" / "processed" / "smoke" / "manifest.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("dataset", DATASETS)
def test_the_dag_ran_every_stage_without_an_error(dags: dict, dataset: str) -> None:
    d = dags[dataset]
    assert d["returncode"] == 0, d["log"][-4000:]
    executed = {p.stem for p in (d["root"] / "runs" / "smoke" / "notebooks").glob("*.ipynb")}
    assert {"00_prepare_data", "01_train_vesde", f"02_sample_{default_sampler()}", "03_evaluate", "04_figures",
            "05_explore", "06_dose"} <= executed, sorted(executed)
    for nb in (d["root"] / "runs" / "smoke" / "notebooks").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        errors = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])
                  if o["output_type"] == "error"]
        assert not errors, f"{nb.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"


@pytest.mark.slow
@pytest.mark.parametrize("dataset", DATASETS)
def test_the_manifest_records_each_patients_own_geometry(dags: dict, dataset: str) -> None:
    """Every patient prepared from its own voxels and field of view onto the profile's physical model pixel; the
    validation patient drawn from the non-test ones."""
    d = dags[dataset]
    manifest, pixel = _manifest(d["root"]), get_profile("smoke").data.model_pixel_mm
    assert manifest["dataset"] == dataset and manifest["model_geometry"]["pixel_mm"] == pixel
    assert sorted(sum(manifest["patients"].values(), [])) == sorted(d["truth"])
    assert len(manifest["patients"]["test"]) == len(manifest["patients"]["val"]) == 1
    for pid, case in d["truth"].items():
        grid = manifest["grids"][pid]
        assert tuple(grid["source_shape"]) == case.shape, pid
        assert grid["source_spacing"] == pytest.approx(case.spacing, abs=1e-4), pid
        model = np.asarray(grid["step"]) * np.asarray(grid["source_spacing"])
        assert model[1:] == pytest.approx([pixel, pixel]) and grid["size"] == get_profile("smoke").data.image_size


@pytest.mark.slow
@pytest.mark.parametrize("dataset", DATASETS)
def test_every_prepared_ct_is_in_hu_and_the_test_patient_has_metrics(dags: dict, dataset: str) -> None:
    """The prepared CT of every patient reads as HU (soft tissue inside the body), and 03_evaluate scored the test
    patient's slices with the default sampler."""
    d = dags[dataset]
    processed = d["root"] / "data" / "processed" / "smoke"
    for split in ("train", "val", "test"):
        with np.load(processed / f"{split}.npz") as z:
            for pid in np.unique(z["patient"]):
                rows = z["patient"] == pid
                median = float(np.median(model_to_hu(z["ct"][rows, 0][z["mask"][rows]])))
                assert -150 < median < 150, (split, pid, median)
    metrics = pd.read_csv(d["root"] / "runs" / "smoke" / "metrics.csv")
    test = _manifest(d["root"])["patients"]["test"]
    mine = metrics[metrics["patient"].astype(str).isin(test)]
    assert len(mine) > 0 and set(mine["sampler"]) == {default_sampler()}
    assert mine["mae"].between(0, 4024).all() and np.isfinite(mine["mae"]).all()


@pytest.mark.slow
def test_the_goldatlas_dose_comes_from_the_rtstruct(dags: dict) -> None:
    """06_dose planned on the test patient's registered CT with its RTSTRUCT's structures: photon and proton rows
    with the RTSTRUCT's organs; the SynthRAD fixture (no structures) was skipped in one sentence."""
    run = dags["goldatlas"]["root"] / "runs" / "smoke"
    dose = pd.read_csv(run / "dose.csv")
    assert set(dose["modality"]) == {"photons", "protons"} and len(dose) == 2
    assert set(dose["patient"].astype(str)) == set(_manifest(dags["goldatlas"]["root"])["patients"]["test"])
    for organ in ("RECTUM", "BLADDER", "FEMUR_L", "FEMUR_R"):
        assert dose[f"d_{organ}_D2"].notna().all(), organ
    assert dose["gamma_2_2"].between(0, 100).all()
    skipped = (dags["synthrad"]["root"] / "runs" / "smoke" / "dose_summary.md").read_text()
    assert skipped.startswith("Dose stage skipped") and "RTSTRUCT" in skipped
