"""The study's DDPM sampler (Table I): ancestral sampling on the discrete beta schedule, eps read off the denoiser.
DDIM and DPM-Solver++(2M) on the DDPM are sigma-space solvers (`sigma_solvers.py`). Signature in `samplers.py`."""
from __future__ import annotations

from typing import Optional

import torch

from ctmri.diffusion.grids import respaced_timesteps
from ctmri.diffusion.processes import DDPM
from ctmri.diffusion.registry import register, require_process
from ctmri.diffusion.sampler_utils import Callback, Denoiser, eps_from, initial_state, noise_like, set_nfe, step_tensors
from ctmri.rng import GeneratorArg


@register("ddpm", evaluation="subset", method="ddpm", role="study", label="DDPM", default_steps=1000,
          nfe=lambda process, steps, o: steps, stochastic=True, method_default=True,
          options=lambda s: {"clip_x0": s.clip_x0}, summary="ancestral DDPM (Ho et al. 2020, Alg. 2; study Table I)")
@torch.no_grad()
def ddpm(denoiser: Denoiser, process: DDPM, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
         callback: Optional[Callback] = None, variance: str = "beta_tilde", clip_x0: bool = False,
         out_channels: int = 1, x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """Ancestral sampling, Ho et al. 2020 Alg. 2 (study Table I), respaced to `steps` with beta'_i = 1 - abar_i/abar_{i-1}.

    variance: "beta_tilde" (default, sigma^2 = beta' (1 - abar_prev)/(1 - abar)) or "beta" (sigma^2 = beta');
    z = 0 at the last step. clip_x0 (default False): clip x0_hat to [-1, 1] and step with the
    posterior mean q(x_{t-1} | x_t, x0_hat) (identical to the eps form when not clipping).
    """
    require_process("ddpm", process)
    if variance not in ("beta_tilde", "beta"):
        raise ValueError(f"variance must be 'beta_tilde' or 'beta', got {variance!r}.")
    taus = respaced_timesteps(process.num_steps, steps)
    abar = process.alphas_cumprod[torch.from_numpy(taus)].double()
    abar_prev = torch.cat([abar[1:], abar.new_ones(1)])
    beta = 1 - abar / abar_prev
    var = beta * (1 - abar_prev) / (1 - abar) if variance == "beta_tilde" else beta.clone()
    var[-1] = 0.0
    sq_abar, sigma = abar.sqrt().tolist(), ((1 - abar) / abar).sqrt().tolist()
    eps_coef = (beta / (1 - abar).sqrt()).tolist()
    inv_sq_alpha = (1 / (1 - beta).sqrt()).tolist()
    post_x0 = (abar_prev.sqrt() * beta / (1 - abar)).tolist()            # posterior-mean coefficients
    post_xt = ((1 - beta).sqrt() * (1 - abar_prev) / (1 - abar)).tolist()
    std = var.sqrt().tolist()

    x = initial_state(process, y, generator, x_init, out_channels)
    sigmas = step_tensors(sigma, x.shape[0], x.device, x.dtype)
    for i in range(len(taus)):
        eps, x0 = eps_from(denoiser, x, y, sigmas[i], sq_abar[i])
        if callback is not None:
            callback(i, x, x0)
        if clip_x0:
            mean = post_x0[i] * x0.clamp(-1, 1) + post_xt[i] * x
        else:
            mean = inv_sq_alpha[i] * (x - eps_coef[i] * eps)
        x = mean + std[i] * noise_like(x, generator) if std[i] > 0 else mean
    set_nfe(info, len(taus))
    return x
