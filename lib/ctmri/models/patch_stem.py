"""A patchify stem around the shared UNet (Hoogeboom et al. 2023, "simple diffusion", Sec. 3; DiT's patch embedding):
pixel-unshuffle by p at the input (H x W x C -> H/p x W/p x C p^2), the UNet at 1/p of the resolution, pixel-shuffle
back at the output. A 128² slice then costs what a 32² one costs (p = 4), for every method alike.

A diffusion network must also pass its noisy input through to cancel the noise pixel by pixel (EDM's F at mid
sigma is ~ -noise), but behind the stem the p² sub-pixels of x_t share the UNet's first `base_channels` with the
condition: at p = 4, 32 input channels into 24. `linear_skip` adds a per-patch linear path around the UNet,
F += g(sigma) * W x_t (W: a 1x1 conv on the unshuffled x_t, zero at init; g: a gain per output channel from the
noise level through a small MLP), so the UNet is left the structure and the detail."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ctmri.models.unet import UNet, timestep_embedding

GAIN_FEATURES = 32                         # sinusoidal features of the noise level feeding the skip's gain


class PatchStem(nn.Module):
    """net(x_t, y, t) = pixel_shuffle(UNet(unshuffle(x_t), unshuffle(y), t), p); same call as `UNet`."""

    def __init__(self, patch: int, *, x_channels: int, cond_channels: int, out_channels: int, image_size: int,
                 linear_skip: bool = True, **unet_options):
        super().__init__()
        if patch < 2 or image_size % patch:
            raise ValueError(f"A patch stem needs patch >= 2 dividing the image size, got patch {patch} for "
                             f"{image_size}² images.")
        self.patch, self.x_channels, self.cond_channels, self.out_channels = patch, x_channels, cond_channels, out_channels
        p2 = patch * patch
        self.inner = UNet(x_channels=x_channels * p2, cond_channels=cond_channels * p2, out_channels=out_channels * p2,
                          image_size=image_size // patch, **unet_options)
        self.skip = self.gain = None
        if linear_skip and x_channels > 0 and unet_options.get("time_embedding", True):
            self.skip = nn.Conv2d(x_channels * p2, out_channels * p2, 1)
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)
            last = nn.Linear(2 * GAIN_FEATURES, out_channels * p2)
            nn.init.zeros_(last.weight)
            nn.init.ones_(last.bias)
            self.gain = nn.Sequential(nn.Linear(GAIN_FEATURES, 2 * GAIN_FEATURES), nn.SiLU(), last)

    @property
    def conv_out(self) -> nn.Conv2d:
        """The last layer (the WGAN-GP's adaptive weight reads its gradient)."""
        return self.inner.conv_out

    def forward(self, x_t: torch.Tensor | None, y: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        if y is None or y.dim() != 4 or y.shape[1] != self.cond_channels or y.shape[-1] % self.patch \
                or y.shape[-2] % self.patch:
            raise ValueError(f"PatchStem expects a condition (B, {self.cond_channels}, H, W) with H, W divisible by "
                             f"{self.patch}, got {tuple(y.shape) if y is not None else None}.")
        x = None if x_t is None else F.pixel_unshuffle(x_t, self.patch)
        out = self.inner(x, F.pixel_unshuffle(y, self.patch), t)
        if self.skip is not None and x is not None and t is not None:
            t = torch.as_tensor(t, device=out.device).reshape(-1).expand(out.shape[0])
            gain = self.gain(timestep_embedding(t, GAIN_FEATURES).to(out.dtype))
            out = out + gain[:, :, None, None] * self.skip(x)
        return F.pixel_shuffle(out, self.patch)
