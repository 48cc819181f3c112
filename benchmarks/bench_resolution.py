"""Which network is affordable at 128² (3 mm pixels over the 384 mm field of view), measured per training minute.

Candidates, all the cpu UNet (base 24, levels 1-2-4 unless named): the plain UNet at 128², and the same UNet behind
a pixel-unshuffle stem of patch 2 (the UNet at 64²) or 4 (at 32²), plus a wider stem-4 net. For each: seconds per
training step (batch 16, fp32), then a CNN (MSE, the study's baseline: it converges fastest, so it measures what
the architecture can learn) trained for a fixed wall-clock budget, scored by MAE in HU inside the body on the
held-out patients' 128² slices; with `--diffusion`, the VE-SDE model (EDM preconditioning) of the stem-4 net too,
read out with the default sampler. Data: the phantom rendered at 3 mm (profile `res128`, written under CTMRI_ROOT).

    CTMRI_ROOT=<scratch> python benchmarks/bench_resolution.py [--minutes 4] [--diffusion] [--out benchmarks/results]
    CTMRI_ROOT=<scratch> python benchmarks/bench_resolution.py --candidates stem4 stem4-wide --methods vesde \
        --minutes 12 --name resolution_vesde
"""
from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

import numpy as np
import torch

from ctmri.config import DataConfig, get_profile
from ctmri.data.intensity import model_to_hu
from ctmri.data.prepare import load_split, prepare_dataset
from ctmri.diffusion.samplers import default_sampler, get_sampler, spec
from ctmri.evaluate.metrics import high_frequency_power, synthrad_mae
from ctmri.models.build import build_model
from ctmri.models.checkpoints import load_model
from ctmri.rng import make_generator
from ctmri.train.loop import train

from common import base_parser, fmt, table, write_standalone

# (name, patch, base channels, channel multipliers)
CANDIDATES = [("plain-128", 1, 24, (1, 2, 4)), ("stem2", 2, 24, (1, 2, 4)), ("stem4", 4, 24, (1, 2, 4)),
              ("stem4-wide", 4, 48, (1, 2, 4))]


def parse(argv: list[str] | None = None):
    ap = base_parser(__doc__)
    ap.add_argument("--minutes", type=float, default=4.0, help="training wall-clock budget per candidate")
    ap.add_argument("--timing-steps", type=int, default=3, help="training steps timed per candidate")
    ap.add_argument("--diffusion", action="store_true", help="also train the VE-SDE model of the stem-4 net")
    ap.add_argument("--candidates", nargs="+", default=None, choices=[c[0] for c in CANDIDATES],
                    help="only these candidates (default: all)")
    ap.add_argument("--methods", nargs="+", default=None, choices=["cnn", "vesde", "ddpm", "wgan"],
                    help="train these methods for every chosen candidate (default: cnn, + vesde for stem4 with "
                         "--diffusion)")
    ap.add_argument("--name", default="resolution", help="results file stem (default resolution)")
    ap.add_argument("--slices", type=int, default=24, help="test slices scored")
    return ap.parse_args(argv)


def res_profile(quick: bool, patch: int = 1, base: int = 24, mults=(1, 2, 4)):
    """The cpu profile at 128² (3 mm pixels, 3 mm slices), with the candidate's network."""
    cpu = get_profile("cpu")
    data = (DataConfig(image_size=32, n_patients=3, n_test_patients=1, slices_per_patient=4,
                       phantom_shape=(8, 32, 32), phantom_spacing=(12.0, 12.0, 12.0)) if quick else
            DataConfig(image_size=128, n_patients=8, n_test_patients=2, slices_per_patient=16,
                       phantom_shape=(40, 128, 128), phantom_spacing=(3.0, 3.0, 3.0)))
    model = dataclasses.replace(cpu.model, base_channels=base, channel_mults=mults, patch_size=patch)
    return dataclasses.replace(cpu, name="res128", data=data, model=model,
                               train=dataclasses.replace(cpu.train, checkpoint_every=10_000, log_every=50,
                                                         batch_size=4 if quick else cpu.train.batch_size))


def step_seconds(profile, method: str, steps: int) -> float:
    """Median seconds of one optimiser step (batch 16, fp32, forward + backward + Adam) on random data."""
    nets = build_model(method, profile)
    net = nets["net"].train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    size, b = profile.data.image_size, profile.train.batch_size
    y, x = torch.rand(b, 1, size, size) * 2 - 1, torch.rand(b, 1, size, size) * 2 - 1
    t = torch.rand(b) * 1000
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        out = net(x if method != "cnn" else None, y, t if method != "cnn" else None)
        loss = (out - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def score(profile, method: str, ckpt, slices: np.ndarray) -> dict[str, float]:
    """MAE in HU inside the body, and the high-frequency power ratio against the true CT, on the chosen slices."""
    test = load_split(profile, "test")
    lm = load_model(ckpt)
    cond = torch.from_numpy(test.cond[slices])
    with torch.no_grad():
        if method == "cnn":
            pred = lm.model(cond)
        else:
            name = default_sampler()
            steps, options = spec(name).settings(profile.sample)
            pred = get_sampler(name)(lm.model, lm.process, cond, steps=steps, **options,
                                     generator=[make_generator(int(i)) for i in slices])
    hu, ct = model_to_hu(pred[:, 0].numpy()), model_to_hu(test.target[slices, 0])
    mae = [synthrad_mae(c, h, m) for c, h, m in zip(ct, hu, test.mask[slices])]
    hf = [high_frequency_power(h) / max(high_frequency_power(c), 1e-12) for c, h in zip(ct, hu)]
    return {"mae_hu": float(np.mean(mae)), "hf_ratio": float(np.median(hf))}


def run(a) -> dict[str, Any]:
    torch.manual_seed(0)
    base = res_profile(a.quick)
    prepare_dataset(base)
    n_test = len(load_split(base, "test"))
    slices = np.unique(np.linspace(0, n_test - 1, min(a.slices, n_test)).round().astype(int))
    rows = []
    chosen = [c for c in CANDIDATES if a.candidates is None or c[0] in a.candidates]
    if a.methods:
        runs = [(c, m) for c in chosen for m in a.methods]
    else:
        runs = [(c, "cnn") for c in chosen] + ([(CANDIDATES[2], "vesde")] if a.diffusion else [])
    for (name, patch, width, mults), method in runs:
        prof = res_profile(a.quick, patch, width, mults)
        sec = step_seconds(prof, method, 1 if a.quick else a.timing_steps)
        budget = 0.05 if a.quick else a.minutes
        steps = max(2, int(budget * 60 / sec))
        row = {"candidate": name, "method": method, "patch": patch, "base_channels": width,
               "params": sum(p.numel() for p in build_model(method, prof)["net"].parameters()),
               "step_seconds": sec, "steps": steps}
        if name == "plain-128" and not a.quick:           # 11 s a step: not affordable; timed, not trained
            row.update(trained=False)
            rows.append(row)
            continue
        start = time.perf_counter()
        r = train(prof, method, steps=steps, resume=False, progress=False)
        row.update(trained=True, train_seconds=time.perf_counter() - start, **score(prof, method, r["checkpoint"], slices))
        rows.append(row)
        print(row, flush=True)
    return {"profile": base.name, "image_size": base.data.image_size, "spacing_mm": list(base.data.phantom_spacing),
            "minutes": a.minutes, "test_slices": int(len(slices)), "batch_size": base.train.batch_size,
            "threads": torch.get_num_threads(), "rows": rows}


def markdown(sec: dict) -> list[str]:
    lines = [f"## Affordable networks at {sec['image_size']}² ({sec['spacing_mm'][1]:g} mm pixels)", "",
             f"Seconds per training step (batch {sec.get('batch_size', 16)}, fp32, {sec.get('threads', '?')} threads), then "
             f"each candidate trained for {sec['minutes']:g} min of wall clock and scored on {sec['test_slices']} held-out "
             f"{sec['image_size']}² slices: MAE in HU "
             "inside the body and the median high-frequency power ratio against the true CT (1 = the CT's detail; "
             "the CNN's over-smoothing lowers it).", ""]
    rows = [[r["candidate"], r["method"], r["patch"], r["base_channels"], f"{r['params'] / 1e6:.2f} M",
             fmt(r["step_seconds"]), r["steps"] if r["trained"] else "–",
             fmt(r.get("mae_hu"), ".1f") if r["trained"] else "not trained (cost)",
             fmt(r.get("hf_ratio"), ".2f") if r["trained"] else "–"] for r in sec["rows"]]
    return lines + table(["candidate", "method", "patch", "base", "parameters", "s / step", "steps trained",
                          "MAE (HU)", "HF ratio"], rows)


if __name__ == "__main__":
    sys.exit(write_standalone(sys.modules[__name__], sys.argv[1:], parse(sys.argv[1:]).name))
