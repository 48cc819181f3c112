"""The other direction, stage by stage through the command line (the notebooks run once, in
test_notebook_pipeline.py): DIRECTION=ct2mr on smoke (CT in, synthetic T2w MR out), then `ctmri synthesize` with
the ct2mr checkpoint on a phantom CT volume. Two methods keep it short (DDPM, CNN)."""
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
pytestmark = pytest.mark.slow


def ctmri(*args: str, root: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ctmri.cli", *args, "--profile", "smoke", "--root", str(root)],
                          capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if k != "CTMRI_ROOT"})
    assert proc.returncode == 0, f"ctmri {' '.join(args)}: " + proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def ct2mr_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ct2mr")
    ctmri("prepare", "--direction", "ct2mr", root=root)
    for method in ("ddpm", "cnn"):
        ctmri("train", "--method", method, root=root)
        ctmri("sample", "--sampler", method, root=root)
    ctmri("evaluate", root=root)
    ctmri("figures", root=root)
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
    assert list((ct2mr_root / "figures" / "smoke").glob("*.png"))


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
