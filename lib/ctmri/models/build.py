"""A method's networks built from a profile: the shared UNet (+ the WGAN-GP critic)."""
from __future__ import annotations

import torch
from torch import nn

from ctmri import config as C
from ctmri.models.patch_stem import PatchStem
from ctmri.models.unet import Critic, UNet

DIFFUSION = ("ddpm", "vesde")


def build_model(method: str, profile: C.Profile | str, seed: int | None = None) -> dict[str, nn.Module]:
    """The networks of `method`: {"net": UNet} (+ {"critic": Critic} for wgan); diffusion nets embed time.

    Initial weights are drawn inside a forked RNG scope seeded by `seed` (default: profile.train.seed),
    so building is reproducible and leaves the global RNG untouched.
    """
    C.check_method(method)
    p = C.get_profile(profile)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(p.train.seed if seed is None else seed)
        return _build(method, p)


def _build(method: str, p: C.Profile) -> dict[str, nn.Module]:
    m = p.model
    diffusion = method in DIFFUSION
    options = dict(x_channels=m.out_channels if diffusion else 0, cond_channels=m.condition_channels,
                   out_channels=m.out_channels, base_channels=m.base_channels, channel_mults=m.channel_mults,
                   num_res_blocks=m.num_res_blocks, attention_resolutions=m.attention_resolutions,
                   dropout=m.dropout, image_size=p.data.image_size, time_embedding=diffusion)
    net = PatchStem(m.patch_size, linear_skip=m.stem_skip, **options) if m.patch_size > 1 else UNet(**options)
    nets: dict[str, nn.Module] = {"net": net}
    if method == "wgan":
        nets["critic"] = Critic(m.out_channels, m.condition_channels, m.base_channels, m.channel_mults, patch=m.patch_size)
    return nets
