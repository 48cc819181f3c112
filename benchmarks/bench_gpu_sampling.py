"""Seconds per slice on a GPU: every sampler at the profile's step count, one slice x `--mc` replicates in one batch,
at each image size (256² and 512²), fp32 and bf16 autocast + channels_last. Every sampler: each one in the registry
(`diffusion.samplers`), the one-pass baselines (CNN, WGAN-GP) included.

The network is the profile's UNet with random weights (the time per call does not depend on the weights; the
ODE's adaptive NFE does, so it is reported per call and at `--ode-nfe` calls). A sampler whose step count is at
most `--probe` runs in full; a longer one runs `--probe` steps and its time is scaled to the full count (the
time per step of a fixed-step sampler is constant; the scaled rows say so). One warm-up run per configuration
first (allocator, cuDNN autotune). Writes <out>/gpu_sampling.json|md.

    python benchmarks/bench_gpu_sampling.py --profile gpu --device cuda [--sizes 256 512] [--mc 10]
"""
from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

import numpy as np
import torch

from ctmri.config import get_profile
from ctmri.diffusion.samplers import spec, study_order
from ctmri.sample.mc import monte_carlo

from bench_sampling import load_or_build
from common import PeakMemory, base_parser, fmt, machine, options_for, sync, table, write_standalone


def parse(argv: list[str] | None = None):
    ap = base_parser(__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--mc", type=int, default=10)
    ap.add_argument("--probe", type=int, default=20, help="steps actually run for a longer sampler (default 20)")
    ap.add_argument("--ode-nfe", type=int, default=224, help="NFE the ODE is projected at (cpu study: 224)")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16+channels_last"])
    ap.add_argument("--samplers", nargs="+", default=study_order(), choices=study_order(), metavar="SAMPLER",
                    help="default: every sampler in the registry")
    a = ap.parse_args(argv)
    if a.quick:
        a.sizes, a.mc, a.probe = [16], 2, 2
    return a


class Precision:
    """The model callable under bf16 autocast (output back to fp32) with the net in channels_last, or as it is."""

    def __init__(self, model, net: torch.nn.Module, device: torch.device, precision: str):
        self.model, self.device, self.bf16 = model, device, "bf16" in precision
        net.to(memory_format=torch.channels_last if "channels_last" in precision else torch.contiguous_format)

    def __call__(self, *args):
        if not self.bf16:
            return self.model(*args)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            return self.model(*args).float()


def run(a) -> dict[str, Any]:
    device = torch.device(a.device)
    base = get_profile(a.profile)
    rows = []
    for size in a.sizes:
        p = dataclasses.replace(base, data=dataclasses.replace(base.data, image_size=size))
        cond = np.random.default_rng(0).uniform(-1, 1, (1, p.model.cond_channels, size, size)).astype(np.float32)
        built: dict[str, tuple] = {}
        for precision in a.precisions:
            for sampler in a.samplers:
                method = spec(sampler).method
                if method not in built:
                    built[method] = _build(method, p, device, spec(sampler).one_pass)
                model, process, net = built[method]
                timed = Precision(model, net, device, precision)
                full, options = options_for(p, sampler)
                adaptive = spec(sampler).adaptive
                run_steps = full if full <= a.probe else a.probe
                if adaptive:                       # NFE depends on the random weights; bound it
                    run_steps, options = full, {**options, "rtol": 1e-2, "atol": 1e-2}
                kw = dict(mc_samples=a.mc, options=options, device=device, progress=False, chunk_size=a.mc)
                row = {"size": size, "precision": precision, "sampler": sampler, "method": method,
                       "profile_steps": full, "steps_run": run_steps}
                try:
                    monte_carlo(timed, process, sampler, cond, steps=min(run_steps, 2), **kw)
                    with PeakMemory(device) as mem:
                        sync(device)
                        t0 = time.perf_counter()
                        res = monte_carlo(timed, process, sampler, cond, steps=run_steps, **kw)
                        sync(device)
                        sec = time.perf_counter() - t0
                    scale = full / run_steps
                    row.update(seconds_run=sec, nfe_run=res["nfe"], seconds_per_slice=sec * scale,
                               scaled=scale != 1, seconds_per_call=sec / max(res["nfe"], 1), **mem.result)
                    if adaptive:
                        row.update(seconds_per_slice=row["seconds_per_call"] * a.ode_nfe, scaled=True,
                                   note=f"per call x {a.ode_nfe} NFE (random weights took {res['nfe']:.0f})")
                except Exception as err:
                    row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
                rows.append(row)
                print(row, flush=True)
    return {"profile": base.name, "machine": machine(device), "mc": a.mc, "probe": a.probe, "rows": rows,
            "base_channels": base.model.base_channels, "channel_mults": list(base.model.channel_mults)}


def _build(method: str, p, device, one_pass: bool):
    """(model callable, process, net) with random weights: a one-pass baseline's generator G(y), or a diffusion
    model's denoiser D(x, y, sigma)."""
    if one_pass:
        from ctmri.models.build import build_model

        torch.manual_seed(0)
        net = build_model(method, p)["net"].to(device).eval()
        return (lambda y: net(None, y)), None, net
    model, process, _ = load_or_build(method, p, device)
    return model, process, model.net


def markdown(sec: dict) -> list[str]:
    lines = ["## Seconds per slice on the GPU (sampling)", "",
             f"{sec['machine']['device_name']}; {sec['profile']} profile UNet (base {sec['base_channels']} x "
             f"{sec['channel_mults']}), random weights, one slice x {sec['mc']} MC replicates in one batch, the "
             f"profile's steps per sampler; samplers longer than {sec['probe']} steps ran {sec['probe']} and are "
             "scaled to the full count (marked *). Peak GPU memory: torch.cuda.max_memory_allocated.", ""]
    rows = []
    for r in sec["rows"]:
        if "error" in r:
            rows.append((r["size"], r["precision"], r["sampler"], r["profile_steps"], "failed: " + r["error"], "–", "–"))
            continue
        rows.append((r["size"], r["precision"], r["sampler"], r["profile_steps"],
                     fmt(r["seconds_per_slice"], ".3f") + ("*" if r["scaled"] else ""),
                     fmt(1000 * r["seconds_per_call"], ".2f"), fmt(r.get("cuda_peak_mib"), ".0f")))
    return lines + table(["size", "precision", "sampler", "steps", f"s / slice ({sec['mc']} MC)", "ms / call",
                          "GPU peak MiB"], rows) + [""]


if __name__ == "__main__":
    sys.exit(write_standalone(sys.modules[__name__], None, "gpu_sampling"))
