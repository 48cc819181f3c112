"""Which trained method and which profile settings (steps, options, device) a sampler uses: read off its registry record."""
from __future__ import annotations

from typing import Any

import torch

from ctmri.config import Profile
from ctmri.diffusion.samplers import spec


def sampler_method(sampler: str) -> str:
    """The trained method a sampler needs (its record's `method`), or one sentence naming the samplers that exist."""
    return spec(sampler).method


def sampler_settings(profile: Profile, sampler: str) -> tuple[int, dict[str, Any]]:
    """Default (steps, options) of a sampler in `profile.sample` (`SamplerSpec.settings`)."""
    return spec(sampler).settings(profile.sample)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
