"""VE-SDE training choices on the profile's data: parametrisation x DSM weighting x training-sigma law (issue 9).

Each variant trains the profile's VE network from scratch (same seed, data, batch, lr, EMA, bf16 setting) in
segments and is evaluated after each segment on the first 12 test slices: MAE (HU, SynthRAD2023, body mask) of
  - `denoise`   the one-call read-out D(x_T, std(1))                   (NFE 1)
  - `heun-13`   Heun in sigma space, 13 grid points, single sample     (NFE 25)
  - `em-100`    Euler–Maruyama, 100 steps + noise removal, single      (NFE 101)
Writes benchmarks/results/ve_ablation.{md,json} (MAE against training steps for each choice: the frontier).

    CTMRI_ROOT=<root with prepared cpu data> python benchmarks/bench_ve_ablation.py [--steps 400 800 1200]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ctmri.config import get_profile
from ctmri.data.intensity import model_to_hu
from ctmri.data.prepare import load_split
from ctmri.diffusion.samplers import SAMPLERS
from ctmri.evaluate.metrics import synthrad_mae
from ctmri.models.checkpoints import load_model
from ctmri.provenance import provenance
from ctmri.rng import make_generator, replicate_seed
from ctmri.train.loop import train

OUT = Path(__file__).resolve().parent / "results"
# name -> (ve_parametrisation, dsm_weighting, sigma_distribution)
VARIANTS = {
    "study (F/std, lambda=std^2, t~U)": ("score-over-std", "std2", "uniform-t"),
    "EDM precond, lambda=std^2, t~U": ("edm", "std2", "uniform-t"),
    "EDM precond, EDM weight, t~U": ("edm", "edm", "uniform-t"),
    "EDM precond, EDM weight, log-normal (default)": ("edm", "edm", "lognormal"),
}
READOUTS = {"denoise": ("denoise", 1, {}), "heun-13": ("heun", 13, {}), "em-100": ("em", 100, {"noise_removal": True})}


def evaluate(ckpt: Path, cond: torch.Tensor, target_hu: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    lm = load_model(ckpt)
    gens = [make_generator(replicate_seed(0, i, 0)) for i in range(cond.shape[0])]
    out = {}
    with torch.no_grad():
        for name, (sampler, steps, opts) in READOUTS.items():
            x = SAMPLERS[sampler](lm.model, lm.process, cond, steps=steps, generator=gens, **opts)
            pred = model_to_hu(x[:, 0].numpy())
            out[name] = float(np.mean([synthrad_mae(t, p, m) for t, p, m in zip(target_hu, pred, mask)]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--steps", type=int, nargs="+", default=[400, 800, 1200], help="evaluation points (cumulative)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    a = ap.parse_args()
    p = get_profile(a.profile)
    test = load_split(p.name, "test")
    idx = np.linspace(0, len(test.mask) - 1, min(12, len(test.mask))).round().astype(int)
    cond = torch.from_numpy(test.cond[idx]).float()
    target_hu, mask = model_to_hu(test.target[idx, 0]), test.mask[idx]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.variants:
            param, weighting, law = VARIANTS[name]
            prof = dataclasses.replace(p, process=dataclasses.replace(p.process, ve_parametrisation=param),
                                       train=dataclasses.replace(p.train, dsm_weighting=weighting,
                                                                 sigma_distribution=law))
            ckpt = Path(tmp) / f"{len(rows)}.pt"
            start = time.perf_counter()
            for steps in a.steps:
                r = train(prof, "vesde", steps=steps, resume=True, progress=False, checkpoint=ckpt)
                rows.append({"variant": name, "step": steps, "train_seconds": round(time.perf_counter() - start, 1),
                             "final_loss": r["final_loss"], **evaluate(ckpt, cond, target_hu, mask)})
                print(json.dumps(rows[-1]), flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "ve_ablation.json").write_text(json.dumps({"rows": rows, "provenance": provenance(p.name)}, indent=1,
                                                     default=str) + "\n")
    lines = [f"# VE-SDE training choices ({p.name} profile)", "",
             f"Trained from scratch per variant (batch {p.train.batch_size}, lr {p.train.lr}, EMA {p.train.ema_decay}, "
             f"bf16 {p.train.bf16_autocast}); MAE in HU inside the body on {len(idx)} test slices, single samples "
             f"(seed fixed per slice). Readouts: " + ", ".join(f"{k} = {v[0]} ({v[1]} steps)" for k, v in READOUTS.items())
             + ". `make reproduce`'s CNN is the reference.", "",
             "| variant | step | denoise | heun-13 | em-100 | train s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['step']} | {r['denoise']:.1f} | {r['heun-13']:.1f} | {r['em-100']:.1f} | "
              f"{r['train_seconds']:.0f} |" for r in rows]
    (OUT / "ve_ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
