"""Regenerate the reverse trajectory of one MC replicate from its checkpoint, for the explorer.

Only replicate 0 of each slice has a recorded trajectory in `<sampler>.npz`; replicate k draws all
its noise from its own seed (`rng.replicate_seed(seed, test_index, k)`), so its trajectory is
redrawn exactly (to solver tolerance for the ODE) with the same settings as the samples file.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Callable, Optional

import numpy as np

from ctmri import paths, rng


@lru_cache(maxsize=4)
def _model(profile: str, method: str):
    from ctmri.models import checkpoints

    path = paths.checkpoint_path(profile, method)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint {path}; train it with `ctmri train --profile {profile} "
                                f"--method {method}`.")
    return checkpoints.load_model(path, "cpu")


def regenerate_trajectory(profile: str, sampler: str, data: dict, pos: int, replicate: int,
                          progress: Optional[Callable[[int, int], None]] = None) -> tuple[np.ndarray, np.ndarray]:
    """(x_t, x0_pred) frames (F, H, W) of slice position `pos`, replicate `replicate`, at the file's recorded steps."""
    from ctmri.config import get_profile
    from ctmri.sample import mc, settings

    loaded = _model(profile, settings.sampler_method(sampler))
    prof = get_profile(profile)
    options = json.loads(str(data["provenance"])).get("options") if "provenance" in data else None
    if options is None:
        options = settings.sampler_settings(prof, sampler)[1]
    steps = data["trajectory_steps"]
    every = int(steps[1] - steps[0]) if len(steps) > 2 else max(int(steps[-1]), 1)
    if "seeds" in data:                                   # the seed this replicate was drawn with
        seed = int(data["seeds"][pos, replicate])
    else:
        test_index = int(data["test_index"][pos]) if "test_index" in data else pos
        seed = rng.replicate_seed(prof.sample.seed, test_index, replicate)
    if progress is not None:
        progress(0, 1)
    rec = mc.trajectories(loaded.model, loaded.process, sampler, data["cond"][pos:pos + 1], [seed],
                          steps=int(data["steps"]), every=every, options=options,
                          out_channels=data["samples"].shape[2], device="cpu", progress=progress)
    return rec["trajectory"][0, :, 0], rec["trajectory_x0"][0, :, 0]
