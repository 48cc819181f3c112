"""Figure of prepared data pairs (MR, CT, body mask) for 00_prepare_data."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ctmri.data.intensity import model_to_hu
from ctmri.data.slices import SliceSet


def plot_pairs(slices: SliceSet, indices: Sequence[int] | None = None, n: int = 4, ct_window: tuple = (-400, 1200)):
    """One row per slice: MR (model space), CT (HU, window `ct_window`), body mask; returns the Figure."""
    import matplotlib.pyplot as plt

    if indices is None:
        indices = np.unique(np.linspace(0, len(slices) - 1, min(n, len(slices))).round().astype(int))
    fig, axes = plt.subplots(len(indices), 3, figsize=(6.6, 2.2 * len(indices)), squeeze=False)
    for r, (row, i) in enumerate(zip(axes, indices)):
        ct = model_to_hu(slices.ct[i, 0])
        row[0].imshow(slices.mr[i, 0], cmap="gray", vmin=-1, vmax=1)
        row[1].imshow(ct, cmap="gray", vmin=ct_window[0], vmax=ct_window[1])
        row[2].imshow(slices.mask[i], cmap="gray", vmin=0, vmax=1)
        row[0].set_ylabel(f"{slices.patient[i]}\nslice {int(slices.slice_index[i])}", fontsize=8)
        for ax, title in zip(row, ("T2w MR", f"CT [{ct_window[0]}, {ct_window[1]}] HU", "body mask")):
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
