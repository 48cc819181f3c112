"""Analytic proofs of the samplers: Gaussian data x0 ~ N(mu(y), s^2 I) with the exact denoiser.

docs/ALGORITHMS.md "Exact models for Gaussian data": in sigma space (x = x_t / scale) both processes share
D*(x, sigma) = mu + s^2 / (s^2 + sigma^2) (x - mu); the samplers read eps (DDPM) or the score (VE-SDE) off it.
Every pixel is an independent 1-D problem, so one run on B x 32 x 32 pixels gives n = 16384 independent draws.

Statistical tolerances (n = 16384, s = 0.3): the standard error of a mean is s / sqrt(n) = 0.0023,
of the ratio std / s it is 1 / sqrt(2 n) = 0.0055, of the regression slope of x on mu it is
s / (sd(mu) sqrt(n)) ~ 0.008 (sd(mu) = 0.5 / sqrt(3) for y ~ U(-1, 1)). We allow 5 standard
errors (false alarm ~ 1e-6 per check; seeds are fixed anyway) plus a stated discretisation budget.

Deterministic samplers are checked much more tightly, pixel by pixel: for 1-D Gaussian marginals
the probability-flow ODE is the affine map that keeps the standardised value fixed,
x(t') - m(t') = (sd(t') / sd(t)) (x(t) - m(t)), so the exact output for the given initial noise
is known and only the discretisation error of the solver remains.
"""
from __future__ import annotations

import math

import pytest
import torch

from ctmri.diffusion.processes import DDPM, VESDE
from ctmri.diffusion.grids import karras_sigmas, respaced_timesteps
from ctmri.diffusion.samplers import SAMPLERS, get_sampler
from ctmri.diffusion.trajectory import record_every

S = 0.3                       # data std
B, H, W = 16, 32, 32
N_PIX = B * H * W
SE_MEAN = S / math.sqrt(N_PIX)
SE_RATIO = 1 / math.sqrt(2 * N_PIX)
SE_SLOPE = S / (0.5 / math.sqrt(3) * math.sqrt(N_PIX))
DP, VE = DDPM(), VESDE()


def mu(y: torch.Tensor) -> torch.Tensor:
    return 0.5 * y


def gaussian_denoiser(s: float):
    """The exact D(x, sigma) = mu + s^2 / (s^2 + sigma^2) (x - mu) of x0 ~ N(mu(y), s^2) (either process)."""
    def denoise(x: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        var = sigma.to(x.dtype).view(-1, 1, 1, 1) ** 2
        return mu(y) + s**2 / (s**2 + var) * (x - mu(y))
    return denoise


exact_denoiser = gaussian_denoiser(S)


def run(name: str):
    return get_sampler(name)


def setup(name: str, seed: int = 0):
    process = DP if SAMPLERS[name].method == "ddpm" else VE
    y = torch.rand(B, 1, H, W, generator=torch.Generator().manual_seed(1234)) * 2 - 1
    return process, exact_denoiser, y


def slope(out: torch.Tensor, m: torch.Tensor) -> float:
    mc = m - m.mean()
    return float(((out - out.mean()) * mc).sum() / (mc * mc).sum())


# --------------------------------------------------------------------- exact moments of the discrete chains

def ddpm_chain_std(steps: int, variance: str) -> float:
    """Std of x0 - mu after the respaced ancestral chain with the exact eps (the chain is linear-Gaussian)."""
    from ctmri.diffusion.grids import respaced_timesteps
    taus = respaced_timesteps(DP.num_steps, steps)
    abar = DP.alphas_cumprod[torch.from_numpy(taus)].tolist()
    v, m_coef = 1.0, 0.0               # var of x, and mean of x as m_coef * mu (x_T ~ N(0, 1))
    for i, a in enumerate(abar):
        ap = abar[i + 1] if i + 1 < len(abar) else 1.0
        beta = 1 - a / ap
        k = a * S**2 + 1 - a
        A = (1 - beta / k) / math.sqrt(1 - beta)
        Bc = beta * math.sqrt(a) / k / math.sqrt(1 - beta)
        var = 0.0 if i == len(abar) - 1 else (beta * (1 - ap) / (1 - a) if variance == "beta_tilde" else beta)
        v, m_coef = A * A * v + var, A * m_coef + Bc
    return math.sqrt(v)


def em_chain_std(steps: int, noise_removal: bool = True) -> float:
    """Std of x - mu after Euler–Maruyama (eq. 30) with the exact score: with noise removal every step adds its
    noise and a Tweedie step at eps_s scales x - mu by s^2 / (s^2 + std(eps_s)^2); without, the last step returns its mean."""
    dt = (1 - VE.eps_sample) / steps
    v = float(VE.marginal_std(1.0)) ** 2
    for i in range(steps):
        t = 1 - i * dt
        g2 = float(VE.diffusion(t)) ** 2
        a = 1 - g2 * dt / (S**2 + float(VE.marginal_std(t)) ** 2)
        v = a * a * v + (g2 * dt if (noise_removal or i < steps - 1) else 0.0)
    if noise_removal:
        v *= (S**2 / (S**2 + float(VE.marginal_std(VE.eps_sample)) ** 2)) ** 2
    return math.sqrt(v)


# --------------------------------------------------------------------- stochastic samplers: statistics

# (name, steps, options, expected std of the output / s from the algorithm's own limit, budget)
# ddpm 1000: the exact chain gives std/s = 0.9875 with sigma^2 = beta_tilde (the smaller of Ho's two
# choices; beta gives 1.003), ddpm 250 with beta: 1.014 (beta_tilde: 0.957); em 500: the last step returns
# the mean at t = eps_s, std^2 ~ s^2 + std(eps_s)^2 - g^2 dt ~ s^2 - 0.001 (within 1 %), the chain
# recursion gives it exactly; pc 250 + 1 corrector: no closed form (gamma depends on norms), so
# the budget (2 %) covers the EM end effect plus Langevin bias measured over 5 seeds (<= 1 %).
STOCHASTIC_CASES = [
    ("ddpm", 1000, {}, 0.015),
    ("ddpm", 250, {"variance": "beta"}, 0.02),
    ("em", 500, {}, 0.01),
    ("em", 500, {"noise_removal": False}, 0.01),
    ("pc", 250, {"corrector_steps": 1}, 0.02),
    ("pc", 250, {"corrector_steps": 1, "norm": "batch"}, 0.02),     # Song's batch-averaged norms
    ("dpm++2m-sde", 50, {}, 0.02),
    ("heun-churn", 50, {}, 0.02),
]


@pytest.mark.parametrize("name,steps,options,budget", STOCHASTIC_CASES)
def test_stochastic_sampler_recovers_gaussian(name, steps, options, budget):
    process, model, y = setup(name)
    info: dict = {}
    out = run(name)(model, process, y, steps=steps, generator=torch.Generator().manual_seed(7), info=info,
                         **options)
    assert out.shape == (B, 1, H, W) and torch.isfinite(out).all()
    r = out - mu(y)
    # VE prior N(0, std(1)^2) ignores mu: the reverse SDE shrinks that offset by ~(s^2 + std(eps)^2) / std(1)^2
    # = 0.001, so the slope of x on mu is 1 - 0.001 (DDPM: the offset sqrt(abar_T) mu is negligible too).
    shrink = S**2 / float(VE.marginal_std(1.0)) ** 2 if process is VE else 0.0
    assert abs(float(r.mean())) < 5 * SE_MEAN
    assert abs(slope(out, mu(y)) - (1 - shrink)) < 5 * SE_SLOPE
    ratio = float(r.std()) / S
    assert abs(ratio - 1) < 5 * SE_RATIO + budget, f"{name}: std/s = {ratio:.4f}"
    if name == "ddpm":      # sharper: the exact moments of the discrete chain, statistics only
        assert abs(float(r.std()) - ddpm_chain_std(steps, options.get("variance", "beta_tilde"))) / S < 5 * SE_RATIO
    if name == "em":
        assert abs(float(r.std()) - em_chain_std(steps, options.get("noise_removal", True))) / S < 5 * SE_RATIO
    expected_nfe = steps * (options.get("corrector_steps", 1) + 1) if name == "pc" else steps
    expected_nfe += int(name in ("em", "pc") and options.get("noise_removal", True))
    expected_nfe = 2 * steps - 1 if name == "heun-churn" else expected_nfe
    assert info["nfe"] == expected_nfe


def test_discrete_chain_limits_are_close_to_data():
    """The discrete chains themselves (no sampling noise) land within their budgets of s."""
    assert abs(ddpm_chain_std(1000, "beta_tilde") / S - 1) < 0.015
    assert abs(ddpm_chain_std(1000, "beta") / S - 1) < 0.005
    assert abs(ddpm_chain_std(250, "beta") / S - 1) < 0.02
    assert abs(em_chain_std(500) / S - 1) < 0.01


# --------------------------------------------------------------------- deterministic samplers: exact flow

def exact_flow_ddpm(x_t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    a = float(DP.alphas_cumprod[-1])
    return mu(y) + S * (x_t - math.sqrt(a) * mu(y)) / math.sqrt(a * S**2 + 1 - a)


def exact_flow_ve(x_t: torch.Tensor, y: torch.Tensor, sd_end: float) -> torch.Tensor:
    return mu(y) + math.sqrt(S**2 + sd_end**2) / math.sqrt(S**2 + float(VE.marginal_std(1.0)) ** 2) * (x_t - mu(y))


# (name, steps, options, relative RMS budget of |x - x_exact| / s), each ~2x the measured error:
# ddim is first order (0.92 % at 500 steps, 8.6 % at 50), dpm++2m second order (time grid: 0.74 %
# at 200 steps but 30 % at 20, where the step into index 0 extrapolates with weights ~5; logsnr
# grid: 1.5 % at 20 steps), heun second order (0.20 % at 50 steps, 1.4 % at 20), RK45 with
# rtol = atol = 1e-5 (0.004 %).
DETERMINISTIC_CASES = [
    ("ddim", 500, {}, 0.02),
    ("dpm++2m", 200, {"spacing": "time"}, 0.015),
    ("dpm++2m", 20, {}, 0.03),  # default spacing: logsnr
    ("ode", 10, {}, 0.001),
    ("ode", 10, {"noise_removal": False}, 0.001),
    ("heun", 50, {}, 0.005),
    ("dpm++2m-ve", 20, {}, 0.03),
]


@pytest.mark.parametrize("name,steps,options,budget", DETERMINISTIC_CASES)
def test_deterministic_sampler_follows_exact_flow(name, steps, options, budget):
    process, model, y = setup(name)
    x_init = process.prior_sample((B, 1, H, W), torch.Generator().manual_seed(3))
    info: dict = {}
    out = run(name)(model, process, y, steps=steps, x_init=x_init, info=info, **options)
    if process is DP:
        exact = exact_flow_ddpm(x_init, y)
    elif name == "ode" and not options.get("noise_removal", True):   # integrates to t = eps_s
        exact = exact_flow_ve(x_init, y, float(VE.marginal_std(VE.eps_sample)))
    else:                                # heun, ode: flow to std(eps_s), then the Tweedie step to 0
        sd = float(VE.marginal_std(VE.eps_sample))
        exact = mu(y) + S**2 / (S**2 + sd**2) * (exact_flow_ve(x_init, y, sd) - mu(y))
    rel = float((out - exact).pow(2).mean().sqrt()) / S
    assert rel < budget, f"{name}: relative RMS error vs the exact flow {rel:.4f}"
    r = out - mu(y)
    assert abs(float(r.std()) / S - 1) < 5 * SE_RATIO + budget + 0.01   # +1 %: VE ends at std(eps_s) = 0.03
    if name == "heun":
        assert info["nfe"] == 2 * steps - 1
    elif name == "ode":
        assert 10 < info["nfe"] < 1000
    else:
        assert info["nfe"] <= steps


# --------------------------------------------------------------------- determinism and per-element generators

@pytest.mark.parametrize("name", [n for n, r in SAMPLERS.items() if not r.one_pass])
def test_same_seed_same_output_and_batch_element_regenerates_alone(name):
    process, model, y = setup(name)
    y = y[:4]
    opts = {"steps": 8}
    a = run(name)(model, process, y, generator=torch.Generator().manual_seed(5), **opts)
    b = run(name)(model, process, y, generator=torch.Generator().manual_seed(5), **opts)
    c = run(name)(model, process, y, generator=torch.Generator().manual_seed(6), **opts)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    gens = [torch.Generator().manual_seed(100 + k) for k in range(4)]
    batch = run(name)(model, process, y, generator=gens, **opts)
    alone = run(name)(model, process, y[2:3], generator=[torch.Generator().manual_seed(102)], **opts)
    # ode: RK45's step control sees the whole batch, so "alone" matches only to the solver tolerance
    atol = 1e-3 if name == "ode" else 1e-6
    torch.testing.assert_close(alone[0], batch[2], atol=atol, rtol=0)


@pytest.mark.parametrize("name", ["ddim", "dpm++2m", "ode", "heun"])
def test_deterministic_samplers_depend_only_on_initial_noise(name):
    process, model, y = setup(name)
    x_init = process.prior_sample((2, 1, H, W), torch.Generator().manual_seed(0))
    a = run(name)(model, process, y[:2], steps=6, x_init=x_init, generator=torch.Generator().manual_seed(1))
    b = run(name)(model, process, y[:2], steps=6, x_init=x_init, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


def test_ddpm_draws_its_prior_from_the_generator():
    process, model, y = setup("ddpm")
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    a = run("ddpm")(model, process, y[:2], steps=5, generator=g1)
    b = run("ddpm")(model, process, y[:2], steps=5, generator=g2,
                         x_init=process.prior_sample((2, 1, H, W), g2))
    assert torch.equal(a, b)


# --------------------------------------------------------------------- callbacks and trajectories

@pytest.mark.parametrize("name", [n for n, r in SAMPLERS.items() if not r.one_pass and n != "denoise"])  # denoise: below
def test_callback_every_step_and_record_every(name):
    process, model, y = setup(name)
    seen = []
    x_init = process.prior_sample((3, 1, H, W), torch.Generator().manual_seed(0))
    run(name)(model, process, y[:3], steps=10, x_init=x_init, generator=torch.Generator().manual_seed(0),
                   callback=lambda i, x, x0: seen.append((i, x.shape, x0.shape)))
    assert [s[0] for s in seen] == list(range(10))
    assert all(s[1] == s[2] == (3, 1, H, W) for s in seen)

    rec = record_every(4, index=[0, 2])
    run(name)(model, process, y[:3], steps=10, x_init=x_init, generator=torch.Generator().manual_seed(0),
                   callback=rec)
    assert rec.steps == [0, 4, 8, 9]
    assert rec.x.shape == rec.x0_pred.shape == (4, 2, 1, H, W)
    if name != "heun-churn":                                  # churn adds noise before its first evaluation
        torch.testing.assert_close(rec.x[0], x_init[[0, 2]])     # step 0 sees the initial noise


def test_record_every_keeps_last_once():
    rec = record_every(3)
    for i in range(7):
        rec(i, torch.full((1, 1, 2, 2), float(i)), torch.zeros(1, 1, 2, 2))
    assert rec.steps == [0, 3, 6]
    assert rec.x[:, 0, 0, 0, 0].tolist() == [0.0, 3.0, 6.0]


def test_options_shape_and_grid():
    process, model, y = setup("em")
    out = run("em")(lambda x, y_, sigma: torch.zeros_like(x), process, y[:2], steps=3, out_channels=2,
                         generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 2, H, W)
    sig = karras_sigmas(10.0, 0.03, 5)
    assert sig[0] == pytest.approx(10.0) and sig[-2] == pytest.approx(0.03) and sig[-1] == 0.0


# --------------------------------------------------------------------- bad inputs

def test_unknown_sampler_lists_choices():
    with pytest.raises(ValueError, match="Unknown sampler 'dpm'; expected one of .*ddpm.*em.*heun"):
        get_sampler("dpm", DP)


def test_wrong_process_pair_is_clear():
    with pytest.raises(ValueError, match="'em' needs a 'vesde' process.*samplers for 'ddpm': ddpm, ddim, dpm\\+\\+2m"):
        get_sampler("em", DP)
    with pytest.raises(ValueError, match="needs a 'ddpm' process"):
        run("ddim")(exact_denoiser, VE, torch.zeros(1, 1, 4, 4), steps=2)
    assert get_sampler("heun", "vesde") is SAMPLERS["heun"].run


def test_bad_steps_and_options():
    y = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="exceeds the DDPM's T"):
        run("ddpm")(exact_denoiser, DP, y, steps=1001)
    with pytest.raises(ValueError, match="positive integer"):
        run("em")(exact_denoiser, VE, y, steps=0)
    with pytest.raises(ValueError, match="variance"):
        run("ddpm")(exact_denoiser, DP, y, steps=2, variance="learned")
    with pytest.raises(ValueError, match="x_init has shape"):
        run("heun")(exact_denoiser, VE, y, steps=2, x_init=torch.zeros(1, 1, 3, 3))


def predicts(target: torch.Tensor):
    """A denoiser whose x0 estimate is `target` at every noise level."""
    return lambda x, y, sigma: target.expand_as(x)


@pytest.mark.parametrize("name", [n for n, r in SAMPLERS.items() if r.method == "ddpm"])
def test_clip_x0_returns_the_clipped_prediction(name: str) -> None:
    """The last step of all three goes to abar = 1, where the update is x0_hat itself: clip(x0_hat) with clip_x0."""
    x0 = torch.linspace(-3.0, 3.0, 64).reshape(1, 1, 8, 8).repeat(2, 1, 1, 1)   # mostly outside [-1, 1]
    y = torch.zeros(2, 1, 8, 8)
    run = lambda clip: get_sampler(name)(predicts(x0), DP, y, steps=5, clip_x0=clip,  # noqa: E731
                                         generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(run(True), x0.clamp(-1, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(run(False), x0, atol=1e-4, rtol=0)


def test_ddpm_clip_x0_steps_with_the_posterior_mean_of_the_clipped_x0() -> None:
    """One ancestral step with clip_x0: x_{t-1} = c0 clip(x0_hat) + ct x_t + sigma z. With the same noise, a run
    predicting x0_hat = 2.5 and one predicting 1.0 (already in range) must agree: only clip(x0_hat) enters."""
    y = torch.zeros(3, 1, 4, 4)
    x_init = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    states = {}
    for value, clip in ((2.5, True), (1.0, True), (1.0, False), (2.5, False)):
        seen: list[torch.Tensor] = []
        get_sampler("ddpm")(predicts(torch.full_like(y, value)), DP, y, steps=3, clip_x0=clip, x_init=x_init,
                            generator=torch.Generator().manual_seed(3), callback=lambda i, x, x0: seen.append(x.clone()))
        states[value, clip] = seen[1]                       # the state after the first step
    torch.testing.assert_close(states[2.5, True], states[1.0, True], atol=1e-5, rtol=0)
    torch.testing.assert_close(states[1.0, True], states[1.0, False], atol=1e-5, rtol=0)   # same when in range
    taus = respaced_timesteps(DP.num_steps, 3)
    abar, abar_prev = DP.alphas_cumprod[taus[0]], DP.alphas_cumprod[taus[1]]
    c0 = float(abar_prev.sqrt() * (1 - abar / abar_prev) / (1 - abar))   # posterior-mean weight of x0
    torch.testing.assert_close(states[2.5, False] - states[1.0, False], torch.full_like(y, 1.5 * c0),
                               atol=1e-4, rtol=0)


# --------------------------------------------------------------------- near-deterministic posterior

NEAR_S = 10.0 / 2012.0        # x0 ~ N(mu(y), (10 HU)^2) in model space (2012 HU per unit)
NEAR_CASES = [("ddpm", 250, {}), ("ddim", 50, {}), ("dpm++2m", 20, {}), ("em", 250, {}), ("pc", 125, {}),
              ("ode", 10, {"rtol": 1e-4, "atol": 1e-4}), ("heun", 20, {}), ("dpm++2m-ve", 13, {}),
              ("dpm++2m-sde", 13, {}), ("heun-churn", 13, {}), ("denoise", 1, {})]


@pytest.mark.parametrize("name,steps,options", NEAR_CASES)
def test_near_deterministic_posterior_leaves_no_noise(name, steps, options):
    """With the exact model of a 10-HU posterior, every sampler (cpu-profile budgets) spreads < 2x the true spread:
    the VE samplers need their final noise removal (without it EM stops at std(eps_s) = 64 HU)."""
    near = gaussian_denoiser(NEAR_S)
    process = DP if SAMPLERS[name].method == "ddpm" else VE
    y = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(5)) * 2 - 1
    out = run(name)(near, process, y, steps=steps,
                         generator=torch.Generator().manual_seed(9), **options)
    spread = float((out - mu(y)).std())
    assert spread < 2 * NEAR_S, f"{name}: spread {spread * 2012:.1f} HU vs true 10 HU"
    if name == "em":        # and the test can fail: without noise removal the spread is std(eps_s)
        raw = run(name)(near, process, y, steps=steps, generator=torch.Generator().manual_seed(9),
                             noise_removal=False)
        assert float((raw - mu(y)).std()) > 3 * NEAR_S


def test_one_call_denoiser_is_tweedie_at_sigma_max():
    """denoise: D(x_T, std(1)) = mu + s^2 / (s^2 + std(1)^2) (x_T - mu) for Gaussian data, exactly, in one call."""
    process, model, y = setup("denoise")
    x_init = process.prior_sample((B, 1, H, W), torch.Generator().manual_seed(4))
    info: dict = {}
    out = run("denoise")(model, process, y, steps=1, x_init=x_init, info=info)
    sd = float(VE.marginal_std(1.0))
    assert torch.allclose(out, mu(y) + S**2 / (S**2 + sd**2) * (x_init - mu(y)), atol=1e-5) and info["nfe"] == 1
    assert torch.equal(run("denoise")(model, process, y, steps=7, x_init=x_init), out)   # steps ignored

