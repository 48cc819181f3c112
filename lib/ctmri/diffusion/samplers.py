"""Samplers: one pure function per algorithm, one signature, each declared once in the registry (`registry.py`).

    run(denoiser, process, y, *, steps, generator=None, callback=None, **options) -> (B, C, H, W)

`denoiser(x, y, sigma)` is the one network contract (`precond.py`): the estimate of x0 from the unscaled state
x = x_t / scale at noise levels sigma ((B,) tensor); analytic denoisers test the samplers exactly.
`generator` is None, one `torch.Generator`, or a list of one per batch element (element b then
draws all its noise from generator b, so one MC replicate regenerates alone).
`callback(i, x, x0_pred)` is called once per step i = 0 .. steps-1 with the state x (in the process's own
scaling: DDPM x_t, VE-SDE x(t)) at which step i evaluates the denoiser (i = 0: the initial noise) and its x0
estimate. The returned sample is not passed to the callback. Samplers never modify a tensor in place, so a
callback may keep references.

Options every sampler takes: `out_channels` (default 1), `x_init` (the initial state, e.g. prior
noise drawn by the caller; default: drawn from `generator`), `info` (a dict, filled with `nfe`,
the number of denoiser evaluations per sample). The math is written out in docs/ALGORITHMS.md.

Importing this module imports every sampler module, so the registry is complete; the rest of the code asks
`spec(name)` / `names(...)` here instead of keeping lists.
"""
from __future__ import annotations

from typing import Callable

import torch

# Each import declares its samplers; their order is the registry's: baselines, the study's algorithms, ours.
from ctmri.diffusion import one_pass  # noqa: F401, I001
from ctmri.diffusion import ddpm_ancestral, ve_sde_samplers  # noqa: F401
from ctmri.diffusion import sigma_solvers  # noqa: F401
from ctmri.diffusion.registry import (SAMPLERS, SamplerSpec, default_sampler, names, require_process, spec,
                                      study_order)

__all__ = ["SAMPLERS", "SamplerSpec", "default_sampler", "get_sampler", "names", "spec", "study_order"]


def get_sampler(name: str, process=None) -> Callable[..., torch.Tensor]:
    """The function of sampler `name`; with `process` (a DDPM / VESDE or its kind), check that they belong together."""
    record = spec(name)
    if record.run is None or record.one_pass:
        raise ValueError(f"{name!r} is a one-pass baseline, not a diffusion sampler.")
    if process is not None:
        require_process(name, process)
    return record.run
