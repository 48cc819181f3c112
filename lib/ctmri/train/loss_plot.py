"""The loss-curve figure of a training run (notebook 01): one panel per logged term."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd


def plot_loss_log(log: pd.DataFrame, method: str, title: str = "") -> plt.Figure:
    """Loss against optimiser step; WGAN-GP: MSE fidelity, critic loss (Gulrajani 2017 Alg. 1) and the adaptive
    adversarial weight side by side (the adversarial terms have no fixed sign or scale, so no log axis there)."""
    panels = [("loss", "log")] if method != "wgan" else [("mse", "log"), ("critic", "linear"), ("adv_weight", "log")]
    panels = [(c, s) for c, s in panels if c in log.columns]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.3), squeeze=False)
    for ax, (column, scale) in zip(axes[0], panels):
        ax.plot(log["step"], log[column], lw=1)
        ax.set_yscale(scale)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(f"{column} (mean over log window)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
