"""Training throughput on the cpu profile: images / second and seconds / step per method, through `train.train`.

Each method trains `--warmup` steps, then resumes to `--warmup + --steps`; the timed part is the
resumed run (the real loop: batching, flips, loss, Adam, EMA, loss log, the final checkpoint).
Data: random slices of the cpu shape (throughput does not depend on content). For WGAN-GP one
step is n_critic critic updates + one generator update; images / s counts generator images.
Writes benchmarks/results/train_throughput.json and train_throughput.md.

    python benchmarks/bench_train.py [--methods ddpm cnn] [--steps 30] [--warmup 5]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from ctmri.config import METHODS, get_profile
from ctmri.provenance import provenance, write_json
from ctmri.train.loop import train

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--steps", type=int, default=30, help="timed steps per method")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    a = ap.parse_args(argv)
    p = get_profile(a.profile)
    size, n = p.data.image_size, max(4 * p.train.batch_size, 64)
    g = np.random.default_rng(0)
    data = (g.uniform(-1, 1, (n, p.model.cond_channels, size, size)).astype(np.float32),
            g.uniform(-1, 1, (n, p.model.out_channels, size, size)).astype(np.float32))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in a.methods:
            ckpt = Path(tmp) / f"{method}.pt"
            train(p, method, steps=a.warmup, dataset=data, progress=False, checkpoint=ckpt)
            r = train(p, method, steps=a.warmup + a.steps, dataset=data, progress=False, checkpoint=ckpt)
            sec_step = r["seconds"] / r["steps_this_run"]
            rows.append({"method": method, "steps": r["steps_this_run"], "batch_size": p.train.batch_size,
                         "image_size": size, "seconds_per_step": round(sec_step, 4),
                         "images_per_second": round(p.train.batch_size / sec_step, 2), "device": r["device"]})
            print(rows[-1], flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    meta = {"profile": p.name, "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "load_average_1min": load, "machine": platform.processor() or platform.machine(),
            "n_critic": p.train.n_critic, "base_channels": p.model.base_channels,
            "channel_mults": list(p.model.channel_mults)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "train_throughput.json", {"results": rows, **meta, "provenance": provenance(p.name)})
    lines = [f"# Training throughput ({p.name} profile)", "",
             f"{size}x{size}, batch {p.train.batch_size}, UNet base {p.model.base_channels} x "
             f"{list(p.model.channel_mults)}, device {rows[0]['device'] if rows else '?'}, "
             f"{meta['torch_threads']} torch threads, 1-min load average {load:.1f} when measured. "
             f"WGAN-GP: one step = {p.train.n_critic} critic + 1 generator updates.", "",
             "| method | s / step | images / s |", "|---|---|---|"]
    lines += [f"| {r['method']} | {r['seconds_per_step']:.3f} | {r['images_per_second']:.1f} |" for r in rows]
    (RESULTS / "train_throughput.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
