"""Network conventions: one class per way a raw UNet F becomes a denoiser (docs/ALGORITHMS.md, "One denoiser
contract"; Karras et al. 2022, Table 1, whose precond classes keep a network's whole convention in one place).

Every convention turns the raw network F(x, y, c_noise) into
  - the one contract the samplers see: `conv(x, y, sigma)` = D(x, sigma), the estimate of x0 from the unscaled
    state x = x_t / scale(t) at noise level sigma ((B,) tensor); for the VE-SDE x is x_t itself;
  - what its training loss needs: `eps(x_t, y, t)` (DDPM, eq. 23) or the score / D at a time (VE-SDE, eq. 28).
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
    """DDPM eps-prediction (study eq. 23; Ho et al. 2020): eps = F(x_t, y, t), t the 0-based step index.

    As a denoiser (k-diffusion's DiscreteEpsDDPMDenoiser): x_t = sqrt(abar_t) x, t = the step of sigma,
    D(x, sigma) = x - sigma eps(x_t, y, t) (Ho et al. 2020, eq. 15, divided by sqrt(abar_t)).
    """

    kind = "ddpm-eps"

    def __init__(self, net: Net, process: DDPM):
        self.net, self.process = net, process

    def eps(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps_theta(x_t, y, t)."""
        return self.net(x_t, y, t.float())

    def __call__(self, x: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D(x, sigma) = x - sigma eps(sqrt(abar_t) x, y, t(sigma))."""
        t = self.process.t_of_sigma(sigma.reshape(-1)).to(x.device)
        s = bcast(self.process.sigma_of_t(t.cpu()), x)
        return x - s * self.eps(x * (1 + s * s).rsqrt(), y, t)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "time_input": "t (0-based step index)"}


class VPrediction:
    """DDPM v-prediction (Salimans & Ho 2022, Sec. 4 / App. D): F(x_t, y, t) = v = sqrt(abar) eps - sqrt(1-abar) x0.

    As a denoiser: D(x, sigma) = x / (1 + sigma^2) - sigma / sqrt(1 + sigma^2) F(x / sqrt(1 + sigma^2), y, t(sigma)),
    EDM's preconditioning with sigma_data = 1 (Karras et al. 2022, Table 1): D's error is bounded by F's at every
    sigma, where eps-prediction multiplies it by sigma (up to 157 at the last step). Same process, same loss
    (eq. 23's eps error, eps_hat = sqrt(1-abar) x_t + sqrt(abar) v_hat); only what F outputs changes.
    The combination runs in float32 even when F runs under bf16 autocast.
    """

    kind = "ddpm-v"

    def __init__(self, net: Net, process: DDPM):
        self.net, self.process = net, process

    def _abar(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return bcast(self.process.alphas_cumprod[t.long().cpu()].to(torch.float32), x).to(x.device)

    def eps(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps_hat = sqrt(1 - abar_t) x_t + sqrt(abar_t) v_hat."""
        abar = self._abar(t, x_t)
        v = self.net(x_t, y, t.float()).float()
        return (1 - abar).sqrt() * x_t.float() + abar.sqrt() * v

    def __call__(self, x: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D(x, sigma) = sqrt(abar) x_t - sqrt(1 - abar) v_hat with x_t = sqrt(abar) x, abar = 1 / (1 + sigma^2)."""
        t = self.process.t_of_sigma(sigma.reshape(-1)).to(x.device)
        s = bcast(self.process.sigma_of_t(t.cpu()), x).to(device=x.device, dtype=torch.float32)
        c_in = (1 + s * s).rsqrt()
        v = self.net((x * c_in).to(x.dtype), y, t.float()).float()
        return c_in * c_in * x.float() - s * c_in * v

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "time_input": "t (0-based step index)", "output": "v"}


class VEScoreOverStd:
    """VE-SDE score as in Song's score-SDE code: s = F(x, y, 1000 t) / std(t) (the F target is -z; legacy default).

    As a denoiser, Tweedie's formula at t = t(sigma): D(x, sigma) = x + std(t)^2 s(x, y, t) = x + std(t) F.
    """

    kind = "ve-score-over-std"
    TIME_SCALE = 1000.0

    def __init__(self, net: Net, process: VESDE):
        self.net, self.process = net, process

    def score(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """s_theta(x, y, t) = F(x, y, 1000 t) / std(t)."""
        return self.net(x, y, self.TIME_SCALE * t.float()) / bcast(self.process.marginal_std(t), x)

    def denoise_at_t(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Tweedie: x0_hat = x + std(t)^2 s(x, t)."""
        return x + bcast(self.process.marginal_std(t), x) ** 2 * self.score(x, y, t)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D(x, sigma): Tweedie at t = t_of_std(sigma)."""
        return self.denoise_at_t(x, y, self.process.t_of_std(sigma.reshape(-1)).to(x.device).to(x.dtype))

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

    def __call__(self, x: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D(x, sigma), sigma a (B,) tensor of noise levels."""
        sd2 = self.sigma_data ** 2
        s = sigma.to(device=x.device, dtype=torch.float32).reshape(-1)
        s4 = s.reshape(-1, *([1] * (x.dim() - 1)))
        c_in = torch.rsqrt(s4 ** 2 + sd2)
        c_skip = sd2 / (s4 ** 2 + sd2)
        c_out = s4 * self.sigma_data * c_in
        f = self.net((c_in * x).to(x.dtype), y, self.NOISE_SCALE * torch.log(s) / 4)
        return c_skip * x.float() + c_out * f.float()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "sigma_data": self.sigma_data, "noise_scale": self.NOISE_SCALE,
                "c_noise": "ln(sigma)/4"}


class VPPreconditioned(VEPreconditioned):
    """The DDPM in EDM's formulation (Karras et al. 2022, Sec. 5 and Table 1): the same preconditioning as the VE model
    on the unscaled state x = x_t / sqrt(abar_t) = x0 + sigma n, so one recipe (this D, log-normal sigma draws clamped to
    the schedule's [sigma_min, sigma_max], EDM's loss weight) trains both processes; the DDPM's samplers read eps and
    D off it at the schedule's sigma_t unchanged."""

    kind = "vp-edm"

    def __init__(self, net: Net, process: DDPM, sigma_data: float):
        super().__init__(net, process, sigma_data)


CONVENTIONS = {c.kind: c for c in (EpsPrediction, VPrediction, VEScoreOverStd, VEPreconditioned, VPPreconditioned)}
DDPM_PARAMETRISATIONS = {"eps": EpsPrediction, "v": VPrediction, "edm": VPPreconditioned}
VE_PARAMETRISATIONS = {"edm": VEPreconditioned.kind, "score-over-std": VEScoreOverStd.kind}


def from_description(desc: dict[str, Any], net: Net, process: DDPM | VESDE):
    """The convention a checkpoint's `describe()` dict names, wrapped around `net`."""
    kind = desc.get("kind")
    if kind not in CONVENTIONS:
        raise ValueError(f"Unknown network convention {kind!r}; expected one of {', '.join(CONVENTIONS)}.")
    if kind in (VEPreconditioned.kind, VPPreconditioned.kind):
        return CONVENTIONS[kind](net, process, desc["sigma_data"])
    return CONVENTIONS[kind](net, process)


def convention_for(method: str, process_cfg, net: Net, process: DDPM | VESDE, sigma_data: float | None = None):
    """The convention a profile asks for (`ProcessConfig.ve_parametrisation`); sigma_data measured by the caller."""
    if method == "ddpm":
        cls = DDPM_PARAMETRISATIONS.get(getattr(process_cfg, "ddpm_parametrisation", "eps"))
        if cls is None:
            raise ValueError(f"Unknown DDPM parametrisation {process_cfg.ddpm_parametrisation!r}; expected one of "
                             f"{', '.join(DDPM_PARAMETRISATIONS)}.")
        if cls is VPPreconditioned:
            return VPPreconditioned(net, process, _sigma_data(process_cfg, sigma_data))
        return cls(net, process)
    kind = VE_PARAMETRISATIONS.get(process_cfg.ve_parametrisation)
    if kind is None:
        raise ValueError(f"Unknown VE parametrisation {process_cfg.ve_parametrisation!r}; expected one of "
                         f"{', '.join(VE_PARAMETRISATIONS)}.")
    if kind == VEPreconditioned.kind:
        return VEPreconditioned(net, process, _sigma_data(process_cfg, sigma_data))
    return VEScoreOverStd(net, process)


def _sigma_data(process_cfg, measured: float | None) -> float:
    """The profile's sigma_data, else the one measured on the training targets."""
    sd = process_cfg.sigma_data if process_cfg.sigma_data > 0 else measured
    if sd is None or not math.isfinite(sd) or sd <= 0:
        raise ValueError("The EDM parametrisation needs sigma_data > 0 (measured on the training targets).")
    return float(sd)
