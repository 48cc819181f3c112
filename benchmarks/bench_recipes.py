"""Training recipes at equal budget (issue 25): each diffusion process trained with each recipe on the cpu profile's
data, the same steps, batches and seeds, then sampled on the test subset (the profile's `max_test_slices`) with the
study's sampler for that process: MAE in the body, bone Dice and the false-bone fraction (sCT > 300 HU where the
CT < 100 HU) of single samples and of the MC mean, and the last validation MAE of the training curve.

Recipes: `ddpm-v` (the cpu study's DDPM: v-prediction, uniform steps, eq. 23), `ddpm-eps` (the study's: eps, uniform
steps), `ddpm-edm` (the VE model's recipe on the DDPM: EDM preconditioning, log-normal sigma, EDM weight),
`vesde-edm` (the cpu study's VE model), `vesde-song` (the study's: score over std, t ~ U(eps, 1), lambda = std²).

    CTMRI_ROOT=<root with prepared cpu data> python benchmarks/bench_recipes.py [--only ddpm-v ddpm-edm] [--steps 3000]
"""
from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ctmri import paths
from ctmri.config import get_profile
from ctmri.data.intensity import model_to_hu
from ctmri.data.slices import load_split
from ctmri.diffusion.samplers import spec
from ctmri.evaluate import metrics as M

from common import base_parser, fmt, table, write_standalone

RECIPES = {   # name: (method, ProcessConfig overrides, TrainConfig overrides, sampler)
    "ddpm-v": ("ddpm", {"ddpm_parametrisation": "v"}, {"ddpm_loss_weighting": "eps"}, "ddpm"),
    "ddpm-eps": ("ddpm", {"ddpm_parametrisation": "eps"}, {"ddpm_loss_weighting": "eps"}, "ddpm"),
    "ddpm-edm": ("ddpm", {"ddpm_parametrisation": "edm"}, {"sigma_distribution": "lognormal", "dsm_weighting": "edm"},
                 "ddpm"),
    "vesde-edm": ("vesde", {"ve_parametrisation": "edm"}, {"sigma_distribution": "lognormal", "dsm_weighting": "edm"},
                  "em"),
    "vesde-song": ("vesde", {"ve_parametrisation": "score-over-std"},
                   {"sigma_distribution": "uniform-t", "dsm_weighting": "std2"}, "em"),
    # the WGAN-GP's adversarial / fidelity gradient ratio and critic steps (issue 25 item 2); sampler: G(y)
    **{f"wgan-adv{r:g}-c{c}": ("wgan", {}, {"wgan_adv_ratio": r, "n_critic": c}, "wgan")
       for r in (0.1, 0.3, 0.6, 0.8, 1.0, 3.0) for c in (1, 2)},
    # a fixed adversarial weight W (fidelity weight 100): bounded push, so no runaway
    **{f"wgan-fix{w:g}-c{c}": ("wgan", {}, {"wgan_adv_ratio": 0.0, "wgan_adv_weight": w, "n_critic": c}, "wgan")
       for w in (0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1) for c in (1, 2)},
}


def parse(argv: list[str] | None = None):
    ap = base_parser(__doc__)
    ap.add_argument("--only", nargs="+", default=["ddpm-v", "ddpm-edm"], choices=list(RECIPES))
    ap.add_argument("--steps", type=int, default=0, help="training steps (0: the cpu profile's budget)")
    ap.add_argument("--mc", type=int, default=10)
    ap.add_argument("--sampler-steps", type=int, default=0, help="sampler steps (0: the profile's)")
    ap.add_argument("--work", default="", help="folder for the checkpoints (default: runs/recipes under CTMRI_ROOT)")
    return ap.parse_args(argv)


def _profile(name: str):
    method, proc, train_over, sampler = RECIPES[name]
    p = get_profile("cpu")
    return method, replace(p, process=replace(p.process, **proc), train=replace(p.train, **train_over)), sampler


def _metrics(ct: np.ndarray, sct: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """MAE, bone Dice, false-bone and missed-bone fractions over the slices (body voxels pooled)."""
    c, s = model_to_hu(ct), model_to_hu(sct)
    hf = [M.high_frequency_power(si) / max(M.high_frequency_power(ci), 1e-12) for ci, si in zip(c, s)]
    return {"mae": M.synthrad_mae(c, s, mask), "dice": M.bone_dice(c, s, mask), "hf_ratio": float(np.median(hf)),
            "false_bone": M.false_bone_fraction(c, s, mask), "missed_bone": M.missed_bone_fraction(c, s, mask)}


def run_one(name: str, a, work: Path) -> dict[str, Any]:
    from ctmri.models.checkpoints import load_model
    from ctmri.sample.mc import monte_carlo
    from ctmri.sample.stage import evaluation_slices
    from ctmri.train.loop import train
    from ctmri.train.validation import curve_path, read_curve

    method, prof, sampler = _profile(name)
    ckpt = work / name / f"{method}.pt"                   # one folder each: the loss and validation logs too
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = train(prof, method, steps=a.steps or None, resume=False, progress=False, checkpoint=ckpt)
    train_s = time.perf_counter() - t0
    test = load_split(prof, "test", context=prof.model.context_slices)
    sel = evaluation_slices(len(test), prof.sample.max_test_slices)
    lm = load_model(ckpt)
    steps, options = spec(sampler).settings(prof.sample)
    t1 = time.perf_counter()
    out = monte_carlo(lm.model, lm.process, sampler, test.cond[sel], mc_samples=a.mc,
                      steps=a.sampler_steps or steps, base_seed=prof.sample.seed, slice_ids=sel, options=options,
                      progress=False)
    sample_s = time.perf_counter() - t1
    ct, mask = test.target[sel, 0], test.mask[sel]
    single = _metrics(ct, out["samples"][:, 0, 0], mask)
    mean = _metrics(ct, out["mean"][:, 0], mask)
    curve = read_curve(curve_path(ckpt, method))
    row = {"recipe": name, "method": method, "sampler": sampler, "train_steps": res["step"],
           "precision": res.get("precision"), "train_seconds": train_s, "sample_seconds": sample_s,
           "val_mae_last": curve[-1]["val_mae_hu"] if curve else None,
           **{f"single_{k}": v for k, v in single.items()}, **{f"mean_{k}": v for k, v in mean.items()}}
    print(row, flush=True)
    return row


def run(a) -> dict[str, Any]:
    work = Path(a.work) if a.work else paths.run_dir("recipes")
    work.mkdir(parents=True, exist_ok=True)
    rows = [run_one(name, a, work) for name in a.only]
    return {"rows": rows, "mc": a.mc, "slices": get_profile("cpu").sample.max_test_slices}


def markdown(sec: dict) -> list[str]:
    lines = ["## Training recipes at equal budget (cpu profile data)", "",
             f"Each recipe trained from scratch with the same steps, batches and seeds, then its process's study sampler "
             f"on {sec['slices']} test slices × {sec['mc']} MC. MAE in HU (body); bone Dice at 200 HU; false bone: "
             "share of body voxels with sCT > 300 HU where the CT < 100 HU; *val*: the last validation MAE of the "
             "training curve.", ""]
    return lines + table(
        ["recipe", "sampler", "steps", "precision", "MAE single", "MAE -M", "HF single", "Dice single",
         "false bone % single",
         "false bone % -M", "missed bone % single", "val MAE", "train s", "sample s"],
        [[r["recipe"], r["sampler"], r["train_steps"], r["precision"], fmt(r["single_mae"], ".1f"),
          fmt(r["mean_mae"], ".1f"), fmt(r.get("single_hf_ratio"), ".2f"), fmt(r["single_dice"], ".3f"), fmt(100 * r["single_false_bone"], ".2f"),
          fmt(100 * r["mean_false_bone"], ".2f"), fmt(100 * r["single_missed_bone"], ".1f"),
          fmt(r["val_mae_last"], ".1f"), fmt(r["train_seconds"], ".0f"), fmt(r["sample_seconds"], ".0f")]
         for r in sec["rows"]])


if __name__ == "__main__":
    sys.exit(write_standalone(sys.modules[__name__], sys.argv[1:], "recipes"))
