"""`Case` volumes and the readers of real data sets: SynthRAD2023 (NIfTI / .mha) and Gold Atlas DICOM (data/README.md);
single volumes and their geometry are read by `data/volumes.py`."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ctmri.data.volumes import (MHA_SUFFIXES, NIFTI_SUFFIXES, DataError, dicom_files, read_dicom_file,
                                read_dicom_series, read_volume)

DATASET_KINDS = ("phantom", "synthrad", "goldatlas")
HU_AIR_BELOW = -500.0   # a CT in HU has its darkest voxels (air, -1000) below this; an MR never does


@dataclass
class Case:
    """One patient: paired MR and CT (HU) volumes (z, y, x) on one grid, body mask, spacing (z, y, x) mm."""

    id: str
    mr: np.ndarray
    ct: np.ndarray
    mask: np.ndarray | None = None          # None: derive from MR (prepare.body_mask_from_mr)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    labels: np.ndarray | None = None        # phantom only: tissue label map (phantom.LABELS)
    source: str | None = None               # folder or file the case was read from
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.mr.shape)

    def validate(self) -> "Case":
        """Same 3-D grid for MR, CT and mask, finite values, positive spacing; else a DataError naming the case."""
        where = f"case {self.id!r}" + (f" ({self.source})" if self.source else "")
        if np.ndim(self.mr) != 3 or np.ndim(self.ct) != 3:
            raise DataError(f"{where}: MR and CT must be 3-D volumes (z, y, x); got MR shape "
                            f"{tuple(np.shape(self.mr))} and CT shape {tuple(np.shape(self.ct))}.")
        if self.mr.shape != self.ct.shape:
            raise DataError(f"{where}: MR shape {tuple(self.mr.shape)} and CT shape {tuple(self.ct.shape)} differ; "
                            "expected MR and CT resampled to one grid.")
        if self.mask is not None and self.mask.shape != self.mr.shape:
            raise DataError(f"{where}: mask shape {tuple(self.mask.shape)} differs from the MR/CT shape "
                            f"{tuple(self.mr.shape)}.")
        for name, vol in (("MR", self.mr), ("CT", self.ct)):
            bad = int(np.size(vol) - np.count_nonzero(np.isfinite(vol)))
            if bad:
                raise DataError(f"{where}: the {name} volume contains {bad} NaN/inf voxels; expected finite values.")
        if len(self.spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing):
            raise DataError(f"{where}: spacing {tuple(self.spacing)} is not three positive numbers (z, y, x) in mm.")
        return self

    def check_intensities(self) -> "Case":
        """A CT in HU (air near -1000), MR and CT not swapped, an MR with contrast; else a DataError naming the case."""
        where = f"case {self.id!r}" + (f" ({self.source})" if self.source else "")
        mr_lo, ct_lo = float(np.percentile(self.mr, 1)), float(np.percentile(self.ct, 1))
        if mr_lo < HU_AIR_BELOW and ct_lo >= 0:
            raise DataError(f"{where}: the MR reaches {mr_lo:.0f} (like air in HU) and the CT has no negative values; "
                            "MR and CT look swapped (expected mr = the T2w MR, ct = the CT in HU).")
        if ct_lo > HU_AIR_BELOW:
            raise DataError(f"{where}: the CT's darkest voxels (1st percentile) are at {ct_lo:+.0f}, not near -1000; "
                            "expected a CT in Hounsfield units (apply RescaleSlope / RescaleIntercept, air = -1000).")
        if float(np.ptp(self.mr)) == 0:
            raise DataError(f"{where}: the MR volume is constant ({float(self.mr.flat[0]):g}); expected an MR "
                            "image with contrast.")
        return self


# ----------------------------------------------------------------------------------------------- SynthRAD2023

def _find(folder: Path, stem: str) -> Path | None:
    for suffix in NIFTI_SUFFIXES + MHA_SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def _require_dir(root: str | os.PathLike, what: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{what} folder {str(root)!r} does not exist or is not a folder.")
    if not any(root.iterdir()):
        raise DataError(f"{what} folder {str(root)!r} is empty; expected patient folders inside it.")
    return root


def _case_folders(root: Path) -> list[Path]:
    folders = set()
    for stem in ("mr", "ct"):
        for suffix in NIFTI_SUFFIXES + MHA_SUFFIXES:
            folders.update(p.parent for p in root.rglob(f"{stem}{suffix}"))
    return sorted(folders)


def read_synthrad_case(folder: str | os.PathLike, case_id: str | None = None) -> Case:
    """One SynthRAD2023 patient folder: mr + ct (+ optional mask) as .nii.gz / .nii / .mha."""
    folder = Path(folder)
    files = {stem: _find(folder, stem) for stem in ("mr", "ct", "mask")}
    for stem in ("mr", "ct"):
        if files[stem] is None:
            raise DataError(f"Patient folder {str(folder)!r} has no {stem}.nii.gz (nor {stem}.nii / {stem}.mha); "
                            "expected mr and ct files side by side (SynthRAD2023 layout); to convert an MR alone, "
                            "use `ctmri synthesize --input <mr>`.")
    mr, spacing = read_volume(files["mr"])
    ct, _ = read_volume(files["ct"])
    mask = None
    if files["mask"] is not None:
        mask = read_volume(files["mask"])[0] > 0.5
    case = Case(id=case_id or folder.name, mr=mr, ct=ct, mask=mask, spacing=spacing, source=str(folder),
                meta={"files": {k: str(v) for k, v in files.items() if v is not None}})
    return case.validate()


def read_synthrad(root: str | os.PathLike) -> list[Case]:
    """Every patient folder below `root` holding mr + ct files (root itself, `<id>/`, or `Task1/pelvis/<id>/`)."""
    root = _require_dir(root, "SynthRAD")
    folders = _case_folders(root)
    if not folders:
        raise DataError(f"No patient folders with mr.nii.gz and ct.nii.gz found below {str(root)!r}; expected the "
                        "SynthRAD2023 layout <root>/<patient>/{mr,ct,mask}.nii.gz.")
    ids = [f.name if f != root else root.name for f in folders]
    if len(set(ids)) != len(ids):  # same patient name in two sub-trees: use the relative path
        ids = [str(f.relative_to(root)) if f != root else root.name for f in folders]
    return [read_synthrad_case(f, i) for f, i in zip(folders, ids)]


def _series_of(folder: Path) -> dict[str, list[tuple[Path, Any]]]:
    series: dict[str, list[tuple[Path, Any]]] = {}
    for path in dicom_files(folder):
        ds = read_dicom_file(path, header_only=True)
        if "Rows" not in ds:  # RT structures, reports, presentation states: no image
            if "Image Storage" in getattr(ds.get("SOPClassUID"), "name", ""):
                raise DataError(f"DICOM file {str(path)!r} is an image ({ds.SOPClassUID.name}) cut off before its "
                                "image size and pixel data; expected a complete slice.")
            continue
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((path, ds))
    return series


def _pick(series: dict[str, list], folder: Path, keys: Sequence[str], what: str) -> str:
    found = {uid: str(items[0][1].get("SeriesDescription", "")) for uid, items in series.items()}
    hits = [uid for uid, desc in found.items() if any(k.lower() in desc.lower() for k in keys)]
    if not hits:
        listed = ", ".join(repr(d) for d in sorted(found.values())) or "none"
        raise DataError(f"Patient folder {str(folder)!r} has no {what} series (SeriesDescription containing "
                        f"{' or '.join(repr(k) for k in keys)}); found series: {listed}.")
    return max(hits, key=lambda uid: (len(series[uid]), uid))  # the fullest matching series


def read_goldatlas_case(folder: str | os.PathLike) -> Case:
    """One Gold Atlas patient: the T2 series ("T2"/"t2") and the CT registered to it ("CTtoMR")."""
    folder = Path(folder)
    series = _series_of(folder)
    if not series:
        raise DataError(f"Patient folder {str(folder)!r} holds no DICOM images; expected a T2 MR and a CTtoMR series.")
    ct_uid = _pick(series, folder, ("CTtoMR",), "registered CT")
    mr_uid = _pick({u: s for u, s in series.items() if u != ct_uid}, folder, ("T2",), "T2-weighted MR")
    mr, spacing, mr_meta = read_dicom_series([p for p, _ in series[mr_uid]])
    ct, _, ct_meta = read_dicom_series([p for p, _ in series[ct_uid]])
    if mr.shape == ct.shape:
        ct[ct_meta["padding_mask"]] = -1024.0
        mr[mr_meta["padding_mask"] | ct_meta["padding_mask"]] = 0.0
    meta = {"mr_series": mr_meta["series_description"], "ct_series": ct_meta["series_description"],
            "mr_rescaled": mr_meta["rescaled"], "ct_rescaled": ct_meta["rescaled"]}
    return Case(id=folder.name, mr=mr, ct=ct, mask=None, spacing=spacing, source=str(folder), meta=meta).validate()


def read_goldatlas(root: str | os.PathLike) -> list[Case]:
    """Gold Atlas male pelvis: one DICOM folder per patient below `root` (files anywhere below it)."""
    root = _require_dir(root, "Gold Atlas")
    patients = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not patients:
        patients = [root]
    return [read_goldatlas_case(p) for p in patients]


def read_dataset(kind: str, root: str | os.PathLike) -> list[Case]:
    """Read every case of a dataset kind: "phantom" (a write_synthrad folder), "synthrad" or "goldatlas"."""
    if kind not in DATASET_KINDS:
        raise DataError(f"Unknown dataset kind {kind!r}; expected one of {', '.join(DATASET_KINDS)}.")
    if root is None or str(root) == "":
        raise DataError(f"Dataset kind {kind!r} needs a data folder (DATA_DIR); none was given.")
    return read_goldatlas(root) if kind == "goldatlas" else read_synthrad(root)
