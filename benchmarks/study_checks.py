"""Checks of issue 9 on a profile's samples: air outside the body, and the high-frequency power (checkerboard).

For every sampler in runs/<profile>/samples/: the mean HU outside the body mask of the MC mean (air must be
within 50 HU of -1000), and the share of spectral power above 0.25 cycles / pixel inside the image of the
MC mean (replicate 0 for one-pass methods) relative to the true CT's (`metrics.high_frequency_power`; a
checkerboard raises it, a blurry image lowers it). Writes benchmarks/results/study_checks_<profile>.{md,json}.

    python benchmarks/study_checks.py [--profile cpu]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ctmri.data.intensity import model_to_hu
from ctmri.evaluate.metrics import high_frequency_power
from ctmri.sample.store import load_samples, sample_files

OUT = Path(__file__).resolve().parent / "results"


def check(profile: str) -> list[dict]:
    rows = []
    for sampler, path in sample_files(profile).items():
        d = load_samples(path)
        pred = model_to_hu(d["mean"][:, 0] if d["K"] > 1 else d["samples"][:, 0, 0])
        truth = model_to_hu(d["target"][:, 0])
        outside = ~d["mask"]
        hf = [high_frequency_power(p) / max(high_frequency_power(t), 1e-12) for p, t in zip(pred, truth)]
        rows.append({"sampler": sampler, "K": d["K"], "air_outside_body_hu": float(pred[outside].mean()),
                     "true_air_outside_body_hu": float(truth[outside].mean()),
                     "hf_power_ratio_median": float(np.median(hf)), "hf_power_ratio_max": float(np.max(hf))})
    return rows


def write(profile: str, rows: list[dict]) -> Path:
    OUT.mkdir(exist_ok=True)
    (OUT / f"study_checks_{profile}.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [f"# Study checks ({profile})", "",
             "Air: mean HU outside the body mask of the estimate (MC mean when K > 1). HF ratio: share of spectral "
             "power above 0.25 cycles/pixel of the estimate / that of the true CT, per slice (median, max); "
             "a checkerboard gives > 1, a blurred estimate < 1.", "",
             "| sampler | K | air outside body (HU) | true CT (HU) | HF ratio median | HF ratio max |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['sampler']} | {r['K']} | {r['air_outside_body_hu']:.1f} | {r['true_air_outside_body_hu']:.1f} | "
              f"{r['hf_power_ratio_median']:.2f} | {r['hf_power_ratio_max']:.2f} |" for r in rows]
    path = OUT / f"study_checks_{profile}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    a = ap.parse_args()
    rows = check(a.profile)
    if not rows:
        raise SystemExit(f"No samples for profile {a.profile!r}; run `make reproduce PROFILE={a.profile}` first.")
    print(write(a.profile, rows).read_text())
