"""Calibrated MC uncertainty per sampler (issue 19): split-conformal scales fitted on the validation patients'
samples (`runs/<profile>/calibration/<sampler>.npz`, written by the sampling stage), applied to the test samples.

Per calibrated sampler and per scope (all test voxels pooled, then each test patient): pixel-wise Spearman ρ(MC std,
|error of the MC mean|) and of the calibrated half-width, AUSE in HU (`metrics.ause`, pooled and mean per slice),
coverage of the 1 − α interval overall and per tissue of the true CT, and the mean interval width →
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
    half = cal.half_width(mean, std)
    per_slice = [M.ause(std[i], err[i], mask[i]) for i in range(len(mask)) if mask[i].sum() >= 20]
    cov = coverage(cal, mean, std, ct, mask)
    row = {"n_voxels": int(mask.sum()), "mae_hu": float(np.abs(err[mask]).mean()),
           "mean_std_hu": float(std[mask].mean()),
           "spearman": M.spearman_uncertainty_error(std, err, mask),
           "spearman_halfwidth": M.spearman_uncertainty_error(half, err, mask),
           "ause_hu": M.ause(std, err, mask),
           "ause_hu_slice_mean": float(np.mean(per_slice)) if per_slice else float("nan"),
           "coverage": cov["overall"], "width_hu": cov["width_hu"]}
    row.update({col: cov[name] for name, col in TISSUE_COLUMNS.items()})
    return row


def calibrate_sampler(val: dict[str, Any], test: dict[str, Any], alpha: float = ALPHA) -> tuple[Calibration, list[dict]]:
    """Fit on the validation samples, report on the test samples: (calibration, rows pooled then per patient)."""
    v, t = hu_arrays(val), hu_arrays(test)
    cal = calibrate(v["mean"], v["std"], v["ct"], v["mask"], alpha=alpha)
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
                    "val_path": vpath})
    return out


def _fmt(x: float, digits: int = 2) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def calibration_markdown(results: list[dict], alpha: float = ALPHA) -> str:
    target = round(100 * (1 - alpha))
    lines = [f"# Calibrated MC uncertainty ({target} % split-conformal intervals)", ""]
    if not results:
        lines += ["No calibration samples: the profile has no validation patients (`DataConfig.n_val_patients`), or "
                  "no calibrated sampler was sampled.", ""]
        return "\n".join(lines)
    lines += [f"Scales per tissue class of the sCT fitted on the validation patients "
              f"({', '.join(results[0]['val_patients'])}), never trained or tested on; coverage on the test patients, "
              f"per tissue of the true CT. Targets (issue 19): Spearman ≥ 0.5 pooled, coverage 88–92 % overall and "
              "≥ 85 % in bone and air. ρ(h): Spearman of the calibrated half-width. AUSE in HU (pooled; mean per "
              "slice).", "",
              "| sampler | K | ρ(std, \\|err\\|) pooled | ρ per patient | ρ(h) pooled | AUSE HU | AUSE HU / slice | "
              "coverage | air | fat | soft tissue | bone | width HU | MAE HU |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        pooled = r["rows"][0]
        per = ", ".join(_fmt(x["spearman"]) for x in r["rows"][1:])
        lines.append(f"| {r['label']} | {r['K']} | {_fmt(pooled['spearman'])} | {per} | "
                     f"{_fmt(pooled['spearman_halfwidth'])} | {_fmt(pooled['ause_hu'], 1)} | "
                     f"{_fmt(pooled['ause_hu_slice_mean'], 1)} | {_fmt(100 * pooled['coverage'], 1)} % | "
                     + " | ".join(f"{_fmt(100 * pooled[c], 1)} %" for c in TISSUE_COLUMNS.values())
                     + f" | {_fmt(pooled['width_hu'], 0)} | {_fmt(pooled['mae_hu'], 1)} |")
    lines += ["", "Scales q per tissue class of the sCT (half-width = q · (std + 1 HU)):", "",
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
    rows = [{"sampler": r["sampler"], "label": r["label"], "method": r["method"], "K": r["K"], **row}
            for r in results for row in r["rows"]]
    columns = ["sampler", "label", "method", "K", "scope", "n_voxels", "mae_hu", "mean_std_hu", "spearman",
               "spearman_halfwidth", "ause_hu", "ause_hu_slice_mean", "coverage", *TISSUE_COLUMNS.values(), "width_hu"]
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
