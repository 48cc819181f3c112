"""Seconds per dose calculation of the dose stage (pyRadPlan 0.5.0; lib/ctmri/dose): plan optimisation on the CT
(steering, dose-influence matrix, fluence optimisation) and one forward dose of the fixed weights on an sCT, per
modality and dose grid, on a phantom patient of the profile's geometry z-cropped as the stage does; plus the γ
evaluation on the stage's random subset of points and on every point (pymedphys).

    python benchmarks/bench_dose.py --profile cpu [--grids 5 3] [--quick]
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ctmri.config import get_profile  # noqa: E402
from ctmri.data.phantom import make_case  # noqa: E402
from ctmri.dose.hu_tables import default_table  # noqa: E402
from ctmri.dose.metrics import gamma_pass  # noqa: E402
from ctmri.dose.plans import MODALITIES, effective_grid, optimise, recompute  # noqa: E402
from ctmri.dose.structures import TARGET, phantom_structures  # noqa: E402

from common import base_parser, fmt, table, write_standalone  # noqa: E402


def parse(argv: list[str] | None = None):
    ap = base_parser(__doc__)
    ap.add_argument("--grids", type=float, nargs="+", default=None, help="dose grids in mm (default: the profile's "
                                                                          "and 3 mm)")
    ap.add_argument("--seed", type=int, default=500, help="phantom patient")
    ap.add_argument("--all-points-gamma", action="store_true", help="also time γ on every point (minutes)")
    return ap.parse_args(argv)


def _crop(case, structures: dict, margin_mm: float) -> tuple[slice, Any]:
    """The stage's z-crop: the PTV's slices ± the margin."""
    z = np.flatnonzero(structures[TARGET].any(axis=(1, 2)))
    m = int(np.ceil(margin_mm / case.spacing[0]))
    return slice(max(0, z.min() - m), min(case.ct.shape[0], z.max() + m + 1)), z


def run(a) -> dict[str, Any]:
    prof = get_profile("smoke" if a.quick else a.profile)
    cfg = prof.dose
    d = prof.data
    shape, spacing = (12, 48, 48), (5.0, 8.0, 8.0)
    if not a.quick:
        shape, spacing = tuple(d.phantom_shape), tuple(d.phantom_spacing)
    case = make_case(a.seed, shape, spacing, misregistration_mm=d.misregistration_mm)
    s = phantom_structures(case.labels, case.mask, case.spacing, cfg.ptv_margin_mm)
    zs, _ = _crop(case, s, cfg.z_margin_mm)
    ct = case.ct[zs]
    s = {k: v[zs] for k, v in s.items()}
    sct = ct + 30.0 * case.mask[zs]                       # a +30 HU body offset: a plausible sCT error
    grids = a.grids or ([cfg.grid_mm] if a.quick else sorted({cfg.grid_mm, 3.0}, reverse=True))
    rows = []
    for grid in grids:
        c = dataclasses.replace(cfg, grid_mm=float(grid))
        for modality in MODALITIES:
            t0 = time.perf_counter()
            plan = optimise(ct, case.spacing, s, modality, c, default_table())
            t1 = time.perf_counter()
            ref = recompute(plan, ct)
            t2 = time.perf_counter()
            dose = recompute(plan, sct)
            t3 = time.perf_counter()
            g = gamma_pass(ref, dose, case.spacing, 2.0, 2.0, points=c.gamma_points)
            t4 = time.perf_counter()
            row = {"grid_mm": effective_grid(c, case.spacing)[0], "modality": modality, "slices": int(ct.shape[0]), "plan_seconds": t1 - t0,
                   "forward_seconds": (t3 - t1) / 2, "gamma_seconds": t4 - t3, "gamma_points": c.gamma_points,
                   "gamma_2_2": g}
            if a.all_points_gamma:
                t5 = time.perf_counter()
                row["gamma_2_2_all"] = gamma_pass(ref, dose, case.spacing, 2.0, 2.0, points=0)
                row["gamma_all_seconds"] = time.perf_counter() - t5
            rows.append(row)
            print(row, flush=True)
    return {"profile": prof.name, "shape": list(ct.shape), "spacing_mm": list(case.spacing), "rows": rows}


def markdown(sec: dict) -> list[str]:
    lines = [f"## Dose calculation cost ({sec['profile']} geometry, {sec['shape'][0]} slices of "
             f"{sec['shape'][1]} × {sec['shape'][2]} after the z-crop)", "",
             "pyRadPlan 0.5.0 on this machine: plan = steering + dose-influence matrix + fluence optimisation on the "
             "CT (once per patient and modality); forward = the fixed weights on one CT (once per sCT); γ 2 %/2 mm "
             "of a +30 HU body offset on the stage's random subset of points (pymedphys).", ""]
    head = ["grid mm", "modality", "plan s", "forward s", "γ s", "γ 2/2 %"]
    extra = "gamma_all_seconds" in sec["rows"][0]
    if extra:
        head += ["γ all points s", "γ 2/2 all %"]
    body = []
    for r in sec["rows"]:
        row = [fmt(r["grid_mm"], ".0f"), r["modality"], fmt(r["plan_seconds"], ".1f"), fmt(r["forward_seconds"], ".1f"),
               fmt(r["gamma_seconds"], ".1f"), fmt(r["gamma_2_2"], ".1f")]
        if extra:
            row += [fmt(r["gamma_all_seconds"], ".0f"), fmt(r["gamma_2_2_all"], ".1f")]
        body.append(row)
    return lines + table(head, body)


if __name__ == "__main__":
    sys.exit(write_standalone(sys.modules[__name__], sys.argv[1:], "dose"))
