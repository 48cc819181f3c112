"""The methods the study compares: samplers in the study's order, display labels, the variants of one sampler.

A sampler's samples file gives one or two method variants: "single" (MC replicate 0, labelled
"DDPM") and, when K > 1, "mc_mean" (the mean of the K replicates, labelled "DDPM-M" as in the study).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ctmri.diffusion.samplers import SAMPLERS, names, study_order

BASELINES = tuple(names(role="baseline"))          # every list here is read off the sampler registry
STUDY_SAMPLERS = tuple(names(role="study"))
FAST_SAMPLERS = tuple(names(role="fast"))
ORDER = tuple(study_order())


def label(sampler: str, mc_mean: bool = False) -> str:
    """Display label of a sampler ("DDPM"), with "-M" for the MC mean as in the study ("DDPM-M")."""
    return (SAMPLERS[sampler].label if sampler in SAMPLERS else sampler) + ("-M" if mc_mean else "")


def variants(d: dict[str, Any]) -> list[tuple[str, str, np.ndarray]]:
    """(variant, label, prediction (N, H, W) in model space): replicate 0, plus the MC mean when K > 1."""
    out = [("single", label(d["name"]), d["samples"][:, 0, 0])]
    if d["K"] > 1:
        out.append(("mc_mean", label(d["name"], True), d["mean"][:, 0]))
    return out
