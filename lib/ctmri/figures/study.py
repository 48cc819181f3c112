"""The study's figures (Lyu & Wang 2022, Figs. 1-4), one function each, PNG + PDF, and `make_all_figures` (these and
the figures beyond the study, figures/beyond.py).

Output: `figures/<profile>/<name>.png|pdf`. Inputs: `runs/<profile>/samples/*.npz` (samples
contract) and, for the bar / NFE figures, `runs/<profile>/summary.csv` from the evaluation stage.
Every figure function takes the profile, returns the PNG path (the PDF lies beside it) and raises
`MissingInput` when its inputs are absent; `make_all_figures` skips those with a printed note. CT is
shown in the HU window [-1024, 3000] mapped to [0, 1] (the study's display range) unless a caption
says otherwise (figures/style.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter
from scipy import ndimage

from ctmri.data.intensity import model_to_hu
from ctmri.evaluate import metrics as M
from ctmri.evaluate.methods import ORDER, STUDY_SAMPLERS, label
from ctmri.figures.style import (CT_WINDOW, SOFT_WINDOW, MissingInput, color, example_slices, image, load, load_summary,
                                 mr_display, plt, save, shared_rows, shown_methods, slice_of, soft_tissue, style, unit)
from ctmri.figures.beyond import (fig_hu_error_maps, fig_quality_vs_nfe, fig_sparsification, fig_training_curves,
                                  fig_volume_views)


def fig1_trajectories(profile: str, n_frames: int = 7) -> Path:
    """Fig. 1: MR condition and true CT, then x_t from noise to x_0 for DDPM, ODE, EM, PC (npz `trajectory`)."""
    data = {s: d for s, d in load(profile, STUDY_SAMPLERS).items() if "trajectory" in d and d["trajectory"].size}
    if not data:
        raise MissingInput("no trajectories recorded for DDPM / ODE / EM / PC")
    first = next(iter(data.values()))
    i = int(first["trajectory_slices"][0])
    patient, sidx = first["patient"][i], int(first["slice_index"][i])
    ncols = min(n_frames, max(len(d["trajectory_steps"]) for d in data.values())) + 1
    with style():
        fig, axes = plt.subplots(1 + len(data), ncols, figsize=(1.4 * ncols, 1.55 * (1 + len(data))), squeeze=False,
                                 layout="constrained")
        for ax in axes.flat:
            ax.axis("off")
        image(axes[0, 0], mr_display(first["cond"][i, 0]), "MR (condition)")
        image(axes[0, 1], unit(first["target"][i, 0]), "CT (truth)")
        for r, (s, d) in enumerate(data.items(), start=1):
            j = int(np.flatnonzero(d["trajectory_slices"] == i)[0]) if i in d["trajectory_slices"] else 0
            traj, steps = d["trajectory"][j, :, 0], d["trajectory_steps"]
            picks = np.unique(np.linspace(0, len(steps) - 1, min(ncols - 1, len(steps))).round().astype(int))
            k = slice_of(d, patient, sidx)
            panels = [(unit(traj[f]), f"step {int(steps[f])}") for f in picks]
            if int(steps[picks[-1]]) < int(d.get("steps", steps[-1] + 1)):   # the final sample is not a frame
                panels.append((unit(d["samples"][k if k is not None else 0, 0, 0]), "x₀ (returned)"))
            for c, (img, title) in enumerate(panels):
                image(axes[r, c], img, title)
                axes[r, c].axis("on")
            axes[r, 0].set_ylabel(label(s), fontsize=9, fontweight="bold")
        fig.suptitle(f"Fig. 1 — reverse diffusion, replicate 0 of patient {patient}, slice {sidx}: x_t from noise "
                     f"(left) to x₀\n{CT_WINDOW}; x_t shown as (x+1)/2 clipped to [0, 1]")
        return save(fig, profile, "fig1_trajectories")


def fig2_mc_samples(profile: str, n_show: int = 5) -> Path:
    """Fig. 2: for one MR slice, MC samples of each sampler, their mean and pixel-wise std (std on [0, 0.5])."""
    data = load(profile, STUDY_SAMPLERS, mc=True)
    first = next(iter(data.values()))
    patient, sidx = first["patient"][0], int(first["slice_index"][0])
    k_show = min(n_show, max(d["K"] for d in data.values()))
    ncols = k_show + 2
    with style():
        fig, axes = plt.subplots(1 + len(data), ncols, figsize=(1.45 * ncols + 0.8, 1.7 * (1 + len(data))),
                                 squeeze=False, layout="constrained")
        for ax in axes.flat:
            ax.axis("off")
        ct = unit(first["target"][0, 0])
        image(axes[0, 0], mr_display(first["cond"][0, 0]), "MR (condition)")
        image(axes[0, 1], ct, "CT (truth)")
        im_std = None
        for r, (s, d) in enumerate(data.items(), start=1):
            i = slice_of(d, patient, sidx)
            if i is None:
                continue
            for c in range(min(k_show, d["K"])):
                img = unit(d["samples"][i, c, 0])
                image(axes[r, c], img, f"#{c + 1}: {M.unit_ssim(ct, img):.3f} / {M.unit_psnr(ct, img):.1f}")
            mean = unit(d["mean"][i, 0])
            image(axes[r, k_show], mean, f"{label(s, True)}: {M.unit_ssim(ct, mean):.3f} / {M.unit_psnr(ct, mean):.1f}")
            im_std = image(axes[r, k_show + 1], d["std"][i, 0] / 2, f"std (K = {d['K']})", cmap="viridis", vmin=0,
                           vmax=0.5)
            axes[r, 0].axis("on")
            axes[r, 0].set_ylabel(label(s), fontsize=9, fontweight="bold")
        if im_std is not None:
            fig.colorbar(im_std, ax=axes[1:, -1].tolist(), shrink=0.6, label="MC std ([0, 1] scale)")
        fig.suptitle(f"Fig. 2 — Monte-Carlo samples, their mean (-M) and std for one MR slice (patient {patient}, "
                     f"slice {sidx})\n{CT_WINDOW}; std in [0, 0.5]; numbers: SSIM / PSNR (dB) against the CT")
        return save(fig, profile, "fig2_mc_samples")


def _bars(ax: plt.Axes, s: pd.DataFrame, col: str, ylabel: str, log: bool = False) -> None:
    """Bar per row of `s` (mean ± std when the std column exists), coloured by sampler, hatched for -M."""
    x = np.arange(len(s))
    mean = s[f"{col}_mean"] if f"{col}_mean" in s else s[col]
    err = s[f"{col}_std"].fillna(0) if f"{col}_std" in s else None
    mean = mean.replace([np.inf, -np.inf], np.nan)
    ax.bar(x, mean, yerr=err, color=[color(v) for v in s["sampler"]], edgecolor="black", linewidth=0.5,
           hatch=None, capsize=2, error_kw={"linewidth": 0.7})
    for xi, (v, var) in enumerate(zip(mean, s["variant"])):
        if var == "mc_mean" and np.isfinite(v):
            ax.bar(xi, v, color="none", edgecolor="white", hatch="///", linewidth=0)
    ax.set_xticks(x, s["label"], rotation=60, ha="right")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}".strip("0.")[:1] in "235" else ""))
    elif np.isfinite(mean).any():
        lo = np.nanmin(mean - (err if err is not None else 0))
        hi = np.nanmax(mean + (err if err is not None else 0))
        pad = 0.1 * (hi - lo) if hi > lo else 0.1 * abs(hi) + 1e-6
        ax.set_ylim(lo - pad if lo < 0 else max(0, lo - pad), hi + pad / 2)


def fig3_bars(profile: str) -> Path:
    """Fig. 3: (a) mean SSIM / PSNR ± std, (b) uncertainty per sampler, (c) seconds per sample (log scale)."""
    s = load_summary(profile)
    mc = s[s["variant"] == "mc_mean"]
    single = s[s["variant"] == "single"]
    with style():
        fig, axes = plt.subplots(1, 4, figsize=(13, 3.2), gridspec_kw={"width_ratios": [len(s), len(s), max(len(mc), 2),
                                                                                        len(single)]})
        _bars(axes[0], s, "paper_ssim", "SSIM")
        axes[0].set_title("(a) SSIM (mean ± std over slices)")
        _bars(axes[1], s, "paper_psnr", "PSNR (dB)")
        axes[1].set_title("(a) PSNR (mean ± std over slices)")
        if len(mc):
            _bars(axes[2], mc, "uncertainty", "mean MC std in body ([0, 1] scale)")
            axes[2].set_xticks(range(len(mc)), [label(v) for v in mc["sampler"]], rotation=60, ha="right")
        else:
            axes[2].text(0.5, 0.5, "no MC samplers (K = 1)", ha="center", transform=axes[2].transAxes)
        axes[2].set_title("(b) uncertainty")
        _bars(axes[3], single, "seconds_per_sample", "seconds per slice (one sample)", log=True)
        axes[3].set_title("(c) sampling time per slice")
        fig.suptitle(f"Fig. 3 — profile {profile}: the study's SSIM / PSNR on [0, 1] ({CT_WINDOW}); "
                     "hatched = MC mean (-M); uncertainty = mean MC std", y=1.02)
        fig.tight_layout()
        return save(fig, profile, "fig3_bars")


def _boxes(ct_hu: np.ndarray, mask: np.ndarray | None = None) -> list[tuple[int, int, int]]:
    """Two zoom boxes (row, col, size): red on bone cortex (CT > 700 HU), green on gas inside the body (rectum,
    bowel; CT < -400 HU), else on the busiest other region."""
    h, w = ct_hu.shape
    size = max(4, min(h, w) // 5)
    bone = ndimage.uniform_filter((ct_hu > 700).astype(float) + 0.1 * (ct_hu > 200), size)
    gas = (ct_hu < -400) & (mask if mask is not None else np.zeros_like(ct_hu, bool))
    grad = ndimage.uniform_filter(np.hypot(*np.gradient(ct_hu)), size) / (np.abs(ct_hu).max() + 1.0)
    grad = grad + ndimage.uniform_filter(gas.astype(float), size)
    half = size // 2
    valid = np.zeros_like(bone, dtype=bool)
    valid[half:h - size + half + 1, half:w - size + half + 1] = True
    r, c = np.unravel_index(np.argmax(np.where(valid, bone, -1)), bone.shape)
    far = valid & ((np.abs(np.arange(h)[:, None] - r) >= size) | (np.abs(np.arange(w)[None, :] - c) >= size))
    r2, c2 = np.unravel_index(np.argmax(np.where(far if far.any() else valid, grad, -1)), grad.shape)
    return [(int(r - half), int(c - half), size), (int(r2 - half), int(c2 - half), size)]


PAPER_COLUMNS = ("cnn", "wgan", "ddpm", "ode", "em", "pc")   # Fig. 4 of the study: MR, CT, then these (+ -M)


def _comparison(profile: str, samplers: tuple[str, ...] | None, name: str, title: str) -> Path:
    """Two examples side by side: whole image in the study's window and in the soft-tissue window, then the red
    box (bone cortex, study window) and the green box (gas in the body, soft-tissue window) zoomed."""
    data = load(profile, samplers)
    if samplers is not None:
        data = {s: data[s] for s in samplers if s in data}
    first = next(iter(data.values()))
    methods = shown_methods(data)
    ncols = 2 + len(methods)
    examples = example_slices(first, among=shared_rows(data))
    rows = 4
    with style():
        fig, axes = plt.subplots(rows * len(examples), ncols, figsize=(1.2 * ncols, 1.25 * rows * len(examples) + 0.8),
                                 squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for e, i in enumerate(examples):
            patient, sidx = first["patient"][i], int(first["slice_index"][i])
            boxes = _boxes(model_to_hu(first["target"][i, 0]), first["mask"][i])
            truth = first["target"][i, 0]
            panels = [("T2w MR", first["cond"][i, 0], "", True)] if "cond" in first else []
            panels += [("CT", truth, f"{patient} / {sidx}", False)]
            for s, v, lab, pred in methods:
                k = slice_of(data[s], patient, sidx)
                if k is not None:
                    mae = M.synthrad_mae(model_to_hu(truth), model_to_hu(pred[k]), first["mask"][i])
                    panels.append((lab, pred[k], f"{mae:.0f} HU", False))
            for c, (lab, img, note, is_mr) in enumerate(panels):
                study_img = mr_display(img) if is_mr else unit(img)
                soft_img = mr_display(img) if is_mr else soft_tissue(img)
                views = [(study_img, None), (soft_img, None)]
                views += [(study_img, boxes[0]), (soft_img, boxes[1])]
                for r, (shown, box) in enumerate(views):
                    ax = axes[rows * e + r, c]
                    if box is None:
                        image(ax, shown, lab if r == 0 and e == 0 else "")
                        for (r0, c0, sz), col in zip(boxes, ("red", "green")):
                            ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), sz, sz, fill=False, edgecolor=col, linewidth=0.8))
                    else:
                        r0, c0, sz = box
                        image(ax, shown[r0:r0 + sz, c0:c0 + sz])
                    ax.axis("on")
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if box is not None:
                        for spine in ax.spines.values():
                            spine.set_visible(True)
                            spine.set_edgecolor("red" if r == 2 else "green")
                            spine.set_linewidth(1.5)
                    if r == 3:
                        ax.set_xlabel(note, fontsize=7, labelpad=1)
                if c == 0:
                    for r, text in enumerate(("study window", "W 400 / L 40", "bone box", "gas box")):
                        axes[rows * e + r, 0].set_ylabel(text, fontsize=7)
        fig.suptitle(f"{title}. Rows per example: {CT_WINDOW}; {SOFT_WINDOW};\nred box (bone cortex) in the "
                     "study window; green box (gas in the body, else the busiest region) in the soft-tissue window. "
                     "Under each column: MAE in the body", fontsize=8)
        fig.subplots_adjust(left=0.03, right=0.995, bottom=0.02, top=1 - 0.75 / fig.get_figheight(), wspace=0.05,
                            hspace=0.12)
        return save(fig, profile, name)


def fig4_comparison(profile: str) -> Path:
    """Fig. 4 as in the study: MR, CT, CNN, WGAN-GP, DDPM, DDPM-M, ODE, ODE-M, EM, EM-M, PC, PC-M, two examples."""
    return _comparison(profile, PAPER_COLUMNS, "fig4_comparison", f"Fig. 4 — profile {profile}: the study's methods")


def fig4b_other_samplers(profile: str) -> Path:
    """Fig. 4 (b): the same two examples for the samplers beyond the study (few-step solvers, D(noise))."""
    others = tuple(s for s in ORDER if s not in PAPER_COLUMNS)
    return _comparison(profile, others, "fig4b_other_samplers",
                       f"Fig. 4 (b) — profile {profile}: the samplers beyond the study")


FIGURES: tuple[Callable[[str], Path], ...] = (fig1_trajectories, fig2_mc_samples, fig3_bars, fig4_comparison,
                                              fig4b_other_samplers,
                                              fig_hu_error_maps, fig_quality_vs_nfe, fig_sparsification,
                                              fig_volume_views, fig_training_curves)


def make_all_figures(profile: str) -> list[Path]:
    """Every figure whose inputs exist (PNG paths; PDFs beside them); the others are skipped with a note."""
    made = []
    for fn in FIGURES:
        try:
            made.append(fn(profile))
        except MissingInput as exc:
            print(f"Skipped {fn.__name__}: {exc}.")
    return made
