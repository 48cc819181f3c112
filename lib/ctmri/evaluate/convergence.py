"""Did each model converge? Its validation-MAE curve (train/validation.py, `<method>_val.csv`): the relative change of
the MAE over the last fifth of training, read off the curve linearly interpolated at 80 % of the final step. A model
whose MAE still moved by 3 % or more there is marked, and so is every claim judged on it (issue 25)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LAST_FRACTION = 0.2          # the last fifth of training
TOLERANCE = 0.03             # converged: |relative change| over the last fifth below this
# The trained methods each claim is judged on (evaluate/claims.py, evaluate/volume_targets.py).
CLAIM_METHODS = {"C1": ("ddpm", "vesde"), "C2": ("ddpm", "vesde"), "C3": ("ddpm", "vesde"),
                 "C4": ("cnn", "wgan", "ddpm", "vesde"), "C5": ("ddpm", "vesde"),
                 "V1": ("cnn", "ddpm", "vesde"), "V2": ("cnn", "vesde"), "V3": ("vesde",),
                 "V4": ("cnn", "wgan", "ddpm", "vesde"), "V5": ("ddpm",), "V6": ("cnn", "wgan")}


def curve_change(steps: np.ndarray, mae: np.ndarray) -> dict:
    """Final step and MAE, the MAE at the start of the last fifth (interpolated), their relative change, converged."""
    order = np.argsort(steps)
    steps, mae = np.asarray(steps, float)[order], np.asarray(mae, float)[order]
    final_step, final = float(steps[-1]), float(mae[-1])
    start_step = (1 - LAST_FRACTION) * final_step
    if len(steps) < 2 or steps[0] > start_step:
        return {"final_step": int(final_step), "val_mae_hu": final, "mae_last_fifth_start": float("nan"),
                "change": float("nan"), "converged": None, "points": int(len(steps))}
    start = float(np.interp(start_step, steps, mae))
    change = (final - start) / start if start > 0 else float("nan")
    return {"final_step": int(final_step), "val_mae_hu": final, "mae_last_fifth_start": start, "change": change,
            "converged": bool(abs(change) < TOLERANCE), "points": int(len(steps))}


def convergence_table(checkpoints: Path, methods: tuple[str, ...] = ("cnn", "wgan", "ddpm", "vesde")) -> pd.DataFrame:
    """One row per method with a validation curve in `checkpoints/<method>_val.csv`."""
    rows = []
    for m in methods:
        path = Path(checkpoints) / f"{m}_val.csv"
        if path.exists():
            c = pd.read_csv(path)
            if len(c):
                rows.append({"method": m, "sampler": str(c["sampler"].iloc[-1]), **curve_change(c["step"], c["val_mae_hu"])})
    return pd.DataFrame(rows)


def unconverged(claim_id: str, table: pd.DataFrame) -> list[str]:
    """The methods a claim is judged on that had not converged (or whose convergence is unknown: no curve)."""
    if table.empty:
        return []
    known = {r.method: r.converged for r in table.itertuples()}
    return [m for m in CLAIM_METHODS.get(claim_id, ()) if m in known and known[m] is not True]
