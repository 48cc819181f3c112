"""Network conventions: one class per way a raw UNet F becomes a denoiser, eps and score (docs/ALGORITHMS.md,
"Denoiser parametrisation"; Karras et al. 2022, Table 1, whose precond classes keep a convention in one place).

Every convention turns the raw network F(x, y, c_noise) into
  - the process convention the samplers call: `conv(x, y, t)` (eps for the DDPM, the score for the VE-SDE);
  - a denoiser `conv.denoise(x, y, t)`: the estimate of x0 (Tweedie's formula for the VE-SDE).
A convention is described by a plain dict (`describe()`), stored in every checkpoint, so a network is always
called the way it was trained (`from_description`).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ctmri.diffusion.processes import DDPM, VESDE, bcast

Net = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class EpsPrediction:
    """DDPM eps-prediction (study eq. 23; Ho et al. 2020): eps = F(x_t, y, t), t the 0-based step index."""

    kind = "ddpm-eps"

    def __init__(self, net: Net, process: DDPM):
        self.net, self.process = net, process

    def __call__(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps_theta(x_t, y, t)."""
        return self.net(x, y, t.float())

    def denoise(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) (Ho et al. 2020, eq. 15)."""
        return self.process.predict_x0(x, t, self(x, y, t))

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "time_input": "t (0-based step index)"}


class VEScoreOverStd:
    """VE-SDE score as in Song's score-SDE code: s = F(x, y, 1000 t) / std(t) (the F target is -z; legacy default)."""

    kind = "ve-score-over-std"
    TIME_SCALE = 1000.0

    def __init__(self, net: Net, process: VESDE):
        self.net, self.process = net, process

    def __call__(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """s_theta(x, y, t) = F(x, y, 1000 t) / std(t)."""
        return self.net(x, y, self.TIME_SCALE * t.float()) / bcast(self.process.marginal_std(t), x)

    def denoise(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Tweedie: x0_hat = x + std(t)^2 s(x, t)."""
        return x + bcast(self.process.marginal_std(t), x) ** 2 * self(x, y, t)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "time_scale": self.TIME_SCALE}


class VEPreconditioned:
    """EDM preconditioning of a VE network (Karras et al. 2022, Table 1):
    D(x, sigma) = c_skip x + c_out F(c_in x, y, c_noise), score = (D - x) / sigma^2.

    c_in = 1/sqrt(sigma^2 + sd^2), c_skip = sd^2/(sigma^2 + sd^2), c_out = sigma sd/sqrt(sigma^2 + sd^2),
    c_noise = NOISE_SCALE * ln(sigma) / 4 (EDM's ln(sigma)/4, spread over the sinusoidal embedding's
    frequencies like the DDPM's step index). sd = sigma_data, the std of the training targets.
    The skip path and the combination run in float32 even when F runs under bf16 autocast.
    """

    kind = "ve-edm"
    NOISE_SCALE = 1000.0

    def __init__(self, net: Net, process: VESDE, sigma_data: float):
        if not sigma_data > 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}.")
        self.net, self.process, self.sigma_data = net, process, float(sigma_data)

    def denoise_sigma(self, x: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D(x, sigma), sigma a (B,) tensor of noise levels."""
        sd2 = self.sigma_data ** 2
        s = sigma.to(device=x.device, dtype=torch.float32).reshape(-1)
        s4 = s.reshape(-1, *([1] * (x.dim() - 1)))
        c_in = torch.rsqrt(s4 ** 2 + sd2)
        c_skip = sd2 / (s4 ** 2 + sd2)
        c_out = s4 * self.sigma_data * c_in
        f = self.net((c_in * x).to(x.dtype), y, self.NOISE_SCALE * torch.log(s) / 4)
        return c_skip * x.float() + c_out * f.float()

    def denoise(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """D(x, std(t))."""
        return self.denoise_sigma(x, y, self.process.marginal_std(t))

    def __call__(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """s_theta(x, y, t) = (D(x, std(t)) - x) / std(t)^2."""
        sigma = self.process.marginal_std(t).to(device=x.device, dtype=torch.float32)
        return ((self.denoise_sigma(x, y, sigma) - x.float()) / bcast(sigma, x) ** 2).to(x.dtype)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "sigma_data": self.sigma_data, "noise_scale": self.NOISE_SCALE,
                "c_noise": "ln(sigma)/4"}


CONVENTIONS = {c.kind: c for c in (EpsPrediction, VEScoreOverStd, VEPreconditioned)}
VE_PARAMETRISATIONS = {"edm": VEPreconditioned.kind, "score-over-std": VEScoreOverStd.kind}


def from_description(desc: dict[str, Any], net: Net, process: DDPM | VESDE):
    """The convention a checkpoint's `describe()` dict names, wrapped around `net`."""
    kind = desc.get("kind")
    if kind not in CONVENTIONS:
        raise ValueError(f"Unknown network convention {kind!r}; expected one of {', '.join(CONVENTIONS)}.")
    if kind == VEPreconditioned.kind:
        return VEPreconditioned(net, process, desc["sigma_data"])
    return CONVENTIONS[kind](net, process)


def convention_for(method: str, process_cfg, net: Net, process: DDPM | VESDE, sigma_data: float | None = None):
    """The convention a profile asks for (`ProcessConfig.ve_parametrisation`); sigma_data measured by the caller."""
    if method == "ddpm":
        return EpsPrediction(net, process)
    kind = VE_PARAMETRISATIONS.get(process_cfg.ve_parametrisation)
    if kind is None:
        raise ValueError(f"Unknown VE parametrisation {process_cfg.ve_parametrisation!r}; expected one of "
                         f"{', '.join(VE_PARAMETRISATIONS)}.")
    if kind == VEPreconditioned.kind:
        sd = process_cfg.sigma_data if process_cfg.sigma_data > 0 else sigma_data
        if sd is None or not math.isfinite(sd) or sd <= 0:
            raise ValueError("The EDM parametrisation needs sigma_data > 0 (measured on the training targets).")
        return VEPreconditioned(net, process, sd)
    return VEScoreOverStd(net, process)
