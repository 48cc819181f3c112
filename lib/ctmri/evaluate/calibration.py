"""Split-conformal calibration of the MC std (Vovk et al. 2005; Angelopoulos & Bates 2023, Sec. 1-2): per tissue
class a scale q that turns the MC std into an interval mean ± q·(std + floor) holding the true CT with probability
≥ 1 − α on exchangeable data.

Classes are read off the sCT (the MC mean), which is what a user has at inference; coverage is reported per tissue of
the true CT. Nonconformity score of a voxel: |CT − mean| / (std + floor); q = its ⌈(n + 1)(1 − α)⌉-th smallest value
over the class's calibration voxels (the finite-sample conformal quantile). A class with too few calibration voxels
for that quantile falls back to the scale of all classes together. The math: docs/ALGORITHMS.md, "Calibrated
uncertainty".
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

# Tissue classes by HU (lower bound inclusive): air and gas, fat, soft tissue, bone
TISSUES: dict[str, tuple[float, float]] = {"air": (-np.inf, -400.0), "fat": (-400.0, -30.0),
                                            "soft tissue": (-30.0, 200.0), "bone": (200.0, np.inf)}
STD_FLOOR_HU = 1.0                          # keeps the score finite where the MC std is (numerically) zero


def tissue_of(hu: np.ndarray) -> np.ndarray:
    """Tissue class index (order of TISSUES) of every voxel."""
    hu = np.asarray(hu, np.float64)
    out = np.full(hu.shape, -1, np.int64)
    for k, (lo, hi) in enumerate(TISSUES.values()):
        out[(hu >= lo) & (hu < hi)] = k
    return out


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


@dataclass
class Calibration:
    """Scales per tissue class of the sCT: interval half-width = scale[class] · (std + floor), in HU."""

    alpha: float
    scales: dict[str, float]
    overall: float
    n_voxels: dict[str, int] = field(default_factory=dict)
    floor_hu: float = STD_FLOOR_HU

    def half_width(self, mean_hu: np.ndarray, std_hu: np.ndarray) -> np.ndarray:
        """Half-width (HU) of the 1 − α interval around the MC mean, voxel by voxel."""
        cls = tissue_of(mean_hu)
        q = np.array([self.scales.get(name, self.overall) for name in TISSUES] + [self.overall])
        return (q[np.where(cls < 0, len(TISSUES), cls)] * (np.asarray(std_hu, np.float64) + self.floor_hu)).astype(
            np.float32)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        return cls(**d)


def calibrate(mean_hu: np.ndarray, std_hu: np.ndarray, ct_hu: np.ndarray, mask: np.ndarray,
              alpha: float = 0.1, floor_hu: float = STD_FLOOR_HU) -> Calibration:
    """Split-conformal scales per tissue class of the sCT from calibration volumes (never the test patients)."""
    _check(mean_hu, std_hu, mask, ct_hu)
    m = np.asarray(mask, bool)
    score = np.abs(np.asarray(ct_hu, np.float64) - mean_hu)[m] / (np.asarray(std_hu, np.float64)[m] + floor_hu)
    cls = tissue_of(np.asarray(mean_hu)[m])
    overall = conformal_quantile(score, alpha)
    scales, counts = {}, {}
    for k, name in enumerate(TISSUES):
        s = score[cls == k]
        counts[name] = int(s.size)
        q = conformal_quantile(s, alpha) if s.size else float("inf")
        scales[name] = q if np.isfinite(q) else overall
    return Calibration(alpha=float(alpha), scales=scales, overall=overall, n_voxels=counts, floor_hu=float(floor_hu))


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
