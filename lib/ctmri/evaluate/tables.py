"""Evaluation stage (03_evaluate): per-slice / per-patient metrics of every sampler, summary tables, the study's claims.

Reads every `runs/<profile>/samples/<sampler>.npz` present (`ctmri.sample.store`) and writes
into `runs/<profile>/`:
- `metrics.csv`     one row per sampler / variant / test slice: the study's SSIM, PSNR ([0, 1] scale),
                    SynthRAD2023 MAE / PSNR / SSIM in HU inside the body mask, bone Dice, time, NFE;
                    variant "single" = MC replicate 0 (label "DDPM"), "mc_mean" = the MC mean
                    (label "DDPM-M", only when K > 1);
- `uncertainty.csv` one row per MC sampler / slice: uncertainty score (mean std in the body, [0, 1]
                    scale as in the study's Fig. 2-3, and in HU), Spearman rho(std, |error of the MC
                    mean|), AUSE in HU;
- `patients.csv`    SynthRAD2023 metrics of each patient's stacked test slices (3-D);
- `summary.csv` / `summary.md`  mean ± std over slices per method variant;
- `claims.md` / `claims.json`   the study's claims C1-C5 checked automatically (`check_claims`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ctmri.evaluate import metrics as M
from ctmri.paths import run_dir, samples_path
from ctmri.sample.store import load_samples, sample_files
from ctmri.data.prepare import model_to_hu
from ctmri.provenance import atomic_path, provenance, write_json

BASELINES = ("cnn", "wgan")
STUDY_SAMPLERS = ("ddpm", "ode", "em", "pc")
FAST_SAMPLERS = ("ddim", "dpm++2m", "heun")
ORDER = BASELINES + STUDY_SAMPLERS + FAST_SAMPLERS
NAMES = {"cnn": "CNN", "wgan": "WGAN-GP", "ddpm": "DDPM", "ode": "ODE", "em": "EM", "pc": "PC",
         "ddim": "DDIM", "dpm++2m": "DPM++2M", "heun": "Heun"}
QUALITY = ("paper_ssim", "paper_psnr", "mae", "psnr", "ssim", "bone_dice")
UNCERTAINTY = ("uncertainty", "uncertainty_hu", "spearman", "ause_hu")
SIMILAR_TIME_FACTOR = 1.5   # C3: "similar time" = slower / faster <= 1.5


def label(sampler: str, mc_mean: bool = False) -> str:
    """Display label of a sampler ("DDPM"), with "-M" for the MC mean as in the study ("DDPM-M")."""
    return NAMES.get(sampler, sampler) + ("-M" if mc_mean else "")


def hu_scale() -> float:
    """HU per model-space unit (2012 for the [-1024, 3000] window), taken from `prepare.model_to_hu`."""
    return float(model_to_hu(np.float64(1.0)) - model_to_hu(np.float64(0.0)))


def variants(d: dict[str, Any]) -> list[tuple[str, str, np.ndarray]]:
    """(variant, label, prediction (N, H, W) in model space): replicate 0, plus the MC mean when K > 1."""
    out = [("single", label(d["name"]), d["samples"][:, 0, 0])]
    if d["K"] > 1:
        out.append(("mc_mean", label(d["name"], True), d["mean"][:, 0]))
    return out


def _or_nan(fn: Callable, *args: np.ndarray) -> float:
    """SSIM, NaN where undefined: a stack thinner than 3 slices, or a body only within 3 pixels of the border."""
    try:
        return fn(*args)
    except ValueError:
        return float("nan")


def _quality(ct: np.ndarray, pred: np.ndarray, mask: np.ndarray, mr2ct: bool) -> dict[str, float]:
    """All quality metrics of one slice (model space in): study's metrics, SynthRAD2023 in HU, bone Dice."""
    nan = float("nan")
    if not mr2ct:  # target is MR: the study's [0, 1] metrics only, HU metrics undefined
        unit = lambda x: np.clip((x + 1) / 2, 0, 1)  # noqa: E731
        return {"paper_ssim": M.unit_ssim(unit(ct), unit(pred)), "paper_psnr": M.unit_psnr(unit(ct), unit(pred)),
                "mae": nan, "psnr": nan, "ssim": nan, "bone_dice": nan}
    ct_hu, sct_hu = model_to_hu(ct), model_to_hu(pred)
    row = {"paper_ssim": M.paper_ssim(ct_hu, sct_hu), "paper_psnr": M.paper_psnr(ct_hu, sct_hu)}
    if mask.any():
        row.update(mae=M.synthrad_mae(ct_hu, sct_hu, mask), psnr=M.synthrad_psnr(ct_hu, sct_hu, mask),
                   ssim=_or_nan(M.synthrad_ssim, ct_hu, sct_hu, mask), bone_dice=M.bone_dice(ct_hu, sct_hu, mask))
    else:
        row.update(mae=nan, psnr=nan, ssim=nan, bone_dice=nan)
    return row


def _ids(d: dict[str, Any], i: int) -> dict[str, Any]:
    return {"sampler": d["name"], "slice": i, "patient": d["patient"][i], "slice_index": int(d["slice_index"][i])}


def slice_metrics(d: dict[str, Any]) -> pd.DataFrame:
    """Per-slice quality metrics of one sampler, single sample and MC mean (rows of metrics.csv)."""
    rows = []
    for variant, lab, pred in variants(d):
        for i in range(pred.shape[0]):
            rows.append({**_ids(d, i), "variant": variant, "label": lab, "K": d["K"],
                         **_quality(d["target"][i, 0], pred[i], d["mask"][i], d["direction"] == "mr2ct"),
                         "seconds_per_sample": d["seconds_per_sample"], "nfe": d["nfe"]})
    return pd.DataFrame(rows)


def uncertainty_metrics(d: dict[str, Any]) -> pd.DataFrame:
    """Per-slice uncertainty of an MC sampler (K > 1): mean std in the body, Spearman rho(std, |err|), AUSE (HU)."""
    if d["K"] < 2:
        return pd.DataFrame()
    scale = hu_scale()
    rows = []
    for i in range(d["mean"].shape[0]):
        m = d["mask"][i]
        if not m.any():
            continue
        std_hu = d["std"][i, 0] * scale
        err_hu = np.abs(d["mean"][i, 0] - d["target"][i, 0]) * scale
        rows.append({**_ids(d, i), "label": label(d["name"], True), "K": d["K"],
                     "uncertainty": M.uncertainty_score(d["std"][i, 0] / 2, m),   # [0, 1] image scale
                     "uncertainty_hu": M.uncertainty_score(std_hu, m),
                     "spearman": M.spearman_uncertainty_error(std_hu, err_hu, m),
                     "ause_hu": M.ause(std_hu, err_hu, m)})
    return pd.DataFrame(rows)


def patient_metrics(d: dict[str, Any]) -> pd.DataFrame:
    """SynthRAD2023 metrics in 3-D: each patient's test slices stacked in slice order (NaN SSIM if < 3 slices)."""
    if d["direction"] != "mr2ct":
        return pd.DataFrame()
    rows = []
    for variant, lab, pred in variants(d):
        for patient in dict.fromkeys(d["patient"]):
            idx = np.flatnonzero(d["patient"] == patient)
            idx = idx[np.argsort(d["slice_index"][idx], kind="stable")]
            ct, sct, m = model_to_hu(d["target"][idx, 0]), model_to_hu(pred[idx]), d["mask"][idx]
            if not m.any():
                continue
            rows.append({"sampler": d["name"], "variant": variant, "label": lab, "patient": patient,
                         "n_slices": len(idx), "mae": M.synthrad_mae(ct, sct, m), "psnr": M.synthrad_psnr(ct, sct, m),
                         "ssim": _or_nan(M.synthrad_ssim, ct, sct, m),
                         "bone_dice": M.bone_dice(ct, sct, m)})
    return pd.DataFrame(rows)


def summarise(per_slice: pd.DataFrame, unc: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (ddof 1) over slices of every metric, one row per method variant, in the study's order."""
    keys = ["label", "sampler", "variant"]
    agg = per_slice.groupby(keys, sort=False)[list(QUALITY)].agg(["mean", "std"])
    agg.columns = [f"{m}_{s}" for m, s in agg.columns]
    first = per_slice.groupby(keys, sort=False)[["K", "seconds_per_sample", "nfe"]].first()
    counts = per_slice.groupby(keys, sort=False).size().rename("n_slices")
    out = pd.concat([first, counts, agg], axis=1).reset_index()
    if len(unc):
        u = unc.groupby("label", sort=False)[list(UNCERTAINTY)].agg(["mean", "std"])
        u.columns = [f"{m}_{s}" for m, s in u.columns]
        out = out.merge(u.reset_index(), on="label", how="left")
    else:
        for m in UNCERTAINTY:
            out[f"{m}_mean"] = out[f"{m}_std"] = np.nan
    rank = {s: i for i, s in enumerate(ORDER)}
    out["_r"] = [(rank.get(s, len(rank)), v != "single") for s, v in zip(out["sampler"], out["variant"])]
    return out.sort_values("_r", kind="stable").drop(columns="_r").reset_index(drop=True)


def _pm(mean: float, std: float, digits: int) -> str:
    if not np.isfinite(mean):
        return "–" if np.isnan(mean) else f"{mean}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if np.isfinite(std) else f"{mean:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def summary_markdown(profile: str, summary: pd.DataFrame, patients: pd.DataFrame, prov: dict) -> str:
    """summary.md: the per-slice table (mean ± std) and the per-patient 3-D SynthRAD2023 table."""
    cols = [("paper_ssim", "SSIM [0,1]", 3), ("paper_psnr", "PSNR [0,1] (dB)", 2), ("mae", "MAE (HU)", 1),
            ("psnr", "PSNR HU (dB)", 2), ("ssim", "SSIM HU", 3), ("bone_dice", "bone Dice", 3),
            ("uncertainty", "uncertainty [0,1]", 4), ("spearman", "Spearman ρ", 3), ("ause_hu", "AUSE (HU)", 1)]
    rows = [[r.label, str(int(r.K)), str(int(r.n_slices))] + [_pm(getattr(r, f"{c}_mean"), getattr(r, f"{c}_std"), d)
                                                            for c, _, d in cols]
            + [f"{r.seconds_per_sample:.3g}", f"{r.nfe:.0f}"] for r in summary.itertuples()]
    text = [f"# Summary: profile `{profile}`", "",
            "Per test slice, mean ± std over slices. *SSIM / PSNR [0,1]*: the study's metrics on CT with the HU "
            "window [−1024, 3000] scaled to [0, 1], whole image. *MAE, PSNR HU, SSIM HU*: SynthRAD2023 protocol "
            "inside the body mask (clip to [−1024, 3000], data range 4024). Bone Dice: CT > 200 HU (1 when "
            "neither image has bone). *-M*: mean of the K "
            "Monte-Carlo samples; uncertainty = mean MC std inside the body on the [0, 1] scale; Spearman ρ and "
            "AUSE compare the std map with |error| of the MC mean. Seconds and NFE are per sample (an -M estimate "
            "costs K samples).", "",
            markdown_table(["method", "K", "slices"] + [c[1] for c in cols] + ["s / sample", "NFE"], rows)]
    if len(patients):
        p = patients.groupby("label", sort=False).agg(n=("patient", "size"), mae=("mae", "mean"),
                                                       psnr=("psnr", "mean"), ssim=("ssim", "mean"),
                                                       dice=("bone_dice", "mean"))
        p = p.reindex([lab for lab in summary["label"] if lab in p.index])
        prow = [[lab, str(int(r.n)), f"{r.mae:.1f}", f"{r.psnr:.2f}", "–" if np.isnan(r.ssim) else f"{r.ssim:.3f}",
                 f"{r.dice:.3f}"] for lab, r in p.iterrows()]
        text += ["", "## Per patient (3-D, SynthRAD2023)", "",
                 "Each patient's test slices stacked in slice order; mean over patients. SSIM needs ≥ 3 slices "
                 "(– otherwise); the SSIM window is min(7, smallest side rounded down to odd).", "",
                 markdown_table(["method", "patients", "MAE (HU)", "PSNR (dB)", "SSIM", "bone Dice"], prow)]
    text += ["", f"_git {prov['git_commit']}, created {prov['created']}._", ""]
    return "\n".join(text)


# ---- the study's claims (Lyu & Wang 2022, Sec. IV; Fig. 3) -------------------------------------------

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


SYMBOL = {"pass": "✓", "fail": "✗"}


def claims_markdown(profile: str, claims: list[dict], prov: dict) -> str:
    """claims.md: one table row per claim (✓ / ✗ / not evaluated) with the criterion and the numbers."""
    rows = []
    for c in claims:
        result = SYMBOL.get(c["status"]) or f"not evaluated (missing samplers: {', '.join(c['missing'])})"
        rows.append([c["id"], result, c["study"], c["criterion"], c["measured"] or "–"])
    return "\n".join([
        f"# The study's claims, checked automatically: profile `{profile}`", "",
        "Quality is the study's metric (SSIM / PSNR on CT with the HU window [−1024, 3000] scaled to [0, 1]), "
        "mean over test slices; X-M is the mean of the K Monte-Carlo samples of sampler X. A ✗ is a finding "
        "about this run, not a bug.", "",
        markdown_table(["claim", "result", "the study says", "checked as", "measured"], rows), "",
        f"_Samplers evaluated: {', '.join(prov.get('samplers', []))}; git {prov['git_commit']}, "
        f"created {prov['created']}._", ""])


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return path


def _write_text(text: str, path: Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def _commit_of(d: dict[str, Any]) -> str:
    """Git commit recorded in a samples file's provenance ("?" when absent or unreadable)."""
    try:
        return str(json.loads(str(d["provenance"])).get("git_commit", "?"))
    except (KeyError, ValueError, AttributeError):
        return "?"


def evaluate(profile: str) -> dict[str, Path]:
    """Run the evaluation stage on every samples file of `profile`; return the paths written."""
    files = sample_files(profile, ORDER)
    if not files:
        raise FileNotFoundError(f"No samples in {samples_path(profile, '*')}; run the sampling stage (02_sample) "
                                "first.")
    per_slice, unc, patients, inputs = [], [], [], {}
    for name, path in files.items():
        d = load_samples(path)
        per_slice.append(slice_metrics(d))
        unc.append(uncertainty_metrics(d))
        patients.append(patient_metrics(d))
        inputs[name] = _commit_of(d)
    per_slice = pd.concat(per_slice, ignore_index=True)
    unc = pd.concat(unc, ignore_index=True)
    patients = pd.concat(patients, ignore_index=True)
    summary = summarise(per_slice, unc)
    prov = provenance(profile, samplers=list(files), sample_commits=inputs)
    claims = check_claims(summary)
    out = run_dir(profile)
    paths = {"metrics": _write_csv(per_slice, out / "metrics.csv"),
             "uncertainty": _write_csv(unc, out / "uncertainty.csv"),
             "patients": _write_csv(patients, out / "patients.csv"),
             "summary": _write_csv(summary, out / "summary.csv"),
             "summary_md": _write_text(summary_markdown(profile, summary, patients, prov), out / "summary.md"),
             "claims": _write_text(claims_markdown(profile, claims, prov), out / "claims.md"),
             "claims_json": write_json(out / "claims.json", {"profile": profile, "claims": claims,
                                                              "provenance": prov})}
    return paths
