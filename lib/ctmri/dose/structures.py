"""Structures for planning: from the phantom's tissue labels (prostate PTV, rectum, bladder, femoral heads, body) or a
user's NIfTI masks; the PTV is the CTV dilated by a margin (ICRU 62)."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from ctmri.data.phantom import LABELS

TARGET = "PTV"


def dilate_mm(mask: np.ndarray, margin_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """`mask` grown by an isotropic margin in mm (Euclidean distance transform on the voxel grid)."""
    if margin_mm <= 0:
        return mask.astype(bool)
    dist = ndimage.distance_transform_edt(~mask.astype(bool), sampling=[float(s) for s in spacing])
    return dist <= float(margin_mm)


def _femoral_heads(bone: np.ndarray, ptv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Femoral heads: in the PTV's slices, the largest 3-D component of the bone lateral to the PTV, on each side
    (cut at the PTV's x-extent first, so a head joined to the acetabulum across the midline is still found)."""
    zs = np.where(ptv.any(axis=(1, 2)))[0]
    xs = np.where(ptv.any(axis=(0, 1)))[0]
    band = np.zeros_like(bone)
    band[zs.min():zs.max() + 1] = bone[zs.min():zs.max() + 1]
    x = np.arange(bone.shape[2])
    heads = []
    for side in (x < xs.min(), x > xs.max()):
        comp, n = ndimage.label(band & side[None, None, :])
        sizes = np.bincount(comp.ravel(), minlength=n + 1)[1:]
        heads.append(comp == 1 + int(np.argmax(sizes)) if n else np.zeros_like(bone))
    return heads[0], heads[1]


def phantom_structures(labels: np.ndarray, body: np.ndarray, spacing: Sequence[float],
                       margin_mm: float = 7.0) -> dict[str, np.ndarray]:
    """PTV (prostate + peripheral zone grown by `margin_mm`, inside the body), PROSTATE, RECTUM (wall + gas), BLADDER
    (urine), FEMUR_L / FEMUR_R (see `_femoral_heads`), BODY — boolean (z, y, x) masks."""
    prostate = np.isin(labels, [LABELS["prostate"], LABELS["peripheral_zone"]])
    if not prostate.any():
        raise ValueError("The label map has no prostate voxels, so there is no target to plan on.")
    body = body.astype(bool)
    ptv = dilate_mm(prostate, margin_mm, spacing) & body
    bone = np.isin(labels, [LABELS["marrow"], LABELS["cortical_bone"]])
    left, right = _femoral_heads(bone, ptv)
    return {TARGET: ptv, "PROSTATE": prostate, "RECTUM": np.isin(labels, [LABELS["rectal_wall"], LABELS["rectal_gas"]]),
            "BLADDER": labels == LABELS["urine"], "FEMUR_L": left, "FEMUR_R": right, "BODY": body}


def require_target(structures: Mapping[str, np.ndarray], target: str) -> np.ndarray:
    """The target's mask, or one clear sentence when it is missing or empty."""
    if target not in structures:
        raise ValueError(f"No target structure {target!r} was given (have: {', '.join(structures) or 'none'}); "
                         "pass it with --structures NAME=FILE or --rtstruct FILE, and --target NAME.")
    if not np.any(structures[target]):
        raise ValueError(f"The target structure {target!r} is empty.")
    if not any(name.upper() in ("BODY", "EXTERNAL") and np.any(m) for name, m in structures.items()):
        raise ValueError(f"No BODY / EXTERNAL structure among {', '.join(structures)}; the plan needs the patient "
                         "outline (name one BODY or EXTERNAL).")
    return structures[target]


def check_grid(shape: Sequence[int], other: Sequence[int], what: str) -> None:
    """Refuse a volume or mask on another grid than the CT, in one sentence."""
    if tuple(shape) != tuple(other):
        raise ValueError(f"The {what} grid {tuple(other)} does not match the CT grid {tuple(shape)}; resample it onto "
                         "the CT first.")


def masks_from_nifti(specs: Sequence[str], ct_shape: Sequence[int], ct_spacing: Sequence[float]) -> dict[str, np.ndarray]:
    """`name=file.nii.gz` specs → boolean (z, y, x) masks on the CT grid (LPS, as `data.volumes.read_image`)."""
    from ctmri.data.volumes import read_image

    out: dict[str, np.ndarray] = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        if not sep or not name or not file:
            raise ValueError(f"Structure {spec!r}: expected NAME=FILE.")
        if not os.path.exists(file):
            raise ValueError(f"Structure {name!r}: file {file} does not exist.")
        img = read_image(file)
        check_grid(ct_shape, img.array.shape, f"structure {name!r}")
        if not np.allclose(img.spacing, ct_spacing, rtol=1e-3):
            raise ValueError(f"The structure {name!r} spacing {tuple(img.spacing)} mm does not match the CT spacing "
                             f"{tuple(ct_spacing)} mm; resample it onto the CT first.")
        out[name] = np.asarray(img.array) > 0.5
    return out
