"""The other direction through the real Makefile: DIRECTION=ct2mr on smoke (CT in, synthetic T2w MR out), then
`ctmri synthesize` with the ct2mr checkpoint on a phantom CT volume. Two methods keep it short (DDPM, CNN)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ct2mr_root() -> Path:
    root = REPO / "build" / "test-root" / "ct2mr"
    subprocess.run(["rm", "-rf", str(root)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("CTMRI_ROOT", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    proc = subprocess.run(["make", "-C", str(REPO), "figures", "PROFILE=smoke", "DIRECTION=ct2mr", f"ROOT={root}",
                           "SAMPLERS=ddpm cnn"], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return root


def test_ct2mr_pipeline_runs_end_to_end(ct2mr_root: Path) -> None:
    manifest = json.loads((ct2mr_root / "data" / "processed" / "smoke" / "manifest.json").read_text())
    assert manifest["direction"] == "ct2mr"
    run = ct2mr_root / "runs" / "smoke"
    for sampler in ("ddpm", "cnn"):
        with np.load(run / "samples" / f"{sampler}.npz") as z:
            assert str(z["direction"]) == "ct2mr" and np.isfinite(z["samples"]).all()
            assert "mean_hu" not in z.files                # the target is an MR: no HU maps
    m = pd.read_csv(run / "metrics.csv")
    assert set(m["sampler"]) == {"ddpm", "cnn"} and np.isfinite(m["paper_ssim"]).all()
    assert (ct2mr_root / "runs" / "smoke" / "figures.done").exists()


def test_synthesize_with_the_ct2mr_checkpoint(ct2mr_root: Path, tmp_path: Path) -> None:
    from ctmri.data.phantom import make_case
    from ctmri.data.volumes import read_image, write_nifti

    case = make_case(7, shape=(6, 48, 48), spacing=(10.0, 8.0, 8.0))
    ct = write_nifti(tmp_path / "ct.nii.gz", case.ct, case.spacing)
    out = tmp_path / "out"
    ckpt = ct2mr_root / "runs" / "smoke" / "checkpoints" / "cnn.pt"
    proc = subprocess.run([sys.executable, "-m", "ctmri.cli", "synthesize", "--input", str(ct), "--checkpoint",
                           str(ckpt), "--out", str(out), "--no-progress"],
                          env={**os.environ, "CTMRI_ROOT": str(ct2mr_root)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    written = sorted(p.name for p in out.iterdir())
    assert {"smr.nii.gz", "smr_std.nii.gz", "smr.json"} <= set(written), written
    img = read_image(out / "smr.nii.gz")
    assert img.array.shape == case.ct.shape         # the input's grid, voxel for voxel
