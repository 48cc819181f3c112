"""Is an input the contrast the model was trained on? Quantiles of the normalised condition inside the body, kept
from the training patients in the checkpoint, against the input's: the mean absolute difference (model units, the
1-D Wasserstein distance of the two intensity distributions). docs/ARCHITECTURE.md, "Inputs the model refuses"."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

LEVELS = tuple(float(v) for v in np.linspace(2, 98, 25))   # percentiles compared
# Above this distance an input is refused unless the user overrides (`--accept-contrast`). Measured against the
# committed cpu weights' statistics on unseen phantom patients 100-103 (benchmarks/results/geometry.md): T2w 0.05-0.07,
# T2w at other voxel sizes (block-averaged from 1.5 mm) 0.04-0.10, with a 40 % bias field 0.07-0.11, with 3x the
# noise 0.03-0.07; T1-like 0.27-0.32; inverted 0.42-0.48; the cpu training patients' own distances to their pool
# 0.05-0.12. 0.18 sits between, 1.7x the largest unseen T2w distance.
MAX_DISTANCE = 0.18
SPREAD_FACTOR = 1.5   # the limit is at least this many times the largest training patient's own distance


def quantiles(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Percentiles LEVELS of the normalised condition inside the body (model units, [-1, 1])."""
    values = np.asarray(images, np.float32).reshape(-1)[np.asarray(masks, bool).reshape(-1)]
    if values.size == 0:
        return np.full(len(LEVELS), np.nan)
    return np.percentile(values, LEVELS)


def training_stats(images: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> dict:
    """What a checkpoint keeps of its training condition, one entry per training patient in `images` / `masks`: the
    percentile levels and pooled values, the voxel count, and each patient's own distance to the pool."""
    per = [np.asarray(i)[:, 0] if np.asarray(i).ndim == 4 else np.asarray(i) for i in images]
    ms = [np.asarray(m, bool) for m in masks]
    pooled = quantiles(np.concatenate(per), np.concatenate(ms))
    stats = {"levels": list(LEVELS), "quantiles": [round(float(v), 5) for v in pooled],
             "n_voxels": int(sum(m.sum() for m in ms))}
    stats["patient_distances"] = [round(distance(stats, i, m), 4) for i, m in zip(per, ms)]
    return stats


def limit(stats: dict) -> float:
    """The largest distance accepted: MAX_DISTANCE, or more where the training patients differed more among
    themselves (small images, few patients)."""
    spread = max(stats.get("patient_distances") or [0.0])
    return float(max(MAX_DISTANCE, SPREAD_FACTOR * spread))


def distance(stats: dict, images: np.ndarray, masks: np.ndarray) -> float:
    """Mean |input quantile − training quantile| over the training record's levels (model units)."""
    levels = np.asarray(stats["levels"], float)
    values = np.asarray(images, np.float32).reshape(-1)[np.asarray(masks, bool).reshape(-1)]
    if values.size == 0:
        return float("nan")
    return float(np.mean(np.abs(np.percentile(values, levels) - np.asarray(stats["quantiles"], float))))


def check(stats: Optional[dict], images: np.ndarray, masks: np.ndarray) -> dict:
    """{"distance", "max_distance", "ok"} of an input against a checkpoint's training statistics (None: unknown)."""
    if not stats:
        return {"distance": None, "max_distance": MAX_DISTANCE, "ok": None,
                "note": "the checkpoint records no training intensity statistics"}
    d, most = distance(stats, images, masks), limit(stats)
    return {"distance": round(d, 4), "max_distance": round(most, 4), "ok": bool(d <= most)}
