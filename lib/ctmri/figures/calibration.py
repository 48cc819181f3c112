"""The calibration figure (issue 19, 04_figures): does the MC std say where the sCT is wrong, and do the calibrated
intervals hold? Sparsification curves (the error left after removing the voxels ranked most uncertain, against the
oracle that removes the largest errors), coverage per tissue against the 1 − α target, and the MC std beside the
|error| beside the calibrated half-width on an axial slice of one test patient → figures/<profile>/fig_calibration.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ctmri.evaluate import metrics as M
from ctmri.evaluate.calibration import TISSUES
from ctmri.evaluate.uncertainty_report import ALPHA, TISSUE_COLUMNS, calibration_results, hu_arrays
from ctmri.figures.study import color, plt, save, style

NAME = "fig_calibration"


def plot_calibration(profile: str, alpha: float = ALPHA, results: list[dict] | None = None) -> Path | None:
    """Draw and save the figure; None (nothing drawn) when no sampler has calibration samples."""
    results = calibration_results(profile, alpha) if results is None else results
    if not results:
        print(f"fig_calibration skipped: no calibration samples in runs/{profile}/calibration/ "
              "(DataConfig.n_val_patients = 0, or no calibrated sampler sampled).")
        return None
    with style():
        fig = plt.figure(figsize=(9.5, 6.0))
        grid = fig.add_gridspec(2, 3, height_ratios=(1.0, 1.1))
        ax_sp, ax_cov = fig.add_subplot(grid[0, :2]), fig.add_subplot(grid[0, 2])
        width = 0.8 / len(results)
        for j, r in enumerate(results):
            t = hu_arrays(r["test"])
            f, by_std, oracle = M.sparsification(t["std"], t["ct"] - t["mean"], t["mask"], n=20)
            pooled = r["rows"][0]
            ax_sp.plot(100 * f, by_std, "-", color=color(r["sampler"]),
                       label=f"{r['label']} by std (ρ {pooled['spearman']:.2f}, AUSE {pooled['ause_hu']:.0f} HU)")
            ax_sp.plot(100 * f, oracle, ":", color=color(r["sampler"]), label=f"{r['label']} oracle")
            values = [100 * pooled["coverage"]] + [100 * pooled[c] for c in TISSUE_COLUMNS.values()]
            ax_cov.bar(np.arange(len(values)) + (j - (len(results) - 1) / 2) * width, values, width,
                       color=color(r["sampler"]), label=r["label"])
        ax_sp.set(xlabel="voxels removed, most uncertain first (%)", ylabel="MAE of the rest (HU)",
                  title="Sparsification on the test voxels (pooled)")
        ax_sp.legend(ncol=2, frameon=False, loc="best")
        ax_cov.axhline(100 * (1 - alpha), color="k", lw=0.8, ls="--")
        ax_cov.set_xticks(range(len(TISSUES) + 1), ["all", *TISSUES], rotation=30)
        ax_cov.set(ylim=(0, 100), ylabel="coverage (%)",
                   title=f"{round(100 * (1 - alpha))} % intervals on the test patients")

        r = results[0]
        t, test = hu_arrays(r["test"]), r["test"]
        patient = np.asarray(test["patient"]).astype(str)
        rows = np.flatnonzero(patient == sorted(set(patient))[0])
        i = int(rows[len(rows) // 2])
        half = r["calibration"].half_width(t["mean"][i], t["std"][i])
        m = t["mask"][i]
        err = np.abs(t["ct"][i] - t["mean"][i])
        panels = [(np.where(m, t["std"][i], 0), f"{r['label']}: MC std (HU)"),
                  (np.where(m, err, 0), "|sCT − CT| (HU)"),
                  (np.where(m, half, 0), f"calibrated {round(100 * (1 - alpha))} % half-width (HU)")]
        vmax = float(np.percentile(np.where(m, err, 0)[m], 99)) if m.any() else 1.0
        for k, (img, title) in enumerate(panels):
            ax = fig.add_subplot(grid[1, k])
            top = vmax if k == 1 else float(np.percentile(img[m], 99)) if m.any() else 1.0
            im = ax.imshow(img, cmap="magma", vmin=0, vmax=max(top, 1e-6))
            ax.set_title(f"{title}\n{patient[i]}, slice {int(np.asarray(test['slice_index'])[i])}")
            ax.axis("off")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        fig.tight_layout()
        return save(fig, profile, NAME)
