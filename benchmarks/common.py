"""Helpers shared by the benchmark scripts: arguments, the machine, test slices and their metrics, timing, peak memory.

Every benchmark module exposes `parse(argv)`, `run(args) -> dict` (one section of the report, JSON-plain) and
`markdown(section) -> list[str]`; `run_all.py` calls them in turn and writes one combined report, and each
script run alone writes its own `<name>.json` / `<name>.md` into `--out` (default benchmarks/results).
Every .md is written by `write_markdown`, which ends it with the git commit and the exact command that made it
(the .json's provenance holds both too). Sampler names come from the registry (`diffusion.samplers`), never
from a list kept here.
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from ctmri import paths
from ctmri.config import Profile
from ctmri.data.intensity import model_to_hu
from ctmri.diffusion.samplers import spec, study_order
from ctmri.evaluate.metrics import paper_psnr, paper_ssim, synthrad_mae
from ctmri.provenance import provenance, write_json
from ctmri.sample.settings import sampler_settings
from ctmri.sample.stage import evaluation_slices

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"


def base_parser(doc: str | None) -> argparse.ArgumentParser:
    """--profile, --out, --device, --quick: the arguments every benchmark takes."""
    ap = argparse.ArgumentParser(description=(doc or "").splitlines()[0] if doc else None)
    ap.add_argument("--profile", default="cpu", help="smoke | demo | cpu | gpu | paper (default cpu)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for the results (default benchmarks/results)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="smoke-sized settings (tests)")
    return ap


def machine(device: str | torch.device = "cpu") -> dict[str, Any]:
    """Where the absolute times were measured: platform, CPU, cores, torch threads, device name, load."""
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    cpu_model = ""
    try:
        cpu_model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                          if line.startswith("model name")), "")
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu_model or platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "device": str(device), "device_name": name,
            "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}


def machine_line(m: dict[str, Any]) -> str:
    return (f"{m['device_name']} ({m['device']}), {m['cpu']}, {m['cpus']} CPUs, {m['torch_threads']} torch threads, "
            f"torch {m['torch']}, {m['platform']}; 1-min load {m['load_average_1min']} when measured")


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that is running: `[CTMRI_ROOT=...] python <script, relative to the repository> <arguments>`
    (the arguments are sys.argv[1:] unless `argv` is given: a script's main(argv) called from Python)."""
    path = Path(sys.argv[0]).resolve()
    try:
        path = path.relative_to(REPO)
    except ValueError:
        pass
    args = sys.argv[1:] if argv is None else [str(x) for x in argv]
    root = os.environ.get("CTMRI_ROOT")
    return (f"CTMRI_ROOT={shlex.quote(root)} " if root else "") + "python " + shlex.join([str(path), *args])


def run_provenance(profile: str, name: str, argv: Sequence[str] | None = None, **extra: Any) -> dict[str, Any]:
    """`ctmri.provenance.provenance` of a benchmark result plus the command that made it."""
    return provenance(profile, benchmark=name, command=command_line(argv), **extra)


def stamp(prov: dict[str, Any]) -> str:
    """The line every results .md ends with: the commit and the exact command that made it."""
    return (f"Made at commit `{prov.get('git_commit', 'unknown')}` ({prov.get('created', '')}) "
            f"by `{prov.get('command')}`.")


def write_markdown(path: Path, lines: Sequence[str], prov: dict[str, Any]) -> Path:
    """Write a results .md: `lines`, then the `stamp` of `prov` (commit and command)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = list(lines)
    while body and not body[-1].strip():
        body.pop()
    path.write_text("\n".join([*body, "", stamp(prov)]) + "\n")
    return path


def save_section(out: Path, name: str, section: dict[str, Any], lines: Sequence[str],
                 argv: Sequence[str] | None = None) -> Path:
    """<out>/<name>.json (with provenance: commit, command) and <out>/<name>.md (ending with both).
    `argv`: the arguments of the command that made it (default sys.argv[1:])."""
    out.mkdir(parents=True, exist_ok=True)
    prov = run_provenance(section.get("profile", ""), name, argv)
    write_json(out / f"{name}.json", {**section, "provenance": prov})
    return write_markdown(out / f"{name}.md", lines, prov)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def bullets(items: Iterable[str]) -> list[str]:
    """A markdown list followed by a blank line (nothing when empty)."""
    items = [f"- {i}" for i in items]
    return items + [""] if items else []


def fmt(v: Any, spec: str = ".3g") -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def options_for(profile: Profile, sampler: str) -> tuple[int, dict[str, Any]]:
    """The profile's (steps, options) of a registered sampler (`SamplerSpec.settings`; one-pass baselines: (1, {}))."""
    return sampler_settings(profile, sampler)


def diffusion_samplers() -> list[str]:
    """Every registered sampler of a diffusion model, in the study's order (the one-pass baselines left out)."""
    return [n for n in study_order() if not spec(n).one_pass]


def one_pass_samplers() -> list[str]:
    """The registered one-pass baselines (CNN, WGAN-GP), in the study's order."""
    return [n for n in study_order() if spec(n).one_pass]


class EvalSlices:
    """The test slices a benchmark evaluates: cond, target, body mask, their indices in the split, CT in HU."""

    def __init__(self, profile: Profile, slices: int):
        from ctmri.data.slices import load_split

        data = load_split(profile.name, "test", context=profile.model.context_slices)
        self.index = evaluation_slices(len(data), slices)
        self.cond, self.target, self.mask = data.cond[self.index], data.target[self.index], data.mask[self.index]
        self.truth_hu = model_to_hu(self.target[:, 0])

    def __len__(self) -> int:
        return len(self.index)

    def scores(self, pred: np.ndarray) -> dict[str, float]:
        """Mean over the slices of the study's SSIM and PSNR ([0, 1] scale) and the SynthRAD MAE (HU, body mask)
        of a prediction (N, 1, H, W) in model space."""
        pred_hu = model_to_hu(np.asarray(pred, dtype=np.float32)[:, 0])
        per = [(paper_ssim(t, q), paper_psnr(t, q), synthrad_mae(t, q, m))
               for t, q, m in zip(self.truth_hu, pred_hu, self.mask)]
        ssim, psnr, mae = np.mean(np.asarray(per, dtype=np.float64), axis=0)
        return {"ssim": float(ssim), "psnr": float(psnr), "mae_hu": float(mae)}


def checkpoint_or_none(profile: Profile, method: str, device: torch.device):
    """The profile's trained `method` (LoadedModel), or None when runs/<profile>/checkpoints/<method>.pt is missing."""
    from ctmri.models.checkpoints import load_model

    path = paths.checkpoint_path(profile.name, method)
    return load_model(path, device) if path.exists() else None


class TimedModel:
    """Wraps a model callable and accumulates the wall time and count of its calls."""

    def __init__(self, model: Callable[..., torch.Tensor], device: torch.device):
        self.model, self.device, self.seconds, self.calls = model, device, 0.0, 0

    def __call__(self, *args):
        sync(self.device)
        start = time.perf_counter()
        out = self.model(*args)
        sync(self.device)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_kb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            return next((float(line.split()[1]) for line in f if line.startswith(key + ":")), None)
    except OSError:
        return None


class PeakMemory:
    """Peak memory of a block: the process's peak RSS (Linux: the high-water mark is reset on entry through
    /proc/self/clear_refs, so the peak is this block's), its rise over the RSS on entry, and on CUDA
    torch.cuda.max_memory_allocated. Elsewhere falls back to resource.getrusage (the process's lifetime peak).

        with PeakMemory(device) as mem: ...
        mem.result -> {"peak_rss_mib", "rss_rise_mib", "cuda_peak_mib", "memory_measure"}
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.result: dict[str, Any] = {}

    def __enter__(self) -> "PeakMemory":
        self.method = "VmHWM after clear_refs"
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            self.method = "ru_maxrss (process lifetime)"
        self.start_kb = _status_kb("VmRSS")
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        peak_kb = _status_kb("VmHWM") if self.method.startswith("VmHWM") else None
        if peak_kb is None:
            import resource

            peak_kb = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)   # kB on Linux
        self.result = {"peak_rss_mib": round(peak_kb / 1024, 1),
                       "rss_rise_mib": round((peak_kb - self.start_kb) / 1024, 1) if self.start_kb else None,
                       "cuda_peak_mib": round(torch.cuda.max_memory_allocated(self.device) / 2 ** 20, 1)
                       if self.device.type == "cuda" else None, "memory_measure": self.method}


def write_standalone(module, argv: list[str] | None, name: str) -> int:
    """`main` of a benchmark script run alone: parse, run, write <out>/<name>.json|md, print the markdown."""
    a = module.parse(argv)
    section = module.run(a)
    print(save_section(a.out, name, section, module.markdown(section), argv).read_text())
    return 0
