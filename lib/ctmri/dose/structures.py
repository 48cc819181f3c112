"""Structures for planning: from the phantom's tissue labels (prostate PTV, rectum, bladder, femoral heads, body), a
user's NIfTI masks, or a raw patient folder's own (`patient_structures`); PTV = CTV grown by a margin (ICRU 62)."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from ctmri.data.phantom import LABELS, LABELS_FILE
from ctmri.data.volumes import (MHA_SUFFIXES, NIFTI_SUFFIXES, DataError, Image, dicom_files, lps_spacing,
                                read_image, to_lps)
from ctmri.dose.grid import MASK_HINT, check_same_grid
from ctmri.dose.rtstruct import masks_from_rtstruct

TARGET = "PTV"
STRUCTURES_DIR = "structures"   # <patient>/structures/<NAME>.nii.gz: one mask per structure, on the CT grid


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
        raise DataError("The label map has no prostate voxels, so there is no target to plan on.")
    body = body.astype(bool)
    ptv = dilate_mm(prostate, margin_mm, spacing) & body
    bone = np.isin(labels, [LABELS["marrow"], LABELS["cortical_bone"]])
    left, right = _femoral_heads(bone, ptv)
    return {TARGET: ptv, "PROSTATE": prostate, "RECTUM": np.isin(labels, [LABELS["rectal_wall"], LABELS["rectal_gas"]]),
            "BLADDER": labels == LABELS["urine"], "FEMUR_L": left, "FEMUR_R": right, "BODY": body}


def require_target(structures: Mapping[str, np.ndarray], target: str) -> np.ndarray:
    """The target's mask, or one clear sentence when it is missing or empty."""
    if target not in structures:
        raise DataError(f"No target structure {target!r} was given (have: {', '.join(structures) or 'none'}); "
                        "pass it with --structures NAME=FILE or --rtstruct FILE, and --target NAME.")
    if not np.any(structures[target]):
        raise DataError(f"The target structure {target!r} is empty.")
    if not any(name.upper() in ("BODY", "EXTERNAL") and np.any(m) for name, m in structures.items()):
        raise DataError(f"No BODY / EXTERNAL structure among {', '.join(structures)}; the plan needs the patient "
                        "outline (name one BODY or EXTERNAL).")
    return structures[target]


def check_grid(shape: Sequence[int], other: Sequence[int], what: str) -> None:
    """Refuse an array on another grid than the CT's (shape only: world grids are `dose.grid`'s), in one sentence."""
    if tuple(shape) != tuple(other):
        raise DataError(f"The {what} grid {tuple(other)} does not match the CT grid {tuple(shape)}; resample it onto "
                        "the CT first.")


def _volume_like(file: str | os.PathLike, ct: Image, what: str) -> np.ndarray:
    """A volume file on the CT's world grid (else one sentence), its voxels in the CT's stored order."""
    img = read_image(file)
    check_same_grid(ct, img, what, MASK_HINT)
    return np.asarray(img.array)


def _mask(file: str | os.PathLike, ct: Image, what: str) -> np.ndarray:
    """A mask file on the CT's world grid as a boolean array in the CT's stored voxel order."""
    return _volume_like(file, ct, what) > 0.5


def masks_from_nifti(specs: Sequence[str], ct: Image) -> dict[str, np.ndarray]:
    """`name=file.nii.gz` specs → boolean masks on the CT's stored grid (each file's world grid checked)."""
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        if not sep or not name or not file:
            raise DataError(f"Structure {spec!r}: expected NAME=FILE.")
        if not os.path.exists(file):
            raise DataError(f"Structure {name!r}: file {file} does not exist.")
        out[name] = _mask(file, ct, f"Structure {name!r}")
    return out


def _volume_files(folder: Path) -> list[Path]:
    """The NIfTI / ITK volumes of a folder, in name order."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(NIFTI_SUFFIXES + MHA_SUFFIXES))


def _stem(path: Path) -> str:
    """A volume file's name without its suffix (.nii.gz, .nii, .mha, ...)."""
    return next(path.name[:-len(s)] for s in NIFTI_SUFFIXES + MHA_SUFFIXES if path.name.endswith(s))


def _rtstructs(files: Sequence[Path]) -> list[tuple[Path, object]]:
    """The RT Structure Sets among `files` with their datasets (unreadable files are not structure sets)."""
    import pydicom

    found = []
    for f in files:
        try:
            if getattr(pydicom.dcmread(f, specific_tags=["Modality"]), "Modality", None) == "RTSTRUCT":
                found.append((f, pydicom.dcmread(f, stop_before_pixels=True)))
        except Exception:  # noqa: BLE001 - an unreadable file is not a structure set
            continue
    return found


def rtstruct_references(ds) -> tuple[set[str], set[str]]:
    """The (series uids, frame-of-reference uids) an RT Structure Set's contours are drawn on."""
    series, frames = set(), set()
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        frames.add(str(frame.get("FrameOfReferenceUID", "")))
        for study in frame.get("RTReferencedStudySequence", []):
            series.update(str(s.get("SeriesInstanceUID", "")) for s in study.get("RTReferencedSeriesSequence", []))
    frames.update(str(r.get("ReferencedFrameOfReferenceUID", "")) for r in ds.get("StructureSetROISequence", []))
    return series - {""}, frames - {""}


def _rtstruct_file(folder: Path, ct: Image) -> Path | None:
    """The patient's RT Structure Set: for a DICOM CT the one anywhere below the folder that references the CT's
    series (else its frame of reference); for a volume file, the first among the folder's own .dcm files."""
    if ct.kind != "dicom":
        found = _rtstructs(sorted(folder.glob("*.dcm")))
        return found[0][0] if found else None
    found = _rtstructs(dicom_files(folder))
    first = ct.meta.get("dicom")
    frame = str(first.get("FrameOfReferenceUID", "")) if first is not None else ""
    by_series = [f for f, ds in found if ct.meta.get("series_uid") in rtstruct_references(ds)[0]]
    by_frame = [f for f, ds in found if frame and frame in rtstruct_references(ds)[1]]
    return (by_series or by_frame or [None])[0]


def _body(folder: Path, ct: Image) -> np.ndarray | None:
    """The patient folder's body mask (mask.nii.gz / .nii / .mha) on the CT's stored grid, or None."""
    file = next((f for f in _volume_files(folder) if _stem(f) == "mask"), None)
    return None if file is None else _mask(file, ct, "Body mask")


def _phantom_labels(folder: Path, ct: Image, margin_mm: float) -> dict[str, np.ndarray]:
    """`phantom_structures` of the phantom's label map (and body mask) written beside the CT, in LPS order."""
    labels = np.rint(to_lps(_volume_like(folder / LABELS_FILE, ct, "Label map"), ct.direction)).astype(np.uint8)
    body = _body(folder, ct)
    body = labels != LABELS["air"] if body is None else to_lps(body, ct.direction)
    return phantom_structures(labels, body, lps_spacing(ct), margin_mm)


def patient_structures(folder: str | os.PathLike, ct: Image, margin_mm: float = 7.0) \
        -> tuple[dict[str, np.ndarray], str] | None:
    """A raw patient folder's structures as boolean (S, P, L) masks on its CT (`ct`, read from that folder) and
    where they came from: `structures/<NAME>.nii.gz` masks, else an RTSTRUCT (*.dcm beside a CT volume file; for a
    DICOM CT the one below the folder referencing its series), else the phantom's `phantom_labels.nii.gz`; a BODY
    from `mask.nii.gz` when none is named; None when the folder has none."""
    folder = Path(folder)
    sub = folder / STRUCTURES_DIR
    files = _volume_files(sub) if sub.is_dir() else []
    rtstruct = None if files else _rtstruct_file(folder, ct)
    if files:
        masks, source = {_stem(f): _mask(f, ct, f"Structure {_stem(f)!r}") for f in files}, str(sub)
    elif rtstruct is not None:
        masks, source = masks_from_rtstruct(rtstruct, ct), str(rtstruct)
    elif (folder / LABELS_FILE).is_file():
        return _phantom_labels(folder, ct, margin_mm), str(folder / LABELS_FILE)
    else:
        return None
    body = None if any(n.upper() in ("BODY", "EXTERNAL") for n in masks) else _body(folder, ct)
    if body is not None:
        masks["BODY"] = body
    return {n: to_lps(m, ct.direction) for n, m in masks.items()}, source
