"""Calibrated MC uncertainty per sampler (issue 19): normalised split-conformal calibration (HU factors and tissue
scales, `evaluate/calibration.py`) fitted on the validation patients' samples (`runs/<profile>/calibration/
<sampler>.npz`, written by the sampling stage), applied to the test samples.

Per calibrated sampler and per scope (all test voxels pooled, then each test patient): pixel-wise Spearman ρ against
|error of the MC mean| of the raw MC std, of the calibrated uncertainty u, of the HU factor alone (what the sCT value
says without the MC spread) and of the half-width; AUSE in HU (`metrics.ause`) of the std and of u, pooled and mean
per slice; coverage of the 1 − α interval overall and per tissue of the true CT, and the mean interval width →
`runs/<profile>/calibration.csv|md`; the fitted `Calibration` of each method's default sampler is stored beside its
checkpoint (`checkpoints/<method>.calibration.json`) for `ctmri synthesize`. Body voxels only (the samples' mask).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctmri import paths
from ctmri.config import METHODS
from ctmri.data.intensity import model_to_hu, std_to_hu
from ctmri.diffusion.samplers import default_sampler, spec
from ctmri.evaluate import metrics as M
from ctmri.evaluate.calibration import TISSUES, Calibration, calibrate, coverage
from ctmri.provenance import atomic_path, provenance, write_json
from ctmri.sample.store import load_samples

ALPHA = 0.1
TISSUE_COLUMNS = {name: f"coverage_{name.replace(' ', '_')}" for name in TISSUES}


def hu_arrays(d: dict[str, Any]) -> dict[str, np.ndarray]:
    """MC mean, MC std, true CT (HU, (N, H, W)) and the body mask of a loaded samples file (mr2ct)."""
    return {"mean": model_to_hu(np.asarray(d["mean"], np.float64)[:, 0]),
            "std": std_to_hu(np.asarray(d["std"], np.float64)[:, 0]),
            "ct": model_to_hu(np.asarray(d["target"], np.float64)[:, 0]), "mask": np.asarray(d["mask"], bool)}


def scope_metrics(cal: Calibration, mean: np.ndarray, std: np.ndarray, ct: np.ndarray,
                  mask: np.ndarray) -> dict[str, float]:
    """Ranking (Spearman, AUSE in HU) and interval (coverage, width) metrics of one set of (N, H, W) HU arrays."""
    err = ct - mean
    half, u = cal.half_width(mean, std), cal.uncertainty(mean, std)
    prior = cal.uncertainty(mean, np.zeros_like(std))         # the HU factor alone: no MC spread

    def per_slice(unc: np.ndarray) -> float:
        values = [M.ause(unc[i], err[i], mask[i]) for i in range(len(mask)) if mask[i].sum() >= 20]
        return float(np.mean(values)) if values else float("nan")

    cov = coverage(cal, mean, std, ct, mask)
    row = {"n_voxels": int(mask.sum()), "mae_hu": float(np.abs(err[mask]).mean()),
           "mean_std_hu": float(std[mask].mean()),
           "spearman": M.spearman_uncertainty_error(std, err, mask),
           "spearman_calibrated": M.spearman_uncertainty_error(u, err, mask),
           "spearman_hu_factor": M.spearman_uncertainty_error(prior, err, mask),
           "spearman_halfwidth": M.spearman_uncertainty_error(half, err, mask),
           "ause_hu": M.ause(std, err, mask), "ause_hu_slice_mean": per_slice(std),
           "ause_calibrated_hu": M.ause(u, err, mask), "ause_calibrated_hu_slice_mean": per_slice(u),
           "coverage": cov["overall"], "width_hu": cov["width_hu"]}
    row.update({col: cov[name] for name, col in TISSUE_COLUMNS.items()})
    return row


def calibrate_sampler(val: dict[str, Any], test: dict[str, Any], alpha: float = ALPHA) -> tuple[Calibration, list[dict]]:
    """Fit on the validation samples, report on the test samples: (calibration, rows pooled then per patient)."""
    v, t = hu_arrays(val), hu_arrays(test)
    cal = calibrate(v["mean"], v["std"], v["ct"], v["mask"], alpha=alpha, groups=np.asarray(val["patient"]).astype(str))
    rows = [{"scope": "pooled", **scope_metrics(cal, t["mean"], t["std"], t["ct"], t["mask"])}]
    patient = np.asarray(test["patient"]).astype(str)
    for p in sorted(set(patient)):
        sel = patient == p
        rows.append({"scope": p, **scope_metrics(cal, t["mean"][sel], t["std"][sel], t["ct"][sel], t["mask"][sel])})
    return cal, rows


def calibration_results(profile: str, alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Every sampler with both validation and test samples (mr2ct): its calibration, rows and the arrays read."""
    folder = paths.calibration_samples_path(profile, "_").parent
    found = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    order = {s: i for i, s in enumerate(dict.fromkeys([default_sampler()] + [default_sampler(m) for m in METHODS]))}
    out = []
    for vpath in sorted(found, key=lambda p: (order.get(p.stem, len(order)), p.stem)):
        tpath = paths.samples_path(profile, vpath.stem)
        if not tpath.exists():
            continue
        val, test = load_samples(vpath), load_samples(tpath)
        if val["direction"] != "mr2ct" or test["direction"] != "mr2ct":
            continue                                        # intervals in HU: the CT must be the target
        cal, rows = calibrate_sampler(val, test, alpha)
        sampler = vpath.stem
        out.append({"sampler": sampler, "method": spec(sampler).method, "label": spec(sampler).label,
                    "K": test["K"], "K_val": val["K"], "calibration": cal, "rows": rows, "val": val, "test": test,
                    "val_patients": sorted(set(np.asarray(val["patient"]).astype(str))),
                    "val_slices": int(len(val["patient"])), "val_path": vpath})
    return out


def _fmt(x: float, digits: int = 2) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def target_lines(r: dict, alpha: float = ALPHA) -> list[str]:
    """The issue's targets, read on one sampler's pooled test row: Spearman ≥ 0.5, coverage 88–92 % overall and
    ≥ 85 % in bone and air (targets set for α = 0.1), AUSE at most half of the raw std's."""
    p = r["rows"][0]
    cov, air, bone = 100 * p["coverage"], 100 * p[TISSUE_COLUMNS["air"]], 100 * p[TISSUE_COLUMNS["bone"]]
    ratio = p["ause_calibrated_hu_slice_mean"] / p["ause_hu_slice_mean"] if p["ause_hu_slice_mean"] else float("nan")
    return [f"Targets on {r['label']} (pooled test voxels):", "",
            f"- Spearman ≥ 0.5: raw MC std {_fmt(p['spearman'])} {_mark(p['spearman'] >= 0.5)}, calibrated "
            f"uncertainty u {_fmt(p['spearman_calibrated'])} {_mark(p['spearman_calibrated'] >= 0.5)} (the HU factor "
            f"alone {_fmt(p['spearman_hu_factor'])});",
            f"- coverage 88–92 %: {_fmt(cov, 1)} % {_mark(88 <= cov <= 92)}; air ≥ 85 %: {_fmt(air, 1)} % "
            f"{_mark(air >= 85)}; bone ≥ 85 %: {_fmt(bone, 1)} % {_mark(bone >= 85)};",
            f"- AUSE per slice at most half of the raw std's: {_fmt(p['ause_hu_slice_mean'], 1)} → "
            f"{_fmt(p['ause_calibrated_hu_slice_mean'], 1)} HU ({_fmt(ratio)}×) {_mark(ratio <= 0.5)}.", ""]


def calibration_markdown(results: list[dict], alpha: float = ALPHA) -> str:
    target = round(100 * (1 - alpha))
    lines = [f"# Calibrated MC uncertainty ({target} % normalised split-conformal intervals)", ""]
    if not results:
        lines += ["No calibration samples: the profile has no validation patients (`DataConfig.n_val_patients`), or "
                  "no calibrated sampler was sampled.", ""]
        return "\n".join(lines)
    vals = results[0]["val_patients"]
    lines += [f"Calibrated on validation patients never trained or tested on ({', '.join(vals)}): the HU factors "
              f"(the median |error| / (std + 1 HU) per sCT-HU bin) on the first {len(vals) // 2 or 'half'}"
              f"{'' if len(vals) // 2 else ' of the slices'}, the tissue scales q on the rest; coverage on the test "
              "patients, per tissue of the true CT. u = factor · (std + 1 HU) is the calibrated uncertainty, the "
              "interval half-width is q · u. ρ: pixel-wise Spearman against |error of the MC mean|; ρ(f): the HU "
              "factor alone, without the MC std. AUSE per slice in HU. Val slices: the validation slices sampled "
              "(the non-default samplers get fewer).", ""]
    lines += target_lines(results[0], alpha)
    lines += ["| sampler | K | val slices | ρ(std) | ρ(u) | ρ(u) per patient | ρ(f) | AUSE std → u | coverage | air "
              "| fat | soft tissue | bone | width HU | MAE HU |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        pooled = r["rows"][0]
        per = ", ".join(_fmt(x["spearman_calibrated"]) for x in r["rows"][1:])
        lines.append(f"| {r['label']} | {r['K']} | {r['val_slices']} | {_fmt(pooled['spearman'])} | "
                     f"{_fmt(pooled['spearman_calibrated'])} | {per} | {_fmt(pooled['spearman_hu_factor'])} | "
                     f"{_fmt(pooled['ause_hu_slice_mean'], 1)} → {_fmt(pooled['ause_calibrated_hu_slice_mean'], 1)} | "
                     f"{_fmt(100 * pooled['coverage'], 1)} % | "
                     + " | ".join(f"{_fmt(100 * pooled[c], 1)} %" for c in TISSUE_COLUMNS.values())
                     + f" | {_fmt(pooled['width_hu'], 0)} | {_fmt(pooled['mae_hu'], 1)} |")
    lines += ["", "Scales q per tissue class of the sCT (half-width = q · u):", "",
              "| sampler | " + " | ".join(TISSUES) + " | all |", "|---|" + "---|" * (len(TISSUES) + 1)]
    for r in results:
        cal = r["calibration"]
        lines.append(f"| {r['label']} | " + " | ".join(_fmt(cal.scales[n]) for n in TISSUES)
                     + f" | {_fmt(cal.overall)} |")
    return "\n".join(lines) + "\n"


def calibration_report(profile: str, alpha: float = ALPHA) -> dict[str, Path]:
    """Stage part of 03_evaluate: calibration.csv|md in runs/<profile>/ (written even when nothing is calibrated),
    and `checkpoints/<method>.calibration.json` for each method whose default sampler was calibrated."""
    results = calibration_results(profile, alpha)
    run = paths.run_dir(profile)
    rows = [{"sampler": r["sampler"], "label": r["label"], "method": r["method"], "K": r["K"],
             "val_slices": r["val_slices"], **row}
            for r in results for row in r["rows"]]
    columns = ["sampler", "label", "method", "K", "val_slices", "scope", "n_voxels", "mae_hu", "mean_std_hu",
               "spearman", "spearman_calibrated", "spearman_hu_factor", "spearman_halfwidth", "ause_hu",
               "ause_hu_slice_mean", "ause_calibrated_hu", "ause_calibrated_hu_slice_mean", "coverage",
               *TISSUE_COLUMNS.values(), "width_hu"]
    written: dict[str, Path] = {}
    with atomic_path(run / "calibration.csv") as tmp:
        pd.DataFrame(rows, columns=columns).to_csv(tmp, index=False, float_format="%.5g")
    written["calibration_csv"] = run / "calibration.csv"
    with atomic_path(run / "calibration.md") as tmp:
        tmp.write_text(calibration_markdown(results, alpha))
    written["calibration_md"] = run / "calibration.md"
    for r in results:
        if r["sampler"] != default_sampler(r["method"]):
            continue
        import json

        val_prov = json.loads(str(r["val"].get("provenance", "{}")) or "{}")
        ckpt = paths.checkpoint_path(profile, r["method"])
        written[f"{r['method']}_calibration"] = write_json(paths.calibration_json(ckpt), {
            "sampler": r["sampler"], "method": r["method"], "alpha": alpha, "mc_samples": r["K_val"],
            "steps": val_prov.get("steps"), "val_patients": r["val_patients"],
            "checkpoint_digest": val_prov.get("checkpoint_digest"), "data_digest": val_prov.get("data_digest"),
            "test_coverage": r["rows"][0]["coverage"], "calibration": r["calibration"].to_dict(),
            "provenance": provenance(profile, stage="calibration", sampler=r["sampler"], alpha=alpha)})
    return written


def load_calibration(path: str | Path) -> tuple[Calibration, dict]:
    """A calibration json (as written by `calibration_report`): (Calibration, the whole record)."""
    import json

    record = json.loads(Path(path).read_text())
    return Calibration.from_dict(record["calibration"] if "calibration" in record else record), record
