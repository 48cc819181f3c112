"""Figure of one slice's Monte-Carlo samples, mean and std map (for 02_sample)."""
from __future__ import annotations

from typing import Mapping

import numpy as np


def plot_mc_slice(samples: Mapping[str, np.ndarray], i: int = 0, n_samples: int = 3):
    """Condition, target, up to `n_samples` MC samples, MC mean and MC std of test slice i (model space); returns the Figure."""
    import matplotlib.pyplot as plt

    reps = samples["samples"][i, :n_samples, 0]
    panels = [("condition", samples["cond"][i, 0], "gray", (-1, 1)), ("target", samples["target"][i, 0], "gray", (-1, 1))]
    panels += [(f"sample {k}", r, "gray", (-1, 1)) for k, r in enumerate(reps)]
    panels += [("MC mean", samples["mean"][i, 0], "gray", (-1, 1)),
               ("MC std", samples["std"][i, 0], "magma", (0, max(float(samples["std"][i].max()), 1e-6)))]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.8 * len(panels), 2.1), squeeze=False)
    for ax, (title, img, cmap, (lo, hi)) in zip(axes[0], panels):
        im = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[0, -1], fraction=0.046)
    fig.suptitle(f"{samples['sampler']}: slice {i}, {samples['samples'].shape[1]} MC samples", fontsize=9)
    return fig
