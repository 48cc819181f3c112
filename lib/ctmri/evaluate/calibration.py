"""Split-conformal calibration of the MC std (Vovk et al. 2005; Angelopoulos & Bates 2023, Sec. 1-2) with a
difficulty factor per HU bin of the sCT (normalised conformal prediction, Papadopoulos et al. 2008; Lei et al. 2018,
Sec. 5.2): the calibrated uncertainty u = f[bin of the sCT HU] · (std + floor), and per tissue class a scale q that
turns it into an interval mean ± q·u holding the true CT with probability ≥ 1 − α on exchangeable data.

The calibration volumes are split in two: the first part (half of the validation patients, or the first half of the
slices when there is one) fits the factors f, the median of |CT − mean| / (std + floor) among its voxels in each of
`hu_bins` quantile bins of the sCT HU; the second part gives q, the ⌈(n + 1)(1 − α)⌉-th smallest score
|CT − mean| / u of the class's n voxels (the finite-sample conformal quantile), so q never sees the voxels that fit f.
A class with too few voxels for that quantile falls back to the scale of all classes together. Classes and bins are
read off the sCT (the MC mean), which is what a user has at inference; coverage is reported per tissue of the true
CT. The math: docs/ALGORITHMS.md, "Calibrated uncertainty".
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ctmri.interval import STD_FLOOR_HU, TISSUES, Calibration, tissue_of  # noqa: F401  (re-exported)

HU_BINS = 16                                # difficulty bins of the sCT HU (quantiles of the fitting voxels)
MIN_BIN_VOXELS = 50                         # a bin with fewer fitting voxels takes the factor of all bins together


def _check(mean_hu: np.ndarray, std_hu: np.ndarray, mask: np.ndarray, ct_hu: np.ndarray | None = None) -> None:
    shapes = {np.shape(mean_hu), np.shape(std_hu), np.shape(mask)} | ({np.shape(ct_hu)} if ct_hu is not None else set())
    if len(shapes) != 1:
        raise ValueError(f"Calibration needs the MC mean, std, mask (and CT) on one grid, got shapes {sorted(shapes)}.")
    if not np.asarray(mask, bool).any():
        raise ValueError("Calibration: the mask is empty; expected voxels inside the body.")
    if np.any(np.asarray(std_hu)[np.asarray(mask, bool)] < 0):
        raise ValueError("Calibration: the MC std has negative values; expected a standard deviation.")


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """The ⌈(n + 1)(1 − α)⌉-th smallest score (inf when n is too small for a 1 − α guarantee)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}.")
    s = np.sort(np.asarray(scores, np.float64).ravel())
    k = int(np.ceil((s.size + 1) * (1 - alpha)))
    return float(s[k - 1]) if 1 <= k <= s.size else float("inf")


def fit_hu_factors(mean_hu: np.ndarray, score: np.ndarray, bins: int) -> tuple[list[float], list[float]]:
    """Inner edges (quantiles of the sCT HU) and per-bin median of `score` = |error| / (std + floor)."""
    overall = float(np.median(score)) if score.size else 1.0
    overall = overall if overall > 0 else 1.0
    edges = np.unique(np.quantile(mean_hu, np.linspace(0, 1, bins + 1)[1:-1])) if bins > 1 else np.array([])
    idx = np.digitize(mean_hu, edges)
    factors = []
    for b in range(edges.size + 1):
        s = score[idx == b]
        f = float(np.median(s)) if s.size >= MIN_BIN_VOXELS else overall
        factors.append(max(f, 1e-3 * overall))
    return [float(e) for e in edges], factors


def split_fit_conformal(n: int, groups: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean selections along the first axis: (fit, conformal). Several groups (patients): the first ⌊g/2⌋ sorted
    groups fit, the others calibrate; one group: the first half of the entries fits, the second calibrates."""
    if groups is not None:
        g = np.asarray(groups).astype(str)
        if g.shape != (n,):
            raise ValueError(f"Calibration: groups has shape {g.shape}; expected one label per slice ({n},).")
        names = sorted(set(g.tolist()))
        if len(names) >= 2:
            fit = np.isin(g, names[: len(names) // 2])
            return fit, ~fit
    if n < 2:
        raise ValueError("Calibration with HU factors needs at least two slices (one to fit, one to calibrate); "
                         "pass hu_bins=0 for a single slice.")
    fit = np.arange(n) < n // 2
    return fit, ~fit


def calibrate(mean_hu: np.ndarray, std_hu: np.ndarray, ct_hu: np.ndarray, mask: np.ndarray,
              alpha: float = 0.1, floor_hu: float = STD_FLOOR_HU, hu_bins: int = HU_BINS,
              groups: Optional[np.ndarray] = None) -> Calibration:
    """Normalised split-conformal calibration from calibration volumes (never the test patients): HU factors on the
    fitting part, tissue scales q on the rest (`split_fit_conformal`); `hu_bins=0`: no factors, q on all voxels."""
    _check(mean_hu, std_hu, mask, ct_hu)
    mean_hu, std_hu = np.asarray(mean_hu, np.float64), np.asarray(std_hu, np.float64)
    m = np.asarray(mask, bool)
    err = np.abs(np.asarray(ct_hu, np.float64) - mean_hu)
    edges, factors = [], []
    conf = m
    if hu_bins:
        fit_sel, conf_sel = split_fit_conformal(m.shape[0], groups)
        fit = m & fit_sel.reshape((-1,) + (1,) * (m.ndim - 1))
        conf = m & conf_sel.reshape((-1,) + (1,) * (m.ndim - 1))
        if not fit.any() or not conf.any():
            raise ValueError("Calibration: the fitting or the calibrating part has no body voxel; expected body in "
                             "both halves of the validation data.")
        edges, factors = fit_hu_factors(mean_hu[fit], err[fit] / (std_hu[fit] + floor_hu), hu_bins)
    proto = Calibration(alpha=float(alpha), scales={}, overall=1.0, floor_hu=float(floor_hu), hu_edges=edges,
                        hu_factors=factors)
    score = err[conf] / proto.uncertainty(mean_hu[conf], std_hu[conf]).astype(np.float64)
    cls = tissue_of(mean_hu[conf])
    overall = conformal_quantile(score, alpha)
    scales, counts = {}, {}
    for k, name in enumerate(TISSUES):
        s = score[cls == k]
        counts[name] = int(s.size)
        q = conformal_quantile(s, alpha) if s.size else float("inf")
        scales[name] = q if np.isfinite(q) else overall
    return Calibration(alpha=float(alpha), scales=scales, overall=overall, n_voxels=counts, floor_hu=float(floor_hu),
                       hu_edges=edges, hu_factors=factors)


def coverage(cal: Calibration, mean_hu: np.ndarray, std_hu: np.ndarray, ct_hu: np.ndarray,
             mask: np.ndarray) -> dict[str, float]:
    """Share of body voxels whose true CT lies in the interval, overall and per tissue of the true CT, and the mean
    interval width (2 × half-width, HU)."""
    _check(mean_hu, std_hu, mask, ct_hu)
    m = np.asarray(mask, bool)
    half = cal.half_width(mean_hu, std_hu)[m]
    ct = np.asarray(ct_hu, np.float64)[m]
    inside = np.abs(ct - np.asarray(mean_hu, np.float64)[m]) <= half
    out = {"overall": float(inside.mean()), "width_hu": float(2 * half.mean())}
    cls = tissue_of(ct)
    for k, name in enumerate(TISSUES):
        out[name] = float(inside[cls == k].mean()) if np.any(cls == k) else float("nan")
    return out
