"""What the explorer draws: the panels of one state (sampler × frame × replicate × slice), HU windows, and the
kernel-free frame strip / animation for exported notebooks.

All images are shown in Hounsfield units on one fixed scale per row: x_t and x̂₀ are mapped from
model space with the CT map of the data (so the starting noise saturates the window and the frames
of one sampler, and of different samplers, compare directly), the std and |error| maps in HU with a
colour bar of their own that does not change across frames.
"""
from __future__ import annotations

import io
import re

import matplotlib.pyplot as plt
import numpy as np

from ctmri.data.intensity import HU_MAX, HU_MIN, HU_PER_UNIT, model_to_hu

# HU window presets: (low, high). Soft tissue W400 / L40, bone W1800 / L400.
WINDOWS = {"full": (HU_MIN, HU_MAX), "soft tissue": (-160.0, 240.0), "bone": (-500.0, 1300.0)}
MAPS = ("MC mean", "MC std", "|error|")


def frame_of(data: dict, fraction: float) -> int:
    """The recorded frame of a sampler at a fraction of its reverse process (0 = initial noise, 1 = final sample)."""
    n = data["trajectory"].shape[1] if has_trajectory(data) else 1
    return int(round(float(np.clip(fraction, 0.0, 1.0)) * (n - 1)))


def has_trajectory(data: dict) -> bool:
    return "trajectory" in data and np.size(data["trajectory"]) > 0


def readout(data: dict, frame: int, sep: str = " · ") -> str:
    """'step 35 / 100 · t = 652 · σ = 0.88 · NFE 35' for one recorded frame (or why there is none)."""
    if not has_trajectory(data):
        return "one pass (no reverse process), NFE 1"
    f = int(np.clip(frame, 0, data["trajectory"].shape[1] - 1))
    steps = data["trajectory_steps"]
    total = int(steps[-1])
    if f == len(steps) - 1:
        head = f"final sample · {total} steps"
    else:
        head = f"step {int(steps[f])} / {total}" + (" (initial noise)" if f == 0 else "")
    parts = [head]
    if "trajectory_t" in data:
        t, sig, nfe = (float(data[k][f]) for k in ("trajectory_t", "trajectory_sigma", "trajectory_nfe"))
        if f < len(steps) - 1:
            parts.append(f"t = {t:.0f}" if str(data.get("method", "")) == "ddpm" else f"t = {t:.3f}")
            parts.append(f"σ = {sig:.3g}")
        parts.append("NFE adaptive" if np.isnan(nfe) else f"NFE {nfe:.0f}")
    return sep.join(parts)


def panels(data: dict, *, frame: int, replicate: int, pos: int, view: str,
           traj: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray | None]:
    """The arrays one sampler column shows (HU): x_t, x0_hat at `frame`, replicate `replicate`, and the `view` map.

    pos: the slice's position in the samples file. traj: (x_t, x0) frames (F, H, W) of this slice and
    replicate when given (regenerated for replicate > 0), else the recorded replicate-0 trajectory.
    """
    k = int(np.clip(replicate, 0, data["samples"].shape[1] - 1))
    out: dict[str, np.ndarray | None] = {"x_t": None, "x0_hat": None}
    if traj is None and has_trajectory(data):
        s = trajectory_position(data, pos)
        if s is not None:
            traj = (data["trajectory"][s, :, 0], data["trajectory_x0"][s, :, 0])
    if traj is not None:
        f = int(np.clip(frame, 0, traj[0].shape[0] - 1))
        out["x_t"], out["x0_hat"] = model_to_hu(traj[0][f]), model_to_hu(traj[1][f])
    out["replicate"] = model_to_hu(data["samples"][pos, k, 0])
    target = model_to_hu(data["target"][pos, 0])
    mean = model_to_hu(data["mean"][pos, 0])
    out["map"] = {"MC mean": mean, "MC std": data["std"][pos, 0] * HU_PER_UNIT,
                  "|error|": np.abs(mean - target)}[view]
    return out


def trajectory_position(data: dict, pos: int) -> int | None:
    """Index into `trajectory` of the slice at position `pos` (None when it was not recorded)."""
    hits = np.flatnonzero(np.asarray(data.get("trajectory_slices", [])) == pos)
    return int(hits[0]) if hits.size else None


ROWS = (("x_t", "x_t (noisy state)"), ("x0_hat", "x̂₀ predicted from x_t"), ("replicate", "MC replicate"),
        ("map", None))


def draw(columns: dict[str, dict], reference: dict[str, np.ndarray], *, window: str, view: str,
         std_max: float, err_max: float, titles: dict[str, str], replicate: int) -> plt.Figure:
    """One figure: a reference column (MR, true CT) and one column per sampler with the rows of `ROWS`."""
    lo, hi = WINDOWS[window]
    h = next(iter(reference.values())).shape[0]
    size = float(np.clip(h / 100.0, 2.3, 4.0))
    ncol = len(columns) + 1
    fig, axes = plt.subplots(len(ROWS), ncol, figsize=(size * ncol + 0.8, size * len(ROWS) + 0.6), squeeze=False,
                             layout="constrained")
    map_scale = {"MC mean": ("gray", lo, hi), "MC std": ("magma", 0.0, std_max), "|error|": ("inferno", 0.0, err_max)}
    ref = [("MR condition", reference["mr"], "gray", None, None), ("true CT (HU)", reference["ct"], "gray", lo, hi)]
    for r in range(len(ROWS)):
        ax = axes[r, 0]
        ax.axis("off")
        if r < len(ref):
            title, img, cmap, vlo, vhi = ref[r]
            ax.imshow(img, cmap=cmap, vmin=vlo, vmax=vhi)
            ax.set_title(title, fontsize=9)
    last_im = {}
    for c, (name, col) in enumerate(columns.items(), start=1):
        for r, (key, label) in enumerate(ROWS):
            ax = axes[r, c]
            ax.axis("off")
            img = col.get(key)
            cmap, vlo, vhi = map_scale[view] if key == "map" else ("gray", lo, hi)
            label = {"map": f"{view} (HU)", "replicate": f"replicate {replicate} (final)"}.get(key, label)
            if img is None:
                msg = "one pass:\nno reverse process" if col.get("one_pass") else "no trajectory of\nthis replicate here"
                ax.text(0.5, 0.5, msg, ha="center", va="center", fontsize=9, transform=ax.transAxes)
                ax.set_title(f"{name}: {label}", fontsize=8)
                continue
            last_im[key] = ax.imshow(img, cmap=cmap, vmin=vlo, vmax=vhi)
            ax.set_title(f"{name}: {label}" if r else f"{name}\n{titles.get(name, '')}\n{label}", fontsize=8)
    for r, (key, _) in enumerate(ROWS):
        if key in last_im:
            unit = "HU" if key != "map" or view == "MC mean" else f"{view} HU"
            fig.colorbar(last_im[key], ax=axes[r, -1], fraction=0.046, pad=0.02, label=unit)
    return fig


DPI = 90


def png_bytes(fig: plt.Figure, dpi: int = DPI) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def frame_strip(data: dict[str, dict], pos: int = 0, n_frames: int = 6, window: str = "full") -> plt.Figure:
    """Static strip: x̂₀ (top) and x_t (bottom) of each sampler at `n_frames` frames from noise to the final sample."""
    lo, hi = WINDOWS[window]
    names = [n for n, d in data.items() if has_trajectory(d)]
    fig, axes = plt.subplots(2 * len(names), n_frames, figsize=(1.6 * n_frames, 3.4 * len(names)), squeeze=False,
                             layout="constrained")
    for r, name in enumerate(names):
        d = data[name]
        s = trajectory_position(d, pos)
        s = 0 if s is None else s
        n = d["trajectory"].shape[1]
        for c, f in enumerate(np.unique(np.round(np.linspace(0, n - 1, n_frames)).astype(int))):
            for row, key in ((2 * r, "trajectory_x0"), (2 * r + 1, "trajectory")):
                ax = axes[row, c]
                ax.imshow(model_to_hu(d[key][s, f, 0]), cmap="gray", vmin=lo, vmax=hi)
                ax.set_title(f"{name} {'x̂₀' if key.endswith('x0') else 'x_t'}\n{readout(d, f)}", fontsize=6)
        for ax in axes[2 * r:2 * r + 2].ravel():
            ax.axis("off")
    return fig


def animation_html(data: dict[str, dict], pos: int = 0, window: str = "full", fps: int = 4) -> str:
    """A self-contained JavaScript animation (matplotlib jshtml: inline PNG frames, no CDN) of x_t and x̂₀ per sampler."""
    from matplotlib.animation import FuncAnimation

    lo, hi = WINDOWS[window]
    names = [n for n, d in data.items() if has_trajectory(d)]
    n_max = max(data[n]["trajectory"].shape[1] for n in names)
    fig, axes = plt.subplots(2, len(names), figsize=(2.4 * len(names), 5.0), squeeze=False, layout="constrained")
    ims = []
    for c, name in enumerate(names):
        s = trajectory_position(data[name], pos) or 0
        for r, key in enumerate(("trajectory", "trajectory_x0")):
            axes[r, c].axis("off")
            ims.append((axes[r, c], name, key, s, axes[r, c].imshow(model_to_hu(data[name][key][s, 0, 0]), cmap="gray",
                                                                   vmin=lo, vmax=hi)))

    def update(i: int):
        for ax, name, key, s, im in ims:
            f = frame_of(data[name], i / max(n_max - 1, 1))
            im.set_data(model_to_hu(data[name][key][s, f, 0]))
            ax.set_title(f"{name} {'x̂₀' if key.endswith('x0') else 'x_t'}\n{readout(data[name], f)}", fontsize=7)
        return [im for *_, im in ims]

    anim = FuncAnimation(fig, update, frames=n_max, interval=1000 // fps, blit=False)
    html = anim.to_jshtml(fps=fps, default_mode="once")
    plt.close(fig)
    return offline(html)


# matplotlib's player draws its buttons with Font Awesome from a CDN: offline they would be blank.
_ICONS = {"fa fa-minus": "−", "fa fa-fast-backward": "|◀◀", "fa fa-step-backward": "◀|",
          "fa fa-play fa-flip-horizontal": "◀", "fa fa-pause": "||", "fa fa-play": "▶",
          "fa fa-step-forward": "|▶", "fa fa-fast-forward": "▶▶|", "fa fa-plus": "+"}


def offline(html: str) -> str:
    """The jshtml player without its CDN stylesheet, its icons as plain characters."""
    html = re.sub(r'<link rel="stylesheet"\s+href="https://[^"]*font-awesome[^"]*">', "", html)
    for cls, char in _ICONS.items():
        html = html.replace(f'<i class="{cls}"></i>', char)
    return html

