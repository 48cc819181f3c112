"""`make bench`'s entry point (benchmarks/run_all.py) on the smoke profile in a scratch root: well-formed results.

Benchmarks are not timed tests: this only checks that every section runs and writes a complete report, that every
sampler in the registry appears, and that nothing is written into the repository's benchmarks/results.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctmri.diffusion.processes import DDPM, VESDE
from ctmri.diffusion.samplers import SAMPLERS

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
SECTIONS = ("quality", "sampling", "train_throughput", "precision", "stages")


def _repo_results() -> dict[str, float]:
    folder = BENCH / "results"
    return {p.name: p.stat().st_mtime for p in folder.iterdir()} if folder.exists() else {}


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch CTMRI_ROOT with the smoke data, four checkpoints trained a few steps, and a stage-times file."""
    root = tmp_path_factory.mktemp("bench-root")
    code = ("import torch; torch.set_num_threads(1)\n"
            "from ctmri.data.prepare import prepare_dataset\nfrom ctmri.train.loop import train\n"
            "prepare_dataset('smoke')\n"
            "for m in ('ddpm', 'vesde', 'cnn', 'wgan'): train('smoke', m, steps=3, progress=False)\n")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "CTMRI_ROOT": str(root)}, check=True, cwd=root,
                   timeout=120)
    (root / "runs" / "smoke" / "stage_seconds.txt").write_text("00_prepare_data 3 s\n01_train_ddpm 12 s\n")
    return root


def test_run_all_writes_a_complete_report(smoke_root: Path) -> None:
    before = _repo_results()
    out = smoke_root / "bench-out"
    env = {**os.environ, "CTMRI_ROOT": str(smoke_root), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--profile", "smoke", "--out", str(out),
                           "--quick"], env=env, cwd=smoke_root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _repo_results() == before                       # nothing written into the repository's results

    report = json.loads((out / "results.json").read_text())
    assert report["errors"] == {} and set(report["sections"]) == set(SECTIONS)
    assert report["provenance"]["profile"] == "smoke" and report["machine"]["cpus"] >= 1
    quality, sampling = report["sections"]["quality"], report["sections"]["sampling"]
    assert {q["sampler"] for q in quality["points"]} == set(SAMPLERS) | {"cnn", "wgan"}
    assert set(quality["reaches"]) == set(SAMPLERS) | {"cnn", "wgan"} and quality["reference"]["sampler"] == "ddpm"
    for q in quality["points"]:
        assert q["nfe"] >= 1 and q["seconds_per_slice"] > 0 and q["mae_hu_mean"] >= 0 and -1 <= q["ssim_mean"] <= 1
    assert [r["sampler"] for r in sampling["overhead"]] == list(SAMPLERS)
    assert all(0 <= r["fraction_outside_network"] < 1 and r["peak_rss_mib"] > 0 for r in sampling["overhead"])
    assert {q["method"] for q in sampling["batched_vs_single"]} == {"ddpm", "vesde"}
    assert all(q["max_abs_difference"] < 1e-3 for q in sampling["batched_vs_single"])
    train = report["sections"]["train_throughput"]["results"]
    assert {(r["method"], r["option"]) for r in train} >= {(m, o) for m in ("ddpm", "vesde", "cnn", "wgan")
                                                           for o in ("fp32", "bf16", "channels_last")}
    assert all(r["images_per_second"] > 0 for r in train if "error" not in r)
    precision = report["sections"]["precision"]["results"]
    assert {(r["method"], r["precision"]) for r in precision} == {(m, p) for m in ("ddpm", "vesde")
                                                                  for p in ("fp32", "bf16", "channels_last")}
    assert report["sections"]["stages"]["files"] == {"runs/smoke/stage_seconds.txt": [["00_prepare_data", 3.0],
                                                                                        ["01_train_ddpm", 12.0]]}

    md = (out / "results.md").read_text()
    for title in ("Quality against NFE", "Sampler overhead", "Batched MC", "Training throughput", "Speed options",
                  "Stage wall times", "Reaching the reference"):
        assert title in md, title
    assert all(f"| {s} |" in md for s in SAMPLERS)
    assert (out / "quality_vs_nfe.png").stat().st_size > 1000
    for name in SECTIONS:
        assert json.loads((out / f"{name}.json").read_text())["provenance"]["profile"] == "smoke"


def test_opt_in_sections_time_to_quality_and_gpu_sampling(smoke_root: Path) -> None:
    """The opt-in sections run on smoke (CPU stands in for the GPU): a curve per variant and a row per sampler."""
    out = smoke_root / "bench-opt-in"
    env = {**os.environ, "CTMRI_ROOT": str(smoke_root), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--profile", "smoke", "--out", str(out),
                           "--quick", "--only", "time_to_quality", "gpu_sampling", "--device", "cpu"],
                          env=env, cwd=smoke_root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())
    ttq = report["sections"]["time_to_quality"]
    sys.path.insert(0, str(BENCH))
    try:
        import bench_time_to_quality as btq
    finally:
        sys.path.remove(str(BENCH))
    assert {r["variant"] for r in ttq["rows"]} == set(btq.DEFAULT_VARIANTS)
    assert all(r["ddpm_mean_mae"] > 0 if r["method"] == "ddpm" else r["em_mean_mae"] > 0 for r in ttq["rows"])
    assert (out / "time_to_quality.png").stat().st_size > 1000
    gpu = report["sections"]["gpu_sampling"]["rows"]
    assert {r["sampler"] for r in gpu} == set(SAMPLERS) | {"cnn", "wgan"}
    assert all("error" not in r and r["seconds_per_slice"] > 0 for r in gpu)
    md = (out / "results.md").read_text()
    assert "Training time-to-quality" in md and "Seconds per slice on the GPU" in md


def test_step_plan_matches_each_samplers_nfe() -> None:
    """Budgets map to the largest step count that fits them, one point per distinct NFE."""
    sys.path.insert(0, str(BENCH))
    try:
        import bench_quality as bq
    finally:
        sys.path.remove(str(BENCH))
    budgets = [1, 2, 5, 10, 1000]
    ve, ddpm = VESDE(), DDPM(num_steps=1000)
    heun = [(e["steps"], e["nfe"]) for e in bq.step_plan("heun", ve, {}, budgets)]
    assert heun[:3] == [(1, 1), (3, 5), (5, 9)] and heun[-1] == (500, 999)              # NFE = 2 steps - 1
    pc = [(e["steps"], e["nfe"]) for e in bq.step_plan("pc", ve, {"corrector_steps": 1}, budgets)]
    assert pc[:2] == [(2, 5), (4, 9)]                                                   # NFE = 2 steps + 1
    assert [(e["steps"], e["nfe"]) for e in bq.step_plan("ddpm", ddpm, {}, budgets)] == \
        [(1, 1), (2, 2), (5, 5), (10, 10), (1000, 1000)]
    assert bq.nfe_of("ddpm", ddpm, 1001, {}) == float("inf")                            # steps <= T
