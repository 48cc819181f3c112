"""What limits the calibration of the MC std (issue 19), measured per sampler on a trained run of any profile.

For the default VE sampler and the DDPM's default: the noise-removal time ε (`ProcessConfig.eps_sample`, 1e-3 against
1e-4; for the VE σ-space samplers it sets σ_min = std(ε), the last σ of the Karras grid, so both move together; the
DDPM ends at t = 0 and has no ε) and the number of MC samples (K = 10 against 32: the first K of the same 32
replicates, so the K rows differ only in K). Each setting samples `--slices` validation and test slices evenly through
the splits, fits the split-conformal scales per tissue (`evaluate.calibration.calibrate`) on the validation patients
and reports on the test patients: pixel-wise Spearman ρ(std, |error of the MC mean|) and of the calibrated
half-width, AUSE in HU, coverage of the 90 % interval overall and per tissue, mean width.

    CTMRI_ROOT=<a trained run> python benchmarks/bench_calibration.py --profile cpu
"""
from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import torch

from ctmri.config import get_profile, profile_from_dict
from ctmri.data.slices import has_validation, load_split
from ctmri.diffusion.processes import VESDE
from ctmri.diffusion.samplers import default_sampler, spec
from ctmri.evaluate.uncertainty_report import ALPHA, TISSUE_COLUMNS, calibrate_sampler
from ctmri.sample.mc import monte_carlo
from ctmri.sample.settings import sampler_settings
from ctmri.sample.stage import VAL_SEED_OFFSET, evaluation_slices

from common import base_parser, checkpoint_or_none, fmt, table, write_standalone


def parse(argv: list[str] | None = None):
    ap = base_parser(__doc__)
    ap.add_argument("--eps", type=float, nargs="+", default=[1e-3, 1e-4], help="VE noise-removal times ε")
    ap.add_argument("--mc", type=int, nargs="+", default=[10, 32], help="MC sample counts K (nested)")
    ap.add_argument("--slices", type=int, default=16, help="validation and test slices each (few-step samplers)")
    ap.add_argument("--long-slices", type=int, default=4, help="slices each for a long sampler (the ancestral DDPM)")
    ap.add_argument("--name", default="calibration", help="results file stem (default calibration)")
    return ap.parse_args(argv)


def _subset(data, n: int) -> dict[str, np.ndarray]:
    idx = evaluation_slices(len(data), n)
    return {"idx": idx, "cond": data.cond[idx], "target": data.target[idx], "mask": data.mask[idx],
            "patient": np.asarray(data.patient[idx]).astype(str)}


def _as_samples(res: dict, part: dict, k: int) -> dict[str, Any]:
    """The first k replicates as a loaded-samples dict (mean, std with ddof 1, target, mask, patient)."""
    s = res["samples"][:, :k]
    return {"mean": s.mean(axis=1), "std": s.std(axis=1, ddof=1) if k > 1 else np.zeros_like(s[:, 0]),
            "target": part["target"], "mask": part["mask"], "patient": part["patient"]}


def run(a) -> dict[str, Any]:
    profile = get_profile("smoke" if a.quick else a.profile)
    mcs = sorted({2, 3} if a.quick else set(a.mc))
    device = torch.device(a.device)
    if not has_validation(profile.name):
        raise SystemExit(f"Profile {profile.name!r} has no validation split; prepare it with n_val_patients > 0.")
    rows, skipped = [], []
    for sampler in dict.fromkeys([default_sampler("vesde"), default_sampler("ddpm")]):
        method = spec(sampler).method
        lm = checkpoint_or_none(profile, method, device)
        if lm is None:
            skipped.append(f"{sampler}: no {method} checkpoint")
            continue
        steps, options = sampler_settings(profile, sampler)
        context = profile_from_dict(lm.meta["config"]).model.context_slices      # as the checkpoint was trained
        val_all = load_split(profile.name, "val", context=context)
        test_all = load_split(profile.name, "test", context=context)
        n = (2 if a.quick else a.long_slices) if spec(sampler).evaluation == "subset" else (3 if a.quick else a.slices)
        val, test = _subset(val_all, n), _subset(test_all, n)
        eps_list = a.eps if isinstance(lm.process, VESDE) else [None]
        for eps in eps_list:
            process = lm.process if eps is None else VESDE(lm.process.sigma, lm.process.eps_train, eps)
            start = time.perf_counter()
            res = {}
            for split, part, seed in (("val", val, profile.sample.seed + VAL_SEED_OFFSET),
                                      ("test", test, profile.sample.seed)):
                res[split] = monte_carlo(lm.model, process, sampler, part["cond"], mc_samples=max(mcs), steps=steps,
                                         base_seed=seed, chunk_size=profile.sample.chunk_size, slice_ids=part["idx"],
                                         options=options, out_channels=1, device=device, progress=False)
            seconds = time.perf_counter() - start
            for k in mcs:
                _, scopes = calibrate_sampler(_as_samples(res["val"], val, k), _as_samples(res["test"], test, k), ALPHA)
                rows.append({"sampler": sampler, "method": method, "steps": steps, "eps": eps,
                             "sigma_min": None if eps is None else float(process.sigma_min), "K": k,
                             "val_slices": len(val["idx"]), "test_slices": len(test["idx"]),
                             "seconds_sampling_kmax": round(seconds, 2), **scopes[0]})
    return {"profile": profile.name, "alpha": ALPHA, "mc": mcs, "rows": rows, "skipped": skipped}


def markdown(sec: dict) -> list[str]:
    lines = [f"## What limits the calibration of the MC std (`{sec['profile']}` run, {round(100 * (1 - sec['alpha']))} % "
             "split-conformal intervals)", "",
             "Scales per tissue of the sCT fitted on the validation slices, everything reported on the test slices "
             "(pooled voxels). ε: the VE noise-removal time (σ_min = std(ε) for the σ-space samplers); K: MC samples "
             "(the first K of the same replicates). ρ(u): Spearman of the calibrated uncertainty (HU factor · (std + 1)) "
             "with |error|; AUSE per slice of the std and of u.", ""]
    lines += table(["sampler", "ε", "σ_min", "K", "slices val/test", "ρ(std, \\|err\\|)", "ρ(u)", "AUSE std → u HU",
                    "coverage", "air", "fat", "soft", "bone", "width HU", "MAE HU", "s (K max)"],
                   [[r["sampler"], fmt(r["eps"], ".0e") if r["eps"] is not None else "n/a",
                     fmt(r["sigma_min"], ".3g") if r["sigma_min"] is not None else "n/a", r["K"],
                     f"{r['val_slices']}/{r['test_slices']}", fmt(r["spearman"], ".3f"),
                     fmt(r["spearman_calibrated"], ".3f"),
                     f"{fmt(r['ause_hu_slice_mean'], '.1f')} → {fmt(r['ause_calibrated_hu_slice_mean'], '.1f')}", fmt(100 * r["coverage"], ".1f"),
                     *[fmt(100 * r[c], ".1f") for c in TISSUE_COLUMNS.values()], fmt(r["width_hu"], ".0f"),
                     fmt(r["mae_hu"], ".1f"), fmt(r["seconds_sampling_kmax"], ".1f")] for r in sec["rows"]])
    if sec["skipped"]:
        lines += ["", "Skipped: " + "; ".join(sec["skipped"])]
    return lines + [""]


if __name__ == "__main__":
    sys.exit(write_standalone(sys.modules[__name__], sys.argv[1:], parse(sys.argv[1:]).name))
