"""Which trained method and which profile settings (steps, options, device) each sampler uses."""
from __future__ import annotations

from typing import Any

import torch

from ctmri.config import Profile
from ctmri.diffusion.samplers import SAMPLER_PROCESS, SAMPLERS

ONE_PASS = ("cnn", "wgan")
ALL_SAMPLERS = (*SAMPLERS, *ONE_PASS)


def sampler_method(sampler: str) -> str:
    """The trained method a sampler needs: ddpm / ddim / dpm++2m -> ddpm, em / pc / ode / heun -> vesde."""
    if sampler in ONE_PASS:
        return sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}; expected one of {', '.join(ALL_SAMPLERS)}.")
    return SAMPLER_PROCESS[sampler]


def sampler_settings(profile: Profile, sampler: str) -> tuple[int, dict[str, Any]]:
    """Default (steps, options) of a sampler from `profile.sample`."""
    s = profile.sample
    steps = {"ddpm": s.ddpm_steps, "ddim": s.ddim_steps, "dpm++2m": s.dpm_steps, "em": s.em_steps,
             "pc": s.pc_steps, "heun": s.heun_steps, "ode": 10, "cnn": 1, "wgan": 1, "denoise": 1,
             "dpm++2m-ve": s.fast_steps, "dpm++2m-sde": s.fast_steps, "heun-churn": s.fast_steps}
    options = {"em": {"noise_removal": s.noise_removal},
               "pc": {"corrector_steps": s.pc_corrector_steps, "snr": s.snr, "noise_removal": s.noise_removal},
               "ode": {"rtol": s.ode_rtol, "atol": s.ode_atol, "noise_removal": s.noise_removal},
               **{name: {"clip_x0": s.clip_x0} for name in ("ddpm", "ddim", "dpm++2m")}}
    sampler_method(sampler)
    return steps[sampler], options.get(sampler, {})


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
