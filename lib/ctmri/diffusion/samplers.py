"""Samplers: one pure function per algorithm, one signature, collected in `SAMPLERS` (this module is the registry).

    SAMPLERS[name](model, process, y, *, steps, generator=None, callback=None, **options) -> (B, C, H, W)

`model(x, y, t)` is any callable following the process's convention (`processes.py`): eps for
`DDPM` (t a LongTensor of 0-based indices), the score for `VESDE` (t a float tensor in (0, 1]).
`generator` is None, one `torch.Generator`, or a list of one per batch element (element b then
draws all its noise from generator b, so one MC replicate regenerates alone).
`callback(i, x, x0_pred)` is called once per step i = 0 .. steps-1 with the state x at which
step i evaluates the model (i = 0: the initial noise) and the x0 predicted from it (DDPM: from
eps; VE-SDE: Tweedie x + std(t)^2 s). The returned sample is not passed to the callback.
Samplers never modify a tensor in place, so a callback may keep references.

Options every sampler takes: `out_channels` (default 1), `x_init` (the initial state, e.g. prior
noise drawn by the caller; default: drawn from `generator`), `info` (a dict, filled with `nfe`,
the number of model evaluations per sample).
The math is written out in docs/ALGORITHMS.md.
"""
from __future__ import annotations

from typing import Callable

import torch

from ctmri.diffusion.ddpm_samplers import ddim, ddpm, dpmpp_2m
from ctmri.diffusion.sampler_utils import require_process
from ctmri.diffusion.ve_fast_samplers import denoise_once, dpmpp_2m_sde_ve, dpmpp_2m_ve, heun_churn
from ctmri.diffusion.ve_samplers import euler_maruyama, heun, predictor_corrector, probability_flow_ode

# ----------------------------------------------------------------------------- registry

SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "ddpm": ddpm,
    "ddim": ddim,
    "dpm++2m": dpmpp_2m,
    "em": euler_maruyama,
    "pc": predictor_corrector,
    "ode": probability_flow_ode,
    "heun": heun,
    "dpm++2m-ve": dpmpp_2m_ve,
    "dpm++2m-sde": dpmpp_2m_sde_ve,
    "heun-churn": heun_churn,
    "denoise": denoise_once,
}

SAMPLER_PROCESS: dict[str, str] = {"ddpm": "ddpm", "ddim": "ddpm", "dpm++2m": "ddpm",
                                   "em": "vesde", "pc": "vesde", "ode": "vesde", "heun": "vesde",
                                   "dpm++2m-ve": "vesde", "dpm++2m-sde": "vesde", "heun-churn": "vesde",
                                   "denoise": "vesde"}

STOCHASTIC = ("ddpm", "em", "pc", "dpm++2m-sde", "heun-churn")          # ddim too when eta > 0


def names_for(kind: str) -> list[str]:
    return [n for n, k in SAMPLER_PROCESS.items() if k == kind]


def get_sampler(name: str, process=None) -> Callable[..., torch.Tensor]:
    """The sampler called `name`; with `process` (a DDPM / VESDE or its kind), check that they belong together."""
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}; expected one of {', '.join(SAMPLERS)} "
                         f"(ddpm process: {', '.join(names_for('ddpm'))}; vesde process: "
                         f"{', '.join(names_for('vesde'))}).")
    if process is not None:
        require_process(name, process, SAMPLER_PROCESS[name])
    return SAMPLERS[name]
