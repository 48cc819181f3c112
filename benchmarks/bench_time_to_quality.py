"""Training time-to-quality: each model's MC-mean MAE (HU) against training steps, for the study's plain loss and
for each option that speeds convergence, and the minutes on 2 CPU cores until it reaches the CNN's.

Each variant trains the profile's network from scratch (same data, seed, batch, lr, EMA; fp32, TF32 off on a GPU,
so the numbers are the CPU's up to rounding) and is resumed segment by segment (bit-exact resume); after each
segment its EMA weights are scored on `--slices` test slices x `--mc` replicates by its read-out samplers: MAE
(HU, SynthRAD2023, body mask) of replicate 0 and of the MC mean. Read-outs, by default, per method: the study's
sampler of that method and the method's default sampler, at the profile's steps (from the sampler registry:
ddpm: ancestral; vesde: Euler–Maruyama and dpm++2m-ve; cnn / wgan: their forward pass); `--readouts
sampler[=steps] ...` replaces those of the samplers' methods. Minutes on 2 cores = steps x the 2-core seconds
per step of that method (`--cpu-seconds-per-step`, measured by `make reproduce`'s training stage or
bench_train); the curves can be trained on any device, since steps-to-quality does not depend on it.

`--variants` takes variant names and variant sets (`VARIANT_SETS`): `default` (the diffusion variants),
`baselines` (CNN, WGAN-GP) and `all` (each set names its results file; `--name` overrides): writes
<out>/time_to_quality.json|md and time_to_quality.png. `--report` redraws them from the JSON. (The finished VE-SDE
training-choice ablation, a former set of this script, keeps its result and command in docs/ablations/.)

    CTMRI_ROOT=<root with prepared cpu data> python benchmarks/bench_time_to_quality.py [--device cuda]
        [--steps 250 500 1000 2000 3000] [--cpu-seconds-per-step ddpm=0.21 vesde=0.20] [--report]
"""
from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ctmri import paths
from ctmri.config import METHODS, get_profile
from ctmri.diffusion.samplers import default_sampler, names, spec
from ctmri.models.checkpoints import load_model
from ctmri.sample.mc import monte_carlo
from ctmri.train.loop import train

from common import (EvalSlices, base_parser, bullets, fmt, machine, options_for, run_provenance,
                    save_section, table)

# name -> (method, {section: {field: value}}): the study's plain loss first, then the options that speed it up.
VARIANTS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "ddpm: eps MSE (study eq. 23)": ("ddpm", {"train": {"ddpm_loss_weighting": "eps"}}),
    "ddpm: Min-SNR-5 (cpu default)": ("ddpm", {"train": {"ddpm_loss_weighting": "min-snr-5"}}),
    "vesde: F/std, lambda=std^2, t~U (study eq. 28)": (
        "vesde", {"process": {"ve_parametrisation": "score-over-std"},
                  "train": {"dsm_weighting": "std2", "sigma_distribution": "uniform-t"}}),
    "vesde: EDM precond, lambda=std^2, t~U": (
        "vesde", {"process": {"ve_parametrisation": "edm"},
                  "train": {"dsm_weighting": "std2", "sigma_distribution": "uniform-t"}}),
    "vesde: EDM precond + weight, t~U (ablation only)": (
        "vesde", {"process": {"ve_parametrisation": "edm"},
                  "train": {"dsm_weighting": "edm", "sigma_distribution": "uniform-t"}}),
    "vesde: EDM precond + weight, log-normal sigma (default)": (
        "vesde", {"process": {"ve_parametrisation": "edm"},
                  "train": {"dsm_weighting": "edm", "sigma_distribution": "lognormal"}}),
    "cnn: MSE (the baseline; opt-in)": ("cnn", {}),
    "wgan: WGAN-GP (the baseline; opt-in)": ("wgan", {}),
}


class VariantSet(NamedTuple):
    """Variants trained together, the read-outs they are scored by (() = each method's defaults), the results name
    and the report's title."""

    variants: tuple[str, ...]
    readouts: tuple[str, ...] = ()
    results: str = "time_to_quality"
    title: str = "Training time-to-quality"


DEFAULT_VARIANTS = [v for v in VARIANTS if "opt-in" not in v and "ablation" not in v]
VARIANT_SETS: dict[str, VariantSet] = {
    "default": VariantSet(tuple(DEFAULT_VARIANTS)),
    "baselines": VariantSet(tuple(v for v in VARIANTS if "opt-in" in v)),
    "all": VariantSet(tuple(VARIANTS)),
}


class Readout(NamedTuple):
    """A sampler scoring a checkpoint: its key in the rows (`label`), the sampler, its steps (None: the profile's)."""

    label: str
    sampler: str
    steps: int | None = None


def readout(text: str) -> Readout:
    """'sampler' or 'sampler=steps' (a registered sampler) -> Readout; labelled 'sampler' or 'sampler-steps'."""
    name, _, steps = text.partition("=")
    spec(name)                                  # a registered sampler, or one sentence naming those that are
    return Readout(f"{name}-{int(steps)}", name, int(steps)) if steps else Readout(name, name)


def default_readouts(method: str) -> list[Readout]:
    """The study's sampler of `method` (the first registered with role "study"), then the method's default sampler."""
    return [Readout(n, n) for n in dict.fromkeys([*names(method=method, role="study")[:1], default_sampler(method)])]


def readouts_for(method: str, given: list[str] | tuple[str, ...] = ()) -> list[Readout]:
    """The given read-outs of `method`'s samplers, or its defaults when none of them samples `method`."""
    mine = [r for r in map(readout, given) if spec(r.sampler).method == method]
    return mine or default_readouts(method)


def expand(items: list[str]) -> tuple[list[str], VariantSet | None]:
    """Variant and set names -> (variant names, in order, once each; the set when exactly one set was named)."""
    out, sets = [], []
    for item in items:
        if item in VARIANT_SETS:
            sets.append(VARIANT_SETS[item])
            out += VARIANT_SETS[item].variants
        elif item in VARIANTS:
            out.append(item)
        else:
            raise ValueError(f"Unknown variant {item!r}; expected a set ({', '.join(VARIANT_SETS)}) or one of: "
                             + "; ".join(VARIANTS))
    return list(dict.fromkeys(out)), (sets[0] if len(sets) == 1 and len(items) == 1 else None)


def parse(argv: list[str] | None = None):
    ap = base_parser(__doc__)
    ap.add_argument("--steps", type=int, nargs="+", default=[250, 500, 1000, 1500, 2000, 3000],
                    help="cumulative evaluation points (default up to the cpu budget, 3000)")
    ap.add_argument("--variants", nargs="+", default=["default"],
                    help=f"variant names or sets ({', '.join(VARIANT_SETS)}; default: the diffusion variants)")
    ap.add_argument("--readouts", nargs="+", default=None,
                    help="sampler[=steps] read-outs (default: the set's, else each method's study and default sampler)")
    ap.add_argument("--name", default=None, help="results name (default: the set's, else time_to_quality)")
    ap.add_argument("--slices", type=int, default=12)
    ap.add_argument("--mc", type=int, default=4)
    ap.add_argument("--cpu-seconds-per-step", nargs="*", default=[],
                    help="method=seconds of one training step on 2 CPU cores (default: from the JSON's run)")
    ap.add_argument("--cnn-mae", type=float, default=None, help="the CNN's MAE (HU); default figures/<profile>/summary.csv")
    ap.add_argument("--report", action="store_true", help="only redraw the report from <out>/<name>.json")
    a = ap.parse_args(argv)
    try:
        a.variants, chosen = expand(a.variants)
    except ValueError as err:
        ap.error(str(err))
    a.readouts = list(a.readouts if a.readouts is not None else (chosen.readouts if chosen else ()))
    for r in a.readouts:
        try:
            readout(r)
        except ValueError as err:
            ap.error(str(err))
    a.name = a.name or (chosen or VARIANT_SETS["default"]).results
    a.title = (chosen or VARIANT_SETS["default"]).title
    if a.quick:
        a.steps, a.slices, a.mc = [2, 4], 2, 2
    return a


def variant_profile(p, changes: dict[str, dict[str, Any]]):
    """The profile with whole fields of its sections replaced, fp32 everywhere (the CPU's arithmetic)."""
    changes = {**changes, "train": {"bf16_autocast": False, **changes.get("train", {})}}
    return dataclasses.replace(p, **{sec: dataclasses.replace(getattr(p, sec), **kv) for sec, kv in changes.items()})


def score(ckpt: Path, prof, method: str, ev: EvalSlices, k: int, device: torch.device,
          readouts: list[Readout]) -> dict[str, float]:
    """MAE (HU) of replicate 0 and of the MC mean, and the NFE, of each read-out of `method`'s checkpoint."""
    lm = load_model(ckpt, device)
    out = {}
    for r in readouts:
        steps, options = options_for(prof, r.sampler)
        res = monte_carlo(lm.model, lm.process, r.sampler, ev.cond, mc_samples=k, steps=r.steps or steps,
                          options=options, device=device, progress=False, chunk_size=len(ev) * k)
        out[f"{r.label}_single_mae"] = ev.scores(res["samples"][:, 0])["mae_hu"]
        out[f"{r.label}_mean_mae"] = ev.scores(res["mean"])["mae_hu"]
        out[f"{r.label}_nfe"] = res["nfe"]
    return out


def run(a) -> dict[str, Any]:
    if a.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    p = get_profile(a.profile)
    device = torch.device(a.device)
    ev = EvalSlices(p, a.slices)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(a.variants):
            method, changes = VARIANTS[name]
            prof = variant_profile(p, changes)
            ckpt = Path(tmp) / f"{i}.pt"
            seconds = 0.0
            for steps in sorted(a.steps):
                t0 = time.perf_counter()
                r = train(prof, method, steps=steps, resume=True, progress=False, checkpoint=ckpt, device=device)
                seconds += time.perf_counter() - t0
                rows.append({"variant": name, "method": method, "step": steps, "train_seconds": round(seconds, 1),
                             "final_loss": r["final_loss"],
                             **score(ckpt, prof, method, ev, a.mc, device, readouts_for(method, a.readouts))})
                print(json.dumps(rows[-1]), flush=True)
            _save(a, p, rows, device)          # after every variant: a run cut short keeps what it measured
    return _section(a, p, rows, device)


def _section(a, p, rows: list[dict], device) -> dict[str, Any]:
    methods = dict.fromkeys(VARIANTS[v][0] for v in a.variants)
    return {"profile": p.name, "name": a.name, "title": a.title, "machine": machine(device), "slices": a.slices,
            "mc": a.mc, "rows": rows, "batch_size": p.train.batch_size, "steps": sorted(a.steps),
            "variants": list(a.variants),
            "readouts": {m: [r.label for r in readouts_for(m, a.readouts)] for m in methods},
            "cpu_seconds_per_step": cpu_seconds(a), "cnn_mae": cnn_mae(a), "figure": str(a.out / f"{a.name}.png")}


def _save(a, p, rows, device) -> None:
    """The rows so far, with provenance, into <out>/<name>.json (a run cut short keeps what it measured)."""
    a.out.mkdir(parents=True, exist_ok=True)
    sec = {**_section(a, p, rows, device), "provenance": run_provenance(p.name, a.name)}
    (a.out / f"{a.name}.json").write_text(json.dumps(sec, indent=1, default=str) + "\n")


def cpu_seconds(a) -> dict[str, float]:
    """method -> seconds per training step on 2 CPU cores, from --cpu-seconds-per-step or the stage times of
    `make reproduce` (figures/<profile>/stage_seconds.txt)."""
    given = dict(kv.split("=") for kv in a.cpu_seconds_per_step)
    if given:
        return {k: float(v) for k, v in given.items()}
    p = get_profile(a.profile)
    stages = paths.figures_dir(p.name) / "stage_seconds.txt"
    out = {}
    for line in stages.read_text().splitlines() if stages.exists() else []:
        name, sec = line.split()[0], float(line.split()[1])
        for m in METHODS:
            if name == f"01_train_{m}":
                out[m] = sec / p.steps_for(m)
    return out


def cnn_mae(a) -> float | None:
    """The CNN's MAE (HU): --cnn-mae, else the study's figures/<profile>/summary.csv."""
    if a.cnn_mae is not None:
        return a.cnn_mae
    import pandas as pd

    path = paths.figures_dir(get_profile(a.profile).name) / "summary.csv"
    if not path.exists():
        return None
    s = pd.read_csv(path)
    return float(s.loc[s["label"] == spec("cnn").label, "mae_mean"].iloc[0])


def first_reach(rows: list[dict], key: str, target: float | None) -> dict | None:
    """The first evaluated step whose `key` MAE is at or below `target`."""
    return next((r for r in rows if target is not None and r.get(key) is not None and r[key] <= target), None)


def markdown(sec: dict) -> list[str]:
    """The report of a section (run_all): table, figure beside the section's files."""
    return report(sec, sec.get("cpu_seconds_per_step") or {}, sec.get("cnn_mae"), Path(sec["figure"]))


def report(sec: dict, sps: dict[str, float], cnn: float | None, figure: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5))
    title = sec.get("title") or VARIANT_SETS["default"].title
    lines = [f"## {title}", "",
             f"MC-mean MAE in the body (HU) on {sec['slices']} test slices x {sec['mc']} replicates against training "
             f"steps, trained in fp32 on {sec['machine']['device_name']}; minutes on 2 CPU cores = steps x "
             + ", ".join(f"{m} {s:.3f} s/step" for m, s in sps.items())
             + f" (2-core training seconds per step). CNN reference: {fmt(cnn, '.1f')} HU.", ""]
    lines += bullets(f"run: {r}" for r in sec.get("runs", []))
    measured = sec.get("measured")
    if measured:
        lines += [f"Measured at commit `{measured.get('git_commit')}` ({measured.get('created')})"
                  + (f" by `{measured['command']}`" if measured.get("command") else "") + "; this report redrawn from "
                  "its JSON.", ""]
    rows_out = []
    all_steps = sorted({r["step"] for r in sec["rows"]})
    readouts = sec.get("readouts") or {}
    for name in dict.fromkeys(r["variant"] for r in sec["rows"]):
        rs = [r for r in sec["rows"] if r["variant"] == name]
        method = rs[0]["method"]
        for label in readouts.get(method) or [r.label for r in default_readouts(method)]:
            key = f"{label}_mean_mae"
            nfe = rs[0].get(f"{label}_nfe")
            text = f"{label}, {nfe:.0f} NFE" if nfe else label
            steps = np.array([r["step"] for r in rs])
            minutes = steps * sps.get(method, np.nan) / 60
            ax.plot(minutes, [r[key] for r in rs], marker="o", label=f"{name} [{text}]")
            hit = first_reach(rs, key, cnn)
            by_step = {r["step"]: r[key] for r in rs}
            rows_out.append((name, text, *(fmt(by_step.get(s), ".1f") for s in all_steps),
                             f"{hit['step']} ({hit['step'] * sps.get(method, np.nan) / 60:.1f} min)" if hit
                             else f"not within {rs[-1]['step']}"))
    lines += table(["variant", "sampler (MC mean)", *[f"{s} steps" for s in all_steps], "reaches the CNN at"],
                   rows_out)
    if cnn is not None:
        ax.axhline(cnn, color="k", ls="--", lw=1, label=f"CNN {cnn:.1f} HU")
    ax.set(xlabel="training minutes on 2 CPU cores", ylabel="MC-mean MAE in body (HU)", yscale="log",
           title=f"{title} ({sec['profile']} profile)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=120)
    plt.close(fig)
    return lines + ["", f"![{title.lower()}]({figure.name})", ""]


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    if a.report:                               # redraw: keep what measured the rows
        sec = json.loads((a.out / f"{a.name}.json").read_text())
        sec.setdefault("measured", sec.pop("provenance", None))
    else:
        sec = run(a)
    sec = {**sec, "name": a.name, "title": sec.get("title") or a.title, "cpu_seconds_per_step": cpu_seconds(a),
           "cnn_mae": cnn_mae(a), "figure": str(a.out / f"{a.name}.png")}
    lines = markdown(sec)
    save_section(a.out, a.name, sec, lines, argv)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
