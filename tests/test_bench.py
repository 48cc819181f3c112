"""`make bench`'s entry point (benchmarks/run_all.py) on the smoke profile in a scratch root: well-formed results.

Benchmarks are not timed tests: this only checks that every section runs and writes a complete report, that every
sampler in the registry appears, that every .md says the commit and the command that made it, that every script
starts (`--help`), and that nothing is written into the repository's benchmarks/results.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ctmri.diffusion.processes import DDPM, VESDE
from ctmri.diffusion.samplers import names, spec, study_order

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
SECTIONS = ("quality", "sampling", "train_throughput", "precision", "stages", "synthesize")
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if p.name != "common.py")
DIFFUSION_SAMPLERS = [n for n in study_order() if not spec(n).one_pass]
pytestmark = pytest.mark.slow


def _stamped(md: str) -> bool:
    """The results .md ends with the commit and the exact command that made it."""
    last = md.strip().splitlines()[-1]
    return last.startswith("Made at commit `") and "python benchmarks/run_all.py" in last


def _repo_results() -> dict[str, float]:
    folder = BENCH / "results"
    return {p.name: p.stat().st_mtime for p in folder.iterdir()} if folder.exists() else {}


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch CTMRI_ROOT with the smoke data, four checkpoints trained a few steps, the samples of two samplers,
    and a stage-times file."""
    root = tmp_path_factory.mktemp("bench-root")
    code = ("import torch; torch.set_num_threads(1)\n"
            "from ctmri.data.prepare import prepare_dataset\nfrom ctmri.train.loop import train\n"
            "prepare_dataset('smoke')\n"
            "for m in ('ddpm', 'vesde', 'cnn', 'wgan'): train('smoke', m, steps=3, progress=False)\n"
            "from ctmri.sample.stage import run_sampler\n"
            "for s in ('dpm++2m-ve', 'cnn'): run_sampler('smoke', s, progress=False, device='cpu')\n")
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
    assert {q["sampler"] for q in quality["points"]} == set(names())          # the one-pass baselines too
    assert set(quality["reaches"]) == set(names()) and quality["reference"]["sampler"] == "ddpm"
    for q in quality["points"]:
        assert q["nfe"] >= 1 and q["seconds_per_slice"] > 0 and q["mae_hu_mean"] >= 0 and -1 <= q["ssim_mean"] <= 1
    assert [r["sampler"] for r in sampling["overhead"]] == DIFFUSION_SAMPLERS
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
    assert all(f"| {s} |" in md for s in names())
    assert (out / "quality_vs_nfe.png").stat().st_size > 1000
    assert _stamped(md) and report["provenance"]["command"].startswith(f"CTMRI_ROOT={smoke_root} python ")
    for name in SECTIONS:
        prov = json.loads((out / f"{name}.json").read_text())["provenance"]
        expected = "cpu" if name == "synthesize" else "smoke"   # synthesize times the committed cpu weights
        assert prov["profile"] == expected and prov["git_commit"] and "benchmarks/run_all.py" in prov["command"]
        assert _stamped((out / f"{name}.md").read_text()), name


def test_opt_in_sections_time_to_quality_gpu_sampling_and_study_checks(smoke_root: Path) -> None:
    """The opt-in sections run on smoke (CPU stands in for the GPU): a curve per variant, a row per sampler, a
    study-check row per samples file."""
    out = smoke_root / "bench-opt-in"
    env = {**os.environ, "CTMRI_ROOT": str(smoke_root), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--profile", "smoke", "--out", str(out),
                           "--quick", "--only", "time_to_quality", "gpu_sampling", "study_checks", "--device", "cpu"],
                          env=env, cwd=smoke_root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())
    ttq = report["sections"]["time_to_quality"]
    btq = _import_bench("bench_time_to_quality")
    assert {r["variant"] for r in ttq["rows"]} == set(btq.DEFAULT_VARIANTS)
    assert all(r["ddpm_mean_mae"] > 0 if r["method"] == "ddpm" else r["em_mean_mae"] > 0 for r in ttq["rows"])
    assert (out / "time_to_quality.png").stat().st_size > 1000
    gpu = report["sections"]["gpu_sampling"]["rows"]
    assert {r["sampler"] for r in gpu} == set(names())
    assert all("error" not in r and r["seconds_per_slice"] > 0 for r in gpu)
    checks = report["sections"]["study_checks"]["rows"]
    assert [r["sampler"] for r in checks] == ["cnn", "dpm++2m-ve"]                   # the registry's order
    assert all(np.isfinite(r["air_outside_body_hu"]) and r["hf_power_ratio_max"] > 0 for r in checks)
    md = (out / "results.md").read_text()
    assert "Training time-to-quality" in md and "Seconds per slice on the GPU" in md and "Study checks" in md
    for name in ("results", "time_to_quality", "gpu_sampling", "study_checks"):
        assert _stamped((out / f"{name}.md").read_text()), name


def _import_bench(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCH))


def test_time_to_quality_reads_each_method_out_by_its_registry_samplers() -> None:
    """The default set keeps each method's study and default sampler from the registry; `--readouts` with steps."""
    btq = _import_bench("bench_time_to_quality")
    a = btq.parse(["--readouts", "denoise", "heun=13", "em=100", "--quick"])
    assert [r.label for r in btq.readouts_for("vesde", a.readouts)] == ["denoise", "heun-13", "em-100"]
    assert [r.steps for r in btq.readouts_for("vesde", a.readouts)] == [None, 13, 100]
    d = btq.parse([])
    assert d.variants == btq.DEFAULT_VARIANTS and d.name == "time_to_quality"
    assert {m: [r.label for r in btq.readouts_for(m, d.readouts)] for m in ("ddpm", "vesde", "cnn")} == \
        {"ddpm": ["ddpm"], "vesde": ["em", "dpm++2m-ve"], "cnn": ["cnn"]}
    assert set(btq.parse(["--variants", "all"]).variants) == set(btq.VARIANTS)
    with pytest.raises(SystemExit):
        btq.parse(["--readouts", "no-such-sampler"])


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_starts(script: str) -> None:
    """Each benchmark script imports (the library API it uses exists) and answers --help."""
    proc = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                          timeout=120, cwd=BENCH)
    assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr[-2000:]


def test_step_plan_matches_each_samplers_nfe() -> None:
    """Budgets map to the largest step count that fits them, one point per distinct NFE."""
    bq = _import_bench("bench_quality")
    budgets = [1, 2, 5, 10, 1000]
    ve, ddpm = VESDE(), DDPM(num_steps=1000)
    heun = [(e["steps"], e["nfe"]) for e in bq.step_plan("heun", ve, {}, budgets)]
    assert heun[:3] == [(1, 1), (3, 5), (5, 9)] and heun[-1] == (500, 999)              # NFE = 2 steps - 1
    pc = [(e["steps"], e["nfe"]) for e in bq.step_plan("pc", ve, {"corrector_steps": 1}, budgets)]
    assert pc[:2] == [(2, 5), (4, 9)]                                                   # NFE = 2 steps + 1
    assert [(e["steps"], e["nfe"]) for e in bq.step_plan("ddpm", ddpm, {}, budgets)] == \
        [(1, 1), (2, 2), (5, 5), (10, 10), (1000, 1000)]
    assert bq.nfe_of("ddpm", ddpm, 1001, {}) == float("inf")                            # steps <= T
