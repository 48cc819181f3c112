"""The methods the study compares: samplers in the study's order, display labels, the variants of one sampler.

A sampler's samples file gives one or two method variants: "single" (MC replicate 0, labelled
"DDPM") and, when K > 1, "mc_mean" (the mean of the K replicates, labelled "DDPM-M" as in the study).
"""
from __future__ import annotations

from typing import Any

import numpy as np

BASELINES = ("cnn", "wgan")
STUDY_SAMPLERS = ("ddpm", "ode", "em", "pc")
FAST_SAMPLERS = ("ddim", "dpm++2m", "heun", "dpm++2m-ve", "dpm++2m-sde", "heun-churn", "denoise")
ORDER = BASELINES + STUDY_SAMPLERS + FAST_SAMPLERS
NAMES = {"cnn": "CNN", "wgan": "WGAN-GP", "ddpm": "DDPM", "ode": "ODE", "em": "EM", "pc": "PC",
         "ddim": "DDIM", "dpm++2m": "DPM++2M", "heun": "Heun", "dpm++2m-ve": "DPM++2M-VE",
         "dpm++2m-sde": "DPM++2M-SDE", "heun-churn": "Heun-churn", "denoise": "D(noise)"}


def label(sampler: str, mc_mean: bool = False) -> str:
    """Display label of a sampler ("DDPM"), with "-M" for the MC mean as in the study ("DDPM-M")."""
    return NAMES.get(sampler, sampler) + ("-M" if mc_mean else "")


def variants(d: dict[str, Any]) -> list[tuple[str, str, np.ndarray]]:
    """(variant, label, prediction (N, H, W) in model space): replicate 0, plus the MC mean when K > 1."""
    out = [("single", label(d["name"]), d["samples"][:, 0, 0])]
    if d["K"] > 1:
        out.append(("mc_mean", label(d["name"], True), d["mean"][:, 0]))
    return out
