"""Forward processes: the DDPM schedule (Ho et al. 2020) and the VE-SDE (Song et al. 2021), behind one interface.

Both are written as x_t = scale(t) (x0 + sigma(t) n) (Karras et al. 2022, eq. 10): the VE-SDE has scale = 1 and
sigma = std(t); the DDPM has scale = sqrt(abar_t) and sigma = sqrt((1 - abar_t) / abar_t). Every process has
`sigma_of_t(t)`, `t_of_sigma(sigma)`, `scale_of_sigma(sigma)`, `perturb(x0, t, noise)`, `prior_sample(...)`, and
`sigma_max` / `sigma_min`, the noise levels where its samplers start and stop (docs/ALGORITHMS.md, "One
denoiser contract").
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ctmri.rng import GeneratorArg, randn

Model = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-sample values (B,) shaped to broadcast over an image batch (B, C, H, W)."""
    return v.to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


class DDPM:
    """Linear-beta DDPM (Ho et al. 2020): x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, eq. (3).

    The network is called as model(x_t, y, t) with t a LongTensor of 0-based indices into
    `alphas_cumprod` (index t-1 is the paper's step t) and predicts eps.
    """

    kind = "ddpm"

    def __init__(self, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        if num_steps < 1:
            raise ValueError(f"DDPM needs num_steps >= 1, got {num_steps}.")
        self.num_steps = int(num_steps)
        self.betas = torch.linspace(beta_start, beta_end, self.num_steps, dtype=torch.float64)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)

    def abar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """alpha-bar at integer steps t, broadcast like `like`."""
        return bcast(self._abar_on(t.device)[t.long()], like)

    def _abar_on(self, device: torch.device) -> torch.Tensor:
        """alphas_cumprod on `device`, cached: indexing it there needs no host-device sync."""
        cache = self.__dict__.setdefault("_abar_cache", {})
        if device not in cache:
            cache[device] = self.alphas_cumprod.to(device)
        return cache[device]

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Sample q(x_t | x_0), eq. (3)."""
        a = self.abar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def perturb(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The process interface's name for `q_sample`."""
        return self.q_sample(x0, t, noise)

    def sigma_of_t(self, t: torch.Tensor | int) -> torch.Tensor:
        """sigma(t) = sqrt((1 - abar_t) / abar_t) at integer steps t (float64): the noise level of x_t / sqrt(abar_t)."""
        a = self.alphas_cumprod[torch.as_tensor(t).long().cpu()]
        return ((1 - a) / a).sqrt()

    def t_of_sigma(self, sigma: torch.Tensor | float) -> torch.Tensor:
        """The step index whose sigma is nearest to `sigma` in log space (exact on the schedule's own values), long."""
        sigma = torch.as_tensor(sigma)
        table = self._log_sigma_on(sigma.device)
        return (table[None, :] - torch.log(sigma.double()).reshape(-1, 1)).abs().argmin(dim=1).reshape(sigma.shape)

    @staticmethod
    def scale_of_sigma(sigma: float) -> float:
        """sqrt(abar) = 1 / sqrt(1 + sigma^2): the factor between x_t and the unscaled x_t / sqrt(abar_t)."""
        return 1.0 / math.sqrt(1.0 + float(sigma) ** 2)

    @property
    def sigma_max(self) -> float:
        return float(self.sigma_of_t(self.num_steps - 1))

    @property
    def sigma_min(self) -> float:
        return float(self.sigma_of_t(0))

    def _log_sigma_on(self, device: torch.device) -> torch.Tensor:
        cache = self.__dict__.setdefault("_log_sigma_cache", {})
        if device not in cache:
            a = self.alphas_cumprod
            cache[device] = (0.5 * torch.log((1 - a) / a)).to(device)
        return cache[device]

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio abar_t / (1 - abar_t) (for Min-SNR weighting)."""
        a = self._abar_on(t.device)[t.long()]
        return (a / (1 - a)).float()

    def prior_sample(self, shape, generator: GeneratorArg = None, device=None,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """x_T ~ N(0, I)."""
        return randn(shape, generator, device=device, dtype=dtype)

    def config(self) -> dict:
        return {"kind": self.kind, "num_steps": self.num_steps, "beta_start": float(self.betas[0]),
                "beta_end": float(self.betas[-1])}


class VESDE:
    """Variance-exploding SDE dx = sigma^t dw (Song et al. 2021; Song's tutorial, sigma = 25).

    marginal_std(t) = sqrt((sigma^(2t) - 1) / (2 ln sigma)); x(t) = x(0) + marginal_std(t) z.
    Samplers call the score model(x_t, y, t) with float t in (0, 1]; how a network becomes that
    score (EDM preconditioning, or Song's F / std(t)) lives in `diffusion/precond.py`.
    """

    kind = "vesde"

    def __init__(self, sigma: float = 25.0, eps_train: float = 1e-5, eps_sample: float = 1e-3):
        if sigma <= 1:
            raise ValueError(f"VE-SDE needs sigma > 1, got {sigma}.")
        self.sigma = float(sigma)
        self.eps_train = float(eps_train)
        self.eps_sample = float(eps_sample)
        self.log_sigma = math.log(self.sigma)

    def marginal_std(self, t: torch.Tensor | float) -> torch.Tensor:
        """std(t) = sqrt((sigma^(2t) - 1) / (2 ln sigma))."""
        t = torch.as_tensor(t, dtype=torch.float64)      # stays on t's device: no host sync
        return torch.sqrt(torch.expm1(2 * self.log_sigma * t) / (2 * self.log_sigma))

    def sigma_of_t(self, t: torch.Tensor | float) -> torch.Tensor:
        """The process interface's name for `marginal_std`."""
        return self.marginal_std(t)

    def t_of_sigma(self, sigma: torch.Tensor | float) -> torch.Tensor:
        """The process interface's name for `t_of_std`."""
        return self.t_of_std(sigma)

    @staticmethod
    def scale_of_sigma(sigma: float) -> float:
        """The VE-SDE never scales its state: 1."""
        return 1.0

    @property
    def sigma_max(self) -> float:
        return float(self.marginal_std(1.0))

    @property
    def sigma_min(self) -> float:
        return float(self.marginal_std(self.eps_sample))

    def diffusion(self, t: torch.Tensor | float) -> torch.Tensor:
        """g(t) = sigma^t."""
        return self.sigma ** torch.as_tensor(t, dtype=torch.float64)

    def t_of_std(self, std: torch.Tensor | float) -> torch.Tensor:
        """Inverse of marginal_std: t = ln(2 ln(sigma) std^2 + 1) / (2 ln sigma)."""
        std = torch.as_tensor(std, dtype=torch.float64)
        return torch.log(2 * self.log_sigma * std**2 + 1) / (2 * self.log_sigma)

    def perturb(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Sample p_0t(x(t) | x(0)) = N(x(0), std(t)^2 I)."""
        return x0 + bcast(self.marginal_std(t), x0) * noise

    def prior_sample(self, shape, generator: GeneratorArg = None, device=None,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """x(1) ~ N(0, std(1)^2 I)."""
        return randn(shape, generator, device=device, dtype=dtype) * float(self.marginal_std(1.0))

    def config(self) -> dict:
        return {"kind": self.kind, "sigma": self.sigma, "eps_train": self.eps_train, "eps_sample": self.eps_sample}


def make_process(method: str, cfg) -> DDPM | VESDE:
    """The process a method trains and samples with (`cfg` is a config.ProcessConfig)."""
    if method == "ddpm":
        return DDPM(cfg.num_steps, cfg.beta_start, cfg.beta_end)
    if method == "vesde":
        return VESDE(cfg.sigma, cfg.eps_train, cfg.eps_sample)
    raise ValueError(f"Method {method!r} has no diffusion process; expected 'ddpm' or 'vesde'.")
