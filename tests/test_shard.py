"""Sampling across torchrun ranks (gloo on CPU): `ctmri sample` and `ctmri synthesize` on 2 ranks give the samples
and the volume one process gives, because every (slice, replicate) pair has its own generator. A small chunk size
splits the work into several chunks (blocks), so that each rank really samples some; only rank 0 reports."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ctmri.data.phantom import make_case
from conftest import make_smoke_run

CHUNK = 4       # samples per forward batch: sample --mc-samples 3 makes 6 chunks, synthesize --mc 2 blocks of 2 slices

# ctmri.cli under a smoke profile with chunk_size CHUNK, logging the chunks (blocks) shard.mine gives this rank.
DRIVER = '''
import dataclasses, functools, json, os, sys
from pathlib import Path
from ctmri import config as C
from ctmri.sample import shard
import ctmri.sample.synthesize as S

chunk = int(os.environ["CTMRI_TEST_CHUNK"])
C.PROFILES["smoke"] = dataclasses.replace(C.SMOKE, sample=dataclasses.replace(C.SMOKE.sample, chunk_size=chunk))
S.synthesize = functools.partial(S.synthesize, chunk_size=chunk)
real_mine, taken = shard.mine, []

def mine(n, ranks):
    got = real_mine(n, ranks)
    taken.append({"n": n, "world": ranks.world, "mine": list(got)})
    return got

shard.mine = mine
from ctmri.cli import main
rc = main(sys.argv[1:])
Path(os.environ["CTMRI_TEST_LOG"], "rank" + os.environ.get("RANK", "0") + ".json").write_text(json.dumps(taken))
sys.exit(rc)
'''


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Smoke data and a few-step smoke VE model in their own CTMRI_ROOT, and the driver script."""
    root = make_smoke_run(tmp_path_factory.mktemp("shard"), ("vesde",))
    (root / "driver.py").write_text(DRIVER)
    return root


def ctmri(root: Path, log: Path, *args: str, ranks: int = 1) -> tuple[subprocess.CompletedProcess, list[list[dict]]]:
    """Run `ctmri ARGS` on `ranks` processes; (the process, per rank the shard.mine calls it made)."""
    log.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CTMRI_ROOT": str(root), "OMP_NUM_THREADS": "1", "CTMRI_TEST_CHUNK": str(CHUNK),
           "CTMRI_TEST_LOG": str(log)}
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)]
                if ranks > 1 else [sys.executable])
    proc = subprocess.run(launcher + [str(root / "driver.py"), *args], env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, [json.loads((log / f"rank{r}.json").read_text()) for r in range(ranks)]


def assert_split(calls: list[list[dict]]) -> None:
    """Every rank sampled some chunks, no chunk twice, every chunk once."""
    first = [c for c in calls[0] if c["world"] == len(calls)]
    assert first, calls
    n = first[0]["n"]
    mine = [set(next(c for c in rank if c["world"] == len(calls))["mine"]) for rank in calls]
    assert n >= 2 * len(calls) and all(mine), f"{n} chunks, per rank {mine}"
    assert sum(len(m) for m in mine) == n and set().union(*mine) == set(range(n)), mine


def wrote_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.startswith("Wrote ")]


def test_two_ranks_sample_the_test_split_exactly_as_one_process(smoke_root: Path, tmp_path: Path) -> None:
    samples = smoke_root / "runs" / "smoke" / "samples" / "dpm++2m-ve.npz"
    args = ("sample", "--profile", "smoke", "--sampler", "dpm++2m-ve", "--mc-samples", "3")
    proc, (calls,) = ctmri(smoke_root, tmp_path / "one", *args)
    assert calls and calls[0]["n"] >= 4 and calls[0]["mine"] == list(range(calls[0]["n"]))
    with np.load(samples) as z:
        one = {k: z[k] for k in ("samples", "seeds", "test_index")}
    samples.unlink()
    proc, calls = ctmri(smoke_root, tmp_path / "two", *args, ranks=2)
    assert_split(calls)
    assert len(wrote_lines(proc)) == 1, proc.stdout                 # only rank 0 reports
    with np.load(samples) as z:
        two = {k: z[k] for k in ("samples", "seeds", "test_index")}
    assert one["samples"].shape[0] > 2 and np.array_equal(one["seeds"], two["seeds"])
    assert np.array_equal(one["test_index"], two["test_index"])
    np.testing.assert_allclose(two["samples"], one["samples"], atol=1e-6, rtol=0)
    assert np.abs(one["samples"]).reshape(one["samples"].shape[0], -1).sum(axis=1).min() > 0   # every slice sampled


def test_two_ranks_synthesize_the_volume_one_process_makes(smoke_root: Path, tmp_path: Path) -> None:
    case = make_case(11, (7, 40, 40), (10.0, 8.0, 8.0))
    nib.save(nib.Nifti1Image(np.ascontiguousarray(case.mr.transpose(2, 1, 0)), np.diag([8.0, 8.0, 10.0, 1.0])),
             str(tmp_path / "mr.nii.gz"))
    ckpt = str(smoke_root / "runs" / "smoke" / "checkpoints" / "vesde.pt")
    common = ["synthesize", "--input", str(tmp_path / "mr.nii.gz"), "--checkpoint", ckpt, "--mc", "2",
              "--device", "cpu", "--no-progress"]
    ctmri(smoke_root, tmp_path / "log-one", *common, "--out", str(tmp_path / "one"))
    proc, calls = ctmri(smoke_root, tmp_path / "log-two", *common, "--out", str(tmp_path / "two"), ranks=2)
    assert_split(calls)
    assert len(wrote_lines(proc)) == 1, proc.stdout
    for name in ("sct.nii.gz", "sct_std.nii.gz"):
        a = np.asarray(nib.load(str(tmp_path / "one" / name)).dataobj)
        b = np.asarray(nib.load(str(tmp_path / "two" / name)).dataobj)
        np.testing.assert_allclose(b, a, atol=1e-4, rtol=0)
    assert not any(p.name.startswith(".two") for p in tmp_path.iterdir())       # no rank left a temporary folder
