"""The figures' shared style and helpers: one rc style, one colour per sampler, the CT display window, saving PNG +
PDF, loading samples and the summary, image panels. Colours are the Okabe-Ito colour-blind-safe palette, one fixed
colour per method (from the sampler registry)."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import matplotlib

if "ipykernel" not in sys.modules:  # headless (papermill runs inside ipykernel and keeps inline)
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ctmri.data.intensity import model_to_hu  # noqa: E402
from ctmri.evaluate.methods import ORDER, variants  # noqa: E402
from ctmri.paths import figures_dir, run_dir  # noqa: E402
from ctmri.provenance import save_figure  # noqa: E402
from ctmri.sample.store import load_samples, sample_files  # noqa: E402

# One colour per sampler in every figure (Okabe-Ito, then Tol's palette); tests/test_sampler_registry.py checks that
# every registered sampler has one.
COLORS = {"cnn": "#999999", "wgan": "#000000", "ddpm": "#E69F00", "em": "#009E73", "pc": "#CC79A7", "ode": "#56B4E9",
          "ddim": "#D55E00", "dpm++2m": "#0072B2", "heun": "#F0E442", "dpm++2m-ve": "#332288",
          "dpm++2m-sde": "#88CCEE", "heun-churn": "#999933", "denoise": "#AA4499"}
CT_WINDOW = "CT: HU window [−1024, 3000] shown as [0, 1]"
SOFT_TISSUE = (40.0, 400.0)                 # level, width (HU): fat, muscle, prostate and rectal wall apart
SOFT_WINDOW = "soft-tissue window W 400 / L 40 HU"
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


def soft_tissue(x: np.ndarray) -> np.ndarray:
    """Model space to [0, 1] in the soft-tissue window (W 400 / L 40 HU): where the study's window shows one grey."""
    level, width = SOFT_TISSUE
    return np.clip((model_to_hu(np.asarray(x, dtype=np.float64)) - (level - width / 2)) / width, 0, 1)


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


def shared_rows(data: dict[str, dict[str, Any]]) -> np.ndarray:
    """Rows of the first samples file whose (patient, slice) every file holds (the long samplers' subset)."""
    first = next(iter(data.values()))
    keys = [set(zip(d["patient"], d["slice_index"].tolist())) for d in data.values()]
    return np.array([i for i, k in enumerate(zip(first["patient"], first["slice_index"].tolist()))
                     if all(k in ks for ks in keys)], dtype=np.int64)


def example_slices(d: dict[str, Any], n: int = 2, among: np.ndarray | None = None) -> list[int]:
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


def shown_methods(data: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, np.ndarray]]:
    """(sampler, variant, label, predictions (N, H, W)) for every method variant, in the study's order."""
    return [(s, v, lab, pred) for s, d in data.items() for v, lab, pred in variants(d)]
