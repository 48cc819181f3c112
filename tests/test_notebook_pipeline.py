"""The whole smoke DAG (data → train → sample → evaluate → figures → explorer) through the real Makefile and
papermill: every notebook of the study runs once, here, with every registered sampler."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctmri.config import METHODS
from ctmri.diffusion.samplers import SAMPLERS as REGISTRY

REPO = Path(__file__).resolve().parents[1]
SAMPLERS = tuple(REGISTRY)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_root() -> Path:
    root = REPO / "build" / "test-root" / "pipeline"
    subprocess.run(["rm", "-rf", str(root)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("CTMRI_ROOT", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    # -j2: two stages at a time on the two cores (kernel start-up dominates smoke stages); the DAG must allow it
    proc = subprocess.run(["make", "-j2", "-C", str(REPO), "reproduce", "PROFILE=smoke", f"ROOT={root}"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return root


def test_every_stage_left_its_artifacts(smoke_root: Path) -> None:
    run = smoke_root / "runs" / "smoke"
    assert (smoke_root / "data" / "processed" / "smoke" / "manifest.json").exists()
    for method in METHODS:
        assert (run / "checkpoints" / f"{method}.pt").stat().st_size > 0
    for sampler in SAMPLERS:
        assert (run / "samples" / f"{sampler}.npz").exists(), sampler
    executed = {p.stem for p in (run / "notebooks").glob("*.ipynb")}
    stages = {"00_prepare_data", "03_evaluate", "04_figures", "05_explore", "06_dose", *(f"01_train_{m}" for m in METHODS),
              *(f"02_sample_{s}" for s in SAMPLERS)}
    assert stages <= executed, sorted(stages - executed)


def test_every_notebook_ran_without_an_error_output(smoke_root: Path) -> None:
    """Every source notebook was executed (papermill) and no executed cell holds an error output."""
    run = smoke_root / "runs" / "smoke" / "notebooks"
    from ctmri.make_vars import stage_notebooks

    sources = {p.stem for p in stage_notebooks(REPO / "notebooks")}     # first_look.ipynb is no stage (nbval)
    executed = list(run.glob("*.ipynb"))
    assert sources <= {p.stem.split("_")[0] + "_" + p.stem.split("_")[1] if p.stem[:2] in ("01", "02") else p.stem
                       for p in executed}, sorted(sources)
    for nb in executed:
        cells = json.loads(nb.read_text())["cells"]
        errors = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, f"{nb.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"


def test_metrics_lie_in_their_physical_ranges(smoke_root: Path) -> None:
    """Finite everywhere, and inside what each metric can be: a broken model or metric code lands outside."""
    m = pd.read_csv(smoke_root / "runs" / "smoke" / "metrics.csv")
    assert len(m) > 0 and np.isfinite(m.drop(columns="ssim").select_dtypes("number").to_numpy(dtype=float)).all()
    assert m["paper_ssim"].between(-1, 1).all() and m["ssim"].dropna().between(-1, 1).all()
    assert (m["paper_psnr"] > 0).all() and (m["psnr"] > 0).all()
    assert m["mae"].between(0, 4024).all()                      # no error can exceed the HU window
    assert m["bone_dice"].between(0, 1).all()
    assert (m["seconds_per_sample"] > 0).all() and (m["nfe"] >= 1).all()


def test_samples_agree_with_the_prepared_data_and_the_metrics(smoke_root: Path, monkeypatch) -> None:
    """Every samples file follows the contract, holds the test split's own slices (per the manifest), stores MC
    statistics and HU maps that match its replicates, and has one metrics row per slice and variant."""
    from ctmri.data.intensity import model_to_hu, std_to_hu
    from ctmri.data.slices import load_split
    from ctmri.sample.store import load_samples

    monkeypatch.setenv("CTMRI_ROOT", str(smoke_root))
    manifest = json.loads((smoke_root / "data" / "processed" / "smoke" / "manifest.json").read_text())
    test = load_split("smoke", "test")
    metrics = pd.read_csv(smoke_root / "runs" / "smoke" / "metrics.csv")
    for sampler in SAMPLERS:
        d = load_samples(smoke_root / "runs" / "smoke" / "samples" / f"{sampler}.npz")
        n = len(d["patient"])
        assert set(d["patient"]) <= set(manifest["patients"]["test"]) and n <= manifest["n_slices"]["test"], sampler
        np.testing.assert_array_equal(d["target"], test.target[d["test_index"]])
        np.testing.assert_array_equal(d["cond"], test.cond[d["test_index"]])
        np.testing.assert_allclose(d["mean"], d["samples"].mean(1), atol=1e-5)
        if d["K"] > 1:
            np.testing.assert_allclose(d["std"], d["samples"].std(1, ddof=1), atol=1e-5)
        np.testing.assert_allclose(d["mean_hu"], model_to_hu(d["mean"][:, 0]), atol=0.05)
        np.testing.assert_allclose(d["std_hu"], std_to_hu(d["std"][:, 0]), atol=0.05)
        if REGISTRY[sampler].method == "ddpm":                # clip_x0 keeps the DDPM family in model space
            assert np.abs(d["samples"]).max() <= 1 + 1e-5, sampler
        assert (metrics["sampler"] == sampler).sum() == n * (2 if d["K"] > 1 else 1), sampler


def test_every_claim_is_evaluated(smoke_root: Path) -> None:
    claims = (smoke_root / "runs" / "smoke" / "claims.md").read_text()
    for claim in ("C1", "C2", "C3", "C4", "C5"):
        line = next(l for l in claims.splitlines() if claim in l)
        assert ("✓" in line or "✗" in line) and "not evaluated" not in line, line


def test_figures_are_written(smoke_root: Path) -> None:
    pngs = list((smoke_root / "figures" / "smoke").glob("*.png"))
    names = " ".join(p.name for p in pngs)
    for fig in ("fig1", "fig2", "fig3", "fig4"):
        assert fig in names, names
    assert all(p.stat().st_size > 1000 for p in pngs)


def test_dose_and_calibration_stages_wrote_their_tables(smoke_root: Path) -> None:
    """06_dose: one row per test patient, whole-volume sampler and modality, gamma in [0, 100]; 03_evaluate's
    calibration: one row per calibrated sampler with coverage in [0, 1], fitted on the validation patients."""
    run = smoke_root / "runs" / "smoke"
    dose = pd.read_csv(run / "dose.csv")
    assert set(dose["modality"]) == {"photons", "protons"} and len(dose) >= 4
    gamma = [c for c in dose.columns if c.startswith("gamma")]
    assert gamma and dose[gamma].stack().between(0, 100).all()
    cal = pd.read_csv(run / "calibration.csv")
    assert len(cal) >= 1 and cal.filter(like="coverage").stack().between(0, 1).all()
    manifest = json.loads((smoke_root / "data" / "processed" / "smoke" / "manifest.json").read_text())
    assert manifest["patients"]["val"] and not set(manifest["patients"]["val"]) & set(manifest["patients"]["test"])
    for f in ("dose.csv", "dose_summary.md", "calibration.md", "fig_calibration.png"):
        assert (smoke_root / "figures" / "smoke" / f).exists(), f
