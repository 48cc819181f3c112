"""Dose metrics of an sCT against the CT's dose: SynthRAD2023's dose MAE in the >= 90 % region, gamma (pymedphys,
global, 10 % cutoff), PTV D98 and OAR D2 / Dmean, DVH curves, and the MC dose uncertainty (std vs |error|)."""
from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import spearmanr


def dose_mae_percent(ref: np.ndarray, test: np.ndarray, rx: float) -> float:
    """Mean |D_sCT − D_CT| / prescription (%) where the CT dose is >= 90 % of the prescription (SynthRAD2023)."""
    region = ref >= 0.9 * rx
    return float(np.mean(np.abs(test[region] - ref[region])) / rx * 100.0) if region.any() else float("nan")


def gamma_pass(ref: np.ndarray, test: np.ndarray, spacing: Sequence[float], dose_pct: float, dta_mm: float,
               points: int = 0, seed: int = 0) -> float:
    """Gamma pass rate (%), global to the CT dose's maximum, 10 % low-dose cutoff (pymedphys.gamma); `points` > 0
    evaluates a seeded random subset of the reference points (pymedphys' `random_subset`); always computed, also
    for identical doses."""
    import pymedphys

    axes = tuple(np.arange(n) * float(s) for n, s in zip(ref.shape, spacing))
    algo = "pymedphys" if importlib.util.find_spec("numba") else "scipy"
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        g = pymedphys.gamma(axes, ref.astype(np.float64), axes, test.astype(np.float64), dose_percent_threshold=dose_pct,
                            distance_mm_threshold=dta_mm, lower_percent_dose_cutoff=10.0, max_gamma=1.1,
                            random_subset=int(points) or None, interp_algo=algo, quiet=True)
    finally:
        np.random.set_state(state)
    g = g[np.isfinite(g)]
    return float(np.mean(g <= 1.0) * 100.0) if g.size else float("nan")


def dvh_metrics(dose: np.ndarray, structures: Mapping[str, np.ndarray], target: str) -> dict[str, float]:
    """PTV D98 (Gy), and per OAR D2 and Dmean (Gy); BODY and empty structures left out."""
    out = {f"{target}_D98": float(np.percentile(dose[structures[target]], 2))}
    for name, m in structures.items():
        if name == target or name.upper() in ("BODY", "EXTERNAL", "PROSTATE") or not np.any(m):
            continue
        out[f"{name}_D2"] = float(np.percentile(dose[m], 98))
        out[f"{name}_Dmean"] = float(np.mean(dose[m]))
    return out


def dvh_curve(dose: np.ndarray, mask: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Cumulative DVH: the volume fraction (%) receiving at least each dose in `bins`."""
    d = np.sort(dose[mask])
    return 100.0 * (1.0 - np.searchsorted(d, bins, side="left") / max(len(d), 1))


def compare(ref: np.ndarray, test: np.ndarray, structures: Mapping[str, np.ndarray], target: str, rx: float,
            spacing: Sequence[float], gamma_points: int = 0) -> dict[str, float]:
    """Every dose metric of one recomputed dose against the reference dose (differences: test − reference)."""
    row = {"dose_mae_pct": dose_mae_percent(ref, test, rx),
           "gamma_2_2": gamma_pass(ref, test, spacing, 2.0, 2.0, gamma_points),
           "gamma_1_1": gamma_pass(ref, test, spacing, 1.0, 1.0, gamma_points)}
    a, b = dvh_metrics(ref, structures, target), dvh_metrics(test, structures, target)
    row.update({f"d_{k}": b[k] - a[k] for k in a})
    row[f"{target}_D98_ref"] = a[f"{target}_D98"]
    return row


def dose_uncertainty(samples: np.ndarray, ref: np.ndarray, cutoff: float = 0.1) -> tuple[np.ndarray, float]:
    """Per-voxel std (Gy, ddof 1) of MC-sample doses (K, z, y, x), and its Spearman with |mean − reference| over the
    voxels above `cutoff` of the reference maximum."""
    std = samples.std(axis=0, ddof=1) if len(samples) > 1 else np.zeros_like(ref)
    err = np.abs(samples.mean(axis=0) - ref)
    region = ref >= cutoff * ref.max()
    rho = spearmanr(std[region], err[region]).statistic if region.sum() > 2 and std[region].std() > 0 else float("nan")
    return std, float(rho)
