"""Intensities in model space: the CT HU window and the MR scaling, both mapped to [-1, 1].

CT: HU clipped to the window [HU_MIN, HU_MAX] = [-1024, 3000] and mapped linearly to [-1, 1]
(so one model-space unit is HU_PER_UNIT = 2012 HU). MR: the 0.5 / 99.5 percentiles inside the body
mapped to [-1, 1], then clipped. Every stage that speaks HU (prepare, sample, evaluate, figures)
takes the window from here; docs/ALGORITHMS.md (Intensities) gives the formulas.
"""
from __future__ import annotations

import numpy as np

from ctmri.data.volumes import DataError

HU_MIN, HU_MAX = -1024.0, 3000.0
HU_PER_UNIT = (HU_MAX - HU_MIN) / 2.0          # HU per model-space unit: 2012
MR_PERCENTILES = (0.5, 99.5)


def hu_to_model(hu):
    """CT HU → model space: clip to [-1024, 3000], map linearly to [-1, 1] (numpy or torch)."""
    hu = hu if hasattr(hu, "clip") else np.asarray(hu, dtype=np.float32)
    return (hu.clip(HU_MIN, HU_MAX) - HU_MIN) * (2.0 / (HU_MAX - HU_MIN)) - 1.0


def model_to_hu(x):
    """Model space → CT HU, the inverse of `hu_to_model` on [-1, 1] (not clipped)."""
    x = x if hasattr(x, "clip") else np.asarray(x, dtype=np.float32)
    return (x + 1.0) * HU_PER_UNIT + HU_MIN


def std_to_hu(std):
    """A standard deviation (or any difference) in model space → HU: the map is affine, so only the scale acts."""
    return std * HU_PER_UNIT


def normalise_mr(mr: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """MR → model space: 0.5 / 99.5 percentiles inside the body mapped to [-1, 1], then clipped."""
    mr = np.asarray(mr, dtype=np.float32)
    inside = mr[mask] if mask is not None and np.any(mask) else mr.ravel()
    lo, hi = np.percentile(inside, MR_PERCENTILES)
    if not hi > lo:
        raise DataError(f"MR intensities inside the body are constant ({lo:g}); expected an image with contrast.")
    return np.clip((mr - lo) * (2.0 / (hi - lo)) - 1.0, -1.0, 1.0).astype(np.float32)
