"""The 3-mm study's own targets on the whole test volumes (V1-V4), checked like the study's claims (`claims.py`).

V1: every diffusion / score MC mean beats both baselines in MAE (HU, SynthRAD2023, mean over patients);
V2: single diffusion samples keep the CT's in-plane detail (high-frequency power 0.85-1.15x the CT's) and the
CNN's is lower (the study's "over-smoothed", measured); V3: the default sampler's MC mean is as consistent from
slice to slice as the CT (through-plane roughness <= 1.2x the CT's); V4: no divergent samples (no single sample's
slice MAE above 3x its sampler's median slice MAE, every sampler, every evaluated slice).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctmri.diffusion.samplers import default_sampler
from ctmri.evaluate.claims import _claim
from ctmri.evaluate.methods import BASELINES, label

HF_BAND = (0.85, 1.15)
Z_LIMIT = 1.2
DIVERGENT = 3.0


def _per_method(patients: pd.DataFrame, variant: str, col: str) -> dict[str, float]:
    rows = patients[patients["variant"] == variant]
    return {s: float(v) for s, v in rows.groupby("sampler", sort=False)[col].mean().items()}


def _v1(p: pd.DataFrame) -> dict:
    base = {b: v for b, v in _per_method(p, "single", "mae").items() if b in BASELINES}
    means = {s: v for s, v in _per_method(p, "mc_mean", "mae").items() if s not in BASELINES}
    missing = [b for b in BASELINES if b not in base] + ([] if means else ["a diffusion sampler on volumes"])
    ok = not missing and max(means.values()) < min(base.values())
    nums = {**{label(b): v for b, v in base.items()}, **{label(s, True): v for s, v in means.items()}}
    return _claim("V1", "Every diffusion / score MC mean beats both baselines in MAE on the whole test volumes.",
                  "MAE (HU, 3-D, mean over test patients) of every X-M on volumes < min(CNN, WGAN-GP).", missing, ok,
                  nums, ", ".join(f"{k} {v:.1f} HU" for k, v in nums.items()))


def _v2(p: pd.DataFrame) -> dict:
    hf = _per_method(p, "single", "hf_ratio")
    diff = {s: v for s, v in hf.items() if s not in BASELINES}
    missing = ([] if "cnn" in hf else ["cnn"]) + ([] if diff else ["a diffusion sampler on volumes"])
    ok = not missing and all(HF_BAND[0] <= v <= HF_BAND[1] for v in diff.values()) and hf["cnn"] < min(diff.values())
    return _claim("V2", "Single diffusion samples keep the CT's detail; the CNN over-smooths.",
                  f"In-plane HF power / the CT's (median over slices, mean over patients): every diffusion single "
                  f"sample in [{HF_BAND[0]}, {HF_BAND[1]}] and the CNN's below all of them.", missing, ok,
                  {label(s): v for s, v in hf.items()}, ", ".join(f"{label(s)} {v:.2f}" for s, v in hf.items()))


def _v3(p: pd.DataFrame) -> dict:
    main = default_sampler()
    z = {v: _per_method(p, v, "z_roughness_ratio").get(main) for v in ("mc_mean", "single")}
    missing = [] if z["mc_mean"] is not None else [main]
    ok = not missing and z["mc_mean"] <= Z_LIMIT
    shown = ", ".join(f"{label(main, v == 'mc_mean')} {x:.2f}" for v, x in z.items() if x is not None)
    return _claim("V3", f"The default sampler's MC mean is as consistent from slice to slice as the CT.",
                  f"Through-plane roughness of {label(main, True)} / the CT's ≤ {Z_LIMIT} (single sample reported).",
                  missing, ok, {k: v for k, v in z.items() if v is not None}, shown)


def _v4(per_slice: pd.DataFrame) -> dict:
    single = per_slice[per_slice["variant"] == "single"].dropna(subset=["mae"])
    ratio = {s: float(g.max() / g.median()) for s, g in single.groupby("sampler", sort=False)["mae"] if g.median() > 0}
    bad = {s: r for s, r in ratio.items() if r > DIVERGENT}
    return _claim("V4", "No divergent samples.",
                  f"Every sampler: largest single-sample slice MAE ≤ {DIVERGENT:g}× its median slice MAE.",
                  [] if ratio else ["any sampler"], not bad, ratio,
                  (f"above {DIVERGENT:g}×: " + ", ".join(f"{label(s)} {r:.1f}×" for s, r in bad.items()) if bad else
                   f"largest ratio {max(ratio.values()):.2f}× ({label(max(ratio, key=ratio.get))})") if ratio else "")


def check_volume_targets(patients: pd.DataFrame, per_slice: pd.DataFrame) -> list[dict]:
    """Targets V1-V4 (pass / fail / not evaluated), with the numbers; V1-V3 need the whole-volume table."""
    if patients.empty:
        p = pd.DataFrame(columns=["sampler", "variant", "mae", "hf_ratio", "z_roughness_ratio"])
    else:
        p = patients
    return [_v1(p), _v2(p), _v3(p), _v4(per_slice)]
