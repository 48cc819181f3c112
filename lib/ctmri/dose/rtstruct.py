"""Structures from a DICOM RT Structure Set (PS3.3 C.8.8.5-6): each ROI's closed planar contours, given in patient
LPS mm, filled onto the CT's voxel grid slice by slice (pixel centres inside the polygon; nested contours by the
even-odd rule, so a contour inside another cuts a hole)."""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ctmri.data.volumes import Image


def _rtstruct(path: str | os.PathLike):
    """The RTSTRUCT dataset, or one sentence saying why the file is not one."""
    import pydicom

    if not os.path.isfile(path):
        raise ValueError(f"RTSTRUCT file {path} does not exist.")
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"Cannot read {path} as DICOM ({exc}).") from None
    if getattr(ds, "Modality", None) != "RTSTRUCT" or "ROIContourSequence" not in ds:
        raise ValueError(f"{path} is not an RT Structure Set (Modality {getattr(ds, 'Modality', None)!r}, expected "
                         "'RTSTRUCT' with a ROIContourSequence).")
    return ds


def rtstruct_names(path: str | os.PathLike) -> list[str]:
    """The ROI names of an RTSTRUCT, in file order."""
    return [str(r.ROIName) for r in _rtstruct(path).StructureSetROISequence]


def masks_from_rtstruct(path: str | os.PathLike, ct: Image, names: Sequence[str] | None = None) \
        -> dict[str, np.ndarray]:
    """Boolean (z, y, x) masks on `ct`'s grid for the ROIs `names` (default: every ROI with contours)."""
    from skimage.draw import polygon

    ds = _rtstruct(path)
    roi_name = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    wanted = list(names) if names else None
    if wanted:
        missing = [n for n in wanted if n not in roi_name.values()]
        if missing:
            raise ValueError(f"RTSTRUCT {path} has no ROI {', '.join(map(repr, missing))} (it has: "
                             f"{', '.join(roi_name.values())}).")
    nz, ny, nx = ct.array.shape
    to_voxel = np.linalg.inv(ct.affine_lps)
    out: dict[str, np.ndarray] = {}
    for rc in ds.ROIContourSequence:
        name = roi_name.get(int(rc.ReferencedROINumber), f"ROI{int(rc.ReferencedROINumber)}")
        if (wanted and name not in wanted) or "ContourSequence" not in rc:
            continue
        mask = np.zeros((nz, ny, nx), bool)
        for c in rc.ContourSequence:
            if str(getattr(c, "ContourGeometricType", "CLOSED_PLANAR")) != "CLOSED_PLANAR":
                continue                                    # points and open polylines enclose nothing
            pts = np.asarray(c.ContourData, np.float64).reshape(-1, 3)
            ijk = (to_voxel @ np.c_[pts, np.ones(len(pts))].T)[:3].T
            k = ijk[:, 2]
            if np.ptp(k) > 0.5:
                raise ValueError(f"RTSTRUCT {path}, ROI {name!r}: a contour is not in one axial slice of the CT (its "
                                 "points span several slices); expected contours drawn on this CT's slices.")
            kk = int(np.rint(k.mean()))
            if not 0 <= kk < nz or abs(k.mean() - kk) > 0.25:
                raise ValueError(f"RTSTRUCT {path}, ROI {name!r}: a contour lies at slice position {k.mean():.2f}, "
                                 f"not on a slice of the CT (0..{nz - 1}); is it this CT's structure set?")
            rr, cc = polygon(ijk[:, 1], ijk[:, 0], shape=(ny, nx))
            mask[kk, rr, cc] ^= True
        out[name] = mask
    if not out:
        raise ValueError(f"RTSTRUCT {path} holds no closed planar contours{' for ' + ', '.join(wanted) if wanted else ''}.")
    return out
