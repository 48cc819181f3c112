"""Convergence shown: the validation MAE of a model during training (issue 25). At each checkpoint the saved weights
(the EMA for diffusion, as sampling uses them) run the method's default sampler at the profile's steps on a few fixed
validation slices (one per validation patient, centred), one sample each with fixed seeds; the MAE in HU inside the
body goes to `<method>_val.csv` beside the checkpoint. `evaluate/convergence.py` reads the curve."""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ctmri.config import Profile
from ctmri.data.intensity import model_to_hu
from ctmri.diffusion.samplers import default_sampler, get_sampler, spec
from ctmri.rng import make_generator, replicate_seed

FIELDS = ["step", "val_mae_hu", "sampler", "steps", "slices", "seconds"]


@dataclass
class ValidationSet:
    """The fixed validation slices of a training run, in model space."""

    cond: np.ndarray      # (n, C, H, W)
    target: np.ndarray    # (n, 1, H, W)
    mask: np.ndarray      # (n, H, W) bool
    index: np.ndarray     # rows of the validation split

    def __len__(self) -> int:
        return int(self.cond.shape[0])


def centred_rows(n: int, m: int) -> np.ndarray:
    """`m` rows at the centres of m equal parts of 0..n-1 (one per patient when m is the patient count)."""
    if m >= n:
        return np.arange(n)
    return np.unique(np.floor((np.arange(m) + 0.5) * n / m).astype(np.int64))


def validation_set(profile: Profile) -> Optional[ValidationSet]:
    """`TrainConfig.val_slices` centred slices of the profile's validation split; None when it has none or it is off."""
    from ctmri.data.slices import has_validation, load_split

    if profile.train.val_slices <= 0 or not has_validation(profile):
        return None
    val = load_split(profile, "val", context=profile.model.context_slices)
    rows = centred_rows(len(val), profile.train.val_slices)
    return ValidationSet(val.cond[rows], val.target[rows], val.mask[rows], rows)


@torch.no_grad()
def validation_mae(model, process, method: str, profile: Profile, data: ValidationSet, seed: int = 0,
                   device: str | torch.device = "cpu") -> float:
    """MAE (HU, body voxels pooled over the slices) of one sample per validation slice with the method's default
    sampler; the same seeds at every checkpoint, so the curve moves only with the weights."""
    sampler = default_sampler(method)
    record = spec(sampler)
    fn = record.run if record.one_pass else get_sampler(sampler, process)
    y = torch.as_tensor(data.cond, dtype=torch.float32, device=device)
    gens = None if record.one_pass else [make_generator(replicate_seed(seed, int(i), 0), device) for i in data.index]
    steps, options = record.settings(profile.sample)
    out = fn(model, process, y, steps=steps, generator=gens, info={}, out_channels=data.target.shape[1],
             **options).float().cpu().numpy()
    err = np.abs(model_to_hu(out[:, 0]) - model_to_hu(data.target[:, 0]))
    return float(err[data.mask].mean())


def log_validation(checkpoint: Path, method: str, profile: Profile, data: ValidationSet, step: int,
                   device: str | torch.device = "cpu") -> dict:
    """Validate the weights saved in `checkpoint` and append the row to `<method>_val.csv`; the row."""
    from ctmri.models.checkpoints import load_model

    start = time.perf_counter()
    loaded = load_model(checkpoint, device)
    sampler = default_sampler(method)
    mae = validation_mae(loaded.model, loaded.process, method, profile, data, device=device)
    row = {"step": int(step), "val_mae_hu": round(mae, 3),
           "sampler": sampler, "steps": spec(sampler).steps_for(profile.sample), "slices": len(data),
           "seconds": round(time.perf_counter() - start, 3)}
    path = curve_path(checkpoint, method)
    rows = [r for r in read_curve(path) if int(r["step"]) < step]          # a resumed run rewrites what follows
    rows.append(row)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)
    return row


def curve_path(checkpoint: Path, method: str) -> Path:
    return Path(checkpoint).with_name(f"{method}_val.csv")


def read_curve(path: Path) -> list[dict]:
    """The rows of a `<method>_val.csv` (empty when absent)."""
    if not Path(path).exists():
        return []
    with open(path, newline="") as f:
        return [dict(r, step=int(r["step"]), val_mae_hu=float(r["val_mae_hu"])) for r in csv.DictReader(f)]
