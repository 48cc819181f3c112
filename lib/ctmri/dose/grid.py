"""The world grid of the dose inputs (issue 24): a CT, its sCTs, MC samples and masks must share shape, spacing,
direction and origin in patient LPS mm, not only the array shape; a volume on another grid is refused in one
sentence naming its file and what differs."""
from __future__ import annotations

import itertools

import numpy as np

from ctmri.data.volumes import DataError, Image

SPACING_MM = 0.01       # voxel sizes equal within this
ORIGIN_MM = 0.01        # voxel (0, 0, 0) at the same LPS position within this
DIRECTION_TOL = 1e-3    # direction cosines equal within this

SCT_HINT = "resample it onto the CT's grid (ctmri synthesize writes it there)"
MASK_HINT = "resample it onto the CT's grid (or export the structures from this CT)"


def _vec(values, digits: int = 2) -> str:
    """(a, b, c) with a fixed number of decimals."""
    return "(" + ", ".join(f"{float(v):.{digits}f}" for v in values) + ")"


def _direction(d: np.ndarray) -> str:
    """A direction matrix as its rows, rounded to 3 decimals (0 instead of -0)."""
    return str((np.round(np.asarray(d, float), 3) + 0.0).tolist())


def _corners(img: Image) -> np.ndarray:
    """The LPS positions (mm) of the 8 corner voxel centres, sorted (the same set for the same voxels in any order)."""
    nk, nj, ni = img.array.shape
    ijk = np.array([[i, j, k, 1.0] for i, j, k in itertools.product((0, ni - 1), (0, nj - 1), (0, nk - 1))])
    pts = (img.affine_lps @ ijk.T)[:3].T
    return pts[np.lexsort(np.round(pts, 2).T[::-1])]


def grid_difference(ct: Image, other: Image) -> tuple[str, str, str] | None:
    """(what differs, the other's value, the CT's value) of the first difference, or None on the same grid."""
    a, b = tuple(other.array.shape), tuple(ct.array.shape)
    if a != b:
        return "shape", " × ".join(map(str, a)) + " voxels", " × ".join(map(str, b))
    if not np.allclose(other.spacing, ct.spacing, rtol=0, atol=SPACING_MM):
        return "spacing", _vec(other.spacing, 3) + " mm (z, y, x)", _vec(ct.spacing, 3) + " mm"
    if not np.allclose(other.direction, ct.direction, rtol=0, atol=DIRECTION_TOL):
        same = np.allclose(_corners(other), _corners(ct), rtol=0, atol=ORIGIN_MM)
        note = " (the same voxels stored in another order)" if same else ""
        return "direction", _direction(other.direction) + note, _direction(ct.direction)
    if not np.allclose(other.origin, ct.origin, rtol=0, atol=ORIGIN_MM):
        return "origin", _vec(other.origin) + " mm (LPS)", _vec(ct.origin) + " mm"
    return None


def check_same_grid(ct: Image, other: Image, what: str, hint: str = SCT_HINT) -> None:
    """Refuse `other` (an sCT, an MC sample, a mask) unless it lies on the CT's world grid, in one sentence."""
    diff = grid_difference(ct, other)
    if diff is not None:
        field, theirs, ours = diff
        raise DataError(f"{what} {other.source or '(array)'!r} has {field} {theirs} but the CT "
                        f"{ct.source or '(array)'!r} has {ours}; expected the same grid: {hint}.")
