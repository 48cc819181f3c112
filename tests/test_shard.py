"""Sampling across torchrun ranks (gloo on CPU): `ctmri sample` and `ctmri synthesize` on 2 ranks give the samples
and the volume one process gives, because every (slice, replicate) pair has its own generator."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from ctmri.data.phantom import make_case
from conftest import make_smoke_run


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Smoke data and a few-step smoke VE model in their own CTMRI_ROOT."""
    return make_smoke_run(tmp_path_factory.mktemp("shard"), ("vesde",))


def ctmri(root: Path, *args: str, ranks: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "CTMRI_ROOT": str(root), "OMP_NUM_THREADS": "1"}
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
                 "-m", "ctmri.cli"] if ranks > 1 else [sys.executable, "-m", "ctmri.cli"])
    proc = subprocess.run(launcher + list(args), env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_ranks_sample_the_test_split_exactly_as_one_process(smoke_root: Path) -> None:
    samples = smoke_root / "runs" / "smoke" / "samples" / "dpm++2m-ve.npz"
    ctmri(smoke_root, "sample", "--profile", "smoke", "--sampler", "dpm++2m-ve", "--mc-samples", "3")
    with np.load(samples) as z:
        one = {k: z[k] for k in ("samples", "seeds", "test_index")}
    samples.unlink()
    ctmri(smoke_root, "sample", "--profile", "smoke", "--sampler", "dpm++2m-ve", "--mc-samples", "3", ranks=2)
    with np.load(samples) as z:
        two = {k: z[k] for k in ("samples", "seeds", "test_index")}
    assert one["samples"].shape[0] > 2 and np.array_equal(one["seeds"], two["seeds"])
    assert np.array_equal(one["test_index"], two["test_index"])
    np.testing.assert_allclose(two["samples"], one["samples"], atol=1e-6, rtol=0)
    assert np.abs(one["samples"]).sum() > 0


def test_two_ranks_synthesize_the_volume_one_process_makes(smoke_root: Path, tmp_path: Path) -> None:
    case = make_case(11, (7, 40, 40), (10.0, 8.0, 8.0))
    nib.save(nib.Nifti1Image(np.ascontiguousarray(case.mr.transpose(2, 1, 0)), np.diag([8.0, 8.0, 10.0, 1.0])),
             str(tmp_path / "mr.nii.gz"))
    ckpt = str(smoke_root / "runs" / "smoke" / "checkpoints" / "vesde.pt")
    common = ["synthesize", "--input", str(tmp_path / "mr.nii.gz"), "--checkpoint", ckpt, "--mc", "2",
              "--device", "cpu", "--no-progress"]
    ctmri(smoke_root, *common, "--out", str(tmp_path / "one"))
    ctmri(smoke_root, *common, "--out", str(tmp_path / "two"), ranks=2)
    for name in ("sct.nii.gz", "sct_std.nii.gz"):
        a = np.asarray(nib.load(str(tmp_path / "one" / name)).dataobj)
        b = np.asarray(nib.load(str(tmp_path / "two" / name)).dataobj)
        np.testing.assert_allclose(b, a, atol=1e-4, rtol=0)
    assert not any(p.name.startswith(".two") for p in tmp_path.iterdir())       # no rank left a temporary folder
