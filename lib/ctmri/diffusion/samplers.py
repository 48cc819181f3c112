"""Samplers: one pure function per algorithm, one signature, collected in `SAMPLERS`.

    SAMPLERS[name](model, process, y, *, steps, generator=None, callback=None, **options) -> (B, C, H, W)

`model(x, y, t)` is any callable following the process's convention (`processes.py`): eps for
`DDPM` (t a LongTensor of 0-based indices), the score for `VESDE` (t a float tensor in (0, 1]).
`generator` is None, one `torch.Generator`, or a list of one per batch element (element b then
draws all its noise from generator b, so one MC replicate regenerates alone).
`callback(i, x, x0_pred)` is called once per step i = 0 .. steps-1 with the state x at which
step i evaluates the model (i = 0: the initial noise) and the x0 predicted from it (DDPM: from
eps; VE-SDE: Tweedie x + std(t)^2 s). The returned sample is not passed to the callback.
Samplers never modify a tensor in place, so a callback may keep references.

Options every sampler takes: `out_channels` (default 1), `x_init` (the initial state, e.g. prior
noise drawn by the caller; default: drawn from `generator`), `info` (a dict, filled with `nfe`,
the number of model evaluations per sample).
The math is written out in docs/ALGORITHMS.md.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch

from ctmri.diffusion.processes import DDPM, VESDE, Model
from ctmri.rng import GeneratorArg, randn

Callback = Callable[[int, torch.Tensor, torch.Tensor], None]


# ----------------------------------------------------------------------------- helpers

def _check_process(name: str, process) -> None:
    kind = getattr(process, "kind", process)
    if kind != SAMPLER_PROCESS[name]:
        raise ValueError(f"Sampler {name!r} needs a {SAMPLER_PROCESS[name]!r} process, got {kind!r}; "
                         f"samplers for {kind!r}: {', '.join(_names_for(kind)) or 'none'}.")


def _check_steps(steps: int) -> int:
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    return int(steps)


def _initial(process, y: torch.Tensor, generator: GeneratorArg, x_init: Optional[torch.Tensor],
             out_channels: int) -> torch.Tensor:
    """x_T from the prior (or the caller's `x_init`), shaped (B, out_channels, H, W) like y."""
    shape = (y.shape[0], out_channels, *y.shape[2:])
    if x_init is None:
        return process.prior_sample(shape, generator, device=y.device, dtype=y.dtype)
    if tuple(x_init.shape) != shape:
        raise ValueError(f"x_init has shape {tuple(x_init.shape)}; expected {shape} (batch, out_channels, H, W).")
    return x_init.to(device=y.device, dtype=y.dtype)


def _noise(x: torch.Tensor, generator: GeneratorArg) -> torch.Tensor:
    return randn(x.shape, generator, device=x.device, dtype=x.dtype)


def _full(values, batch: int, device, dtype) -> list[torch.Tensor]:
    """One (B,) time tensor per step, built once before the loop."""
    return [torch.full((batch,), v, device=device, dtype=dtype) for v in values]


def _set_nfe(info: Optional[dict], nfe: float) -> None:
    if info is not None:
        info["nfe"] = nfe


def respaced_timesteps(num_steps: int, steps: int) -> np.ndarray:
    """Evenly spaced 0-based DDPM indices tau_S > ... > tau_1, from T-1 down to 0 (Nichol & Dhariwal 2021)."""
    steps = _check_steps(steps)
    if steps > num_steps:
        raise ValueError(f"steps = {steps} exceeds the DDPM's T = {num_steps}.")
    return np.round(np.linspace(num_steps - 1, 0, steps)).astype(np.int64)


def logsnr_timesteps(process: DDPM, steps: int) -> np.ndarray:
    """0-based DDPM indices from T-1 to 0 closest to an evenly spaced grid in lambda = log(alpha/sigma) (Lu et al. 2022), deduplicated."""
    steps = _check_steps(steps)
    abar = process.alphas_cumprod.numpy()
    lam = 0.5 * np.log(abar / (1 - abar))                      # increasing as the index decreases
    targets = np.linspace(lam[-1], lam[0], steps)
    idx = np.abs(lam[None, :] - targets[:, None]).argmin(axis=1)
    return np.unique(idx)[::-1].copy()


def vesde_times(process: VESDE, steps: int) -> np.ndarray:
    """t_i = 1 - i dt, i = 0..N-1, dt = (1 - eps_s) / N: the N evaluation times of eq. (30); t_N = eps_s."""
    steps = _check_steps(steps)
    return 1.0 - np.arange(steps) * (1.0 - process.eps_sample) / steps


def karras_sigmas(sigma_max: float, sigma_min: float, steps: int, rho: float = 7.0) -> np.ndarray:
    """rho-spaced grid sigma_0 = sigma_max > ... > sigma_{N-1} = sigma_min, then sigma_N = 0 (Karras et al. 2022, eq. 5)."""
    steps = _check_steps(steps)
    ramp = np.linspace(0.0, 1.0, steps)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return np.append((hi + ramp * (lo - hi)) ** rho, 0.0)


# ----------------------------------------------------------------------------- DDPM process

@torch.no_grad()
def ddpm(model: Model, process: DDPM, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
         callback: Optional[Callback] = None, variance: str = "beta_tilde", clip_x0: bool = False,
         out_channels: int = 1, x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """Ancestral sampling, Ho et al. 2020 Alg. 2 (study Table I), respaced to `steps` with beta'_i = 1 - abar_i/abar_{i-1}.

    variance: "beta_tilde" (default, sigma^2 = beta' (1 - abar_prev)/(1 - abar)) or "beta" (sigma^2 = beta');
    z = 0 at the last step. clip_x0 (default False): clip x0_hat to [-1, 1] and step with the
    posterior mean q(x_{t-1} | x_t, x0_hat) (identical to the eps form when not clipping).
    """
    _check_process("ddpm", process)
    if variance not in ("beta_tilde", "beta"):
        raise ValueError(f"variance must be 'beta_tilde' or 'beta', got {variance!r}.")
    taus = respaced_timesteps(process.num_steps, steps)
    abar = process.alphas_cumprod[torch.from_numpy(taus)].double()
    abar_prev = torch.cat([abar[1:], abar.new_ones(1)])
    beta = 1 - abar / abar_prev
    var = beta * (1 - abar_prev) / (1 - abar) if variance == "beta_tilde" else beta.clone()
    var[-1] = 0.0
    sq_abar, sq_1m = abar.sqrt().tolist(), (1 - abar).sqrt().tolist()
    eps_coef = (beta / (1 - abar).sqrt()).tolist()
    inv_sq_alpha = (1 / (1 - beta).sqrt()).tolist()
    post_x0 = (abar_prev.sqrt() * beta / (1 - abar)).tolist()            # posterior-mean coefficients
    post_xt = ((1 - beta).sqrt() * (1 - abar_prev) / (1 - abar)).tolist()
    std = var.sqrt().tolist()

    x = _initial(process, y, generator, x_init, out_channels)
    ts = _full(taus.tolist(), x.shape[0], x.device, torch.long)
    for i in range(len(taus)):
        eps = model(x, y, ts[i])
        x0 = (x - sq_1m[i] * eps) / sq_abar[i] if (callback is not None or clip_x0) else None
        if callback is not None:
            callback(i, x, x0)
        if clip_x0:
            mean = post_x0[i] * x0.clamp(-1, 1) + post_xt[i] * x
        else:
            mean = inv_sq_alpha[i] * (x - eps_coef[i] * eps)
        x = mean + std[i] * _noise(x, generator) if std[i] > 0 else mean
    _set_nfe(info, len(taus))
    return x


@torch.no_grad()
def ddim(model: Model, process: DDPM, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
         callback: Optional[Callback] = None, eta: float = 0.0, clip_x0: bool = False, out_channels: int = 1,
         x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """DDIM (Song, Meng & Ermon 2021, eq. 12): x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - s^2) eps + s z; eta = 0 default.

    clip_x0 (default False): clip x0_hat to [-1, 1] and recompute eps from it, as diffusers' DDIM does.
    """
    _check_process("ddim", process)
    taus = respaced_timesteps(process.num_steps, steps)
    abar = process.alphas_cumprod[torch.from_numpy(taus)].double()
    abar_prev = torch.cat([abar[1:], abar.new_ones(1)])
    sig = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).clamp(min=0).sqrt()
    sq_abar, sq_1m, sq_abar_prev = abar.sqrt().tolist(), (1 - abar).sqrt().tolist(), abar_prev.sqrt().tolist()
    dir_coef = (1 - abar_prev - sig**2).clamp(min=0).sqrt().tolist()
    sig = sig.tolist()

    x = _initial(process, y, generator, x_init, out_channels)
    ts = _full(taus.tolist(), x.shape[0], x.device, torch.long)
    for i in range(len(taus)):
        eps = model(x, y, ts[i])
        x0 = (x - sq_1m[i] * eps) / sq_abar[i]
        if clip_x0:
            x0 = x0.clamp(-1, 1)
            eps = (x - sq_abar[i] * x0) / sq_1m[i]
        if callback is not None:
            callback(i, x, x0)
        x = sq_abar_prev[i] * x0 + dir_coef[i] * eps
        if sig[i] > 0:
            x = x + sig[i] * _noise(x, generator)
    _set_nfe(info, len(taus))
    return x


@torch.no_grad()
def dpmpp_2m(model: Model, process: DDPM, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
             callback: Optional[Callback] = None, spacing: str = "logsnr", clip_x0: bool = False, out_channels: int = 1,
             x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """DPM-Solver++(2M), data prediction (Lu et al. 2022, Alg. 2), timesteps T-1 .. 0.

    spacing: "logsnr" (default: evenly spaced in lambda, rounded to indices, as Lu et al. advise
    for low resolutions; 1.5 % error at 20 steps on the Gaussian test) or "time" (evenly spaced
    indices as `ddim`; its output std is 1.3x too large at 20 steps, see tests/test_samplers.py). NFE = steps (logsnr: the distinct indices, <= steps). The first
    step is first order; the final step from the smallest index (sigma ~ 0.01) to sigma = 0 is
    first order too, which there reduces exactly to x = D (lambda -> inf makes the
    second-order weights degenerate), as in k-diffusion. clip_x0 (default False): clip each data
    prediction D to [-1, 1] (static thresholding, Lu et al. 2022).
    """
    _check_process("dpm++2m", process)
    if spacing == "time":
        taus = respaced_timesteps(process.num_steps, steps)
    elif spacing == "logsnr":
        taus = logsnr_timesteps(process, steps)
    else:
        raise ValueError(f"spacing must be 'time' or 'logsnr', got {spacing!r}.")
    abar = process.alphas_cumprod[torch.from_numpy(taus)].double()
    alpha, sigma = abar.sqrt(), (1 - abar).sqrt()
    lam = torch.log(alpha / sigma)
    h = lam[1:] - lam[:-1]                                     # h_i = lambda_{i+1} - lambda_i, i < M-1
    c_x = (sigma[1:] / sigma[:-1]).tolist()
    c_d = (-alpha[1:] * torch.expm1(-h)).tolist()
    r = torch.cat([h.new_ones(1), h[:-1] / h[1:]]) if len(h) else h   # r_i = h_{i-1}/h_i (unused at i = 0)
    w_cur, w_prev = (1 + 1 / (2 * r)).tolist(), (-1 / (2 * r)).tolist()
    alpha, sigma = alpha.tolist(), sigma.tolist()

    x = _initial(process, y, generator, x_init, out_channels)
    ts = _full(taus.tolist(), x.shape[0], x.device, torch.long)
    d_prev = None
    for i in range(len(taus)):
        eps = model(x, y, ts[i])
        d = (x - sigma[i] * eps) / alpha[i]
        if clip_x0:
            d = d.clamp(-1, 1)
        if callback is not None:
            callback(i, x, d)
        if i == len(taus) - 1:
            x = d
            break
        d_hat = d if d_prev is None else w_cur[i] * d + w_prev[i] * d_prev
        x = c_x[i] * x + c_d[i] * d_hat
        d_prev = d
    _set_nfe(info, len(taus))
    return x


# ----------------------------------------------------------------------------- VE-SDE process

def _ve_schedule(process: VESDE, times: np.ndarray) -> tuple[list[float], list[float]]:
    """g(t)^2 and std(t)^2 at the given times, as Python floats."""
    t = torch.from_numpy(np.asarray(times, dtype=np.float64))
    return (process.diffusion(t) ** 2).tolist(), (process.marginal_std(t) ** 2).tolist()


def _sde_grid(process: VESDE, steps: int, x: torch.Tensor):
    """Reverse-SDE grid t = 1 .. eps_s with dt = (1 - eps_s)/N: times, dt, g^2, std^2 and per-step (B,) time tensors."""
    times = vesde_times(process, steps)
    g2, std2 = _ve_schedule(process, times)
    return times, (1.0 - process.eps_sample) / len(times), g2, std2, _full(times.tolist(), x.shape[0], x.device, x.dtype)


def _tweedie_at_eps(model: Model, process: VESDE, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Noise removal (Song et al. 2021 code, `noise_removal`): one Tweedie step x + std(eps_s)^2 s(x, eps_s) to sigma = 0."""
    t = torch.full((x.shape[0],), process.eps_sample, device=x.device, dtype=x.dtype)
    return x + float(process.marginal_std(process.eps_sample)) ** 2 * model(x, y, t)


@torch.no_grad()
def euler_maruyama(model: Model, process: VESDE, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
                   callback: Optional[Callback] = None, noise_removal: bool = True, out_channels: int = 1,
                   x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """Reverse-time SDE, Euler–Maruyama, eq. (30): x <- x + g^2 s dt + g sqrt(dt) z, t = 1 .. eps_s.

    noise_removal (default): the last step keeps its noise, so x ~ p_eps, then one Tweedie step to sigma = 0
    (`_tweedie_at_eps`, NFE = steps + 1); off: the last step returns its mean, leaving std(eps_s) of noise.
    """
    _check_process("em", process)
    x = _initial(process, y, generator, x_init, out_channels)
    times, dt, g2, std2, ts = _sde_grid(process, steps, x)
    for i in range(len(times)):
        s = model(x, y, ts[i])
        if callback is not None:
            callback(i, x, x + std2[i] * s)
        mean = x + (g2[i] * dt) * s
        last = i == len(times) - 1
        x = mean + math.sqrt(g2[i] * dt) * _noise(x, generator) if (noise_removal or not last) else mean
    if noise_removal:
        x = _tweedie_at_eps(model, process, x, y)
    _set_nfe(info, len(times) + int(noise_removal))
    return x


def langevin_step_size(score: torch.Tensor, z: torch.Tensor, snr: float, norm: str = "sample") -> torch.Tensor:
    """gamma = 2 (r ||z|| / ||s||)^2 (Song et al. 2021 Alg. 4 / score-SDE code), per sample (B, 1, 1, 1) or batch-averaged norms."""
    s_norm = score.flatten(1).norm(dim=1)
    z_norm = z.flatten(1).norm(dim=1)
    if norm == "batch":
        s_norm, z_norm = s_norm.mean().expand_as(s_norm), z_norm.mean().expand_as(z_norm)
    elif norm != "sample":
        raise ValueError(f"norm must be 'sample' or 'batch', got {norm!r}.")
    gamma = 2 * (snr * z_norm / s_norm.clamp(min=torch.finfo(score.dtype).tiny)) ** 2
    return gamma.reshape(-1, *([1] * (score.dim() - 1)))


@torch.no_grad()
def predictor_corrector(model: Model, process: VESDE, y: torch.Tensor, *, steps: int,
                        generator: GeneratorArg = None, callback: Optional[Callback] = None,
                        corrector_steps: int = 1, snr: float = 0.16, norm: str = "sample", noise_removal: bool = True,
                        out_channels: int = 1, x_init: Optional[torch.Tensor] = None,
                        info: Optional[dict] = None) -> torch.Tensor:
    """Predictor–corrector (Song et al. 2021 Alg. 4; study eq. 31 with Song's step): at each t, M Langevin steps
    x <- x + gamma s + sqrt(2 gamma) z, gamma = 2 (r ||z|| / ||s||)^2, then one EM predictor step (eq. 30).

    NFE = steps (corrector_steps + 1) (+ 1 with noise_removal, as in `euler_maruyama`). ||z|| is the norm of the drawn noise. norm="sample" (default)
    uses each sample's own norms so a batch element never depends on the others (MC replicates
    regenerate alone); norm="batch" averages them over the batch like Song's code.
    """
    _check_process("pc", process)
    if corrector_steps < 0:
        raise ValueError(f"corrector_steps must be >= 0, got {corrector_steps}.")
    x = _initial(process, y, generator, x_init, out_channels)
    times, dt, g2, std2, ts = _sde_grid(process, steps, x)
    for i in range(len(times)):
        for j in range(corrector_steps):
            s = model(x, y, ts[i])
            if j == 0 and callback is not None:
                callback(i, x, x + std2[i] * s)
            z = _noise(x, generator)
            gamma = langevin_step_size(s, z, snr, norm)
            x = x + gamma * s + (2 * gamma).sqrt() * z
        s = model(x, y, ts[i])
        if corrector_steps == 0 and callback is not None:
            callback(i, x, x + std2[i] * s)
        mean = x + (g2[i] * dt) * s
        last = i == len(times) - 1
        x = mean + math.sqrt(g2[i] * dt) * _noise(x, generator) if (noise_removal or not last) else mean
    if noise_removal:
        x = _tweedie_at_eps(model, process, x, y)
    _set_nfe(info, len(times) * (corrector_steps + 1) + int(noise_removal))
    return x


@torch.no_grad()
def probability_flow_ode(model: Model, process: VESDE, y: torch.Tensor, *, steps: int = 10,
                         generator: GeneratorArg = None, callback: Optional[Callback] = None,
                         rtol: float = 1e-5, atol: float = 1e-5, method: str = "RK45", noise_removal: bool = True,
                         out_channels: int = 1, x_init: Optional[torch.Tensor] = None,
                         info: Optional[dict] = None) -> torch.Tensor:
    """Probability-flow ODE, eq. (33): dx/dt = -g^2 s / 2 from t = 1 to eps_s, scipy solve_ivp (RK45) on the flattened batch.

    The state lives in float64 on the CPU; the model runs on y's device and dtype. The solver's
    step control sees the whole batch, so element b matches a run of b alone only to the solver
    tolerance. info["nfe"] is the solver's count of model evaluations (for the whole batch, i.e.
    per sample). `steps` only sets how many evenly spaced times t = 1 .. eps_s (exclusive) reach the
    callback; each such report costs one extra model evaluation, not counted in nfe. noise_removal
    (default) ends with one Tweedie step at eps_s (counted in nfe), as `euler_maruyama`.
    """
    from scipy.integrate import solve_ivp

    _check_process("ode", process)
    steps = _check_steps(steps)
    x = _initial(process, y, generator, x_init, out_channels)
    shape, device, dtype = x.shape, x.device, x.dtype
    log_sigma2 = 2 * process.log_sigma
    nfe = 0

    def score(t: float, x_t: torch.Tensor) -> torch.Tensor:
        return model(x_t, y, torch.full((shape[0],), t, device=device, dtype=dtype))

    def rhs(t: float, x_flat: np.ndarray) -> np.ndarray:
        nonlocal nfe
        nfe += 1
        x_t = torch.from_numpy(x_flat).reshape(shape).to(device=device, dtype=dtype)
        return (-0.5 * math.exp(log_sigma2 * t) * score(t, x_t)).double().cpu().numpy().ravel()

    t_eval = np.linspace(1.0, process.eps_sample, steps + 1) if callback is not None else None
    sol = solve_ivp(rhs, (1.0, process.eps_sample), x.double().cpu().numpy().ravel(), method=method,
                    rtol=rtol, atol=atol, t_eval=t_eval)
    if not sol.success:
        raise RuntimeError(f"Probability-flow ODE solver failed: {sol.message}")
    if callback is not None:
        std2 = (process.marginal_std(torch.from_numpy(t_eval)) ** 2).tolist()
        for i in range(steps):
            x_i = torch.from_numpy(sol.y[:, i]).reshape(shape).to(device=device, dtype=dtype)
            callback(i, x_i, x_i + std2[i] * score(float(t_eval[i]), x_i))
    x = torch.from_numpy(sol.y[:, -1]).reshape(shape).to(device=device, dtype=dtype)
    if noise_removal:
        x = _tweedie_at_eps(model, process, x, y)
        nfe += 1
    _set_nfe(info, nfe)
    return x


@torch.no_grad()
def heun(model: Model, process: VESDE, y: torch.Tensor, *, steps: int, generator: GeneratorArg = None,
         callback: Optional[Callback] = None, rho: float = 7.0, out_channels: int = 1,
         x_init: Optional[torch.Tensor] = None, info: Optional[dict] = None) -> torch.Tensor:
    """Heun on the probability-flow ODE in sigma space, dx/dsigma = -sigma s (Karras et al. 2022, Alg. 1, no churn).

    Grid: `steps` rho-spaced sigmas from std(1) to std(eps_s), then sigma = 0; the last step (to
    sigma = 0) is Euler, i.e. the Tweedie denoiser at std(eps_s). NFE = 2 steps - 1.
    """
    _check_process("heun", process)
    sig = karras_sigmas(float(process.marginal_std(1.0)), float(process.marginal_std(process.eps_sample)),
                        steps, rho)
    times = process.t_of_std(torch.from_numpy(sig[:-1])).tolist()
    sig = sig.tolist()
    x = _initial(process, y, generator, x_init, out_channels)
    ts = _full(times, x.shape[0], x.device, x.dtype)
    n = len(times)
    for i in range(n):
        s = model(x, y, ts[i])
        if callback is not None:
            callback(i, x, x + sig[i] ** 2 * s)
        d = -sig[i] * s
        ds = sig[i + 1] - sig[i]
        x_next = x + ds * d
        if sig[i + 1] > 0:
            d2 = -sig[i + 1] * model(x_next, y, ts[i + 1])
            x_next = x + (0.5 * ds) * (d + d2)
        x = x_next
    _set_nfe(info, 2 * n - 1)
    return x


# ----------------------------------------------------------------------------- registry

SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "ddpm": ddpm,
    "ddim": ddim,
    "dpm++2m": dpmpp_2m,
    "em": euler_maruyama,
    "pc": predictor_corrector,
    "ode": probability_flow_ode,
    "heun": heun,
}

SAMPLER_PROCESS: dict[str, str] = {"ddpm": "ddpm", "ddim": "ddpm", "dpm++2m": "ddpm",
                                   "em": "vesde", "pc": "vesde", "ode": "vesde", "heun": "vesde"}

STOCHASTIC = ("ddpm", "em", "pc")          # ddim too when eta > 0


def _names_for(kind: str) -> list[str]:
    return [n for n, k in SAMPLER_PROCESS.items() if k == kind]


def get_sampler(name: str, process=None) -> Callable[..., torch.Tensor]:
    """The sampler called `name`; with `process` (a DDPM / VESDE or its kind), check that they belong together."""
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}; expected one of {', '.join(SAMPLERS)} "
                         f"(ddpm process: {', '.join(_names_for('ddpm'))}; vesde process: "
                         f"{', '.join(_names_for('vesde'))}).")
    if process is not None:
        _check_process(name, process)
    return SAMPLERS[name]


# ----------------------------------------------------------------------------- trajectories

class TrajectoryRecorder:
    """Callback keeping (step, x, x0_pred) every `every` steps (i % every == 0) plus the last step seen.

    `index` selects the batch elements kept (default all); frames are stored on the CPU.
    """

    def __init__(self, every: int, index=None):
        if every < 1:
            raise ValueError(f"record_every needs every >= 1, got {every}.")
        self.every = int(every)
        self.index = None if index is None else torch.as_tensor(index, dtype=torch.long)
        self._steps: list[int] = []
        self._x: list[torch.Tensor] = []
        self._x0: list[torch.Tensor] = []
        self._last: Optional[tuple[int, torch.Tensor, torch.Tensor]] = None

    def _take(self, t: torch.Tensor) -> torch.Tensor:
        t = t if self.index is None else t[self.index.to(t.device)]
        return t.detach().to("cpu", copy=True)

    def __call__(self, i: int, x: torch.Tensor, x0_pred: torch.Tensor) -> None:
        if i % self.every == 0:
            self._steps.append(int(i))
            self._x.append(self._take(x))
            self._x0.append(self._take(x0_pred))
            self._last = None
        else:
            self._last = (int(i), x, x0_pred)      # samplers never mutate x in place: a reference is safe

    def _frames(self) -> tuple[list[int], list[torch.Tensor], list[torch.Tensor]]:
        if self._last is None:
            return self._steps, self._x, self._x0
        i, x, x0 = self._last
        return self._steps + [i], self._x + [self._take(x)], self._x0 + [self._take(x0)]

    @property
    def steps(self) -> list[int]:
        return self._frames()[0]

    @property
    def x(self) -> torch.Tensor:
        """(F, B', C, H, W) states x at the kept steps."""
        return torch.stack(self._frames()[1])

    @property
    def x0_pred(self) -> torch.Tensor:
        """(F, B', C, H, W) predicted x0 at the kept steps."""
        return torch.stack(self._frames()[2])


def record_every(k: int, index=None) -> TrajectoryRecorder:
    """A callback recording the trajectory every k steps plus the last (see `TrajectoryRecorder`)."""
    return TrajectoryRecorder(k, index)
