"""The calibration figure (issue 19, 04_figures): does the uncertainty say where the sCT is wrong, and do the
calibrated intervals hold? Sparsification curves of the default sampler (the error left after removing the voxels
ranked most uncertain by the raw MC std, by the calibrated uncertainty u and by the HU factor alone, against the
oracle that removes the largest errors), coverage per tissue of each method's default sampler against the 1 − α
target, and the MC std, |error|, u and the half-width on an axial slice of one test patient →
figures/<profile>/fig_calibration.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ctmri.evaluate import metrics as M
from ctmri.diffusion.samplers import default_sampler
from ctmri.evaluate.calibration import TISSUES
from ctmri.evaluate.uncertainty_report import ALPHA, TISSUE_COLUMNS, calibration_results, hu_arrays
from ctmri.figures.style import color, plt, save, style

NAME = "fig_calibration"


def plot_calibration(profile: str, alpha: float = ALPHA, results: list[dict] | None = None) -> Path | None:
    """Draw and save the figure; None (nothing drawn) when no sampler has calibration samples."""
    results = calibration_results(profile, alpha) if results is None else results
    if not results:
        print(f"fig_calibration skipped: no calibration samples in runs/{profile}/calibration/ "
              "(DataConfig.n_val_patients = 0, or no calibrated sampler sampled).")
        return None
    with style():
        fig = plt.figure(figsize=(11.0, 6.2))
        grid = fig.add_gridspec(2, 4, height_ratios=(1.0, 1.1))
        ax_sp, ax_cov = fig.add_subplot(grid[0, :2]), fig.add_subplot(grid[0, 2:])
        r = results[0]
        t = hu_arrays(r["test"])
        cal, err = r["calibration"], t["ct"] - t["mean"]
        pooled = r["rows"][0]
        curves = [(t["std"], "-", f"by MC std (ρ {pooled['spearman']:.2f})"),
                  (cal.uncertainty(t["mean"], t["std"]), "-", f"by calibrated u (ρ {pooled['spearman_calibrated']:.2f})"),
                  (cal.uncertainty(t["mean"], np.zeros_like(t["std"])), "--",
                   f"by HU factor alone (ρ {pooled['spearman_hu_factor']:.2f})")]
        for k, (unc, ls, label) in enumerate(curves):
            f, by_unc, oracle = M.sparsification(unc, err, t["mask"], n=20)
            ax_sp.plot(100 * f, by_unc, ls, color=f"C{k}", label=label)
        ax_sp.plot(100 * f, oracle, ":", color="k", label="oracle (by |error|)")
        ax_sp.set(xlabel="voxels removed, most uncertain first (%)", ylabel="MAE of the rest (HU)",
                  title=f"{r['label']}: sparsification on the test voxels (pooled)")
        ax_sp.legend(frameon=False, loc="best")
        shown = [x for x in results if x["sampler"] == default_sampler(x["method"])] or results[:1]
        width = 0.8 / len(shown)
        for j, x in enumerate(shown):
            p = x["rows"][0]
            values = [100 * p["coverage"]] + [100 * p[c] for c in TISSUE_COLUMNS.values()]
            ax_cov.bar(np.arange(len(values)) + (j - (len(shown) - 1) / 2) * width, values, width,
                       color=color(x["sampler"]), label=x["label"])
        ax_cov.axhline(100 * (1 - alpha), color="k", lw=0.8, ls="--")
        ax_cov.set_xticks(range(len(TISSUES) + 1), ["all", *TISSUES])
        ax_cov.set(ylim=(0, 118), yticks=range(0, 101, 20), ylabel="coverage (%)",
                   title=f"{round(100 * (1 - alpha))} % intervals on the test patients (tissue of the CT)")
        ax_cov.legend(frameon=False, loc="upper center", ncol=len(shown), fontsize="small")

        test = r["test"]
        patient = np.asarray(test["patient"]).astype(str)
        rows = np.flatnonzero(patient == sorted(set(patient))[0])
        i = int(rows[len(rows) // 2])
        m = t["mask"][i]
        abs_err = np.abs(err[i])
        panels = [(np.where(m, t["std"][i], 0), f"{r['label']}: MC std (HU)"),
                  (np.where(m, abs_err, 0), "|sCT − CT| (HU)"),
                  (np.where(m, cal.uncertainty(t["mean"][i], t["std"][i]), 0), "calibrated u (HU)"),
                  (np.where(m, cal.half_width(t["mean"][i], t["std"][i]), 0),
                   f"{round(100 * (1 - alpha))} % half-width q·u (HU)")]
        vmax = float(np.percentile(abs_err[m], 99)) if m.any() else 1.0
        for k, (img, title) in enumerate(panels):
            ax = fig.add_subplot(grid[1, k])
            top = vmax if k == 1 else float(np.percentile(img[m], 99)) if m.any() else 1.0
            im = ax.imshow(img, cmap="magma", vmin=0, vmax=max(top, 1e-6))
            ax.set_title(f"{title}\n{patient[i]}, slice {int(np.asarray(test['slice_index'])[i])}")
            ax.axis("off")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        fig.tight_layout()
        return save(fig, profile, NAME)
