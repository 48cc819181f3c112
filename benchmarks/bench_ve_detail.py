"""Detail (high-frequency power over the CT's) and MAE of single VE samples against the sampler's settings: steps,
sigma_min (the stopping time eps) and the Karras grid's rho (issue 25, item 3). Prints one row per setting;
benchmarks/results/ve_detail.md holds a run.

    CTMRI_ROOT=<root with prepared cpu data> python benchmarks/bench_ve_detail.py weights/cpu/vesde.pt [--slices 24]
"""
from __future__ import annotations

import argparse
import copy

import numpy as np

from ctmri.config import get_profile
from ctmri.data.intensity import model_to_hu
from ctmri.data.slices import load_split
from ctmri.evaluate import metrics as M
from ctmri.models.checkpoints import load_model
from ctmri.sample.mc import monte_carlo

SETTINGS = [   # (sampler, steps, eps, solver options)
    ("dpm++2m-ve", 10, 1e-3, {}), ("dpm++2m-ve", 15, 1e-3, {}), ("dpm++2m-ve", 20, 1e-3, {}),
    ("dpm++2m-ve", 10, 3e-4, {}), ("dpm++2m-ve", 10, 1e-3, {"rho": 12.0}), ("dpm++2m-ve", 10, 1e-3, {"rho": 20.0}),
    ("dpm++2m-sde", 10, 1e-3, {}), ("dpm++2m-sde", 20, 1e-3, {}), ("dpm++2m-sde", 10, 1e-3, {"rho": 12.0}),
    ("heun-churn", 10, 1e-3, {}), ("heun-churn", 10, 1e-3, {"rho": 12.0}), ("heun-churn", 20, 1e-3, {}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="a VE checkpoint of the cpu profile (e.g. weights/cpu/vesde.pt)")
    ap.add_argument("--slices", type=int, default=24, help="test slices, spread through the test patients")
    ap.add_argument("--seeds", type=int, default=2, help="seeds per setting (rows are their mean)")
    a = ap.parse_args()
    p = get_profile("cpu")
    test = load_split(p, "test", context=p.model.context_slices)
    sel = np.unique(np.linspace(3, len(test) - 4, a.slices).astype(int))
    lm = load_model(a.checkpoint)
    ct, mask = model_to_hu(test.target[sel, 0]), test.mask[sel]
    print("| sampler | steps | eps | options | MAE (HU) | HF / CT |\n|---|---|---|---|---|---|")
    for sampler, steps, eps, options in SETTINGS:
        process = copy.copy(lm.process)
        process.eps_sample = eps
        rows = []
        for seed in range(a.seeds):
            out = monte_carlo(lm.model, process, sampler, test.cond[sel], mc_samples=1, steps=steps, base_seed=seed,
                              options=options, progress=False)
            sct = model_to_hu(out["samples"][:, 0, 0])
            hf = np.median([M.high_frequency_power(s) / M.high_frequency_power(c) for s, c in zip(sct, ct)])
            rows.append((M.synthrad_mae(ct, sct, mask), hf))
        mae, hf = np.mean(rows, axis=0)
        print(f"| {sampler} | {steps} | {eps:g} | {options or '–'} | {mae:.1f} | {hf:.2f} |", flush=True)


if __name__ == "__main__":
    main()
