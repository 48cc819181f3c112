"""Each method must learn: a tiny task with a known answer, a few hundred steps, then its sampler's error is bounded.

Task: 8x8 conditions y (smooth random fields in [-1, 1]); the target is a fixed function that needs context,
x0 = clip(0.8 * flip_lr(y) + 0.1, -1, 1). The error of the constant answer (the mean target) is the scale;
a method that does not learn (e.g. a VE network whose high-noise denoiser stays at 0) stays near it.
The bounds are ~2x the errors measured when the test was written (comment above CASES).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ctmri import config as C
from ctmri.diffusion.samplers import default_sampler, get_sampler
from ctmri.models.checkpoints import load_model
from ctmri.train.loop import train

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]

PROFILE = C.get_profile(
    "smoke", data=C.DataConfig(image_size=8),
    model=C.ModelConfig(base_channels=16, channel_mults=(1, 2)),
    train=C.TrainConfig(batch_size=16, lr=2e-3, log_every=50, checkpoint_every=10_000, n_critic=1, ema_decay=0.95,
                        ddpm_loss_weighting="min-snr-5"))
STEPS = {"cnn": 300, "wgan": 300, "vesde": 300, "ddpm": 600}   # eps-prediction learns the condition slowest


def task(n: int = 32, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    coarse = g.uniform(-1, 1, (n, 1, size // 4, size // 4))
    cond = np.kron(coarse, np.ones((1, 1, 4, 4))).astype(np.float32)
    cond = np.clip(cond + 0.1 * g.standard_normal(cond.shape), -1, 1).astype(np.float32)
    return cond, np.clip(0.8 * cond[:, :, :, ::-1] + 0.1, -1, 1).astype(np.float32)


# (method, sampler, steps, bound on MAE / MAE of the constant answer); measured when written: cnn 0.089,
# wgan 0.086, ddpm-50 0.182, ddim-20 0.335, em-50 0.336, heun-10 0.218 (a net that does not learn: ~1)
CASES = [("cnn", None, 0, 0.2), ("wgan", None, 0, 0.2), ("ddpm", "ddpm", 50, 0.4), ("ddpm", "ddim", 20, 0.65),
         ("vesde", "em", 50, 0.65), ("vesde", "heun", 10, 0.45), ("vesde", default_sampler(), 10, 0.45)]
OPTIONS = {"ddpm": {"clip_x0": True}, "ddim": {"clip_x0": True}}   # the profiles' default (Ho et al.'s clip_denoised)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("learning")
    data = task()
    out = {}
    for method in ("cnn", "wgan", "ddpm", "vesde"):
        torch.set_num_threads(1)
        r = train(PROFILE, method, steps=STEPS[method], dataset=data, progress=False, checkpoint=root / f"{method}.pt")
        out[method] = r["checkpoint"]
    return out


@pytest.mark.parametrize("method,sampler,steps,bound", CASES)
def test_method_learns_the_known_answer(trained, method, sampler, steps, bound) -> None:
    cond, target = (torch.from_numpy(a) for a in task())
    lm = load_model(trained[method])
    with torch.no_grad():
        if sampler is None:
            pred = lm.model(cond)
        else:
            g = torch.Generator().manual_seed(0)
            pred = get_sampler(sampler)(lm.model, lm.process, cond, steps=steps, generator=g, **OPTIONS.get(sampler, {}))
    mae = float((pred - target).abs().mean())
    scale = float((target - target.mean()).abs().mean())
    print(f"{method}/{sampler}: MAE / constant answer = {mae / scale:.3f}")
    assert mae < bound * scale, f"{method}/{sampler}: MAE {mae:.3f} vs constant answer {scale:.3f}"
