"""Calibrated MC uncertainty wired into the study (issue 19): the validation split, its samples from the sampling
stage, the calibration report of 03_evaluate and its figure, the interval volume of `ctmri synthesize`, and
benchmarks/bench_calibration.py on a tiny smoke run."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from ctmri.config import get_profile
from ctmri.data.intensity import hu_to_model
from ctmri.evaluate.calibration import calibrate, coverage
from conftest import make_smoke_run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch CTMRI_ROOT: smoke data (one validation patient), VE and DDPM trained 3 steps, their default samplers
    sampled (test + validation)."""
    return make_smoke_run(tmp_path_factory.mktemp("calib-root"), ("vesde", "ddpm"), ("dpm++2m-ve", "ddpm"))


@pytest.fixture
def root(smoke_run: Path, monkeypatch: pytest.MonkeyPatch, one_thread) -> Path:
    monkeypatch.setenv("CTMRI_ROOT", str(smoke_run))
    return smoke_run


# ----------------------------------------------------------------------------------------------- validation split

def test_validation_patients_are_extra_and_leave_train_and_test_unchanged(root: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from ctmri.data.prepare import has_validation, load_manifest, load_split, prepare_dataset
    from ctmri.data.readers import DataError

    with_val = load_manifest("smoke")
    p = with_val["patients"]
    assert len(p["val"]) == 1 and not set(p["val"]) & (set(p["train"]) | set(p["test"]))
    assert not set(p["train"]) & set(p["test"])
    val = load_split("smoke", "val")
    assert set(val.patient) == set(p["val"]) and len(val) == with_val["n_slices"]["val"] > 0

    old = tmp_path / "no-val"                           # the same profile without validation patients
    monkeypatch.setenv("CTMRI_ROOT", str(old))
    smoke = get_profile("smoke")
    prepare_dataset(dataclasses.replace(smoke, data=dataclasses.replace(smoke.data, n_val_patients=0)))
    without = load_manifest("smoke")
    assert without["patients"]["train"] == p["train"] and without["patients"]["test"] == p["test"]
    assert without["patients"]["val"] == [] and without["digest"] == with_val["digest"]   # checkpoints stay valid
    for split in ("train", "test"):
        with np.load(old / "data/processed/smoke" / f"{split}.npz") as a, \
                np.load(root / "data/processed/smoke" / f"{split}.npz") as b:
            assert all(np.array_equal(a[k], b[k]) for k in a.files)
    assert not has_validation("smoke")
    with pytest.raises(DataError, match="no validation patients"):
        load_split("smoke", "val")


def test_real_data_takes_validation_patients_from_the_non_test_pool() -> None:
    from ctmri.data.prepare import split_patients, split_validation

    train, test = split_patients([f"p{i}" for i in range(8)], 2, seed=0)
    rest, val = split_validation(train, 2, seed=0)
    assert len(val) == 2 and set(rest) | set(val) == set(train) and not set(val) & set(test)
    assert split_validation(train, 2, seed=0) == (rest, val) and split_validation(train, 0, 0) == (train, [])


# ----------------------------------------------------------------------------------------------- conformal

def test_known_gaussian_std_gives_90_percent_coverage_on_fresh_data() -> None:
    rng = np.random.default_rng(0)

    def draw(n):
        mean = rng.uniform(-1000, 1500, n)
        std = rng.uniform(5, 150, n)
        return mean, std, mean + std * rng.standard_normal(n), np.ones(n, bool)

    cal = calibrate(*draw(40_000), alpha=0.1, hu_bins=0)
    cov = coverage(cal, *draw(40_000))
    assert 0.88 <= cov["overall"] <= 0.92
    assert all(0.86 <= cov[t] <= 0.94 for t in ("air", "fat", "soft tissue", "bone"))
    assert all(abs(q - 1.645) < 0.08 for q in cal.scales.values())


def _fake_samples(rng, n_slices: int, patients: list[str], informative: bool = True) -> dict:
    """Model-space samples dict with every tissue: CT = mean + true_std · z, reported std ∝ true_std (or random)."""
    h = w = 24
    mean_hu = rng.choice([-900.0, -100.0, 40.0, 700.0], size=(n_slices, h, w))
    true_std = rng.uniform(10, 200, (n_slices, h, w))
    ct_hu = mean_hu + true_std * rng.standard_normal((n_slices, h, w))
    std_hu = true_std if informative else rng.uniform(10, 200, (n_slices, h, w))
    return {"mean": hu_to_model(mean_hu)[:, None], "std": (std_hu / 2012.0)[:, None],
            "target": hu_to_model(ct_hu)[:, None], "mask": np.ones((n_slices, h, w), bool),
            "patient": np.repeat(patients, n_slices // len(patients))}


def test_report_on_synthetic_arrays_separates_an_informative_std_from_noise() -> None:
    from ctmri.evaluate.uncertainty_report import calibrate_sampler

    rng = np.random.default_rng(1)
    cal, rows = calibrate_sampler(_fake_samples(rng, 6, ["v"]), _fake_samples(rng, 8, ["a", "b"]))
    assert [r["scope"] for r in rows] == ["pooled", "a", "b"]
    pooled = rows[0]
    assert 0.87 <= pooled["coverage"] <= 0.93 and pooled["spearman"] > 0.3 and pooled["width_hu"] > 0
    assert pooled["ause_hu"] >= 0 and pooled["n_voxels"] == 8 * 24 * 24
    _, noise = calibrate_sampler(_fake_samples(rng, 6, ["v"], False), _fake_samples(rng, 8, ["a", "b"], False))
    assert abs(noise[0]["spearman"]) < 0.1 and noise[0]["ause_hu"] > pooled["ause_hu"]
    assert 0.86 <= noise[0]["coverage"] <= 0.94          # conformal: coverage holds even for a useless std
    assert abs(noise[0]["spearman_calibrated"]) < 0.1    # and the error scale does not depend on the HU here


def test_report_credits_the_hu_factor_when_the_error_depends_on_the_sct_value() -> None:
    """Error scale set by the sCT HU, std uninformative: ρ(std) ≈ 0 while ρ(u) and ρ(f) are high and AUSE drops."""
    from ctmri.evaluate.uncertainty_report import calibrate_sampler

    rng = np.random.default_rng(2)

    def fake(n_slices: int, patients: list[str]) -> dict:
        d = _fake_samples(rng, n_slices, patients, informative=False)
        mean_hu = rng.uniform(-1000.0, 1000.0, (n_slices, 24, 24))
        ct_hu = mean_hu + (10.0 + 0.15 * (mean_hu + 1000.0)) * rng.standard_normal(mean_hu.shape)
        return {**d, "mean": hu_to_model(mean_hu)[:, None], "target": hu_to_model(ct_hu)[:, None]}

    _, rows = calibrate_sampler(fake(8, ["v1", "v2"]), fake(8, ["a", "b"]))
    p = rows[0]
    assert abs(p["spearman"]) < 0.1 and p["spearman_calibrated"] > 0.4 and p["spearman_hu_factor"] > 0.4
    assert p["ause_calibrated_hu_slice_mean"] < 0.6 * p["ause_hu_slice_mean"] and 0.86 <= p["coverage"] <= 0.94


# ----------------------------------------------------------------------------------------------- the pipeline

def test_sampling_stage_writes_validation_samples_for_every_sampler(root: Path) -> None:
    from ctmri.sample.stage import calibrated_samplers, run_sampler, validation_slices
    from ctmri.sample.store import load_samples

    assert calibrated_samplers()[0] == "dpm++2m-ve" and "ddpm" in calibrated_samplers()
    d = load_samples(root / "runs/smoke/calibration/dpm++2m-ve.npz")
    manifest = json.loads((root / "data/processed/smoke/manifest.json").read_text())
    assert set(d["patient"]) == set(manifest["patients"]["val"]) and d["K"] == get_profile("smoke").sample.mc_samples
    assert str(d["split"]) == "val" and len(d["patient"]) == manifest["n_slices"]["val"]      # whole volumes
    run_sampler("smoke", "heun", progress=False, device="cpu")              # not a default: a few slices
    h = load_samples(root / "runs/smoke/calibration/heun.npz")
    assert len(h["patient"]) == 2 == len(validation_slices(get_profile("smoke"), "heun", manifest["n_slices"]["val"]))
    assert str(h["evaluation"]) == "subset" and str(h["split"]) == "val"
    run_sampler("smoke", "ddim", progress=False, device="cpu", steps=2)      # not at its default settings: no val
    assert not (root / "runs/smoke/calibration/ddim.npz").exists()


def test_validation_slices_take_the_middle_of_each_patient() -> None:
    from ctmri.sample.stage import centred_slices

    assert centred_slices(240, 6).tolist() == [20, 60, 100, 140, 180, 220]
    assert centred_slices(5, 9).tolist() == [0, 1, 2, 3, 4]


def test_calibration_report_and_figure(root: Path) -> None:
    from ctmri.evaluate.uncertainty_report import calibration_report
    from ctmri.figures.calibration import plot_calibration

    written = calibration_report("smoke")
    table = pd.read_csv(written["calibration_csv"])
    assert list(dict.fromkeys(table["sampler"]))[:2] == ["dpm++2m-ve", "ddpm"]     # the defaults first
    assert set(table["scope"]) >= {"pooled"} and table["coverage"].between(0, 1).all()
    assert table["spearman_calibrated"].between(-1, 1).all() and (table["val_slices"] > 0).all()
    text = written["calibration_md"].read_text()
    assert "coverage" in text and "Targets on" in text
    record = json.loads((root / "runs/smoke/checkpoints/vesde.calibration.json").read_text())
    assert record["sampler"] == "dpm++2m-ve" and record["alpha"] == 0.1 and "provenance" in record
    assert set(record["calibration"]["scales"]) == {"air", "fat", "soft tissue", "bone"}
    assert len(record["calibration"]["hu_factors"]) == len(record["calibration"]["hu_edges"]) + 1 >= 2
    png = plot_calibration("smoke")
    assert png == root / "figures/smoke/fig_calibration.png" and png.stat().st_size > 0


def test_synthesize_writes_the_interval_only_with_a_calibration(root: Path, tmp_path: Path) -> None:
    from ctmri.data.phantom import make_case
    from ctmri.data.volumes import write_nifti
    from ctmri.evaluate.uncertainty_report import calibration_report
    from ctmri.sample.synthesize import synthesize

    case = make_case(7, (6, 40, 40), (10.0, 8.0, 8.0))
    mr = write_nifti(tmp_path / "mr.nii.gz", case.mr, case.spacing)
    ckpt = root / "runs/smoke/checkpoints/ddpm.pt"
    cal_json = root / "runs/smoke/checkpoints/ddpm.calibration.json"
    cal_json.unlink(missing_ok=True)
    kw = dict(checkpoint=ckpt, sampler="ddpm", mc_samples=2, device="cpu", progress=False)
    plain = synthesize(mr, tmp_path / "plain", **kw)
    assert "sct_interval90" not in plain["files"] and plain["calibration"] is None
    assert not (tmp_path / "plain" / "sct_interval90.nii.gz").exists()

    calibration_report("smoke")                          # writes ddpm.calibration.json beside the checkpoint
    assert cal_json.exists()
    rec = synthesize(mr, tmp_path / "cal", **kw)
    assert rec["files"]["sct_interval90"] == "sct_interval90.nii.gz" and rec["calibration"]["sampler"] == "ddpm"
    half = nib.load(str(tmp_path / "cal" / "sct_interval90.nii.gz")).get_fdata()
    std = nib.load(str(tmp_path / "cal" / "sct_std.nii.gz")).get_fdata()
    assert half.shape == std.shape and np.all(half >= 0) and np.all(half[std > 0] > 0)
    stored = json.loads(cal_json.read_text())["calibration"]
    bound = max(stored["scales"].values()) * max(stored["hu_factors"]) * (std + stored["floor_hu"])
    assert np.all(half <= bound * 1.0001 + 1e-6) and half.max() > 0

    record = json.loads(cal_json.read_text())             # another sampler's calibration is not applied
    cal_json.write_text(json.dumps({**record, "sampler": "ddim"}))
    other = synthesize(mr, tmp_path / "other", **kw)
    assert "sct_interval90" not in other["files"]
    cal_json.unlink()


def test_bench_calibration_runs_on_a_smoke_run(root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "CTMRI_ROOT": str(root), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks/bench_calibration.py"), "--quick", "--device",
                           "cpu", "--out", str(tmp_path)], env=env, cwd=root, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "calibration.json").read_text())
    rows = report["rows"]
    assert {r["sampler"] for r in rows} == {"dpm++2m-ve", "ddpm"}
    assert {r["eps"] for r in rows if r["sampler"] == "dpm++2m-ve"} == {1e-3, 1e-4}
    assert all(0 <= r["coverage"] <= 1 for r in rows)
    assert (tmp_path / "calibration.md").read_text().strip().splitlines()[-1].startswith("Made at commit")
