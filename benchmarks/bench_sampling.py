"""Sampling cost: the share of time spent outside the network, peak memory per sampler, and batched MC against
one replicate at a time.

Overhead: the profile's real batch (max_test_slices x mc_samples, e.g. 12 x 10 = 120 on cpu, one chunk) of every
diffusion sampler in the registry (`diffusion.samplers`) through `mc.monte_carlo` with per-replicate generators, at min(profile steps, --steps)
steps (the ODE at rtol = atol = --ode-rtol); time outside the network = 1 - time inside model calls / sampler
wall time. The model is the profile's checkpoint when present (its denoiser `loaded.model(x, y, sigma)`), else the
profile's UNet with random weights in the profile's network convention (output layer re-initialised, since it
starts at zero): the time per forward does not depend on the weights, the
ODE's NFE does. Peak memory of each run: peak RSS (and its rise) on the CPU, torch.cuda.max_memory_allocated on
a GPU. Batched vs one at a time: the same --pair-slices x --pair-mc samples drawn in one chunk and in chunks of
one (the same seeds, so the same samples: the largest difference is reported), seconds per slice and their ratio.
Writes <out>/sampling.json|md.

    python benchmarks/bench_sampling.py [--profile cpu] [--samplers ddim heun] [--steps 10] [--quick]
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch

from ctmri.config import get_profile
from ctmri.diffusion.precond import convention_for
from ctmri.diffusion.processes import make_process
from ctmri.diffusion.samplers import spec
from ctmri.models.build import build_model
from ctmri.sample.mc import monte_carlo

from common import (PeakMemory, TimedModel, base_parser, checkpoint_or_none, diffusion_samplers, fmt, machine,
                    options_for, table, write_standalone)


def parse(argv: list[str] | None = None):
    ap = base_parser(__doc__)
    ap.add_argument("--samplers", nargs="+", default=None, choices=diffusion_samplers(), metavar="SAMPLER",
                    help="diffusion samplers (default: every one in the registry)")
    ap.add_argument("--steps", type=int, default=10, help="at most this many steps per sampler (default 10)")
    ap.add_argument("--ode-rtol", type=float, default=1e-2, help="ODE rtol = atol for the overhead run (default 1e-2)")
    ap.add_argument("--batch", type=int, default=0, help="samples per run (0: the profile's slices x MC)")
    ap.add_argument("--pair-slices", type=int, default=4, help="batched vs one at a time: slices (default 4)")
    ap.add_argument("--pair-mc", type=int, default=4, help="batched vs one at a time: replicates (default 4)")
    a = ap.parse_args(argv)
    if a.quick:
        a.steps, a.pair_slices, a.pair_mc, a.batch = min(a.steps, 3), 2, 2, a.batch or 4
    return a


def load_or_build(method: str, profile, device: torch.device):
    """(denoiser D(x, y, sigma), process, weights description): the profile's checkpoint if trained, else random
    weights in the profile's convention."""
    loaded = checkpoint_or_none(profile, method, device)
    if loaded is not None:
        return loaded.model, loaded.process, f"checkpoint {method}.pt (step {loaded.meta.get('step')})"
    torch.manual_seed(0)                    # the script (not the library) fixes the init of the random weights
    net = build_model(method, profile)["net"]
    with torch.no_grad():
        net.conv_out.weight.normal_(0.0, 0.05)
    net.to(device).eval()
    process = make_process(method, profile.process)
    return convention_for(method, profile.process, net, process, sigma_data=0.25), process, "random weights"


def _settings(profile, sampler: str, a) -> tuple[int, dict]:
    steps, options = options_for(profile, sampler)
    steps = min(steps, a.steps)
    if spec(sampler).adaptive:              # the solver picks its steps: bound its work by the tolerance
        options = {**options, "rtol": a.ode_rtol, "atol": a.ode_rtol}
    return steps, options


def run(a) -> dict[str, Any]:
    p = get_profile(a.profile)
    device = torch.device(a.device)
    size = p.data.image_size
    n, k = p.sample.max_test_slices or 12, p.sample.mc_samples
    if a.batch:
        n = min(n, a.batch)
        k = max(1, a.batch // n)
    cond = np.random.default_rng(0).uniform(-1, 1, size=(max(n, a.pair_slices), p.model.cond_channels, size, size)
                                            ).astype(np.float32)
    models: dict[str, tuple] = {}
    rows, pairs = [], []
    for sampler in a.samplers or diffusion_samplers():
        method = spec(sampler).method
        if method not in models:
            models[method] = load_or_build(method, p, device)
        model, process, weights = models[method]
        steps, options = _settings(p, sampler, a)
        timed = TimedModel(model, device)
        kw = dict(options=options, device=device, progress=False)
        monte_carlo(timed, process, sampler, cond[:1], mc_samples=1, steps=2, **kw)   # warm-up (allocator, kernels)
        timed.seconds, timed.calls = 0.0, 0
        with PeakMemory(device) as mem:
            res = monte_carlo(timed, process, sampler, cond[:n], mc_samples=k, steps=steps, chunk_size=n * k, **kw)
        total = res["seconds_total"]
        rows.append({"sampler": sampler, "method": method, "steps": steps, "options": options, "batch": n * k,
                     "nfe_per_sample": res["nfe"], "model_calls": timed.calls, "seconds_total": total,
                     "seconds_per_sample": res["seconds_per_sample"], "seconds_in_network": timed.seconds,
                     "fraction_outside_network": 1 - timed.seconds / total, "weights": weights, **mem.result})
        r = rows[-1]
        print(f"{sampler:10s} steps {steps:4d}  NFE {r['nfe_per_sample']:6.1f}  {r['seconds_per_sample']:.4f} s/sample  "
              f"outside net {100 * r['fraction_outside_network']:.2f} %  peak RSS {r['peak_rss_mib']} MiB", flush=True)
        if not any(q["method"] == method for q in pairs):
            pairs.append(_batched_vs_single(model, process, sampler, cond[:a.pair_slices], a.pair_mc, steps, kw))
    return {"profile": p.name, "machine": machine(device), "image_size": size, "overhead": rows, "batched_vs_single": pairs}


def _batched_vs_single(model, process, sampler: str, cond: np.ndarray, k: int, steps: int, kw: dict) -> dict:
    """The same samples (same seeds) drawn in one chunk and one at a time: seconds per slice, ratio, max |difference|."""
    one = monte_carlo(model, process, sampler, cond, mc_samples=k, steps=steps, chunk_size=len(cond) * k, **kw)
    each = monte_carlo(model, process, sampler, cond, mc_samples=k, steps=steps, chunk_size=1, **kw)
    n = len(cond)
    return {"sampler": sampler, "method": spec(sampler).method, "steps": steps, "slices": n, "K": k,
            "seconds_per_slice_batched": one["seconds_total"] / n, "seconds_per_slice_single": each["seconds_total"] / n,
            "speedup": each["seconds_total"] / one["seconds_total"],
            "max_abs_difference": float(np.abs(one["samples"] - each["samples"]).max())}


def markdown(sec: dict) -> list[str]:
    rows = sec["overhead"]
    lines = ["## Sampler overhead outside the network and peak memory per sampler", "",
             f"{sec['image_size']}² slices x MC replicates in one batch; weights: "
             f"{', '.join(sorted({r['weights'] for r in rows}))}. Time outside the network = 1 - time inside model "
             "calls / sampler wall time. Peak RSS: the process's high-water mark during the run (its rise over the "
             "RSS before it in brackets); GPU: max_memory_allocated.", ""]
    lines += table(["sampler", "steps", "batch", "NFE / sample", "s / sample", "outside network", "peak RSS (MiB)",
                    "GPU peak (MiB)"],
                   [(r["sampler"], r["steps"], r["batch"], fmt(r["nfe_per_sample"], ".0f"),
                     fmt(r["seconds_per_sample"], ".4f"), f"{100 * r['fraction_outside_network']:.2f} %",
                     f"{r['peak_rss_mib']} (+{r['rss_rise_mib']})", fmt(r["cuda_peak_mib"], ".0f")) for r in rows])
    lines += ["", "## Batched MC against one replicate at a time", "",
              "The same samples (same per-replicate seeds) in one chunk and in chunks of one; max |difference| is "
              "the largest disagreement (model space) between the two.", ""]
    lines += table(["sampler", "steps", "slices x K", "s / slice batched", "s / slice one at a time", "speed-up",
                    "max |difference|"],
                   [(q["sampler"], q["steps"], f"{q['slices']} x {q['K']}", fmt(q["seconds_per_slice_batched"], ".4f"),
                     fmt(q["seconds_per_slice_single"], ".4f"), f"{q['speedup']:.1f}x", fmt(q["max_abs_difference"], ".1e"))
                    for q in sec["batched_vs_single"]])
    return lines + [""]


if __name__ == "__main__":
    sys.exit(write_standalone(sys.modules[__name__], None, "sampling"))
