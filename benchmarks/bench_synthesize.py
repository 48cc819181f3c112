"""`ctmri synthesize` with the committed study weights (weights/cpu/vesde.pt), as a user runs it right after
`make setup`: a 48-slice phantom pelvis at 3 mm (128² slices, a patient not in training) → sCT + MC std in HU, 10 MC
per slice with the default sampler. Wall time of the whole call (reading, sampling, writing NIfTI), the sampling
part, and the sCT's MAE against the phantom's CT in the body; `--ranks 2` also times it under torchrun.

    python benchmarks/bench_synthesize.py [--slices 48] [--mc 10] [--ranks 1 2]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

from ctmri import paths
from ctmri.config import get_profile
from ctmri.data.phantom import make_case

from common import base_parser, fmt, table, write_standalone


def parse(argv: list[str] | None = None):
    ap = base_parser(__doc__)
    ap.add_argument("--slices", type=int, default=48)
    ap.add_argument("--mc", type=int, default=10)
    ap.add_argument("--seed", type=int, default=500, help="phantom patient (training used seeds below the split's)")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1], help="processes (torchrun when > 1)")
    return ap.parse_args(argv)


def run(a) -> dict[str, Any]:
    prof = get_profile("cpu")
    weights = paths.committed_weights("cpu", "vesde")
    if not weights.exists():
        raise FileNotFoundError(f"{weights} is missing (committed with the repository).")
    slices, mc = (4, 2) if a.quick else (a.slices, a.mc)
    size = 32 if a.quick else prof.data.image_size
    spacing = 384.0 / size
    case = make_case(a.seed, (slices, size, size), (3.0, spacing, spacing))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        nib.save(nib.Nifti1Image(np.ascontiguousarray(case.mr.transpose(2, 1, 0)),
                                 np.diag([spacing, spacing, 3.0, 1.0])), str(tmp / "mr.nii.gz"))
        for ranks in a.ranks:
            out = tmp / f"out{ranks}"
            cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)]
                   if ranks > 1 else [sys.executable]) + [
                "-m", "ctmri.cli", "synthesize", "--profile", "cpu", "--input", str(tmp / "mr.nii.gz"), "--out",
                str(out), "--mc", str(mc), "--device", a.device, "--checkpoint", str(weights), "--no-progress"]
            env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // ranks))} if ranks > 1 \
                else dict(os.environ)
            start = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if proc.returncode:
                raise RuntimeError(f"synthesize failed: {proc.stderr[-2000:]}")
            rec = json.loads((out / "sct.json").read_text())
            sct = np.asarray(nib.load(str(out / "sct.nii.gz")).dataobj).transpose(2, 1, 0).astype(np.float64)
            body = case.mask.astype(bool)
            rows.append({"ranks": ranks, "wall_seconds": wall, "seconds_in_call": rec["seconds"],
                         "seconds_sampling": rec["seconds_sampling"], "sampler": rec["sampler"],
                         "mae_hu": float(np.abs(sct - case.ct)[body].mean())})
            print(rows[-1], flush=True)
    return {"profile": "cpu", "slices": slices, "image_size": size, "mc": mc,
            "weights": f"weights/cpu/{weights.name}", "threads": torch.get_num_threads(), "rows": rows}


def markdown(sec: dict) -> list[str]:
    lines = [f"## `ctmri synthesize` with the committed weights ({sec['slices']} slices of {sec['image_size']}², "
             f"{sec['mc']} MC)", "",
             "A phantom patient not seen in training; wall time of the whole command (Python start, reading, "
             "sampling, writing NIfTI), the call's own time, its sampling part, and the sCT's MAE in the body "
             "against the phantom's CT.", ""]
    return lines + table(["ranks", "sampler", "wall s", "in call s", "sampling s", "MAE (HU)"],
                         [[r["ranks"], r["sampler"], fmt(r["wall_seconds"], ".1f"), fmt(r["seconds_in_call"], ".1f"),
                           fmt(r["seconds_sampling"], ".1f"), fmt(r["mae_hu"], ".1f")] for r in sec["rows"]])


if __name__ == "__main__":
    sys.exit(write_standalone(sys.modules[__name__], sys.argv[1:], "synthesize"))
