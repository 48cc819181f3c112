"""The study's claims C1-C5 (Lyu & Wang 2022, Sec. IV and Fig. 3), checked on the summary table.

`check_claims(summary)` returns one dict per claim: id, what the study says, the criterion checked,
status ("pass", "fail", or "not evaluated" when samplers are missing), the numbers and a sentence.
Quality is the study's SSIM / PSNR on [0, 1]; X-M is the mean of the K Monte-Carlo samples of X.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ctmri.evaluate.methods import BASELINES, STUDY_SAMPLERS, label

SIMILAR_TIME_FACTOR = 1.5   # C3: "similar time" = slower / faster <= 1.5


def _get(summary: pd.DataFrame, sampler: str, variant: str, col: str) -> float | None:
    row = summary[(summary["sampler"] == sampler) & (summary["variant"] == variant)]
    return None if row.empty else float(row[col].iloc[0])


def _missing(summary: pd.DataFrame, samplers: tuple[str, ...], mc: bool = False) -> list[str]:
    """Samplers absent from the summary (or, with mc, without an MC mean, i.e. K = 1)."""
    variant = "mc_mean" if mc else "single"
    return [s for s in samplers if _get(summary, s, variant, "paper_ssim_mean") is None]


def _claim(cid: str, says: str, criterion: str, missing: list[str], ok: bool, numbers: dict, measured: str) -> dict:
    status = "not evaluated" if missing else ("pass" if ok else "fail")
    return {"id": cid, "study": says, "criterion": criterion, "status": status, "missing": missing,
            "numbers": numbers, "measured": measured}


def _claim_c1(s: pd.DataFrame) -> dict:
    nums, parts, ok = {}, [], True
    for x in STUDY_SAMPLERS:
        v = {f"{m}{suf}": _get(s, x, var, f"paper_{m}_mean") for m in ("ssim", "psnr")
             for suf, var in (("", "single"), ("_M", "mc_mean"))}
        if None in v.values():
            continue
        nums[x] = v
        ok &= v["ssim_M"] > v["ssim"] and v["psnr_M"] > v["psnr"]
        parts.append(f"{label(x)}: SSIM {v['ssim']:.3f}→{v['ssim_M']:.3f}, "
                     f"PSNR {v['psnr']:.2f}→{v['psnr_M']:.2f} dB")
    return _claim("C1", "Averaging the MC samples raises SSIM and PSNR for each of DDPM, ODE, EM, PC.",
                  "For each of the four: mean SSIM and mean PSNR of X-M > those of X (single sample).",
                  _missing(s, STUDY_SAMPLERS, mc=True), ok, nums, "; ".join(parts))


def _claim_c2(s: pd.DataFrame) -> dict:
    u = {x: _get(s, x, "mc_mean", "uncertainty_mean") for x in STUDY_SAMPLERS}
    u = {x: v for x, v in u.items() if v is not None and np.isfinite(v)}
    missing = [x for x in STUDY_SAMPLERS if x not in u]
    ok = not missing and max(u["em"], u["pc"]) < min(u["ddpm"], u["ode"])
    return _claim("C2", "EM and PC have lower uncertainty than DDPM and ODE.",
                  "Uncertainty score (mean MC std in the body, [0, 1] scale, mean over slices): "
                  "max(EM, PC) < min(DDPM, ODE).", missing, ok, u,
                  ", ".join(f"{label(x)} {v:.4f}" for x, v in u.items()))


def _claim_c3(s: pd.DataFrame) -> dict:
    t = {x: _get(s, x, "single", "seconds_per_sample") for x in STUDY_SAMPLERS}
    t = {x: v for x, v in t.items() if v is not None}
    missing = [x for x in STUDY_SAMPLERS if x not in t]
    ok = False
    if not missing:
        others = lambda x: [v for k, v in t.items() if k != x]  # noqa: E731
        ratio = max(t["ddpm"], t["em"]) / min(t["ddpm"], t["em"])
        ok = t["ode"] < min(others("ode")) and t["pc"] > max(others("pc")) and ratio <= SIMILAR_TIME_FACTOR
    measured = ", ".join(f"{label(x)} {v:.3g} s" for x, v in t.items())
    if "ddpm" in t and "em" in t:
        measured += f"; DDPM/EM time ratio {max(t['ddpm'], t['em']) / min(t['ddpm'], t['em']):.2f}"
    return _claim("C3", "ODE is the fastest and PC the slowest of the four; DDPM and EM take similar time.",
                  f"Seconds per sample: ODE < the other three, PC > the other three, and slower/faster of "
                  f"DDPM and EM ≤ {SIMILAR_TIME_FACTOR} (\"similar\").", missing, ok, t, measured)


def _claim_c4(s: pd.DataFrame) -> dict:
    need = _missing(s, BASELINES) + _missing(s, STUDY_SAMPLERS, mc=True)
    nums: dict[str, Any] = {}
    for x in BASELINES:
        nums[x] = {m: _get(s, x, "single", f"paper_{m}_mean") for m in ("ssim", "psnr")}
    for x in STUDY_SAMPLERS:
        for var, lab in (("single", label(x)), ("mc_mean", label(x, True))):
            nums[lab] = {m: _get(s, x, var, f"paper_{m}_mean") for m in ("ssim", "psnr")}
    ok, beats_single = False, []
    if not need:
        best = {m: max(nums[b][m] for b in BASELINES) for m in ("ssim", "psnr")}
        ok = all(nums[label(x, True)][m] > best[m] for x in STUDY_SAMPLERS for m in best)
        beats_single = [label(x) for x in STUDY_SAMPLERS if all(nums[label(x)][m] > best[m] for m in best)]
    shown = [lab for lab in ("cnn", "wgan", *[label(x, True) for x in STUDY_SAMPLERS]) if nums[lab]["ssim"] is not None]
    measured = ", ".join(f"{label(lab) if lab in BASELINES else lab} {nums[lab]['ssim']:.3f} / "
                         f"{nums[lab]['psnr']:.2f} dB" for lab in shown)
    if not need:
        measured += f" (SSIM / PSNR). Single samples beating both: {', '.join(beats_single) or 'none'}"
    return _claim("C4", "The diffusion / score methods beat the CNN and WGAN-GP in SSIM and PSNR.",
                  "Every MC-mean variant (DDPM-M, ODE-M, EM-M, PC-M) has higher mean SSIM and higher mean PSNR "
                  "than both the CNN and WGAN-GP (single samples reported, not required).", need, ok, nums, measured)


def _claim_c5(s: pd.DataFrame) -> dict:
    q = {x: {m: _get(s, x, "single", f"paper_{m}_mean") for m in ("ssim", "psnr")} for x in STUDY_SAMPLERS}
    q = {x: v for x, v in q.items() if v["ssim"] is not None}
    missing = [x for x in STUDY_SAMPLERS if x not in q]
    ok = False
    if not missing:
        lowest = all(q["ode"][m] == min(v[m] for v in q.values()) for m in ("ssim", "psnr"))
        top2 = set(sorted(q, key=lambda x: q[x]["ssim"], reverse=True)[:2])
        ok = lowest and top2 == {"ddpm", "pc"}
    return _claim("C5", "ODE gives the lowest quality of the four samplers; DDPM and PC the highest SSIM.",
                  "Single samples: ODE has the lowest mean SSIM and the lowest mean PSNR of the four, and DDPM "
                  "and PC have the two highest mean SSIM.", missing, ok, q,
                  ", ".join(f"{label(x)} {v['ssim']:.3f} / {v['psnr']:.2f} dB" for x, v in q.items()))


def check_claims(summary: pd.DataFrame) -> list[dict]:
    """Claims C1-C5 of the study, each pass / fail / not evaluated (missing samplers), with the numbers."""
    return [f(summary) for f in (_claim_c1, _claim_c2, _claim_c3, _claim_c4, _claim_c5)]
