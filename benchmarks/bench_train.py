"""Training throughput per method and speed option (fp32, bf16 autocast, channels_last, torch.compile, threads),
images / second and peak memory.

One optimiser step is `train.steps.train_step` on the profile's batch (batches, flips, loss, backward, Adam;
without the loop's EMA, loss log and checkpoints), built as `train.loop` builds it: the profile's networks and
network convention, `Batches` in the chosen memory format, the step under `torch.autocast(bfloat16)` for bf16.
Options: fp32 at 1 thread and at 2 (and at the torch default when larger; --quick: the default only), then at
the default thread count bf16 autocast (TrainConfig.bf16_autocast), channels_last, both, and torch.compile of
the networks (fp32, for --compile-methods, default ddpm; a failure is reported, not raised). `--warmup`
untimed steps (they include the compile time, reported), then `--steps` timed ones; images / s = batch / median seconds per step (WGAN-GP: one step = n_critic critic +
1 generator updates; images / s counts generator images). Data: random slices of the profile's shape
(throughput does not depend on content). Peak memory: peak RSS of the timed steps (rise over the RSS before
them in brackets), torch.cuda.max_memory_allocated on a GPU. Writes <out>/train_throughput.json|md.

    python benchmarks/bench_train.py [--profile cpu] [--methods ddpm cnn] [--steps 15] [--warmup 3]
        [--compile-methods ddpm] [--image-size 64]
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import statistics
import sys
import time
from typing import Any

import numpy as np
import torch

from ctmri.config import METHODS, get_profile
from ctmri.diffusion.precond import convention_for
from ctmri.diffusion.processes import make_process
from ctmri.models.build import DIFFUSION, build_model
from ctmri.train.steps import Batches, StepContext, train_step

from common import PeakMemory, base_parser, bullets, fmt, machine, sync, table, write_standalone

OPTIONS = ("bf16", "channels_last", "bf16+channels_last", "compile")


def parse(argv: list[str] | None = None):
    ap = base_parser(__doc__)
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--steps", type=int, default=15, help="timed steps per configuration (default 15)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    ap.add_argument("--image-size", type=int, default=0, help="slice size instead of the profile's (e.g. 64)")
    ap.add_argument("--compile-methods", nargs="*", default=["ddpm"],
                    help="methods also measured under torch.compile (default ddpm: the UNet every method shares; "
                         "compiling takes minutes per method on 2 cores); none: skip")
    a = ap.parse_args(argv)
    if a.quick:
        a.steps, a.warmup, a.compile_methods = min(a.steps, 3), 1, []
    return a


def _context(method: str, p, data, device: torch.device, bf16: bool, channels_last: bool, compile_: bool):
    """A StepContext as train.loop builds it, with the chosen memory format, autocast and compilation."""
    fmt_ = torch.channels_last if channels_last else torch.preserve_format
    raw = build_model(method, p, seed=p.train.seed)
    for net in raw.values():
        net.to(device, memory_format=fmt_).train()
    nets = {k: torch.compile(n) for k, n in raw.items()} if compile_ else dict(raw)
    opts = {k: torch.optim.Adam(n.parameters(), lr=p.train.lr) for k, n in raw.items()}
    cond, target = (torch.as_tensor(x) for x in data)
    batches = Batches(cond, target, p.train.batch_size, p.train.seed, device=device, channels_last=channels_last)
    process = make_process(method, p.process) if method in DIFFUSION else None
    sigma_data = float(target.std())
    convention = convention_for(method, p.process, nets["net"], process, sigma_data) if process is not None else None
    autocast = functools.partial(torch.autocast, device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext
    return StepContext(method, nets, raw, opts, process, p.train, batches, convention=convention,
                       sigma_data=sigma_data, autocast=autocast)


def measure(method: str, p, data, device: torch.device, *, threads: int, option: str, steps: int,
            warmup: int) -> dict[str, Any]:
    """Seconds per step (median of `steps`), images / s and peak memory of one configuration."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    row: dict[str, Any] = {"method": method, "option": option, "threads": threads}
    try:
        ctx = _context(method, p, data, device, bf16="bf16" in option, channels_last="channels_last" in option,
                       compile_=option == "compile")
        t0 = time.perf_counter()
        for s in range(warmup):
            train_step(ctx, s)
        sync(device)
        row["warmup_seconds"] = round(time.perf_counter() - t0, 2)
        times = []
        with PeakMemory(device) as mem:
            for s in range(warmup, warmup + steps):
                t = time.perf_counter()
                train_step(ctx, s)
                sync(device)
                times.append(time.perf_counter() - t)
        sec = statistics.median(times)
        row.update(seconds_per_step=sec, images_per_second=p.train.batch_size / sec, **mem.result)
    except Exception as err:                       # torch.compile may fail on a machine (no compiler, op support)
        row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    finally:
        torch.set_num_threads(before)
    return row


def run(a) -> dict[str, Any]:
    p = get_profile(a.profile)
    if a.image_size:
        p = dataclasses.replace(p, data=dataclasses.replace(p.data, image_size=a.image_size))
    device = torch.device(a.device)
    size, n = p.data.image_size, max(4 * p.train.batch_size, 64)
    g = np.random.default_rng(0)
    data = (g.uniform(-1, 1, (n, p.model.condition_channels, size, size)).astype(np.float32),
            g.uniform(-1, 1, (n, p.model.out_channels, size, size)).astype(np.float32))
    default = torch.get_num_threads()
    threads = sorted({1, 2, default}) if device.type == "cpu" and not a.quick else [default]
    rows = []
    for method in a.methods:
        options = [o for o in OPTIONS if o != "compile" or method in a.compile_methods]
        configs = [(t, "fp32") for t in threads] + [(default, o) for o in options]
        for t, option in configs:
            rows.append(measure(method, p, data, device, threads=t, option=option, steps=a.steps, warmup=a.warmup))
            r = rows[-1]
            print(f"{method:6s} {option:20s} {t} threads: " + (r["error"] if "error" in r else
                  f"{r['seconds_per_step']:.4f} s/step, {r['images_per_second']:.1f} img/s, peak RSS {r['peak_rss_mib']} MiB"),
                  flush=True)
        base = next((r for r in rows if r["method"] == method and r["option"] == "fp32" and r["threads"] == default
                     and "error" not in r), None)
        for r in rows:
            if r["method"] == method and base is not None and "error" not in r:
                r["speedup_vs_fp32"] = base["seconds_per_step"] / r["seconds_per_step"]
    notes = [f"torch.compile measured for {', '.join(a.compile_methods) or 'no method'} (--compile-methods; "
             "--quick skips it): compiling takes minutes per method on a small CPU."]
    return {"profile": p.name, "machine": machine(device), "image_size": size, "batch_size": p.train.batch_size,
            "n_critic": p.train.n_critic, "base_channels": p.model.base_channels,
            "channel_mults": list(p.model.channel_mults), "default_threads": default, "steps": a.steps,
            "warmup": a.warmup, "results": rows, "notes": notes}


def markdown(sec: dict) -> list[str]:
    lines = ["## Training throughput per method and speed option", "",
             f"{sec['image_size']}², batch {sec['batch_size']}, UNet base {sec['base_channels']} x {sec['channel_mults']}; "
             f"one `train_step` (no EMA / log / checkpoint), median of {sec['steps']} timed steps after {sec['warmup']} "
             f"warm-up steps (compile time is in the warm-up column). WGAN-GP: one step = {sec['n_critic']} critic + 1 "
             f"generator updates. Speed-up: against fp32 at {sec['default_threads']} threads, same method, same run.", ""]
    lines += bullets(sec.get("notes", []))
    rows = [(r["method"], r["option"], r["threads"], *(("failed: " + r["error"], "–", "–", "–", "–") if "error" in r else
             (fmt(r["seconds_per_step"], ".4f"), fmt(r["images_per_second"], ".1f"), fmt(r.get("speedup_vs_fp32"), ".2f"),
              f"{r['peak_rss_mib']} (+{r['rss_rise_mib']})", fmt(r.get("warmup_seconds"), ".1f"))))
            for r in sec["results"]]
    lines += table(["method", "option", "threads", "s / step", "images / s", "speed-up", "peak RSS (MiB)",
                    "warm-up s"], rows)
    peaks = [r for r in sec["results"] if r["option"] == "fp32" and r["threads"] == sec["default_threads"]
             and "error" not in r]
    lines += ["", "Peak memory per method (fp32, training step): " + ", ".join(
        f"{r['method']} {r['peak_rss_mib']} MiB RSS (+{r['rss_rise_mib']})"
        + (f", GPU {r['cuda_peak_mib']} MiB" if r.get("cuda_peak_mib") else "") for r in peaks) + "."]
    return lines + [""]


if __name__ == "__main__":
    sys.exit(write_standalone(sys.modules[__name__], None, "train_throughput"))
