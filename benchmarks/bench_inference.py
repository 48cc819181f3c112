"""Sampling's network forward in each memory format: contiguous (NCHW) against channels-last (NHWC), fp32, eval mode.

The network of each diffusion method of the profile (random weights: speed does not depend on them) on a batch of
the profile's slices, as `models.checkpoints.load_model` runs it; median seconds of `--repeats` forwards after one
untimed, the two formats alternating call by call, per batch size; ratio = contiguous / channels-last (> 1: channels-last faster). Both formats in one run.

    python benchmarks/bench_inference.py [--profile cpu] [--batches 10 60 120 240] [--repeats 9]
"""
from __future__ import annotations

import statistics
import sys
import time

import torch

from ctmri.config import get_profile
from ctmri.models.build import DIFFUSION, build_model

from common import base_parser, fmt, machine, machine_line, sync, table, write_standalone


def parse(argv: list[str] | None = None):
    ap = base_parser(__doc__)
    ap.add_argument("--batches", nargs="+", type=int, default=[10, 60, 120, 240])
    ap.add_argument("--repeats", type=int, default=9)
    a = ap.parse_args(argv)
    if a.quick:
        a.batches, a.repeats = [2], 1
    return a


def _seconds(nets: dict[str, torch.nn.Module], inputs: dict[str, tuple], repeats: int,
             device: torch.device) -> dict[str, float]:
    """Median seconds per forward of each net, the formats alternating call by call (the machine's drift hits both)."""
    times: dict[str, list[float]] = {k: [] for k in nets}
    with torch.inference_mode():
        for k, net in nets.items():
            net(*inputs[k])
        for _ in range(repeats):
            for k, net in nets.items():
                sync(device)
                t0 = time.perf_counter()
                net(*inputs[k])
                sync(device)
                times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def run(a) -> dict:
    p, device = get_profile(a.profile), torch.device(a.device)
    rows = []
    formats = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    for method in [m for m in ("ddpm", "vesde") if m in DIFFUSION]:
        nets = {k: build_model(method, p)["net"].to(device, memory_format=f).eval() for k, f in formats.items()}
        size, m = p.data.image_size, p.model
        for b in a.batches:
            g = torch.Generator().manual_seed(0)
            x = torch.randn(b, m.out_channels, size, size, generator=g).to(device)
            c = torch.randn(b, m.condition_channels, size, size, generator=g).to(device)
            t = torch.rand(b, generator=g).to(device)
            inputs = {k: (x.contiguous(memory_format=f), c.contiguous(memory_format=f), t) for k, f in formats.items()}
            s = _seconds(nets, inputs, a.repeats, device)
            rows.append({"method": method, "batch": b, "contiguous_s": s["contiguous"],
                         "channels_last_s": s["channels_last"], "ratio": s["contiguous"] / s["channels_last"]})
    return {"machine": machine(device), "rows": rows}


def markdown(section: dict) -> list[str]:
    return ["## Sampling's network forward: contiguous against channels-last (fp32)", "",
            machine_line(section["machine"]), ""] + table(
        ["method", "batch", "contiguous s", "channels-last s", "ratio"],
        [[r["method"], r["batch"], fmt(r["contiguous_s"]), fmt(r["channels_last_s"]), f"{r['ratio']:.2f}"]
         for r in section["rows"]]) + [""]


if __name__ == "__main__":
    sys.exit(write_standalone(sys.modules[__name__], sys.argv[1:], "inference_memory_format"))
