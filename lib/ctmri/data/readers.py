"""`Case` volumes and the readers of real data sets: SynthRAD2023 / SynthRAD2025 (NIfTI / .mha) and Gold Atlas DICOM
(data/README.md); single volumes and their geometry are read by `data/volumes.py`."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ctmri.data.volumes import (MHA_SUFFIXES, NIFTI_SUFFIXES, DataError, DicomSeries, SeriesSelector, load_series,
                                lps_spacing, read_volume, scan_series, select_series, series_geometry, to_lps)

DATASET_KINDS = ("phantom", "synthrad", "goldatlas")
# Gold Atlas series: the registered CT first, then the T2 MR among the other series; overridable per call or by
# these environment variables (`make prepare DATASET=goldatlas CTMRI_GOLDATLAS_MR=uid=1.2.3`).
GOLDATLAS_MR_ENV, GOLDATLAS_CT_ENV = "CTMRI_GOLDATLAS_MR", "CTMRI_GOLDATLAS_CT"
GOLDATLAS_MR_DEFAULT, GOLDATLAS_CT_DEFAULT = "desc=T2", "desc=CTtoMR"
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


# ----------------------------------------------------------------------------------------------- SynthRAD

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


def synthrad_folders(root: Path) -> list[Path]:
    """The folders below `root` (root included) holding an mr or ct volume (.nii.gz / .nii / .mha ...), sorted."""
    folders = set()
    for stem in ("mr", "ct"):
        for suffix in NIFTI_SUFFIXES + MHA_SUFFIXES:
            folders.update(p.parent for p in root.rglob(f"{stem}{suffix}") if p.is_file())
    return sorted(folders)


def synthrad_files(folder: Path) -> dict[str, Path | None]:
    """The mr, ct and mask files of one SynthRAD patient folder (None where absent); .nii.gz before .nii, .mha."""
    return {stem: _find(folder, stem) for stem in ("mr", "ct", "mask")}


def synthrad_ids(root: Path, folders: Sequence[Path]) -> list[str]:
    """Patient ids of SynthRAD folders: the folder names, or paths relative to `root` where two names clash."""
    ids = [f.name if f != root else root.name for f in folders]
    if len(set(ids)) != len(ids):  # same patient name in two sub-trees (regions, tasks): use the relative path
        ids = [str(f.relative_to(root)) if f != root else root.name for f in folders]
    return ids


def read_synthrad_case(folder: str | os.PathLike, case_id: str | None = None) -> Case:
    """One SynthRAD2023 / 2025 patient folder: mr + ct (+ optional mask) as .nii.gz / .nii / .mha."""
    folder = Path(folder)
    files = synthrad_files(folder)
    for stem in ("mr", "ct"):
        if files[stem] is None:
            raise DataError(f"Patient folder {str(folder)!r} has no {stem}.nii.gz (nor {stem}.nii / {stem}.mha); "
                            "expected mr and ct files side by side (SynthRAD layout); to convert an MR alone, "
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
    """Every patient folder below `root` holding mr + ct files, .nii.gz / .nii / .mha.

    SynthRAD2023 (`Task1/pelvis/<id>/{mr,ct,mask}.nii.gz`) and SynthRAD2025 (`Task1/<region>/<id>/{mr,ct,mask}.mha`):
    `root` may be a patient folder, a folder of patients, or a folder of region (or task) folders.
    """
    root = _require_dir(root, "SynthRAD")
    folders = synthrad_folders(root)
    if not folders:
        raise DataError(f"No patient folders with mr.nii.gz and ct.nii.gz (or .mha) found below {str(root)!r}; "
                        "expected the SynthRAD layout <root>/[<region>/]<patient>/{mr,ct,mask}.nii.gz or .mha.")
    return [read_synthrad_case(f, i) for f, i in zip(folders, synthrad_ids(root, folders))]


# ----------------------------------------------------------------------------------------------- Gold Atlas

def goldatlas_selectors(mr_series: SeriesSelector | str | None = None,
                        ct_series: SeriesSelector | str | None = None) -> tuple[SeriesSelector, SeriesSelector]:
    """The Gold Atlas (MR, CT) series selectors: those given, else $CTMRI_GOLDATLAS_MR / _CT, else the defaults."""
    mr = mr_series or os.environ.get(GOLDATLAS_MR_ENV, "").strip() or GOLDATLAS_MR_DEFAULT
    ct = ct_series or os.environ.get(GOLDATLAS_CT_ENV, "").strip() or GOLDATLAS_CT_DEFAULT
    return SeriesSelector.parse(mr), SeriesSelector.parse(ct)


def goldatlas_pick(series: Sequence[DicomSeries], folder: Path, mr_series: SeriesSelector | str | None = None,
                   ct_series: SeriesSelector | str | None = None) -> tuple[DicomSeries, DicomSeries]:
    """The (MR, CT) series of one Gold Atlas patient: the fullest CT match, then the fullest MR match of the rest."""
    ct = goldatlas_ct(series, folder, ct_series)
    return goldatlas_mr(series, folder, mr_series, exclude_uid=ct.uid), ct


def goldatlas_ct(series: Sequence[DicomSeries], folder: Path,
                 ct_series: SeriesSelector | str | None = None) -> DicomSeries:
    """The registered CT of one Gold Atlas patient (the fullest series matching the CT selector)."""
    selector = goldatlas_selectors(ct_series=ct_series)[1]
    return select_series(series, selector, f"Patient folder {str(folder)!r}", what="registered CT", fullest=True,
                         hint=f"{GOLDATLAS_CT_ENV}=")


def goldatlas_mr(series: Sequence[DicomSeries], folder: Path, mr_series: SeriesSelector | str | None = None,
                 exclude_uid: str | None = None) -> DicomSeries:
    """The T2 MR of one Gold Atlas patient (the fullest series matching the MR selector, the CT's left out)."""
    selector = goldatlas_selectors(mr_series=mr_series)[0]
    rest = [s for s in series if s.uid != exclude_uid]
    return select_series(rest, selector, f"Patient folder {str(folder)!r}", what="T2-weighted MR", fullest=True,
                         hint=f"{GOLDATLAS_MR_ENV}=")


def _lps_series(series: DicomSeries) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray, dict]:
    """One DICOM series as (volume, spacing, padding mask) in LPS (S, P, L) order, as every reader gives volumes
    (a feet-first, prone or sagittal series reoriented by flips and permutations only), and its meta."""
    volume, _, meta = load_series(series)
    geometry = series_geometry(series)
    return (to_lps(volume, geometry.direction), lps_spacing(geometry), to_lps(meta["padding_mask"], geometry.direction),
            meta)


def read_goldatlas_case(folder: str | os.PathLike, *, mr_series: SeriesSelector | str | None = None,
                        ct_series: SeriesSelector | str | None = None) -> Case:
    """One Gold Atlas patient: the T2 series (default "T2" in SeriesDescription) and the CT registered to it
    (default "CTtoMR"); `goldatlas_selectors` for the overrides."""
    folder = Path(folder)
    series = scan_series(folder)
    if not series:
        raise DataError(f"Patient folder {str(folder)!r} holds no DICOM images; expected a T2 MR and a CTtoMR series.")
    mr_s, ct_s = goldatlas_pick(series, folder, mr_series, ct_series)
    mr, spacing, mr_pad, mr_meta = _lps_series(mr_s)
    ct, _, ct_pad, ct_meta = _lps_series(ct_s)
    if mr.shape == ct.shape:
        ct[ct_pad] = -1024.0
        mr[mr_pad | ct_pad] = 0.0
    meta = {"mr_series": mr_meta["series_description"], "ct_series": ct_meta["series_description"],
            "mr_series_uid": mr_s.uid, "ct_series_uid": ct_s.uid,
            "mr_rescaled": mr_meta["rescaled"], "ct_rescaled": ct_meta["rescaled"]}
    return Case(id=folder.name, mr=mr, ct=ct, mask=None, spacing=spacing, source=str(folder), meta=meta).validate()


def goldatlas_patients(root: Path) -> list[Path]:
    """The patient folders of a Gold Atlas root: its sub-folders, or root itself when it has none."""
    patients = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return patients or [root]


def read_goldatlas(root: str | os.PathLike, *, mr_series: SeriesSelector | str | None = None,
                   ct_series: SeriesSelector | str | None = None) -> list[Case]:
    """Gold Atlas male pelvis: one DICOM folder per patient below `root` (files anywhere below it)."""
    root = _require_dir(root, "Gold Atlas")
    return [read_goldatlas_case(p, mr_series=mr_series, ct_series=ct_series) for p in goldatlas_patients(root)]


def read_dataset(kind: str, root: str | os.PathLike, *, mr_series: SeriesSelector | str | None = None,
                 ct_series: SeriesSelector | str | None = None) -> list[Case]:
    """Read every case of a dataset kind: "phantom" (a write_synthrad folder), "synthrad" or "goldatlas".

    mr_series / ct_series: the Gold Atlas series selectors (default $CTMRI_GOLDATLAS_MR / _CT, else "T2" / "CTtoMR").
    """
    if kind not in DATASET_KINDS:
        raise DataError(f"Unknown dataset kind {kind!r}; expected one of {', '.join(DATASET_KINDS)}.")
    if root is None or str(root) == "":
        raise DataError(f"Dataset kind {kind!r} needs a data folder (DATA_DIR); none was given.")
    if kind == "goldatlas":
        return read_goldatlas(root, mr_series=mr_series, ct_series=ct_series)
    return read_synthrad(root)
