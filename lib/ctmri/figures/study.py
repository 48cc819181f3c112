"""The study's figures (Lyu & Wang 2022, Figs. 1-4) and three beyond it, one function each, PNG + PDF.

Output: `figures/<profile>/<name>.png|pdf`. Inputs: `runs/<profile>/samples/*.npz` (samples
contract) and, for the bar / NFE figures, `runs/<profile>/summary.csv` from the evaluation stage.
Every figure function takes the profile, returns the PNG path (the PDF lies beside it) and raises
`MissingInput` when its inputs are absent; `make_all_figures` skips those with a printed note. CT is
shown in the HU window [-1024, 3000] mapped to [0, 1] (the study's display range) unless a caption
says otherwise; colours are the Okabe-Ito colour-blind-safe palette, one fixed colour per method.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import matplotlib

if "ipykernel" not in sys.modules:  # headless (papermill runs inside ipykernel and keeps inline)
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402
from scipy import ndimage  # noqa: E402

from ctmri.evaluate import metrics as M  # noqa: E402
from ctmri.diffusion.samplers import SAMPLERS  # noqa: E402
from ctmri.evaluate.methods import ORDER, STUDY_SAMPLERS, label, variants  # noqa: E402
from ctmri.paths import figures_dir, run_dir  # noqa: E402
from ctmri.data.intensity import model_to_hu, std_to_hu  # noqa: E402
from ctmri.provenance import save_figure  # noqa: E402
from ctmri.sample.store import load_samples, sample_files  # noqa: E402

COLORS = {name: record.color for name, record in SAMPLERS.items()}   # one colour per sampler, from the registry
CT_WINDOW = "CT: HU window [−1024, 3000] shown as [0, 1]"
STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
         "ytick.labelsize": 7, "figure.dpi": 100, "savefig.dpi": 150, "axes.spines.top": False,
         "axes.spines.right": False, "image.interpolation": "nearest"}


class MissingInput(FileNotFoundError):
    """A figure's inputs (samples of the samplers it shows, or summary.csv) are not there yet."""


@contextmanager
def style() -> Iterator[None]:
    """The one style of every figure."""
    with plt.rc_context(STYLE):
        yield


def color(sampler: str) -> str:
    return COLORS.get(sampler, "#666666")


def save(fig: plt.Figure, profile: str, name: str) -> Path:
    """Save `fig` as figures/<profile>/<name>.png and .pdf (atomic writes) and close it."""
    return save_figure(fig, figures_dir(profile) / name, close=True)


def unit(x: np.ndarray) -> np.ndarray:
    """Model space [-1, 1] to the study's display range [0, 1] (= HU window [-1024, 3000])."""
    return np.clip((np.asarray(x, dtype=np.float64) + 1) / 2, 0, 1)


def load(profile: str, samplers: tuple[str, ...] | None = None, mc: bool = False) -> dict[str, dict[str, Any]]:
    """Samples of `samplers` (all when None) that exist, with K > 1 when `mc`; MissingInput when none."""
    files = {s: p for s, p in sample_files(profile, ORDER).items() if samplers is None or s in samplers}
    data = {s: load_samples(p) for s, p in files.items()}
    data = {s: d for s, d in data.items() if d["K"] > 1 or not mc}
    if not data:
        want = ", ".join(samplers) if samplers else "any sampler"
        raise MissingInput(f"no samples{' with K > 1' if mc else ''} for {want} in {run_dir(profile) / 'samples'}")
    return data


def load_summary(profile: str) -> pd.DataFrame:
    path = run_dir(profile) / "summary.csv"
    if not path.exists():
        raise MissingInput(f"{path} is missing; run the evaluation stage (03_evaluate) first")
    return pd.read_csv(path)


def image(ax: plt.Axes, img: np.ndarray, title: str = "", cmap: str = "gray", vmin: float = 0, vmax: float = 1):
    """One image panel, no ticks."""
    im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return im


def slice_of(d: dict[str, Any], patient: str, slice_index: int) -> int | None:
    """Row of (patient, slice_index) in a samples file, None when absent."""
    hit = np.flatnonzero((d["patient"] == patient) & (d["slice_index"] == slice_index))
    return int(hit[0]) if hit.size else None


def mr_display(cond: np.ndarray) -> np.ndarray:
    """MR condition (model space) shown as [0, 1]."""
    return unit(cond)


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
        _bars(axes[3], single, "seconds_per_sample", "seconds per sample", log=True)
        axes[3].set_title("(c) sampling time")
        fig.suptitle(f"Fig. 3 — profile {profile}: the study's SSIM / PSNR on [0, 1] ({CT_WINDOW}); "
                     "hatched = MC mean (-M); uncertainty = mean MC std", y=1.02)
        fig.tight_layout()
        return save(fig, profile, "fig3_bars")


def shared_rows(data: dict[str, dict[str, Any]]) -> np.ndarray:
    """Rows of the first samples file whose (patient, slice) every file holds (the long samplers' subset)."""
    first = next(iter(data.values()))
    keys = [set(zip(d["patient"], d["slice_index"].tolist())) for d in data.values()]
    return np.array([i for i, k in enumerate(zip(first["patient"], first["slice_index"].tolist()))
                     if all(k in ks for ks in keys)], dtype=np.int64)


def _examples(d: dict[str, Any], n: int = 2, among: np.ndarray | None = None) -> list[int]:
    """Rows of the `n` slices (of `among`, default all) with the most bone (CT > 200 HU), preferring different
    patients."""
    bone = (model_to_hu(d["target"][:, 0]) > 200).sum(axis=(1, 2)).astype(float)
    if among is not None and len(among):
        bone[np.setdiff1d(np.arange(bone.size), among)] = -1
    order = [i for i in np.argsort(-bone, kind="stable") if bone[i] >= 0]
    picks: list[int] = []
    for i in order:
        if len(picks) < n and d["patient"][i] not in {d["patient"][j] for j in picks}:
            picks.append(int(i))
    for i in order:
        if len(picks) < n and i not in picks:
            picks.append(int(i))
    return picks


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


def _methods(data: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, np.ndarray]]:
    """(sampler, variant, label, predictions (N, H, W)) for every method variant, in the study's order."""
    return [(s, v, lab, pred) for s, d in data.items() for v, lab, pred in variants(d)]


def fig4_comparison(profile: str) -> Path:
    """Fig. 4: two examples, all methods side by side: whole image, then the red and the green zoomed boxes."""
    data = load(profile)
    first = next(iter(data.values()))
    methods = _methods(data)
    ncols = 2 + len(methods)
    examples = _examples(first, among=shared_rows(data))
    with style():
        fig, axes = plt.subplots(3 * len(examples), ncols, figsize=(1.05 * ncols, 3.3 * len(examples)), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for e, i in enumerate(examples):
            patient, sidx = first["patient"][i], int(first["slice_index"][i])
            boxes = _boxes(model_to_hu(first["target"][i, 0]), first["mask"][i])
            ct = unit(first["target"][i, 0])
            panels = [("T2w MR", mr_display(first["cond"][i, 0]), "")] if "cond" in first else []
            panels += [("CT (truth)", ct, f"{patient} / {sidx}")]
            for s, v, lab, pred in methods:
                k = slice_of(data[s], patient, sidx)
                if k is not None:
                    img = unit(pred[k])
                    panels.append((lab, img, f"{M.unit_ssim(ct, img):.3f}"))
            for c, (name, img, note) in enumerate(panels):
                ax = axes[3 * e, c]
                image(ax, img, name if e == 0 else "")
                ax.set_xlabel(note, fontsize=6, labelpad=1)
                ax.axis("on")
                for (r0, c0, sz), col in zip(boxes, ("red", "green")):
                    ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), sz, sz, fill=False, edgecolor=col, linewidth=0.8))
                for z, ((r0, c0, sz), col) in enumerate(zip(boxes, ("red", "green")), start=1):
                    zax = axes[3 * e + z, c]
                    image(zax, img[r0:r0 + sz, c0:c0 + sz])
                    zax.axis("on")
                    for spine in zax.spines.values():
                        spine.set_visible(True)
                        spine.set_edgecolor(col)
                        spine.set_linewidth(1.5)
        fig.suptitle(f"Fig. 4 — two examples, all methods; rows: whole image, red box (bone cortex), green box "
                     f"(gas in the body, else the busiest region); {CT_WINDOW}; "
                     "number under each image: SSIM vs CT", y=1.0)
        return save(fig, profile, "fig4_comparison")


def fig_hu_error_maps(profile: str, limit_hu: float = 500.0) -> Path:
    """Beyond the study: signed error sCT − CT in HU of every method for one slice (±limit_hu window)."""
    data = load(profile)
    first = next(iter(data.values()))
    i = _examples(first, 1, among=shared_rows(data))[0]
    patient, sidx = first["patient"][i], int(first["slice_index"][i])
    ct_hu, mask = model_to_hu(first["target"][i, 0]), first["mask"][i]
    rows = {"single": [], "mc_mean": []}
    for s, v, lab, pred in _methods(data):
        k = slice_of(data[s], patient, sidx)
        if k is not None:
            rows[v].append((lab, model_to_hu(pred[k])))
    ncols = max(len(rows["single"]), len(rows["mc_mean"]), 1)
    nrows = 1 + bool(rows["mc_mean"])
    with style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(1.35 * ncols + 0.8, 1.6 * nrows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        im = None
        for r, v in enumerate(("single", "mc_mean")[:nrows]):
            for c, (lab, sct) in enumerate(rows[v]):
                mae = M.synthrad_mae(ct_hu, sct, mask) if mask.any() else float("nan")
                im = image(axes[r, c], sct - ct_hu, f"{lab}\nMAE {mae:.0f} HU", cmap="RdBu_r", vmin=-limit_hu,
                           vmax=limit_hu)
        fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03, label="sCT − CT (HU)")
        fig.suptitle(f"HU error maps (patient {patient}, slice {sidx}); window ±{limit_hu:.0f} HU; "
                     "MAE inside the body mask", y=1.02)
        return save(fig, profile, "fig_hu_error_maps")


def fig_quality_vs_nfe(profile: str) -> Path:
    """Beyond the study: MAE (HU) and SSIM against network evaluations per estimate (K × NFE for -M), log x."""
    s = load_summary(profile)
    with style():
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        for ax, col, ylabel in ((axes[0], "mae", "MAE in body (HU)"), (axes[1], "paper_ssim", "SSIM ([0, 1] scale)")):
            plotted = 0
            for r in s.itertuples():
                x = r.nfe * (r.K if r.variant == "mc_mean" else 1)
                y = getattr(r, f"{col}_mean")
                if not (np.isfinite(x) and np.isfinite(y)):      # e.g. MAE in HU when the target is an MR
                    continue
                plotted += 1
                ax.scatter(x, y, color=color(r.sampler), marker="s" if r.variant == "mc_mean" else "o",
                           edgecolor="black", linewidth=0.5, s=36, zorder=3)
                ax.annotate(r.label, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=6)
            if not plotted:
                ax.text(0.5, 0.5, f"{ylabel}: not defined for this direction", ha="center", va="center",
                        transform=ax.transAxes, fontsize=8)
                continue
            ax.set_xscale("log")
            ax.set_xlabel("network evaluations per estimate (NFE; × K for -M)")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3, which="both")
        axes[0].scatter([], [], marker="o", color="grey", label="single sample")
        axes[0].scatter([], [], marker="s", color="grey", label="MC mean (-M)")
        axes[0].legend(loc="best")
        fig.suptitle(f"Quality against cost, profile {profile}: all samplers incl. fast ones (MAE: SynthRAD2023 "
                     f"in HU; SSIM: {CT_WINDOW})", y=1.02)
        fig.tight_layout()
        return save(fig, profile, "fig_quality_vs_nfe")


def fig_sparsification(profile: str, n: int = 20) -> Path:
    """Beyond the study: sparsification curves (remove body pixels by MC std vs by true error), AUSE in legend."""
    data = load(profile, mc=True)
    with style():
        fig, ax = plt.subplots(figsize=(5.2, 3.6))
        for s, d in data.items():
            std = std_to_hu(d["std"][:, 0])
            err = std_to_hu(np.abs(d["mean"][:, 0] - d["target"][:, 0]))
            f, curve, oracle = M.sparsification(std, err, d["mask"], n)
            area = float(np.trapezoid(curve - oracle, f))
            ax.plot(f, curve, color=color(s), label=f"{label(s, True)} (AUSE {area:.1f} HU)")
            ax.plot(f, oracle, color=color(s), linestyle="--", linewidth=0.8)
        ax.set_xlabel("fraction of body pixels removed (highest uncertainty first)")
        ax.set_ylabel("MAE of the remaining pixels (HU)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.grid(alpha=0.3)
        ax.set_title(f"Uncertainty calibration, profile {profile}: sparsification of the MC mean's |error| "
                     "(HU),\nbody pixels of all test slices pooled; solid: removed by MC std, dashed: oracle")
        return save(fig, profile, "fig_sparsification")


def _volume(d: dict[str, Any], patient: str, pred: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(z, y, x) stack of one patient's rows in slice order (the target, or `pred`), and their slice indices."""
    idx = np.flatnonzero(d["patient"] == patient)
    idx = idx[np.argsort(d["slice_index"][idx], kind="stable")]
    src = d["target"][:, 0] if pred is None else pred
    return np.asarray(src[idx]), d["slice_index"][idx]


def _three_views(vol: np.ndarray) -> list[np.ndarray]:
    """Axial (middle slice), coronal (through the middle row) and sagittal (middle column) planes, head up."""
    z, h, w = vol.shape
    return [vol[z // 2], vol[::-1, h // 2, :], vol[::-1, :, w // 2]]


def _z_aspect(profile: str, patient: str, size: int) -> float:
    """Slice thickness over the in-plane pixel of a patient's prepared volume (1 when the manifest says nothing)."""
    from ctmri.data.slices import load_manifest
    from ctmri.data.readers import DataError

    try:
        vol = load_manifest(profile)["volumes"][patient]
    except (DataError, KeyError):
        return 1.0
    (nz, ny, nx), (dz, dy, dx) = vol["shape"], vol["spacing_mm"]
    return float(dz) / (max(ny * dy, nx * dx) / size)


def fig_volume_views(profile: str, limit_hu: float = 300.0) -> Path:
    """Beyond the study: one test patient's volume in axial, coronal and sagittal views: MR, CT, the baselines' sCT
    and |error|, the default sampler's single sample, MC mean, its |error| and MC std."""
    from ctmri.diffusion.samplers import default_sampler

    data = {s: d for s, d in load(profile).items() if d["evaluation"] == "volumes"}
    if not data:
        raise MissingInput("no samples on the whole test volumes")
    first = next(iter(data.values()))
    patient = first["patient"][0]
    ct, zs = _volume(first, patient)
    if len(zs) < 3 or np.any(np.diff(zs) != 1):
        raise MissingInput(f"patient {patient}'s test slices are not a contiguous volume")
    ct_hu = model_to_hu(ct)
    rows: list[tuple[str, np.ndarray, dict]] = [("T2w MR", mr_display(_volume(first, patient, first["cond"][:, 0])[0]),
                                                 {}), ("CT (truth)", unit(ct), {})]
    gray, err = {}, {"cmap": "magma", "vmin": 0, "vmax": limit_hu}
    main = default_sampler()
    for s, d in data.items():
        if s in SAMPLERS and SAMPLERS[s].one_pass:               # the baselines beside the default sampler
            sct = _volume(d, patient, d["samples"][:, 0, 0])[0]
            rows += [(label(s), unit(sct), gray), (f"|{label(s)} − CT| (HU)", np.abs(model_to_hu(sct) - ct_hu), err)]
    if main in data:
        d = data[main]
        single = _volume(d, patient, d["samples"][:, 0, 0])[0]
        rows.append((label(main), unit(single), gray))
        if d["K"] > 1:
            mean = _volume(d, patient, d["mean"][:, 0])[0]
            rows += [(label(main, True), unit(mean), gray),
                     (f"|{label(main, True)} − CT| (HU)", np.abs(model_to_hu(mean) - ct_hu), err),
                     (f"MC std (HU), K = {d['K']}", std_to_hu(_volume(d, patient, d["std"][:, 0])[0]), err)]
    titles = ("axial", "coronal", "sagittal")
    aspect = _z_aspect(profile, patient, ct.shape[-1])
    with style():
        fig, axes = plt.subplots(len(rows), 3, figsize=(5.6, 1.5 * len(rows)), squeeze=False, layout="constrained")
        for r, (name, vol, kw) in enumerate(rows):
            for c, view in enumerate(_three_views(vol)):
                im = image(axes[r, c], view, titles[c] if r == 0 else "", **kw)
                axes[r, c].set_aspect(aspect if c else 1.0)
            axes[r, 0].set_ylabel(name, fontsize=6)
            if kw:
                fig.colorbar(im, ax=axes[r, :].tolist(), fraction=0.03, pad=0.01)
        fig.suptitle(f"Volume views, test patient {patient} ({len(zs)} contiguous slices): the baselines and the "
                     f"default sampler\n{CT_WINDOW}; errors and std in [0, {limit_hu:.0f}] HU")
        return save(fig, profile, "fig_volume_views")


FIGURES: tuple[Callable[[str], Path], ...] = (fig1_trajectories, fig2_mc_samples, fig3_bars, fig4_comparison,
                                              fig_hu_error_maps, fig_quality_vs_nfe, fig_sparsification,
                                              fig_volume_views)


def make_all_figures(profile: str) -> list[Path]:
    """Every figure whose inputs exist (PNG paths; PDFs beside them); the others are skipped with a note."""
    made = []
    for fn in FIGURES:
        try:
            made.append(fn(profile))
        except MissingInput as exc:
            print(f"Skipped {fn.__name__}: {exc}.")
    return made
