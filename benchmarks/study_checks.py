"""Study checks on a profile's samples: air outside the body, and the high-frequency power (checkerboard).

For every samples file in runs/<profile>/samples/ (in the registry's order: baselines, the study's samplers, then
the fast ones): the mean HU outside the body mask of the MC mean (air must be within 50 HU of -1000), and the
share of spectral power above 0.25 cycles / pixel inside the image of the MC mean (replicate 0 for one-pass
methods) relative to the true CT's (`metrics.high_frequency_power`; a checkerboard raises it, a blurry image
lowers it). Needs `make reproduce PROFILE=<profile>` (or `ctmri sample`) first. Writes <out>/study_checks.json|md.

    python benchmarks/study_checks.py [--profile cpu] [--out benchmarks/results]
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ctmri.config import get_profile
from ctmri.data.intensity import model_to_hu
from ctmri.diffusion.samplers import study_order
from ctmri.evaluate.metrics import high_frequency_power
from ctmri.sample.store import load_samples, sample_files

from common import base_parser, fmt, table, write_standalone

AIR_HU, AIR_TOL = -1000.0, 50.0          # air outside the body: within 50 HU of -1000


def parse(argv: list[str] | None = None):
    return base_parser(__doc__).parse_args(argv)   # --device / --quick are accepted and change nothing


def check(profile: str) -> list[dict[str, Any]]:
    """One row per samples file of the profile: air outside the body, HF power ratio (median, max over slices)."""
    rows = []
    for sampler, path in sample_files(profile, order=study_order()).items():
        d = load_samples(path)
        pred = model_to_hu(d["mean"][:, 0] if d["K"] > 1 else d["samples"][:, 0, 0])
        truth = model_to_hu(d["target"][:, 0])
        outside = ~d["mask"]
        hf = [high_frequency_power(p) / max(high_frequency_power(t), 1e-12) for p, t in zip(pred, truth)]
        air = float(pred[outside].mean())
        rows.append({"sampler": sampler, "K": d["K"], "air_outside_body_hu": air,
                     "true_air_outside_body_hu": float(truth[outside].mean()),
                     "air_within_tolerance": bool(abs(air - AIR_HU) <= AIR_TOL),
                     "hf_power_ratio_median": float(np.median(hf)), "hf_power_ratio_max": float(np.max(hf))})
    return rows


def run(a) -> dict[str, Any]:
    p = get_profile(a.profile)
    rows = check(p.name)
    if not rows:
        raise FileNotFoundError(f"No samples for profile {p.name!r} in runs/{p.name}/samples; run "
                                f"`make reproduce PROFILE={p.name}` first.")
    return {"profile": p.name, "air_hu": AIR_HU, "air_tolerance_hu": AIR_TOL, "rows": rows}


def markdown(sec: dict) -> list[str]:
    lines = [f"## Study checks ({sec['profile']})", "",
             "Air: mean HU outside the body mask of the estimate (MC mean when K > 1); it should be within "
             f"{sec['air_tolerance_hu']:.0f} HU of {sec['air_hu']:.0f}. HF ratio: share of spectral power above 0.25 "
             "cycles/pixel of the estimate / that of the true CT, per slice (median, max); a checkerboard gives > 1, "
             "a blurred estimate < 1.", ""]
    lines += table(["sampler", "K", "air outside body (HU)", "true CT (HU)", "HF ratio median", "HF ratio max"],
                   [(r["sampler"], r["K"], fmt(r["air_outside_body_hu"], ".1f")
                     + ("" if r.get("air_within_tolerance", True) else " (out of tolerance)"),
                     fmt(r["true_air_outside_body_hu"], ".1f"), fmt(r["hf_power_ratio_median"], ".2f"),
                     fmt(r["hf_power_ratio_max"], ".2f")) for r in sec["rows"]])
    return lines + [""]


if __name__ == "__main__":
    sys.exit(write_standalone(sys.modules[__name__], None, "study_checks"))
