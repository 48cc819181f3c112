"""The dose stage's figures (issue 18): dose-difference maps and DVHs per modality; MC dose std next to |dose error|."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ctmri import paths
from ctmri.provenance import save_figure


def make_dose_figures(profile: str) -> list[Path]:
    """figures/<profile>/fig_dose.png (CT dose, sCT − CT, DVHs) and fig_dose_uncertainty.png (std, |error|)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = dict(np.load(paths.run_dir(profile) / "dose_figure.npz"))
    keys = sorted({k.rsplit("|", 1)[0] for k in data if k.endswith("|ct")})
    out = paths.figures_dir(profile)
    out.mkdir(parents=True, exist_ok=True)
    made = []
    fig, axes = plt.subplots(len(keys), 3, figsize=(12, 3.3 * max(len(keys), 1)), squeeze=False, layout="constrained")
    for row, key in zip(axes, keys):
        ct, sct = data[key + "|ct"], data[key + "|sct"]
        lim = max(float(np.abs(sct - ct).max()), 1e-6)
        row[0].imshow(ct, cmap="jet"), row[0].set_title(f"{key.replace('|', ' · ')}: CT dose (Gy)", fontsize=8)
        im = row[1].imshow(sct - ct, cmap="RdBu_r", vmin=-lim, vmax=lim)
        row[1].set_title("sCT − CT dose (Gy)", fontsize=8)
        fig.colorbar(im, ax=row[1], fraction=0.046)
        for k in sorted(k for k in data if k.startswith(key + "|dvh_ct|")):
            name = k.rsplit("|", 1)[1]
            line, = row[2].plot(data[key + "|bins"], data[k], label=name)
            row[2].plot(data[key + "|bins"], data[f"{key}|dvh_sct|{name}"], "--", color=line.get_color())
        row[2].set(xlabel="dose (Gy)", ylabel="volume (%)")
        row[2].set_title("DVH: CT (solid), sCT (dashed)", fontsize=8)
        row[2].legend(fontsize=6)
        for a in row[:2]:
            a.axis("off")
    made.append(save_figure(fig, out / "fig_dose"))
    plt.close(fig)
    skeys = [k for k in keys if k + "|std" in data]
    if skeys:
        fig, axes = plt.subplots(len(skeys), 2, figsize=(7, 3.3 * len(skeys)), squeeze=False, layout="constrained")
        for row, key in zip(axes, skeys):
            a = row[0].imshow(data[key + "|std"], cmap="magma")
            row[0].set_title(f"{key.replace('|', ' · ')}: MC dose std (Gy)", fontsize=8)
            fig.colorbar(a, ax=row[0], fraction=0.046)
            b = row[1].imshow(np.abs(data[key + "|sct"] - data[key + "|ct"]), cmap="magma")
            row[1].set_title("|dose error| (Gy)", fontsize=8)
            fig.colorbar(b, ax=row[1], fraction=0.046)
            for ax in row:
                ax.axis("off")
        made.append(save_figure(fig, out / "fig_dose_uncertainty"))
        plt.close(fig)
    return made
