"""JupyterLab explorer: scrub the reverse-diffusion trajectory and the MC replicates of a sampled slice."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ctmri import paths


def load_samples(profile: str, sampler: str) -> dict[str, np.ndarray]:
    """Arrays of runs/<profile>/samples/<sampler>.npz, with a clear error when it was not sampled yet."""
    path = paths.samples_path(profile, sampler)
    if not path.exists():
        raise FileNotFoundError(f"No samples at {path}; run `make sample PROFILE={profile}` or "
                                f"`ctmri sample --profile {profile} --sampler {sampler}` first.")
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def show_frame(data: dict[str, np.ndarray], frame: int, replicate: int = 0, slice_pos: int = 0,
               ax: np.ndarray | None = None) -> plt.Figure:
    """One view: MR condition, x_t at trajectory frame `frame`, its x0 prediction, a replicate, and the truth."""
    has_traj = "trajectory" in data and data["trajectory"].size > 0
    fig, ax = plt.subplots(1, 5, figsize=(12, 2.8)) if ax is None else (ax.flat[0].figure, ax)
    i = int(data["trajectory_slices"][slice_pos]) if has_traj else 0
    panels = [(data["cond"][i, 0], "MR condition", (-1, 1))]
    if has_traj:
        f = int(np.clip(frame, 0, data["trajectory"].shape[1] - 1))
        step = int(data["trajectory_steps"][f])
        x_t = data["trajectory"][slice_pos, f, 0]
        panels += [(x_t, f"x_t, step {step}", (x_t.min(), x_t.max())),
                   (data["trajectory_x0"][slice_pos, f, 0], "predicted x0", (-1, 1))]
    else:
        panels += [(np.zeros_like(data["cond"][i, 0]), "no trajectory", (0, 1))] * 2
    k = int(np.clip(replicate, 0, data["samples"].shape[1] - 1))
    panels += [(data["samples"][i, k, 0], f"MC replicate {k}", (-1, 1)), (data["target"][i, 0], "true CT", (-1, 1))]
    for a, (img, title, (lo, hi)) in zip(np.ravel(ax), panels):
        a.clear()
        a.imshow(img, cmap="gray", vmin=lo, vmax=hi)
        a.set_title(title, fontsize=9)
        a.axis("off")
    return fig


def explorer(profile: str, sampler: str):
    """ipywidgets sliders over trajectory frame, MC replicate and trajectory slice; returns the widget box."""
    import ipywidgets as w

    data = load_samples(profile, sampler)
    n_frames = data["trajectory"].shape[1] if "trajectory" in data and data["trajectory"].size else 1
    n_slices = len(data["trajectory_slices"]) if "trajectory_slices" in data else 1
    out = w.Output()
    frame = w.IntSlider(0, 0, n_frames - 1, description="frame")
    rep = w.IntSlider(0, 0, data["samples"].shape[1] - 1, description="replicate")
    sl = w.IntSlider(0, 0, max(n_slices - 1, 0), description="slice")

    def redraw(_=None) -> None:
        with out:
            out.clear_output(wait=True)
            show_frame(data, frame.value, rep.value, sl.value)
            plt.show()

    for s in (frame, rep, sl):
        s.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([frame, rep, sl]), out])


def available_samplers(profile: str) -> list[str]:
    """Samplers whose samples exist for `profile`."""
    folder = paths.run_dir(profile) / "samples"
    return sorted(p.stem for p in Path(folder).glob("*.npz")) if folder.exists() else []
