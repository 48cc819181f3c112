"""Speed options against fp32 (bf16 autocast, channels_last): the same training run under each, its loss, its speed
and the MAE of the model.

Each of ddpm and vesde is trained from scratch for `--quality-steps` optimiser steps (default 600) on the profile's
train split with `train.loop.train` (the real loop: EMA, loss log, checkpoint) once per `--options` entry (fp32;
bf16 = TrainConfig.bf16_autocast; channels_last = TrainConfig.channels_last), otherwise the same profile and
seeds (so the same batches and noise).
Reported: seconds per step, the final loss (mean of the last 10 % of the loss log) and, on the test slices, the
MAE (HU, body mask) and SSIM of (a) the one-call denoiser from pure noise, D(x_T / scale, sigma_max) clipped to
[-1, 1] (the network contract `loaded.model(x, y, sigma)`; DDPM: x0_hat at t = T-1, VE-SDE: D(x, std(1))) and
(b) the MC mean of a short sampler (`EVAL_SAMPLERS`). Checkpoints go to a
temporary folder. Writes <out>/precision.json|md.

    python benchmarks/bench_precision.py [--profile cpu] [--quality-steps 600] [--slices 6] [--mc 4]
        [--options fp32 bf16 channels_last]
"""
from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ctmri import rng
from ctmri.config import get_profile
from ctmri.diffusion.samplers import spec
from ctmri.models.checkpoints import load_model
from ctmri.sample.mc import monte_carlo
from ctmri.train.loop import train

from common import EvalSlices, base_parser, fmt, machine, options_for, table, write_standalone

EVAL_SAMPLERS = {"ddpm": ("ddpm", 50), "vesde": ("heun", 10)}     # method -> (sampler, steps) of the short sampler
assert all(spec(s).method == m for m, (s, _) in EVAL_SAMPLERS.items())   # registered samplers of those methods


def parse(argv: list[str] | None = None):
    ap = base_parser(__doc__)
    ap.add_argument("--methods", nargs="+", default=["ddpm", "vesde"])
    ap.add_argument("--quality-steps", type=int, default=600, help="optimiser steps per run (default 600)")
    ap.add_argument("--slices", type=int, default=6, help="test slices (default 6)")
    ap.add_argument("--mc", type=int, default=4, help="MC replicates of the short sampler (default 4)")
    ap.add_argument("--options", nargs="+", default=["fp32", "bf16", "channels_last"],
                    help="training options compared (fp32 first: the reference)")
    a = ap.parse_args(argv)
    if a.quick:
        a.quality_steps, a.slices, a.mc = min(a.quality_steps, 6), min(a.slices, 2), min(a.mc, 2)
    return a


def one_call(loaded, ev: EvalSlices, seed: int, device: torch.device) -> np.ndarray:
    """The denoiser read out once from pure noise: x_T from replicate 0's generator, then D(x_T / scale, sigma_max)
    (clipped to [-1, 1]; the DDPM's state unscaled by sqrt(abar), the VE-SDE's as it is)."""
    process = loaded.process
    gens = [rng.make_generator(rng.replicate_seed(seed, int(i), 0), device) for i in ev.index]
    y = torch.as_tensor(ev.cond, device=device)
    x_t = process.prior_sample((len(ev), ev.target.shape[1], *y.shape[2:]), gens, device=device)
    sigma = process.sigma_max
    sigmas = torch.full((len(ev),), sigma, device=device)
    with torch.no_grad():
        d = loaded.model(x_t / process.scale_of_sigma(sigma), y, sigmas)
    return d.clamp(-1, 1).float().cpu().numpy()


def run(a) -> dict[str, Any]:
    p = get_profile(a.profile)
    device = torch.device(a.device)
    ev = EvalSlices(p, a.slices)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ctmri-bench-precision-") as tmp:
        for method in a.methods:
            sampler, steps = EVAL_SAMPLERS[method]
            for option in a.options:
                prof = dataclasses.replace(p, train=dataclasses.replace(p.train, bf16_autocast="bf16" in option,
                                                                        channels_last="channels_last" in option))
                ckpt = Path(tmp) / option / f"{method}.pt"
                t0 = time.perf_counter()
                r = train(prof, method, steps=a.quality_steps, resume=False, device=device, progress=False,
                          checkpoint=ckpt)
                wall = time.perf_counter() - t0
                log = pd.read_csv(r["loss_log"])
                tail = log["loss"].iloc[-max(1, len(log) // 10):]
                loaded = load_model(ckpt, device)
                res = monte_carlo(loaded.model, loaded.process, sampler, ev.cond, mc_samples=a.mc, steps=steps,
                                  base_seed=p.sample.seed, chunk_size=len(ev) * a.mc, slice_ids=ev.index,
                                  options=options_for(p, sampler)[1], out_channels=ev.target.shape[1],
                                  device=device, progress=False)
                d1, mc = ev.scores(one_call(loaded, ev, p.sample.seed, device)), ev.scores(res["mean"])
                rows.append({"method": method, "precision": option, "steps": r["step"],
                             "seconds_per_step": r["seconds"] / max(1, r["steps_this_run"]), "wall_seconds": wall,
                             "final_loss": float(tail.mean()), "loss_rows_averaged": int(len(tail)),
                             "one_call_mae_hu": d1["mae_hu"], "one_call_ssim": d1["ssim"],
                             "sampler": f"{sampler}-{steps}", "sampler_nfe": res["nfe"], "K": a.mc,
                             "sampler_mae_hu": mc["mae_hu"], "sampler_ssim": mc["ssim"]})
                print({k: v for k, v in rows[-1].items()}, flush=True)
    for r in rows:
        base = next(q for q in rows if q["method"] == r["method"] and q["precision"] == "fp32")
        r["speedup_vs_fp32"] = base["seconds_per_step"] / r["seconds_per_step"]
    return {"profile": p.name, "machine": machine(device), "quality_steps": a.quality_steps, "slices": len(ev),
            "test_index": ev.index.tolist(), "results": rows}


def markdown(sec: dict) -> list[str]:
    lines = ["## Speed options against fp32: training speed and quality", "",
             f"Each model trained from scratch for {sec['quality_steps']} steps with `train.loop.train` on the profile's "
             f"train split, in fp32 and under each option (same seeds, same batches). Final loss: mean of the last "
             f"10 % of the loss log. One call: D(x_T, T) from pure noise. Sampler: MC mean of the short sampler. MAE "
             f"(HU, body) and SSIM ([0, 1]) on {sec['slices']} test slices.", ""]
    lines += table(["method", "precision", "s / step", "speed-up", "final loss", "one call MAE (HU)", "one call SSIM",
                    "sampler", "sampler MAE (HU)", "sampler SSIM"],
                   [(r["method"], r["precision"], fmt(r["seconds_per_step"], ".4f"), fmt(r["speedup_vs_fp32"], ".2f"),
                     fmt(r["final_loss"], ".4g"), fmt(r["one_call_mae_hu"], ".1f"), fmt(r["one_call_ssim"], ".3f"),
                     f"{r['sampler']} x {r['K']}", fmt(r["sampler_mae_hu"], ".1f"), fmt(r["sampler_ssim"], ".3f"))
                    for r in sec["results"]])
    return lines + [""]


if __name__ == "__main__":
    sys.exit(write_standalone(sys.modules[__name__], None, "precision"))
