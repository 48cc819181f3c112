"""Figures beyond the study: signed HU error maps, quality against network calls, sparsification of the MC std, and
axial / coronal / sagittal views of whole test volumes (figures/style.py for the shared style)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ctmri.data.intensity import model_to_hu, std_to_hu
from ctmri.evaluate import metrics as M
from ctmri.evaluate.methods import label
from ctmri.diffusion.samplers import SAMPLERS
from ctmri.figures.style import (CT_WINDOW, MissingInput, color, example_slices, image, load, load_summary, mr_display,
                                 plt, save, shared_rows, shown_methods, slice_of, style, unit)


def fig_hu_error_maps(profile: str, limit_hu: float = 500.0) -> Path:
    """Beyond the study: signed error sCT − CT in HU of every method for one slice (±limit_hu window)."""
    data = load(profile)
    first = next(iter(data.values()))
    i = example_slices(first, 1, among=shared_rows(data))[0]
    patient, sidx = first["patient"][i], int(first["slice_index"][i])
    ct_hu, mask = model_to_hu(first["target"][i, 0]), first["mask"][i]
    rows = {"single": [], "mc_mean": []}
    for s, v, lab, pred in shown_methods(data):
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


def fig_training_curves(profile: str) -> Path:
    """Beyond the study (issue 25): each method's validation MAE against training step, the last fifth shaded, with
    its convergence verdict (evaluate/convergence.py)."""
    from ctmri.diffusion.samplers import default_sampler
    from ctmri.evaluate.convergence import LAST_FRACTION, convergence_table
    from ctmri.paths import run_dir

    ckpts = run_dir(profile) / "checkpoints"
    table = convergence_table(ckpts)
    if table.empty:
        raise MissingInput(f"no validation curves (<method>_val.csv) in {ckpts}")
    import pandas as pd

    with style():
        fig, ax = plt.subplots(figsize=(5.2, 3.2), constrained_layout=True)
        for r in table.itertuples():
            c = pd.read_csv(ckpts / f"{r.method}_val.csv")
            verdict = {True: "converged", False: f"still moving {100 * r.change:+.1f} %"}.get(r.converged, "unknown")
            ax.plot(c["step"], c["val_mae_hu"], "o-", ms=3, color=color(default_sampler(r.method)),
                    label=f"{label(default_sampler(r.method))} ({verdict})")
        last = max(table["final_step"])
        ax.axvspan((1 - LAST_FRACTION) * last, last, color="0.9", zorder=0)
        ax.set_xlabel("training step")
        ax.set_ylabel("validation MAE (HU, body)")
        ax.set_yscale("log")
        ax.legend(frameon=False)
        ax.set_title(f"Training curves ({profile}): default sampler, one sample per validation slice; shaded: the "
                     "last fifth", fontsize=7)
        return save(fig, profile, "fig_training_curves")
