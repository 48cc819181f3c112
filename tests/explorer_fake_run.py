"""A small samples folder for the explorer tests: real samplers and `mc.monte_carlo` on a toy model, no training.

The toy denoiser predicts the condition's mirror image, so every sampler ends in a distinct, known image in a few
steps; each file follows the samples contract (`store.save_samples`).
"""
from __future__ import annotations

import numpy as np
import torch

from ctmri.diffusion.processes import DDPM, VESDE
from ctmri.sample import mc, settings
from ctmri.sample.store import save_samples

SAMPLERS = {"ddpm": 8, "ddim": 4, "em": 8, "dpm++2m-ve": 4, "cnn": 1}   # sampler -> steps


def toy_model(process, cond: np.ndarray, target: np.ndarray):
    """The exact denoiser D(x, y, sigma) (diffusion) / prediction G(y) (one pass) when the data is a point mass at
    the target of each batch element's condition (matched by value, so any batch order works): the target itself."""
    def model(x, y=None, sigma=None):
        y = x if y is None else y                                   # one-pass models are called as model(y)
        idx = [int(np.argmin(np.abs(cond[:, 0, 0, 0] - float(v)))) for v in y[:, 0, 0, 0]]
        return torch.from_numpy(target[idx]).to(x)
    return model


def write_fake_run(profile: str = "demo", n: int = 3, size: int = 16, k: int = 3) -> dict[str, dict]:
    """Write runs/<profile>/samples/<sampler>.npz under $CTMRI_ROOT; returns what was written per sampler."""
    cond = np.random.default_rng(0).uniform(-1, 1, (n, 1, size, size)).astype(np.float32)
    target = -cond                                              # the "CT" is the mirror image of the "MR"
    written = {}
    for sampler, steps in SAMPLERS.items():
        method = settings.sampler_method(sampler)
        process = None if method == "cnn" else (DDPM(100) if method == "ddpm" else VESDE(25.0))
        res = mc.monte_carlo(toy_model(process, cond, target), process, sampler, cond, mc_samples=k, steps=steps,
                             device="cpu", progress=False, trajectory_slices=range(n), trajectory_every=2)
        out = dict(res, target=target, cond=cond, mask=np.ones((n, size, size), bool),
                   patient=np.array(["P1"] * n), slice_index=np.arange(n), test_index=np.arange(n),
                   sampler=np.array(sampler), method=np.array(method),
                   direction=np.array("mr2ct"))
        save_samples(profile, sampler, **out)
        written[sampler] = out
    return written
