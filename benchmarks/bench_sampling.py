"""Sampling speed on the cpu profile: seconds per sample, NFE, and the share of time spent outside the network.

16 slices x 10 MC replicates (32 x 32) go through `mc.monte_carlo` (one chunk, per-replicate
generators, as in a real run) for every sampler at the cpu profile's step counts. The model is the
trained checkpoint of runs/cpu when present, else the cpu UNet with random weights (output layer
re-initialised, since it starts at zero): the time per forward does not depend on the weights, but
the adaptive ODE's NFE does, so ODE NFE from random weights is not the trained model's.
Time outside the network = 1 - (time inside model calls) / (sampler wall time).
Writes benchmarks/results/sampling.json and sampling.md.

    python benchmarks/bench_sampling.py [--samplers ddim heun] [--slices 16] [--mc 10] [--steps 0]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ctmri.models import checkpoints
from ctmri.diffusion.precond import convention_for
from ctmri.models.build import build_model
from ctmri import paths
from ctmri.config import get_profile
from ctmri.sample.mc import monte_carlo, sampler_method, sampler_settings
from ctmri.diffusion.processes import make_process
from ctmri.provenance import provenance, write_json
from ctmri.diffusion.samplers import SAMPLERS

RESULTS = Path(__file__).resolve().parent / "results"


class TimedModel:
    """Wraps a model callable and accumulates the wall time and count of its calls."""

    def __init__(self, model, device: torch.device):
        self.model, self.device, self.seconds, self.calls = model, device, 0.0, 0

    def __call__(self, *args):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        out = self.model(*args)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def load_or_build(method: str, profile, device: torch.device):
    """(model callable, process, weights description): the cpu checkpoint if trained, else random weights."""
    path = paths.checkpoint_path(profile.name, method)
    if path.exists():
        loaded = checkpoints.load_model(path, device)
        return loaded.model, loaded.process, f"checkpoint {path.name} (step {loaded.meta.get('step')})"
    torch.manual_seed(0)                    # the script (not the library) fixes the init of the random weights
    net = build_model(method, profile)["net"]
    with torch.no_grad():
        net.conv_out.weight.normal_(0.0, 0.05)
    net.to(device).eval()
    process = make_process(method, profile.process)
    model = convention_for(method, profile.process, net, process, sigma_data=0.25)
    return model, process, "random weights (no checkpoint)"


def write_results(rows: list[dict], a: argparse.Namespace, size: int, device: torch.device) -> None:
    """benchmarks/results/sampling.json and .md (rewritten after every sampler, so a long run keeps what it measured)."""
    setup = {"profile": "cpu", "image_size": size, "slices": a.slices, "mc_samples": a.mc,
             "batch": a.slices * a.mc, "device": str(device), "torch_threads": torch.get_num_threads(),
             "machine": f"{platform.machine()} {platform.processor() or ''}".strip()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    old = RESULTS / "sampling.json"                  # keep the latest row of samplers not rerun this time
    if old.exists():
        mine = {r["sampler"] for r in rows}
        kept = [r for r in json.loads(old.read_text()).get("results", []) if r["sampler"] not in mine]
        rows = sorted(kept + rows, key=lambda r: list(SAMPLERS).index(r["sampler"]))
    write_json(RESULTS / "sampling.json", {"setup": setup, "results": rows,
                                          "provenance": provenance("cpu", benchmark="bench_sampling")})
    lines = ["# Sampling speed (cpu profile)", "",
             f"{size}x{size} slices x MC replicates in one batch (batch column; default 16 x 10 = 160), "
             f"{torch.get_num_threads()} torch threads. Weights: "
             f"{', '.join(sorted({r['weights'] for r in rows}))}. Time outside the network = 1 - time inside "
             f"model calls / sampler wall time (goal < 3 %).", "",
             "| sampler | steps | batch | device | NFE / sample | s / sample | s / slice (x MC) | outside network |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['sampler']} | {r['steps']} | {r.get('batch', '')} | {r.get('device', '')} | "
              f"{r['nfe_per_sample']:.0f} | {r['seconds_per_sample']:.4f} | {r['seconds_per_slice']:.2f} | "
              f"{100 * r['fraction_outside_network']:.2f} % |" for r in rows]
    (RESULTS / "sampling.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samplers", nargs="*", default=list(SAMPLERS))
    ap.add_argument("--slices", type=int, default=16)
    ap.add_argument("--mc", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=0,
                    help="override every sampler's step count (quick runs; 0: the cpu profile's)")
    a = ap.parse_args(argv)
    profile = get_profile("cpu")
    device = torch.device(a.device)
    size = profile.data.image_size
    cond = np.random.default_rng(0).uniform(-1, 1, size=(a.slices, 1, size, size)).astype(np.float32)
    models = {}
    rows = []
    for sampler in a.samplers:
        method = sampler_method(sampler)
        if method not in models:
            models[method] = load_or_build(method, profile, device)
        model, process, weights = models[method]
        steps, options = sampler_settings(profile, sampler)
        steps = a.steps or steps
        timed = TimedModel(model, device)
        monte_carlo(timed, process, sampler, cond[:1], mc_samples=1, steps=2, options=options, device=device,
                    progress=False)                                  # warm-up (allocator, oneDNN kernels)
        timed.seconds, timed.calls = 0.0, 0
        res = monte_carlo(timed, process, sampler, cond, mc_samples=a.mc, steps=steps, options=options,
                          chunk_size=a.slices * a.mc, device=device, progress=False)
        total = res["seconds_total"]
        rows.append({"sampler": sampler, "method": method, "steps": steps, "options": options,
                     "batch": a.slices * a.mc, "device": str(device),
                     "nfe_per_sample": res["nfe"], "model_calls": timed.calls,
                     "seconds_total": total, "seconds_per_sample": res["seconds_per_sample"],
                     "seconds_per_slice": total / a.slices, "seconds_in_network": timed.seconds,
                     "fraction_outside_network": 1 - timed.seconds / total, "weights": weights})
        r = rows[-1]
        print(f"{sampler:8s} steps {steps:4d}  NFE {r['nfe_per_sample']:7.1f}  {r['seconds_per_sample']:.4f} s/sample  "
              f"{r['seconds_per_slice']:.3f} s/slice (x{a.mc} MC)  outside net {100 * r['fraction_outside_network']:.2f} %",
              flush=True)
        write_results(rows, a, size, device)

    return 0


if __name__ == "__main__":
    sys.exit(main())
