"""The 3-mm study's own targets (V1-V6, issue 25), checked like the study's claims (`claims.py`).

V1: every diffusion / score MC mean has MAE <= 0.9x the CNN's: the study's four long samplers on the test subset
(mean over slices, the CNN on the same slices), every few-step sampler on the whole volumes (3-D MAE, mean over
patients); the one-call read-out D(noise) reported, not judged. V2: single VE samples keep the CT's in-plane detail
(high-frequency power 0.85-1.15x the CT's; D(noise) reported) and the CNN's is lower. V3: the default sampler's MC
mean is as consistent from slice to slice as the CT (through-plane roughness <= 1.2x the CT's). V4: no divergent
samples (no single sample's slice MAE above 3x its sampler's median slice MAE). V5: the ancestral DDPM's single
samples find the bone without inventing it (bone Dice >= 0.85, false bone <= 1 % of body voxels, mean over the
subset slices). V6: the WGAN-GP is a GAN that keeps its fidelity (HF 0.5-1.5x the CT's, MAE <= 1.3x the CNN's).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ctmri.diffusion.samplers import SAMPLERS, default_sampler
from ctmri.evaluate.claims import _claim
from ctmri.evaluate.methods import BASELINES, STUDY_SAMPLERS, label

MAE_FACTOR = 0.9            # V1: MC means <= this x the CNN's MAE
HF_BAND = (0.85, 1.15)      # V2
Z_LIMIT = 1.2               # V3
DIVERGENT = 3.0             # V4
BONE_DICE_MIN, FALSE_BONE_MAX = 0.85, 0.01   # V5
GAN_HF_BAND, GAN_MAE_FACTOR = (0.5, 1.5), 1.3  # V6
READ_OUT = tuple(n for n, s in SAMPLERS.items() if not s.one_pass and s.default_steps == 1)  # one call from noise:
#                             a regression read-out (D(noise)), reported beside V1 / V2


def _per_method(patients: pd.DataFrame, variant: str, col: str) -> dict[str, float]:
    rows = patients[patients["variant"] == variant]
    return {s: float(v) for s, v in rows.groupby("sampler", sort=False)[col].mean().items()}


def _subset_means(per_slice: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """MC-mean MAE of the study's long samplers on their slices, and the CNN's MAE on the same slices."""
    if per_slice.empty or "patient" not in per_slice:
        return {}, {}
    cnn = per_slice[(per_slice["sampler"] == "cnn") & (per_slice["variant"] == "single")]
    cnn = cnn.set_index(["patient", "slice_index"])["mae"]
    means, base = {}, {}
    for s in STUDY_SAMPLERS:
        if s in BASELINES:
            continue
        rows = per_slice[(per_slice["sampler"] == s) & (per_slice["variant"] == "mc_mean")].dropna(subset=["mae"])
        keys = list(zip(rows["patient"], rows["slice_index"]))
        shared = [k in cnn.index for k in keys]
        if rows.empty or not any(shared):
            continue
        means[s] = float(rows["mae"][shared].mean())
        base[s] = float(cnn.loc[[k for k, ok in zip(keys, shared) if ok]].mean())
    return means, base


def _v1(p: pd.DataFrame, per_slice: pd.DataFrame) -> dict:
    cnn = _per_method(p, "single", "mae").get("cnn")
    vol = {s: v for s, v in _per_method(p, "mc_mean", "mae").items() if s not in BASELINES}
    judged = {s: v for s, v in vol.items() if s not in READ_OUT}
    sub, sub_cnn = _subset_means(per_slice)
    missing = ([] if cnn is not None else ["cnn"]) + ([] if judged else ["a diffusion sampler on volumes"])
    ok = (not missing and all(v <= MAE_FACTOR * cnn for v in judged.values())
          and all(v <= MAE_FACTOR * sub_cnn[s] for s, v in sub.items()))
    nums = {"CNN (volumes)": cnn, **{f"{label(s, True)} (subset)": v for s, v in sub.items()},
            **{f"CNN on {label(s)}'s subset": v for s, v in sub_cnn.items()},
            **{label(s, True): v for s, v in vol.items()}}
    shown = [f"CNN {cnn:.1f} HU on volumes" if cnn is not None else ""]
    shown += [f"{label(s, True)} {v:.1f} vs CNN {sub_cnn[s]:.1f} HU (subset)" for s, v in sub.items()]
    shown += [f"{label(s, True)} {v:.1f} HU" + (" (read-out, not judged)" if s in READ_OUT else "")
              for s, v in vol.items()]
    return _claim("V1", f"Every diffusion / score MC mean is at least {100 * (1 - MAE_FACTOR):.0f} % better than the "
                  "CNN in MAE.",
                  f"MAE of every X-M ≤ {MAE_FACTOR} × the CNN's: the study's long samplers on the test subset (mean "
                  "over slices, CNN on the same slices), the few-step samplers on the whole volumes (3-D, mean over "
                  "patients); D(noise) reported only.", missing, ok, nums, ", ".join(x for x in shown if x))


def _v2(p: pd.DataFrame) -> dict:
    hf = _per_method(p, "single", "hf_ratio")
    ve = {s: v for s, v in hf.items() if s in SAMPLERS and SAMPLERS[s].method == "vesde" and s not in READ_OUT}
    missing = ([] if "cnn" in hf else ["cnn"]) + ([] if ve else ["a VE sampler on volumes"])
    ok = not missing and all(HF_BAND[0] <= v <= HF_BAND[1] for v in ve.values()) and hf["cnn"] < min(ve.values())
    return _claim("V2", "Single VE samples keep the CT's detail; the CNN over-smooths.",
                  f"In-plane HF power / the CT's (median over slices, mean over patients): every VE single sample "
                  f"on volumes in [{HF_BAND[0]}, {HF_BAND[1]}] (D(noise) and the DDPM family reported) and the CNN's "
                  "below all of them.", missing, ok,
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


def _v5(per_slice: pd.DataFrame) -> dict:
    rows = per_slice[(per_slice["sampler"] == "ddpm") & (per_slice["variant"] == "single")] if "sampler" in per_slice \
        else per_slice
    rows = rows.dropna(subset=["bone_dice", "false_bone"]) if len(rows) else rows
    missing = [] if len(rows) else ["ddpm"]
    dice = float(rows["bone_dice"].mean()) if len(rows) else float("nan")
    false = float(rows["false_bone"].mean()) if len(rows) else float("nan")
    ok = not missing and dice >= BONE_DICE_MIN and false <= FALSE_BONE_MAX
    return _claim("V5", "The DDPM's single samples find the bone without inventing it.",
                  f"Ancestral DDPM single samples (mean over the subset slices): bone Dice ≥ {BONE_DICE_MIN} and "
                  f"false bone (sCT > 300 HU where the CT < 100 HU) ≤ {100 * FALSE_BONE_MAX:g} % of body voxels.",
                  missing, ok, {"bone_dice": dice, "false_bone": false},
                  f"bone Dice {dice:.3f}, false bone {100 * false:.2f} %" if not missing else "")


def _v6(p: pd.DataFrame) -> dict:
    mae, hf = _per_method(p, "single", "mae"), _per_method(p, "single", "hf_ratio")
    missing = [b for b in BASELINES if b not in mae]
    ok = (not missing and GAN_HF_BAND[0] <= hf.get("wgan", np.nan) <= GAN_HF_BAND[1]
          and mae["wgan"] <= GAN_MAE_FACTOR * mae["cnn"])
    nums = {"wgan_hf": hf.get("wgan"), "wgan_mae": mae.get("wgan"), "cnn_mae": mae.get("cnn")}
    return _claim("V6", "The WGAN-GP shows the CT's detail without losing the CNN's fidelity.",
                  f"WGAN-GP single samples on volumes: HF power / the CT's in [{GAN_HF_BAND[0]}, {GAN_HF_BAND[1]}] "
                  f"and MAE ≤ {GAN_MAE_FACTOR} × the CNN's.", missing, ok, nums,
                  f"WGAN-GP HF {nums['wgan_hf']:.2f}, MAE {nums['wgan_mae']:.1f} HU (CNN {nums['cnn_mae']:.1f} HU, "
                  f"ratio {nums['wgan_mae'] / nums['cnn_mae']:.2f})" if not missing else "")


def check_volume_targets(patients: pd.DataFrame, per_slice: pd.DataFrame) -> list[dict]:
    """Targets V1-V6 (pass / fail / not evaluated), with the numbers; V1-V3 and V6 need the whole-volume table."""
    if patients.empty:
        p = pd.DataFrame(columns=["sampler", "variant", "mae", "hf_ratio", "z_roughness_ratio"])
    else:
        p = patients
    return [_v1(p, per_slice), _v2(p), _v3(p), _v4(per_slice), _v5(per_slice), _v6(p)]
