"""The cpu study's model choices, measured on its own 3-mm data: each variant trained for the same optimiser steps,
then read out with its samplers on the held-out patients.

Variants change one thing against the cpu profile: the DDPM's parametrisation (eps, the study's, against v) and
training precision (bf16 autocast against fp32), the VE model's condition (2-D against 2.5-D: adjacent MR slices
as extra channels), the learning rate. Each is scored by: the denoiser's error by noise level (MAE in HU of
D(x0 + sigma n, sigma) on 12 slices: where a parametrisation fails), and single samples of each sampler on the
whole test volumes (the ancestral DDPM on 12 slices: its cost) — MAE in HU in the body (mean, median, worst
slice), high-frequency power against the CT's, and through-plane roughness of the stacked volume against the CT's.

    CTMRI_ROOT=<scratch> python benchmarks/bench_choices.py --variants ddpm-eps ddpm-v --steps 2000
    CTMRI_ROOT=<scratch> python benchmarks/bench_choices.py --variants vesde-2d vesde-2.5d --name choices_context
"""
from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

import numpy as np
import torch

from ctmri.config import get_profile
from ctmri.data.intensity import model_to_hu
from ctmri.data.prepare import load_split, prepare_dataset
from ctmri.diffusion.samplers import get_sampler, spec
from ctmri.evaluate.metrics import high_frequency_power, synthrad_mae, through_plane_roughness
from ctmri.models.checkpoints import load_model
from ctmri.rng import make_generator
from ctmri.sample.stage import evaluation_slices
from ctmri.train.loop import train

from common import base_parser, fmt, table, write_standalone

# name: (method, {section: {field: value}}, samplers read out)
VARIANTS: dict[str, tuple[str, dict[str, dict[str, Any]], tuple[str, ...]]] = {
    "ddpm-eps": ("ddpm", {"process": {"ddpm_parametrisation": "eps"}}, ("ddpm", "ddim", "dpm++2m")),
    "ddpm-eps-fp32": ("ddpm", {"process": {"ddpm_parametrisation": "eps"}, "train": {"bf16_autocast": False}},
                      ("ddpm", "ddim", "dpm++2m")),
    "ddpm-v": ("ddpm", {"process": {"ddpm_parametrisation": "v"}}, ("ddpm", "ddim", "dpm++2m")),
    "ddpm-v-plain": ("ddpm", {"process": {"ddpm_parametrisation": "v"}, "train": {"ddpm_loss_weighting": "eps"}},
                     ("ddpm", "ddim", "dpm++2m")),
    "vesde-2d": ("vesde", {"model": {"context_slices": 0}}, ("dpm++2m-ve", "dpm++2m-sde")),
    "vesde-2.5d": ("vesde", {"model": {"context_slices": 1}}, ("dpm++2m-ve", "dpm++2m-sde")),
}
SIGMAS = (0.05, 0.5, 2.0, 10.0, 80.0, 150.0)
SUBSET_SAMPLERS = ("ddpm",)                           # long samplers scored on 12 slices only


def parse(argv: list[str] | None = None):
    ap = base_parser(__doc__)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=2000, help="optimiser steps per variant (default 2000)")
    ap.add_argument("--lr", type=float, default=None, help="Adam lr (default: the profile's)")
    ap.add_argument("--slices", type=int, default=12, help="slices for the denoiser and the long samplers")
    ap.add_argument("--name", default="choices", help="results file stem (default choices)")
    return ap.parse_args(argv)


def variant_profile(base, overrides: dict[str, dict[str, Any]], steps: int, lr: float | None):
    """The profile with a variant's fields replaced, its step budget and (optionally) lr."""
    sections = {k: dataclasses.replace(getattr(base, k), **v) for k, v in overrides.items()}
    train_cfg = dataclasses.replace(sections.get("train", base.train), diffusion_steps=steps, baseline_steps=steps,
                                    checkpoint_every=10 ** 9, **({"lr": lr} if lr else {}))
    return dataclasses.replace(base, **{**sections, "train": train_cfg})


def denoiser_error(lm, test, idx: np.ndarray) -> dict[str, float]:
    """MAE (HU, body) of D(x0 + sigma n, sigma) against x0 at each noise level."""
    x0, y = torch.from_numpy(test.target[idx]), torch.from_numpy(test.cond[idx])
    mask = torch.from_numpy(test.mask[idx]).bool()
    g, out = torch.Generator().manual_seed(0), {}
    for s in SIGMAS:
        n = torch.randn(x0.shape, generator=g)
        with torch.no_grad():
            d = lm.model(x0 + s * n, y, torch.full((len(idx),), float(s)))
        out[f"{s:g}"] = float((model_to_hu(d[:, 0].numpy()) - model_to_hu(x0[:, 0].numpy()))[mask.numpy()].__abs__().mean())
    return out


def sampler_scores(lm, profile, test, sampler: str, idx: np.ndarray) -> dict[str, Any]:
    """Single samples (one per slice, the study's per-slice generators) on `idx`: MAE, HF ratio, z-roughness."""
    steps, options = spec(sampler).settings(profile.sample)
    start = time.perf_counter()
    with torch.no_grad():
        pred = get_sampler(sampler)(lm.model, lm.process, torch.from_numpy(test.cond[idx]), steps=steps, **options,
                                    generator=[make_generator(int(i)) for i in idx])
    seconds = time.perf_counter() - start
    hu, ct = model_to_hu(pred[:, 0].numpy()), model_to_hu(test.target[idx, 0])
    mae = np.array([synthrad_mae(c, h, m) for c, h, m in zip(ct, hu, test.mask[idx])])
    hf = [high_frequency_power(h) / max(high_frequency_power(c), 1e-12) for c, h in zip(ct, hu)]
    row = {"sampler": sampler, "slices": int(len(idx)), "steps": int(steps), "seconds": seconds,
           "mae_hu": float(mae.mean()), "median_mae_hu": float(np.median(mae)), "max_mae_hu": float(mae.max()),
           "hf_ratio": float(np.median(hf))}
    patients = np.asarray(test.patient[idx]).astype(str)
    if len(idx) == len(test):                                         # whole volumes: through-plane roughness
        ratios = []
        for p in np.unique(patients):
            rows = np.flatnonzero(patients == p)
            rows = rows[np.argsort(test.slice_index[idx][rows])]
            m = test.mask[idx][rows]
            ratios.append(through_plane_roughness(hu[rows], m) / through_plane_roughness(ct[rows], m))
        row["z_roughness_ratio"] = float(np.mean(ratios))
    return row


def run(a) -> dict[str, Any]:
    torch.manual_seed(0)
    base = get_profile("smoke" if a.quick else a.profile)
    prepare_dataset(base)
    rows = []
    for name in a.variants:
        method, overrides, samplers = VARIANTS[name]
        prof = variant_profile(base, overrides, 4 if a.quick else a.steps, a.lr)
        start = time.perf_counter()
        r = train(prof, method, steps=prof.train.diffusion_steps, resume=False, progress=False)
        train_seconds = time.perf_counter() - start
        lm = load_model(r["checkpoint"])
        test = load_split(base.name, "test", context=prof.model.context_slices)
        idx = evaluation_slices(len(test), a.slices)
        row = {"variant": name, "method": method, "steps": prof.train.diffusion_steps, "lr": prof.train.lr,
               "bf16": bool(prof.train.bf16_autocast), "train_seconds": train_seconds,
               "denoiser_mae_hu": denoiser_error(lm, test, idx), "samplers": []}
        for sampler in samplers:
            chosen = idx if sampler in SUBSET_SAMPLERS else np.arange(len(test))
            row["samplers"].append(sampler_scores(lm, prof, test, sampler, chosen))
        rows.append(row)
        print(name, row, flush=True)
    return {"profile": base.name, "image_size": base.data.image_size, "steps": a.steps, "rows": rows,
            "threads": torch.get_num_threads()}


def markdown(sec: dict) -> list[str]:
    lines = [f"## Model choices of the `{sec['profile']}` study ({sec['image_size']}², {sec['steps']} steps each)", "",
             "Each variant changes one thing against the profile and is trained for the same optimiser steps "
             "(batch 16). Denoiser: MAE in HU of D(x0 + σn, σ) on 12 held-out slices. Samplers: one sample per "
             "slice on the whole test volumes (the ancestral DDPM on the 12 slices); z-roughness = through-plane "
             "second-difference power of the stacked sCT over the CT's (1 = as consistent as the CT).", ""]
    lines += table(["variant", "train s"] + [f"D err σ={s}" for s in sec["rows"][0]["denoiser_mae_hu"]] if sec["rows"]
                   else ["variant"],
                   [[r["variant"], fmt(r["train_seconds"], ".0f")] + [fmt(v, ".0f") for v in r["denoiser_mae_hu"].values()]
                    for r in sec["rows"]])
    lines += [""] + table(["variant", "sampler", "slices", "MAE (HU)", "median", "worst slice", "HF ratio",
                           "z-roughness", "s"],
                          [[r["variant"], s["sampler"], s["slices"], fmt(s["mae_hu"], ".1f"), fmt(s["median_mae_hu"], ".1f"),
                            fmt(s["max_mae_hu"], ".1f"), fmt(s["hf_ratio"], ".2f"), fmt(s.get("z_roughness_ratio"), ".2f"),
                            fmt(s["seconds"], ".0f")] for r in sec["rows"] for s in r["samplers"]])
    return lines


if __name__ == "__main__":
    sys.exit(write_standalone(sys.modules[__name__], sys.argv[1:], parse(sys.argv[1:]).name))
