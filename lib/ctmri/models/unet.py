"""The UNet all four methods share (SR3 / Palette style, Saharia et al. 2022) and the WGAN-GP critic."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F


def group_count(channels: int, most: int = 32) -> int:
    """Largest group count <= `most` that divides `channels` (GroupNorm, Wu & He 2018)."""
    return max(g for g in range(1, min(most, channels) + 1) if channels % g == 0)


def norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(group_count(channels), channels)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) times t (B,) -> (B, dim) (Vaswani et al. 2017; Ho et al. 2020)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class ResBlock(nn.Module):
    """GroupNorm–SiLU–conv residual block; the time embedding scales and shifts the second GroupNorm's output
    (scale-shift norm, Dhariwal & Nichol 2021 as in SR3 / Palette). A plain additive embedding before
    GroupNorm would be erased wherever a group holds one channel (ch <= 32)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int | None, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = norm(in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch) if emb_dim else None
        self.norm2, self.drop = norm(out_ch), nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        h = self.norm2(self.conv1(F.silu(self.norm1(x))))
        if self.emb is not None:
            scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with a residual connection (Ho et al. 2020, 16×16 attention)."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm, self.qkv, self.proj = norm(ch), nn.Conv2d(ch, 3 * ch, 1), nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """Conditional UNet eps/score/CNN network: net(x_t, y, t) on concat(x_t, y) (SR3, Saharia et al. 2022).

    `x_channels` = 0 makes the deterministic generator of the CNN / WGAN-GP baselines: call it as
    net(None, y). With `time_embedding` the net embeds the float t it is given (what t means — a step
    index, 1000 t, or EDM's c_noise — is the convention's, `diffusion/precond.py`); without it t is ignored.
    """

    def __init__(self, x_channels: int = 1, cond_channels: int = 1, out_channels: int = 1,
                 base_channels: int = 32, channel_mults: Sequence[int] = (1, 2, 4), num_res_blocks: int = 1,
                 attention_resolutions: Sequence[int] = (), dropout: float = 0.0, image_size: int = 32,
                 time_embedding: bool = True):
        super().__init__()
        if x_channels < 0 or cond_channels < 0 or x_channels + cond_channels < 1 or out_channels < 1:
            raise ValueError(f"UNet needs x_channels + cond_channels >= 1 and out_channels >= 1, got "
                             f"{x_channels}, {cond_channels}, {out_channels}.")
        self.x_channels, self.cond_channels, self.out_channels = x_channels, cond_channels, out_channels
        self.channel_mults = tuple(channel_mults)
        self.factor = 2 ** (len(self.channel_mults) - 1)
        ch = base_channels
        emb_dim = 4 * ch if time_embedding else None
        self.time_mlp = (nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
                         if time_embedding else None)
        self.conv_in = nn.Conv2d(x_channels + cond_channels, ch, 3, padding=1)
        attn = set(attention_resolutions)
        self.down, skips, res = nn.ModuleList(), [ch], image_size
        for level, mult in enumerate(self.channel_mults):
            for _ in range(num_res_blocks):
                layers = [ResBlock(ch, base_channels * mult, emb_dim, dropout)]
                ch = base_channels * mult
                if res in attn:
                    layers.append(AttnBlock(ch))
                self.down.append(nn.ModuleList(layers))
                skips.append(ch)
            if level < len(self.channel_mults) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1)]))
                skips.append(ch)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim, dropout)]
                                 + ([AttnBlock(ch)] if attn else []) + [ResBlock(ch, ch, emb_dim, dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(self.channel_mults))):
            for _ in range(num_res_blocks + 1):
                layers = [ResBlock(ch + skips.pop(), base_channels * mult, emb_dim, dropout)]
                ch = base_channels * mult
                if res in attn:
                    layers.append(AttnBlock(ch))
                self.up.append(nn.ModuleList(layers))
            if level > 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"),
                                              nn.Conv2d(ch, ch, 3, padding=1)]))
                res *= 2
        self.norm_out, self.conv_out = norm(ch), nn.Conv2d(ch, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def _inputs(self, x_t: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
        if y is None or y.dim() != 4 or y.shape[1] != self.cond_channels:
            raise ValueError(f"UNet expects a condition y of shape (B, {self.cond_channels}, H, W), got "
                             f"{None if y is None else tuple(y.shape)}.")
        h, w = y.shape[-2:]
        if h % self.factor or w % self.factor:
            raise ValueError(f"UNet with channel_mults {self.channel_mults} needs H and W divisible by "
                             f"{self.factor}, got {h}x{w}.")
        if self.x_channels == 0:
            return y
        if x_t is None or tuple(x_t.shape) != (y.shape[0], self.x_channels, h, w):
            raise ValueError(f"UNet expects x_t of shape {(y.shape[0], self.x_channels, h, w)}, got "
                             f"{None if x_t is None else tuple(x_t.shape)}.")
        return torch.cat([x_t, y], dim=1)

    def forward(self, x_t: torch.Tensor | None, y: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv_in(self._inputs(x_t, y))
        emb = None
        if self.time_mlp is not None:
            if t is None:
                raise ValueError("This UNet has a time embedding; call it as net(x_t, y, t).")
            t = torch.as_tensor(t, device=h.device).reshape(-1).expand(h.shape[0])
            emb = self.time_mlp(timestep_embedding(t, self.conv_in.out_channels).to(h.dtype))
        hs = [h]
        for layers in self.down:
            for layer in layers:
                h = layer(h, emb) if isinstance(layer, (ResBlock, AttnBlock)) else layer(h)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layers in self.up:
            if isinstance(layers[0], ResBlock):
                h = torch.cat([h, hs.pop()], dim=1)
            for layer in layers:
                h = layer(h, emb) if isinstance(layer, (ResBlock, AttnBlock)) else layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Critic(nn.Module):
    """Conditional WGAN-GP critic D(x, y) on concat(x, y): 3x3 convs, LeakyReLU, 2x2 average-pool downsampling, no
    BatchNorm (Gulrajani 2017). Average pooling instead of strided 4x4 convs: a strided critic's input gradient is
    periodic in the stride and pushes a checkerboard into the generator (Odena et al. 2016). `patch` > 1: the
    generator's pixel-unshuffle stem in front (models/patch_stem.py), so the critic runs at 1/patch resolution."""

    def __init__(self, image_channels: int = 1, cond_channels: int = 1, base_channels: int = 32,
                 channel_mults: Sequence[int] = (1, 2, 4), patch: int = 1):
        super().__init__()
        self.image_channels, self.cond_channels, self.patch = image_channels, cond_channels, int(patch)
        self.factor = 2 ** len(channel_mults) * self.patch
        p2 = self.patch * self.patch
        layers: list[nn.Module] = [nn.Conv2d((image_channels + cond_channels) * p2, base_channels, 3, padding=1),
                                   nn.LeakyReLU(0.2)]
        ch = base_channels
        for mult in channel_mults:
            layers += [nn.Conv2d(ch, base_channels * mult, 3, padding=1), nn.LeakyReLU(0.2), nn.AvgPool2d(2)]
            ch = base_channels * mult
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.image_channels or y.shape[1] != self.cond_channels \
                or x.shape[-2:] != y.shape[-2:]:
            raise ValueError(f"Critic expects x (B, {self.image_channels}, H, W) and y (B, {self.cond_channels}, "
                             f"H, W), got {tuple(x.shape)} and {tuple(y.shape)}.")
        if x.shape[-2] % self.factor or x.shape[-1] % self.factor:
            raise ValueError(f"Critic needs H and W divisible by {self.factor}, got {x.shape[-2]}x{x.shape[-1]}.")
        h = torch.cat([x, y], dim=1)
        if self.patch > 1:
            h = F.pixel_unshuffle(h, self.patch)
        return self.head(self.features(h).mean(dim=(2, 3))).squeeze(1)
