"""Shared check for DDPM conventions on Gaussian data x0 ~ N(mu, s²): D(x, sigma) must be the exact posterior mean
(s² x + sigma² mu) / (s² + sigma²) at the DDPM's own noise levels."""
from __future__ import annotations

import torch

STEPS = (0, 10, 100, 500, 999)


def assert_exact_denoiser(conv, ddpm, mu: float, s: float, rtol_sigma: float) -> None:
    """D of `conv` equals the Gaussian posterior mean at every step in STEPS, within rtol_sigma · (1 + sigma)."""
    for t in STEPS:
        sigma = ddpm.sigma_of_t(torch.tensor([t] * 4)).float()
        x = mu + s * torch.randn(4, 1, 4, 4) + sigma.reshape(-1, 1, 1, 1) * torch.randn(4, 1, 4, 4)
        d = conv(x, torch.zeros_like(x), sigma)
        sig2 = sigma.reshape(-1, 1, 1, 1).double() ** 2
        posterior = (s ** 2 * x.double() + sig2 * mu) / (s ** 2 + sig2)
        assert torch.allclose(d.double(), posterior, atol=rtol_sigma * (1 + sigma.max().item())), t
