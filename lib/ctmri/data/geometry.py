"""Physical geometry: an (S, P, L) volume at any voxel size ↔ the model's grid (size² pixels of `pixel_mm`, slices
`slice_mm` apart), by separable linear interpolation with a Gaussian anti-alias filter where a step grows.

The model's matrix is placed in the volume's voxel index space: centred on the field of view when the field of view
fits in it, else centred on the body (clamped inside the volume); a body wider than the matrix is refused. The
inverse (`to_source`) maps model-space slices back onto the exact input grid. docs/ARCHITECTURE.md, "Geometry".
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np

from ctmri.data.volumes import DataError

SAME_STEP = 1e-3        # relative difference of two spacings below which no resampling happens
FIT_TOLERANCE_MM = 1.0  # a body at most this much wider than the matrix still fits (partial-volume edges)


@dataclass(frozen=True)
class SliceGrid:
    """The model grid inside one (S, P, L) source volume: each model axis is source index = start + k · step."""

    source_shape: tuple[int, int, int]
    source_spacing: tuple[float, float, float]   # (S, P, L) mm
    size: int                                    # model matrix side (pixels)
    pixel_mm: float                              # model in-plane pixel (mm)
    n_slices: int                                # model slices
    start: tuple[float, float, float]            # source index (S, P, L) of model voxel (0, 0, 0)
    step: tuple[float, float, float]             # source voxels per model voxel along S, P, L

    @property
    def model_spacing(self) -> tuple[float, float, float]:
        """(S, P, L) mm of a model voxel."""
        return tuple(float(a * b) for a, b in zip(self.step, self.source_spacing))

    @property
    def resamples_z(self) -> bool:
        return not (self.n_slices == self.source_shape[0] and self.start[0] == 0.0 and self.step[0] == 1.0)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "SliceGrid":
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


def _axis_start(n: int, step: float, m: int, body: Optional[np.ndarray], axis_name: str, spacing: float,
                source: str) -> float:
    """Source index of model pixel 0 on one in-plane axis: the field of view centred, else the body centred."""
    half = (m - 1) / 2 * step
    if n * spacing <= m * step * spacing + 1e-6 or body is None or not body.any():
        centre = (n - 1) / 2
    else:
        idx = np.flatnonzero(body)
        width_mm = (idx[-1] - idx[0] + 1) * spacing
        if width_mm > m * step * spacing + FIT_TOLERANCE_MM:
            raise DataError(f"{source or 'The volume'}: the body is {width_mm:.0f} mm wide along {axis_name}, more than "
                            f"the {m * step * spacing:.0f} mm the model covers ({m} pixels of {step * spacing:g} mm); "
                            "crop the volume or pass a tighter --mask.")
        centre = (idx[0] + idx[-1]) / 2
        lo, hi = half - 0.5, n - 0.5 - half               # keep the model window inside the volume
        centre = float(np.clip(centre, lo, hi)) if lo <= hi else (n - 1) / 2
    start = centre - half
    return float(np.floor(start + 0.5)) if step == 1.0 else float(start)   # same pixel size: whole-voxel shifts


def plan_grid(shape: Sequence[int], spacing: Sequence[float], size: int, pixel_mm: float,
              slice_mm: Optional[float] = None, body: Optional[np.ndarray] = None, source: str = "") -> SliceGrid:
    """Where the model's size² grid of `pixel_mm` pixels (and slices `slice_mm` apart, None: the volume's own)
    lies in an (S, P, L) volume of `shape` voxels of `spacing` mm; `body` (S, P, L) centres a large field of view."""
    n_s, n_p, n_l = (int(v) for v in shape)
    sp = tuple(float(v) for v in spacing)
    if min(sp) <= 0 or pixel_mm <= 0 or (slice_mm is not None and slice_mm <= 0):
        raise DataError(f"{source or 'The volume'}: voxel size {sp} mm / model pixel {pixel_mm} mm must be positive.")
    step_p, step_l = pixel_mm / sp[1], pixel_mm / sp[2]
    step_p = 1.0 if abs(step_p - 1) < SAME_STEP else step_p
    step_l = 1.0 if abs(step_l - 1) < SAME_STEP else step_l
    body = None if body is None else np.asarray(body, bool)
    start_p = _axis_start(n_p, step_p, size, None if body is None else body.any(axis=(0, 2)), "P (rows)", sp[1],
                          source)
    start_l = _axis_start(n_l, step_l, size, None if body is None else body.any(axis=(0, 1)), "L (columns)", sp[2],
                          source)
    if slice_mm is None or abs(slice_mm / sp[0] - 1) < SAME_STEP or n_s == 1:
        step_s, n_model = 1.0, n_s
    else:
        step_s = slice_mm / sp[0]
        n_model = int(np.floor((n_s - 1) / step_s + 1e-6)) + 1
    return SliceGrid((n_s, n_p, n_l), sp, int(size), float(pixel_mm), n_model, (0.0, start_p, start_l),
                     (float(step_s), float(step_p), float(step_l)))


def _interp_matrix(n_src: int, coords: np.ndarray, clamp: bool) -> tuple[np.ndarray, np.ndarray]:
    """Linear-interpolation weights (len(coords), n_src) at source coordinates and the weight each row covers
    (1 inside the source, 0 beyond half a voxel outside; `clamp`: always 1, the edge voxel extended)."""
    c = np.asarray(coords, float)
    w = np.zeros((len(c), n_src), np.float64)
    inside = (c >= -0.5) & (c <= n_src - 0.5) if not clamp else np.ones(len(c), bool)
    cc = np.clip(c, 0, n_src - 1)
    i0 = np.floor(cc).astype(int)
    i1 = np.minimum(i0 + 1, n_src - 1)
    f = cc - i0
    rows = np.flatnonzero(inside)
    np.add.at(w, (rows, i0[rows]), 1 - f[rows])
    np.add.at(w, (rows, i1[rows]), f[rows])
    return w, inside.astype(np.float64)


def _smoothing_matrix(n: int, factor: float) -> Optional[np.ndarray]:
    """Gaussian anti-alias filter (σ = (factor − 1) / 2 voxels, skimage's rule; edges extended) as an n × n matrix."""
    if factor <= 1 + SAME_STEP:
        return None
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.eye(n), (factor - 1) / 2, axis=0, mode="nearest").T


def _apply(volume: np.ndarray, mats: Sequence[np.ndarray]) -> np.ndarray:
    """Contract each axis of a 3-D array with its matrix (rows: output samples)."""
    out = np.asarray(volume, np.float64)
    for axis in sorted(range(len(mats)), key=lambda a: mats[a].shape[0] / mats[a].shape[1]):   # shrink first
        out = np.moveaxis(np.tensordot(mats[axis], out, axes=([1], [axis])), 0, axis)
    return out


def _forward_mats(grid: SliceGrid, clamp: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    counts = (grid.n_slices, grid.size, grid.size)
    mats, covers = [], []
    for n_src, start, step, m in zip(grid.source_shape, grid.start, grid.step, counts):
        w, cover = _interp_matrix(n_src, start + step * np.arange(m), clamp)
        smooth = _smoothing_matrix(n_src, step)
        mats.append(w if smooth is None else w @ smooth)
        covers.append(cover)
    return mats, covers


def to_model(volume: np.ndarray, grid: SliceGrid, fill: float = -1.0) -> np.ndarray:
    """(S, P, L) source volume → (n_slices, size, size) on the model grid (float32); `fill` beyond the volume."""
    volume = np.asarray(volume)
    if tuple(volume.shape) != tuple(grid.source_shape):
        raise ValueError(f"Volume shape {volume.shape} differs from the grid's {grid.source_shape}.")
    mats, covers = _forward_mats(grid, clamp=False)
    out = _apply(volume, mats)
    cover = covers[0][:, None, None] * covers[1][None, :, None] * covers[2][None, None, :]
    return np.where(cover > 0, out, fill).astype(np.float32)


def mask_to_model(mask: np.ndarray, grid: SliceGrid) -> np.ndarray:
    """A boolean (S, P, L) mask on the model grid (interpolated, then > 0.5)."""
    return to_model(np.asarray(mask, np.float32), grid, fill=0.0) > 0.5


def to_source(slices: np.ndarray, grid: SliceGrid) -> np.ndarray:
    """(n_slices, size, size) model-space values → the source (S, P, L) grid (float32): linear interpolation,
    anti-aliased where a source voxel is larger than a model one, edges extended beyond the model's window."""
    slices = np.asarray(slices)
    if tuple(slices.shape) != (grid.n_slices, grid.size, grid.size):
        raise ValueError(f"Model slices of shape {slices.shape}; the grid expects "
                         f"{(grid.n_slices, grid.size, grid.size)}.")
    mats = []
    for n_src, start, step, m in zip(grid.source_shape, grid.start, grid.step, slices.shape):
        w, _ = _interp_matrix(m, (np.arange(n_src) - start) / step, clamp=True)
        smooth = _smoothing_matrix(m, 1 / step)
        mats.append(w if smooth is None else w @ smooth)
    return _apply(slices, mats).astype(np.float32)


def grid_summary(grid: SliceGrid) -> str:
    """One line for logs: source voxels and field of view → the model's grid."""
    sp = grid.source_spacing
    fov = [n * s for n, s in zip(grid.source_shape[1:], sp[1:])]
    ms = grid.model_spacing
    return (f"{grid.source_shape[0]}×{grid.source_shape[1]}×{grid.source_shape[2]} voxels of "
            f"{sp[0]:g}×{sp[1]:g}×{sp[2]:g} mm (field of view {fov[0]:.0f}×{fov[1]:.0f} mm) → "
            f"{grid.n_slices}×{grid.size}×{grid.size} of {ms[0]:g}×{ms[1]:g}×{ms[2]:g} mm")
