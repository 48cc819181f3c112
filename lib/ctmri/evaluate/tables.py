"""Evaluation stage (03_evaluate): per-slice / per-patient metric tables of every sampler, their summary, `evaluate`.

Reads every `runs/<profile>/samples/<sampler>.npz` present (`ctmri.sample.store`) and writes
into `runs/<profile>/`:
- `metrics.csv`     one row per sampler / variant / test slice: the study's SSIM, PSNR ([0, 1] scale),
                    SynthRAD2023 MAE / PSNR / SSIM in HU inside the body mask, bone Dice, time, NFE;
                    variant "single" = MC replicate 0 (label "DDPM"), "mc_mean" = the MC mean
                    (label "DDPM-M", only when K > 1);
- `uncertainty.csv` one row per MC sampler / slice: uncertainty score (mean std in the body, [0, 1]
                    scale as in the study's Fig. 2-3, and in HU), Spearman rho(std, |error of the MC
                    mean|), AUSE in HU;
- `patients.csv`    per patient and method variant, on the whole contiguous test volumes (samplers whose registry
                    `evaluation` is "volumes"): SynthRAD2023 MAE / PSNR / SSIM in 3-D, bone Dice, the
                    inter-slice consistency (through-plane roughness of the sCT / the CT's own), the in-plane
                    high-frequency power ratio (median over slices) and the worst slice's MAE / the median's;
                    hallucinated and missed bone (false_bone: sCT > 300 HU where the CT < 100 HU, share of body
                    voxels; missed_bone: share of the CT's bone > 300 HU the sCT puts below 100 HU; per slice too)
                    and the MAE per tissue class of the CT (air / gas, fat, soft tissue, bone);
- `summary.csv` / `summary.md`  mean ± std over slices per method variant, on the slices every sampler ran (the
                    profile's subset), so that every row compares like with like (markdown: `evaluate.report`);
- `claims.md` / `claims.json`   the study's claims C1-C5 checked automatically (`evaluate.claims`), each with the
                    models it was judged on that had not converged;
- `convergence.csv` per method: the validation-MAE curve's relative change over the last fifth of training
                    (`evaluate.convergence`, from `checkpoints/<method>_val.csv`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ctmri.data.intensity import model_to_hu, std_to_hu
from ctmri.evaluate import metrics as M
from ctmri.evaluate.claims import check_claims
from ctmri.evaluate.convergence import convergence_table, unconverged
from ctmri.evaluate.methods import ORDER, label, variants
from ctmri.evaluate.report import claims_markdown, summary_markdown
from ctmri.evaluate.volume_targets import check_volume_targets
from ctmri.paths import run_dir, samples_path
from ctmri.provenance import atomic_path, provenance, write_json
from ctmri.sample.store import load_samples, sample_files

QUALITY = ("paper_ssim", "paper_psnr", "mae", "psnr", "ssim", "bone_dice", "false_bone", "missed_bone")
TISSUE_MAE = {"air": "mae_air", "fat": "mae_fat", "soft tissue": "mae_soft", "bone": "mae_bone"}   # patients.csv
UNCERTAINTY = ("uncertainty", "uncertainty_hu", "spearman", "ause_hu")


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
                "mae": nan, "psnr": nan, "ssim": nan, "bone_dice": nan, "false_bone": nan, "missed_bone": nan}
    ct_hu, sct_hu = model_to_hu(ct), model_to_hu(pred)
    row = {"paper_ssim": M.paper_ssim(ct_hu, sct_hu), "paper_psnr": M.paper_psnr(ct_hu, sct_hu)}
    if mask.any():
        row.update(mae=M.synthrad_mae(ct_hu, sct_hu, mask), psnr=M.synthrad_psnr(ct_hu, sct_hu, mask),
                   ssim=_or_nan(M.synthrad_ssim, ct_hu, sct_hu, mask), bone_dice=M.bone_dice(ct_hu, sct_hu, mask),
                   false_bone=M.false_bone_fraction(ct_hu, sct_hu, mask),
                   missed_bone=M.missed_bone_fraction(ct_hu, sct_hu, mask))
    else:
        row.update(mae=nan, psnr=nan, ssim=nan, bone_dice=nan, false_bone=nan, missed_bone=nan)
    return row


def _ids(d: dict[str, Any], i: int) -> dict[str, Any]:
    test_index = d["test_index"][i] if "test_index" in d else i
    return {"sampler": d["name"], "slice": i, "test_index": int(test_index), "patient": d["patient"][i],
            "slice_index": int(d["slice_index"][i])}


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
    rows = []
    for i in range(d["mean"].shape[0]):
        m = d["mask"][i]
        if not m.any():
            continue
        std_hu = std_to_hu(d["std"][i, 0])
        err_hu = std_to_hu(np.abs(d["mean"][i, 0] - d["target"][i, 0]))
        rows.append({**_ids(d, i), "label": label(d["name"], True), "K": d["K"],
                     "uncertainty": M.uncertainty_score(d["std"][i, 0] / 2, m),   # [0, 1] image scale
                     "uncertainty_hu": M.uncertainty_score(std_hu, m),
                     "spearman": M.spearman_uncertainty_error(std_hu, err_hu, m),
                     "ause_hu": M.ause(std_hu, err_hu, m)})
    return pd.DataFrame(rows)


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


def _z_roughness_ratio(ct: np.ndarray, sct: np.ndarray, mask: np.ndarray) -> float:
    """Inter-slice consistency: through-plane roughness of the sCT over the CT's own (1 = as consistent)."""
    return _ratio(M.through_plane_roughness(sct, mask), M.through_plane_roughness(ct, mask))


def patient_metrics(d: dict[str, Any]) -> pd.DataFrame:
    """Per patient on the whole contiguous test volume (SynthRAD2023 in 3-D, bone Dice, inter-slice consistency,
    HF ratio, worst slice); empty for samples on a subset of slices, whose stacks would span gaps."""
    if d["direction"] != "mr2ct" or d["evaluation"] != "volumes":
        return pd.DataFrame()
    rows = []
    for variant, lab, pred in variants(d):
        for patient in dict.fromkeys(d["patient"]):
            idx = np.flatnonzero(d["patient"] == patient)
            idx = idx[np.argsort(d["slice_index"][idx], kind="stable")]
            ct, sct, m = model_to_hu(d["target"][idx, 0]), model_to_hu(pred[idx]), d["mask"][idx]
            if not m.any():
                continue
            slice_mae = [M.synthrad_mae(c, s_, mm) for c, s_, mm in zip(ct, sct, m) if mm.any()]
            hf = [_ratio(M.high_frequency_power(s_), M.high_frequency_power(c)) for c, s_ in zip(ct, sct)]
            rows.append({"sampler": d["name"], "variant": variant, "label": lab, "patient": patient,
                         "n_slices": len(idx), "mae": M.synthrad_mae(ct, sct, m), "psnr": M.synthrad_psnr(ct, sct, m),
                         "ssim": _or_nan(M.synthrad_ssim, ct, sct, m), "bone_dice": M.bone_dice(ct, sct, m),
                         "z_roughness_ratio": _or_nan(_z_roughness_ratio, ct, sct, m),
                         "hf_ratio": float(np.nanmedian(hf)),
                         "false_bone": M.false_bone_fraction(ct, sct, m),
                         "missed_bone": M.missed_bone_fraction(ct, sct, m),
                         **{TISSUE_MAE[k]: v for k, v in M.mae_by_tissue(ct, sct, m).items()},
                         "worst_slice_ratio": _ratio(max(slice_mae), float(np.median(slice_mae)))})
    return pd.DataFrame(rows)


def common_slices(per_slice: pd.DataFrame) -> pd.DataFrame:
    """The rows of the test slices every sampler ran (the profile's subset when some sampler ran only that)."""
    if per_slice.empty:
        return per_slice
    sets = [set(g) for _, g in per_slice.groupby("sampler", sort=False)["test_index"]]
    shared = set.intersection(*sets)
    return per_slice[per_slice["test_index"].isin(shared)]


def summarise(per_slice: pd.DataFrame, unc: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (ddof 1) over slices of every metric, one row per method variant, in the study's order."""
    keys = ["label", "sampler", "variant"]
    per_slice = per_slice.assign(**{q: np.nan for q in QUALITY if q not in per_slice})   # tables of older runs
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


def check_same_data(profile: str, provs: dict[str, dict]) -> None:
    """Refuse samples made from other prepared data (or the other direction) than the profile's, naming both."""
    from ctmri import paths
    from ctmri.data.slices import check_same_data

    if not (paths.processed_dir(profile) / "manifest.json").exists():   # samples built without prepared data
        return
    for name, prov in provs.items():
        check_same_data(prov, profile, f"Sample file {name!r}", "resample them (`ctmri sample`)")


def evaluate(profile: str) -> dict[str, Path]:
    """Run the evaluation stage on every samples file of `profile`; return the paths written."""
    files = sample_files(profile, ORDER)
    if not files:
        raise FileNotFoundError(f"No samples in {samples_path(profile, '*')}; run the sampling stage (02_sample) "
                                "first.")
    per_slice, unc, patients, inputs = [], [], [], {}
    data = {name: load_samples(path) for name, path in files.items()}
    check_same_data(profile, {name: json.loads(str(d.get("provenance", "{}"))) for name, d in data.items()})
    for name, d in data.items():
        per_slice.append(slice_metrics(d))
        unc.append(uncertainty_metrics(d))
        patients.append(patient_metrics(d))
        inputs[name] = _commit_of(d)
    per_slice = pd.concat(per_slice, ignore_index=True)
    unc = pd.concat(unc, ignore_index=True)
    patients = pd.concat(patients, ignore_index=True)
    summary = summarise(common_slices(per_slice), common_slices(unc) if len(unc) else unc)
    prov = provenance(profile, samplers=list(files), sample_commits=inputs)
    claims = check_claims(summary) + check_volume_targets(patients, per_slice)
    out = run_dir(profile)
    conv = convergence_table(out / "checkpoints")
    for c in claims:
        c["unconverged"] = unconverged(c["id"], conv)
    paths = {"convergence": _write_csv(conv, out / "convergence.csv"),
             "metrics": _write_csv(per_slice, out / "metrics.csv"),
             "uncertainty": _write_csv(unc, out / "uncertainty.csv"),
             "patients": _write_csv(patients, out / "patients.csv"),
             "summary": _write_csv(summary, out / "summary.csv"),
             "summary_md": _write_text(summary_markdown(profile, summary, patients, prov), out / "summary.md"),
             "claims": _write_text(claims_markdown(profile, claims, prov, conv), out / "claims.md"),
             "claims_json": write_json(out / "claims.json", {"profile": profile, "claims": claims,
                                                              "provenance": prov})}
    return paths
