"""Quality against NFE: SSIM, PSNR and MAE (HU) of single samples and MC means of every sampler against seconds per slice.

Every diffusion sampler in the registry (`diffusion.samplers`; the trained method each samples is its record's
`method`, so samplers registered there appear without a change here) runs on the profile's trained checkpoint
(runs/<profile>/checkpoints/ddpm.pt or vesde.pt) at NFE budgets 1, 2, 5, 10, 20, 50, 100, 250, 1000: for each
budget the largest step count whose NFE fits it, found by running the sampler on a stand-in denoiser (heun:
NFE = 2 steps - 1, pc: 2 steps + 1, em: steps + 1, ddpm / ddim: steps <= T); budgets that give the same NFE are
measured once, budgets no step count fits are skipped. An adaptive sampler (the probability-flow ODE; its record
says `adaptive`) varies rtol = atol instead and reports the solver's NFE. The one-pass baselines (CNN, WGAN-GP)
enter at NFE 1. Each point is one `mc.monte_carlo` run of `--slices` test slices x
`--mc` replicates (per-replicate seeds, the profile's sampler options, one batch), scored by the study's SSIM /
PSNR ([0, 1] scale, whole image) and the SynthRAD2023 MAE (HU, body mask) of replicate 0 and of the MC mean.
Seconds per slice = wall time of the run / slices (K samples each).

Time budget: the seconds per sample and network call of each model are measured first; the largest NFE budgets
are dropped (the same cap for every sampler) until the planned runs fit `--time-budget`; the reference, ancestral
DDPM at the largest budget <= T (1000), always runs. The cap is stated in the report.
Writes <out>/quality.json|md and <out>/quality_vs_nfe.png.

    python benchmarks/bench_quality.py [--profile cpu] [--mc 4] [--slices 6] [--time-budget 540] [--quick]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch

from ctmri.config import get_profile
from ctmri.diffusion.samplers import get_sampler, spec
from ctmri.figures.style import COLORS
from ctmri.sample.mc import monte_carlo

from common import (EvalSlices, base_parser, bullets, checkpoint_or_none, diffusion_samplers, fmt, machine,
                    one_pass_samplers, options_for, table, write_standalone)

BUDGETS = (1, 2, 5, 10, 20, 50, 100, 250, 1000)
QUICK_BUDGETS = (1, 2, 5, 10)
ODE_RTOLS = (3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4)
REFERENCE = "ddpm"                       # the study's full-step ancestral DDPM
SSIM_TOL, MAE_TOL = 0.005, 0.03          # "reaches the reference": SSIM within 0.005, MAE within 3 %


def parse(argv: list[str] | None = None):
    ap = base_parser(__doc__)
    ap.add_argument("--mc", type=int, default=4, help="MC replicates K per slice (default 4)")
    ap.add_argument("--slices", type=int, default=6, help="test slices, evenly spaced (default 6)")
    ap.add_argument("--budgets", type=int, nargs="+", default=None, help=f"NFE budgets (default {BUDGETS})")
    ap.add_argument("--samplers", nargs="+", default=None, choices=diffusion_samplers(), metavar="SAMPLER",
                    help="diffusion samplers (default: every one in the registry)")
    ap.add_argument("--time-budget", type=float, default=540.0,
                    help="seconds the planned runs may take (estimated; drops the largest budgets; default 540)")
    a = ap.parse_args(argv)
    if a.quick:
        a.mc, a.slices, a.time_budget = min(a.mc, 2), min(a.slices, 2), min(a.time_budget, 60.0)
        a.budgets = a.budgets or list(QUICK_BUDGETS)
    a.budgets = sorted(set(a.budgets or BUDGETS))
    return a


def _stand_in(x: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A denoiser that costs nothing: the exact D(x, sigma) = x / (1 + sigma^2) of x0 ~ N(0, I) (either process)."""
    return x / (1 + sigma.to(x).reshape(-1, *([1] * (x.dim() - 1))) ** 2)


def _adaptive(sampler: str) -> bool:
    return spec(sampler).adaptive


def nfe_of(sampler: str, process, steps: int, options: dict) -> float:
    """NFE per sample of `sampler` at `steps`, counted by running it on the stand-in denoiser (inf when the
    sampler refuses the step count)."""
    y, info = torch.zeros(1, 1, 4, 4), {}
    try:
        get_sampler(sampler, process)(_stand_in, process, y, steps=steps, generator=[torch.Generator().manual_seed(0)],
                                      info=info, **options)
    except ValueError:
        return float("inf")
    return float(info["nfe"])


def step_plan(sampler: str, process, options: dict, budgets: list[int]) -> list[dict]:
    """[{budget, steps, nfe}]: per budget the largest steps with NFE <= budget (then the fewest steps giving that
    NFE); one entry per distinct NFE; budgets nothing fits are left out."""
    hi = 2 * max(budgets)
    cache: dict[int, float] = {}

    def nfe(s: int) -> float:
        if s not in cache:
            cache[s] = nfe_of(sampler, process, s, options)
        return cache[s]

    def first(pred) -> int | None:          # smallest s in [1, hi] with pred(s), pred monotone
        lo, top = 1, hi
        if not pred(top):
            return None
        while lo < top:
            mid = (lo + top) // 2
            lo, top = (mid + 1, top) if not pred(mid) else (lo, mid)
        return lo

    plan, seen = [], set()
    for b in budgets:
        over = first(lambda s: nfe(s) > b)
        s = (over - 1) if over is not None else hi
        if s < 1 or nfe(s) > b or nfe(s) in seen:
            continue
        value = nfe(s)
        s = first(lambda k: nfe(k) >= value) or s
        seen.add(value)
        plan.append({"budget": b, "steps": s, "nfe": value})
    return plan


def _point(loaded, sampler: str, ev: EvalSlices, k: int, steps: int, options: dict, device, seed: int) -> dict:
    """One monte_carlo run scored: single sample (replicate 0) and MC mean."""
    res = monte_carlo(loaded.model, loaded.process, sampler, ev.cond, mc_samples=k, steps=steps, base_seed=seed,
                      chunk_size=len(ev) * k, slice_ids=ev.index, options=options,
                      out_channels=ev.target.shape[1], device=device, progress=False)
    single, mean = ev.scores(res["samples"][:, 0]), ev.scores(res["mean"])
    return {"sampler": sampler, "steps": int(steps), "nfe": res["nfe"], "K": int(res["samples"].shape[1]),
            "seconds_per_slice": res["seconds_total"] / len(ev), "seconds_per_sample": res["seconds_per_sample"],
            **{f"{m}_single": v for m, v in single.items()}, **{f"{m}_mean": v for m, v in mean.items()}}


def _calibrate(loaded, sampler: str, ev: EvalSlices, k: int, device, options: dict) -> float:
    """Seconds per sample and network call of a model at this batch (a 5-NFE run after a warm-up)."""
    kw = dict(mc_samples=k, chunk_size=len(ev) * k, options=options, out_channels=ev.target.shape[1],
              device=device, progress=False)
    monte_carlo(loaded.model, loaded.process, sampler, ev.cond[:1], steps=2, **{**kw, "mc_samples": 1})
    res = monte_carlo(loaded.model, loaded.process, sampler, ev.cond, steps=5, **kw)
    return res["seconds_total"] / (len(ev) * k * res["nfe"])


def run(a) -> dict[str, Any]:
    p = get_profile(a.profile)
    device = torch.device(a.device)
    ev = EvalSlices(p, a.slices)
    seed = p.sample.seed
    samplers = a.samplers or diffusion_samplers()
    section: dict[str, Any] = {"profile": p.name, "machine": machine(device), "slices": len(ev), "K": a.mc,
                               "test_index": ev.index.tolist(), "budgets": a.budgets, "time_budget_s": a.time_budget,
                               "points": [], "skipped": {}, "notes": []}
    models = {}
    method_of = {s: spec(s).method for s in samplers}
    for method in sorted(set(method_of.values())):
        models[method] = checkpoint_or_none(p, method, device)
    for s in samplers:
        if models[method_of[s]] is None:
            section["skipped"][s] = f"no {method_of[s]} checkpoint in runs/{p.name}/checkpoints"

    plans: dict[str, list[dict]] = {}
    for s in samplers:
        if s in section["skipped"]:
            continue
        process = models[method_of[s]].process
        _, options = options_for(p, s)
        plans[s] = [] if _adaptive(s) else step_plan(s, process, options, a.budgets)

    # the cap: seconds per sample-NFE of each model, then the largest budget whose planned runs fit the time budget
    cost = {m: _calibrate(lm, next(s for s in plans if method_of[s] == m), ev, a.mc, device,
                          options_for(p, next(s for s in plans if method_of[s] == m))[1])
            for m, lm in models.items() if lm is not None and any(method_of[s] == m for s in plans)}
    section["seconds_per_sample_nfe"] = cost
    ref_plan = [e for e in plans.get(REFERENCE, []) if e["nfe"] == max((x["nfe"] for x in plans[REFERENCE]), default=0)]

    def planned_seconds(cap: float) -> float:
        total = sum(cost[method_of[s]] * len(ev) * a.mc * e["nfe"]
                    for s, plan in plans.items() for e in plan if e["nfe"] <= cap or (s == REFERENCE and e in ref_plan))
        ode_like = [s for s in plans if _adaptive(s)]
        return total + sum(cost[method_of[s]] * len(ev) * a.mc * cap for s in ode_like)

    cap = max(a.budgets)
    while cap > min(a.budgets) and planned_seconds(cap) > a.time_budget:
        cap = max(b for b in a.budgets if b < cap)
    section["nfe_cap"] = cap
    section["planned_seconds"] = round(planned_seconds(cap), 1)
    if cap < max(a.budgets):
        section["notes"].append(f"budgets above NFE {cap} dropped to fit the time budget of {a.time_budget:.0f} s "
                                f"(estimated {section['planned_seconds']:.0f} s); the reference keeps NFE "
                                f"{ref_plan[0]['nfe'] if ref_plan else '–'}")

    start = time.perf_counter()
    for method in one_pass_samplers():
        lm = checkpoint_or_none(p, method, device)
        if lm is None:
            section["skipped"][method] = f"no {method} checkpoint"
            continue
        section["points"].append({**_point(lm, method, ev, 1, 1, {}, device, seed), "budget": 1})
    for s, plan in plans.items():
        lm, (_, options) = models[method_of[s]], options_for(p, s)
        if _adaptive(s):
            for rtol in ODE_RTOLS[:2] if a.quick else ODE_RTOLS:
                opts = {**options, "rtol": rtol, "atol": rtol}
                pt = _point(lm, s, ev, a.mc, 10, opts, device, seed)
                section["points"].append({**pt, "rtol": rtol, "budget": None})
                print(f"{s:10s} rtol {rtol:g}: NFE {pt['nfe']:.0f}, MAE(mean) {pt['mae_hu_mean']:.1f} HU", flush=True)
                if pt["nfe"] > cap:
                    break
            continue
        for e in plan:
            if e["nfe"] > cap and e not in (ref_plan if s == REFERENCE else []):
                continue
            pt = _point(lm, s, ev, a.mc, e["steps"], options, device, seed)
            section["points"].append({**pt, "budget": e["budget"]})
            print(f"{s:10s} steps {e['steps']:4d} NFE {pt['nfe']:6.0f}: MAE(mean) {pt['mae_hu_mean']:7.1f} HU, "
                  f"{pt['seconds_per_slice']:.3f} s/slice", flush=True)
    section["seconds"] = round(time.perf_counter() - start, 1)
    section["reference"] = _reference(section["points"])
    section["reaches"] = _reaches(section["points"], section["reference"], samplers)
    section["figure"] = str(_figure(section, a.out))
    return section


def _reference(points: list[dict]) -> dict | None:
    """The full-step ancestral DDPM: the reference sampler's point with the most NFE."""
    ref = [q for q in points if q["sampler"] == REFERENCE]
    return max(ref, key=lambda q: q["nfe"]) if ref else None


def _reaches(points: list[dict], ref: dict | None, samplers: list[str]) -> dict[str, dict | None]:
    """Per sampler the point of fewest NFE whose MC mean reaches the reference's (SSIM within 0.005, MAE within 3 %)."""
    out = {}
    for s in [*one_pass_samplers(), *samplers]:
        ok = [q for q in points if q["sampler"] == s and ref is not None
              and q["ssim_mean"] >= ref["ssim_mean"] - SSIM_TOL and q["mae_hu_mean"] <= (1 + MAE_TOL) * ref["mae_hu_mean"]]
        out[s] = min(ok, key=lambda q: q["nfe"]) if ok else None
    return out


def _figure(section: dict, out: Path) -> Path:
    """MAE of the MC mean against seconds per slice, log x, one line per sampler (one-pass methods as points)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    by: dict[str, list[dict]] = {}
    for q in section["points"]:
        by.setdefault(q["sampler"], []).append(q)
    for s, pts in by.items():
        record = spec(s)                    # its trained method; its colour in every figure: figures/style.py
        pts = sorted(pts, key=lambda q: q["nfe"])
        x, y = [q["seconds_per_slice"] for q in pts], [q["mae_hu_mean"] for q in pts]
        c = COLORS[s]
        if record.one_pass:
            ax.plot(x, y, "s", ms=7, color=c, label=f"{s} (NFE 1)")
            continue
        ls = "-" if record.method == "ddpm" else "--"
        ax.plot(x, y, "o", ls=ls, ms=3.5, lw=1.2, color=c, label=f"{s} ({record.method})")
        ax.annotate(f"{pts[-1]['nfe']:.0f}", (x[-1], y[-1]), fontsize=6, color=c, xytext=(2, 2),
                    textcoords="offset points")
    ref = section.get("reference")
    if ref:
        ax.axhline(ref["mae_hu_mean"] * (1 + MAE_TOL), color="k", ls=":", lw=0.8,
                   label=f"DDPM-{ref['nfe']:.0f} MC mean + 3 %")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"seconds per slice ({section['K']} MC samples, {section['machine']['device_name']})")
    ax.set_ylabel("MAE of the MC mean in the body (HU)")
    ax.set_title(f"Quality against cost, {section['profile']} profile ({section['slices']} test slices)")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="sampler (label: NFE of its last point)",
              title_fontsize=7)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "quality_vs_nfe.png"
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def markdown(sec: dict) -> list[str]:
    ref = sec.get("reference")
    lines = ["## Quality against NFE", "",
             f"{sec['slices']} test slices (indices {sec['test_index']}) x K = {sec['K']} MC replicates, each point one "
             f"batched `mc.monte_carlo` run with per-replicate seeds and the profile's sampler options; SSIM / PSNR: the "
             f"study's ([0, 1] scale, whole image), MAE: SynthRAD2023 in HU inside the body. Seconds per slice = wall "
             f"time / slices (K samples each) at a batch of {sec['slices'] * sec['K']}. NFE budgets {sec['budgets']}, "
             f"capped at NFE {sec.get('nfe_cap')} for a time budget of {sec['time_budget_s']:.0f} s (planned "
             f"{sec.get('planned_seconds', 0):.0f} s, measured {sec.get('seconds', 0):.0f} s). Figure: "
             "`quality_vs_nfe.png`.", ""]
    lines += bullets([*sec.get("notes", []), *(f"{s}: skipped ({why})" for s, why in sec.get("skipped", {}).items())])
    rows = [(q["sampler"], q["steps"] if q.get("rtol") is None else f"rtol {q['rtol']:g}", fmt(q["nfe"], ".0f"),
             fmt(q["ssim_single"], ".3f"), fmt(q["psnr_single"], ".2f"), fmt(q["mae_hu_single"], ".1f"),
             fmt(q["ssim_mean"], ".3f"), fmt(q["psnr_mean"], ".2f"), fmt(q["mae_hu_mean"], ".1f"),
             fmt(q["seconds_per_slice"], ".3g")) for q in sec["points"]]
    lines += [*table(["sampler", "steps", "NFE", "SSIM", "PSNR (dB)", "MAE (HU)", "SSIM MC", "PSNR MC (dB)",
                          "MAE MC (HU)", "s / slice"], rows), ""]
    if ref:
        lines += [f"**Reaching the reference** (ancestral DDPM at NFE {ref['nfe']:.0f}, MC mean SSIM "
                  f"{ref['ssim_mean']:.3f}, MAE {ref['mae_hu_mean']:.1f} HU, {ref['seconds_per_slice']:.3g} s / slice): "
                  f"the fewest NFE whose MC mean has SSIM >= {ref['ssim_mean'] - SSIM_TOL:.3f} and MAE <= "
                  f"{(1 + MAE_TOL) * ref['mae_hu_mean']:.1f} HU.", ""]
        rows = [(s, "not reached" if q is None else fmt(q["nfe"], ".0f"),
                 "–" if q is None else f"{q['ssim_mean']:.3f} / {q['mae_hu_mean']:.1f}",
                 "–" if q is None else f"{ref['seconds_per_slice'] / q['seconds_per_slice']:.1f}x")
                for s, q in sec["reaches"].items() if s not in sec.get("skipped", {})]
        lines += table(["sampler", "smallest NFE reaching it", "SSIM / MAE there", "faster than the reference"], rows)
    else:
        lines.append("No reference (ancestral DDPM) point: nothing to compare against.")
    return lines + [""]


if __name__ == "__main__":
    sys.exit(write_standalone(sys.modules[__name__], None, "quality"))
