"""`make bench`: every benchmark of a profile in turn (one heavy job at a time), one combined report.

Sections: quality against NFE (bench_quality.py), sampler overhead + peak memory per sampler + batched MC vs one
replicate at a time (bench_sampling.py), training throughput per method and speed option + peak memory per
method (bench_train.py), training quality under each speed option against fp32 (bench_precision.py), and the
stage wall times of `make reproduce` (runs/<profile>/stage_seconds.txt, figures/<profile>/stage_seconds.txt),
`ctmri synthesize` of a 48-slice 128² volume with the committed weights (bench_synthesize.py);
opt-in (`--only`): training time-to-quality (bench_time_to_quality.py, its default variants), GPU seconds per
slice (bench_gpu_sampling.py) and the study checks of the profile's samples (study_checks.py). Writes
<out>/results.md and <out>/results.json (with provenance and the machine) and each section's own
<name>.json|md, plus quality_vs_nfe.png; every .md ends with the commit and the command that made it. A
section that fails is reported in both files and makes the exit status 1; the others still run. Needs the profile's prepared data and trained checkpoints
(`make reproduce PROFILE=<profile>`).

    python benchmarks/run_all.py [--profile cpu] [--out benchmarks/results] [--quick] [--only quality stages]
        [--mc 4] [--slices 6] [--quality-steps 600] [--time-budget 540]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_gpu_sampling  # noqa: E402
import bench_precision  # noqa: E402
import bench_quality  # noqa: E402
import bench_sampling  # noqa: E402
import bench_time_to_quality  # noqa: E402
import bench_synthesize  # noqa: E402
import bench_train  # noqa: E402
import study_checks  # noqa: E402
from common import (base_parser, machine, machine_line, run_provenance, save_section, table,  # noqa: E402
                    write_markdown)

from ctmri import paths  # noqa: E402
from ctmri.diffusion.samplers import study_order  # noqa: E402
from ctmri.provenance import write_json  # noqa: E402

# section name -> (module, the run_all options it takes)
SECTIONS = {"quality": (bench_quality, ("mc", "slices", "time_budget")),
            "sampling": (bench_sampling, ()),
            "train_throughput": (bench_train, ()),
            "precision": (bench_precision, ("mc", "slices", "quality_steps")),
            "stages": (None, ()),
            "synthesize": (bench_synthesize, ()),
            "time_to_quality": (bench_time_to_quality, ("mc", "slices")),
            "gpu_sampling": (bench_gpu_sampling, ()),
            "study_checks": (study_checks, ())}
# run only when named in --only: time_to_quality trains five models (hours on 2 cores; minutes on a GPU),
# gpu_sampling times the gpu profile's 256² / 512² slices, study_checks needs the samples of `make reproduce`
OPT_IN = ("time_to_quality", "gpu_sampling", "study_checks")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = base_parser(__doc__)
    ap.add_argument("--only", nargs="+", choices=list(SECTIONS), default=[s for s in SECTIONS if s not in OPT_IN],
                    help=f"sections to run (default all but the opt-in {', '.join(OPT_IN)})")
    ap.add_argument("--keep", action="store_true",
                    help="also report the sections of earlier runs found in --out (run sections in turns)")
    ap.add_argument("--mc", type=int, default=None, help="MC replicates K (quality, precision; default 4)")
    ap.add_argument("--slices", type=int, default=None, help="test slices (quality, precision; default 6)")
    ap.add_argument("--quality-steps", type=int, default=None, help="bf16 vs fp32 training steps (default 600)")
    ap.add_argument("--time-budget", type=float, default=None, help="seconds for the quality sweep (default 540)")
    return ap.parse_args(argv)


def stage_times(profile: str) -> dict[str, Any]:
    """The `make reproduce` stage wall times: {file: [[stage, seconds], ...]}, later lines of a rerun stage kept too."""
    out: dict[str, Any] = {}
    for path in (paths.run_dir(profile) / "stage_seconds.txt", paths.figures_dir(profile) / "stage_seconds.txt"):
        if path.exists():
            rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
            out[str(path.relative_to(paths.project_root()))] = [[r[0], float(r[1])] for r in rows
                                                                if len(r) >= 2 and r[1].replace(".", "", 1).isdigit()]
    return {"profile": profile, "files": out}


def stages_markdown(sec: dict) -> list[str]:
    lines = ["## Stage wall times of `make reproduce`", ""]
    if not sec["files"]:
        return lines + [f"No stage_seconds.txt for profile {sec['profile']} (run `make reproduce PROFILE="
                        f"{sec['profile']}`).", ""]
    for name, rows in sec["files"].items():
        total = sum(s for _, s in rows)
        lines += [f"`{name}` ({total / 60:.1f} min in all; a stage listed twice ran twice):", "",
                  *table(["stage", "seconds"], [(st, f"{s:.0f}") for st, s in rows]), ""]
    return lines


def section_argv(a: argparse.Namespace, takes: tuple[str, ...]) -> list[str]:
    argv = ["--profile", a.profile, "--out", str(a.out), "--device", a.device] + (["--quick"] if a.quick else [])
    for name in takes:
        value = getattr(a, name)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"profile": a.profile, "quick": a.quick, "machine": machine(a.device),
                              "samplers": study_order(), "sections": {}, "errors": {}, "seconds": {}}
    body: list[str] = []
    for name in a.only:
        module, takes = SECTIONS[name]
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            if module is None:
                sec = stage_times(a.profile)
                lines = stages_markdown(sec)
            else:
                sec = module.run(module.parse(section_argv(a, takes)))
                lines = module.markdown(sec)
            save_section(a.out, name, sec, lines, argv)
            report["sections"][name] = sec
            body += lines
        except Exception as err:                  # report it, run the other sections
            traceback.print_exc()
            report["errors"][name] = f"{type(err).__name__}: {err}"
            body += [f"## {name}", "", f"**Failed**: {type(err).__name__}: {err}", ""]
        report["seconds"][name] = round(time.perf_counter() - t0, 1)
    if a.keep:                                    # sections run earlier into the same folder (`--only` in turns)
        for name in SECTIONS:
            if name not in a.only and (a.out / f"{name}.json").exists() and (a.out / f"{name}.md").exists():
                report["sections"][name] = json.loads((a.out / f"{name}.json").read_text())
                body += (a.out / f"{name}.md").read_text().splitlines() + [""]
    report["provenance"] = run_provenance(a.profile, "run_all", argv)
    write_json(a.out / "results.json", report)
    head = [f"# Benchmarks ({a.profile} profile{', --quick' if a.quick else ''})", "",
            f"Measured on {machine_line(report['machine'])}. Commit {report['provenance']['git_commit']}, "
            f"{report['provenance']['created']}. Ratios are measured within one run; absolute times hold for this "
            f"machine only. Section wall times: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in report["seconds"].items()) + ".", ""]
    if report["errors"]:
        head += [f"**Failed sections**: {', '.join(report['errors'])}.", ""]
    write_markdown(a.out / "results.md", head + body, report["provenance"])
    print(f"Wrote {a.out / 'results.md'} and {a.out / 'results.json'}", flush=True)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
