"""The calibrated interval a user gets (`ctmri synthesize`'s sct_interval90): the record fitted by
evaluate/calibration.py and how it turns an MC mean and std into a half-width in HU (normalised split-conformal
prediction; docs/ALGORITHMS.md, "Calibrated uncertainty"). Below sample/ and evaluate/, which both use it."""
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


@dataclass
class Calibration:
    """Calibrated uncertainty u = hu_factors[bin of the sCT HU] · (std + floor) and interval half-width
    scales[class] · u, in HU (no bins: factor 1, the plain split-conformal std)."""

    alpha: float
    scales: dict[str, float]
    overall: float
    n_voxels: dict[str, int] = field(default_factory=dict)
    floor_hu: float = STD_FLOOR_HU
    hu_edges: list[float] = field(default_factory=list)      # inner edges of the sCT-HU bins (ascending)
    hu_factors: list[float] = field(default_factory=list)    # one factor per bin: len(hu_edges) + 1

    def __post_init__(self) -> None:
        if self.hu_factors and len(self.hu_factors) != len(self.hu_edges) + 1:
            raise ValueError(f"Calibration: {len(self.hu_factors)} HU factors for {len(self.hu_edges)} inner edges; "
                             "expected one factor per bin (edges + 1).")

    def uncertainty(self, mean_hu: np.ndarray, std_hu: np.ndarray) -> np.ndarray:
        """The calibrated uncertainty u (HU), voxel by voxel: the MC std scaled by its sCT-HU bin's factor."""
        base = np.asarray(std_hu, np.float64) + self.floor_hu
        if not self.hu_factors:
            return base.astype(np.float32)
        f = np.asarray(self.hu_factors, np.float64)[np.digitize(np.asarray(mean_hu, np.float64), self.hu_edges)]
        return (f * base).astype(np.float32)

    def half_width(self, mean_hu: np.ndarray, std_hu: np.ndarray) -> np.ndarray:
        """Half-width (HU) of the 1 − α interval around the MC mean, voxel by voxel."""
        cls = tissue_of(mean_hu)
        q = np.array([self.scales.get(name, self.overall) for name in TISSUES] + [self.overall])
        return (q[np.where(cls < 0, len(TISSUES), cls)] * self.uncertainty(mean_hu, std_hu)).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        return cls(**d)
