"""Volumes with their geometry: NIfTI / ITK (.mha) / DICOM-series reading, reorientation to LPS, NIfTI writing."""
from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

NIFTI_SUFFIXES = (".nii.gz", ".nii")
MHA_SUFFIXES = (".mha", ".mhd", ".nrrd")
# Files that may sit in a DICOM patient folder and are skipped without being read.
NON_DICOM_SUFFIXES = (".txt", ".md", ".json", ".csv", ".xml", ".pdf", ".png", ".jpg", ".jpeg", ".nii",
                      ".gz", ".mha", ".zip", ".log", ".ini", ".html")
SKIPPED_NAMES = ("DICOMDIR", "LOCKFILE", "VERSION", ".DS_Store", "Thumbs.db")


class DataError(ValueError):
    """Bad input data: the message names the file or value and what was expected."""


LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass
class Image:
    """A whole volume with its full geometry, as stored: `array` (z, y, x) = voxel axes (k, j, i) of the file.

    `direction` (3, 3): LPS unit vectors of the voxel axes i, j, k as columns (DICOM / ITK convention);
    `origin` (3,): LPS position (mm) of voxel (0, 0, 0); `spacing`: (z, y, x) mm, i.e. along k, j, i.
    `meta["nifti"]` keeps a NIfTI input's header (written back unchanged), `meta["dicom"]` the first
    slice's header of a DICOM input (patient and frame-of-reference tags).
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    direction: np.ndarray
    origin: np.ndarray
    source: str = ""
    kind: str = "nifti"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def affine_lps(self) -> np.ndarray:
        """4 × 4 voxel (i, j, k) → LPS mm."""
        a = np.eye(4)
        a[:3, :3] = np.asarray(self.direction, float) * np.asarray(self.spacing[::-1], float)
        a[:3, 3] = self.origin
        return a

    @property
    def affine_ras(self) -> np.ndarray:
        """4 × 4 voxel (i, j, k) → RAS mm (NIfTI)."""
        a = self.affine_lps
        a[:3] = LPS_FROM_RAS @ a[:3]
        return a

    def with_array(self, array: np.ndarray) -> "Image":
        """The same geometry holding another (z, y, x) array of the same shape."""
        if tuple(array.shape) != tuple(self.array.shape):
            raise ValueError(f"Array shape {tuple(array.shape)} differs from the image's {tuple(self.array.shape)}.")
        return Image(array, self.spacing, self.direction, self.origin, self.source, self.kind, self.meta)


def _lps_axes(direction: np.ndarray, source: str = "") -> list[tuple[int, bool]]:
    """For the array axes (z, y, x) of an LPS-ordered volume (S, P, L): (array axis of the file, flipped)."""
    d = np.asarray(direction, float)
    world = np.argmax(np.abs(d), axis=0)                     # the world axis each voxel axis i, j, k is closest to
    if sorted(world) != [0, 1, 2]:
        raise DataError(f"{source or 'the image'}: direction {d.round(3).tolist()} has no clear axial / coronal / "
                        "sagittal axes (two voxel axes along one world axis); expected a volume near an axis-aligned "
                        "orientation.")
    out = []
    for w in (2, 1, 0):                                      # S, P, L → array axes 0, 1, 2
        a = int(np.flatnonzero(world == w)[0])               # voxel axis i/j/k = 0/1/2 → array axis 2 - a
        out.append((2 - a, bool(d[w, a] < 0)))
    return out


def to_lps(array: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """A (z, y, x) file-order volume → (S, P, L) axial order (axis permutation and flips only, no resampling)."""
    axes = _lps_axes(direction)
    out = np.transpose(array, [a for a, _ in axes])
    return np.ascontiguousarray(out[tuple(slice(None, None, -1) if f else slice(None) for _, f in axes)])


def from_lps(array: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The inverse of `to_lps`: an (S, P, L) volume back to the file's (z, y, x) voxel order."""
    axes = _lps_axes(direction)
    out = array[tuple(slice(None, None, -1) if f else slice(None) for _, f in axes)]
    return np.ascontiguousarray(np.transpose(out, np.argsort([a for a, _ in axes])))


def lps_spacing(image: Image) -> tuple[float, float, float]:
    """(S, P, L) spacing of `to_lps(image.array, image.direction)`."""
    sp = np.asarray(image.spacing, float)
    return tuple(float(sp[a]) for a, _ in _lps_axes(image.direction))


def read_image(path: str | os.PathLike, series: "SeriesSelector | str | None" = None) -> Image:
    """A NIfTI file, an ITK file (.mha, with SimpleITK) or a DICOM series (folder or one file) with its geometry.

    series: which DICOM series of a folder holding several (`SeriesSelector` or its text, e.g. "uid=1.2.3",
    "desc=*T2*", "modality=MR"); None reads the folder's only series.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{str(path)!r} does not exist; expected a NIfTI file, an .mha file or a DICOM series folder.")
    if path.is_dir() or not path.name.lower().endswith(NIFTI_SUFFIXES + MHA_SUFFIXES + NON_DICOM_SUFFIXES):
        return _read_dicom_image(path, series)
    if series is not None:
        raise DataError(f"{str(path)!r} is one volume, not a DICOM folder; a series selection ({series}) applies to "
                        "DICOM series only, leave it out.")
    if path.name.endswith(MHA_SUFFIXES):
        return _read_itk_image(path)
    if not path.name.endswith(NIFTI_SUFFIXES):
        raise DataError(f"{str(path)!r} is not a volume this tool reads; expected a NIfTI file (.nii.gz / .nii), an "
                        ".mha file or a DICOM series folder.")
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as exc:  # nibabel raises many types (ImageFileError, EOFError, zlib.error, ...)
        raise DataError(f"Cannot read {str(path)!r} as a NIfTI volume ({type(exc).__name__}: {exc}).") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3 or min(data.shape) < 1:
        raise DataError(f"{str(path)!r} holds a {data.ndim}-D array of shape {data.shape}; expected a 3-D volume.")
    spacing, direction, origin = _nifti_grid(path, img.affine)
    return Image(np.ascontiguousarray(data.transpose(2, 1, 0)), spacing, direction, origin, str(path), "nifti",
                 {"nifti": img.header.copy()})


def _nifti_grid(path: Path, affine: np.ndarray) -> tuple[tuple[float, float, float], np.ndarray, np.ndarray]:
    """(z, y, x) spacing, LPS direction and LPS origin of a NIfTI affine (RAS)."""
    m = LPS_FROM_RAS @ np.asarray(affine, float)[:3]
    zooms = np.sqrt((m[:, :3] ** 2).sum(axis=0))
    if not np.all(zooms > 0):
        raise DataError(f"{str(path)!r} has a singular affine {np.asarray(affine).tolist()}; expected voxel sizes > 0.")
    return (float(zooms[2]), float(zooms[1]), float(zooms[0])), m[:, :3] / zooms, m[:, 3].copy()


@dataclass
class ImageGrid:
    """A volume's grid without its voxels: shape and spacing (z, y, x), LPS direction (columns i, j, k), origin."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    direction: np.ndarray
    origin: np.ndarray
    source: str = ""
    kind: str = "nifti"

    @property
    def orientation(self) -> str:
        """Axis code of the voxel axes i, j, k ("LPS", "RAS", ...), or "oblique"."""
        return axis_code(self.direction)


def axis_code(direction: np.ndarray, tol: float = 1e-3) -> str:
    """The LPS letters the voxel axes i, j, k point toward ("LPS", "RAS", "LIP", ...); "oblique" when off-axis."""
    d = np.asarray(direction, float)
    world = [int(np.argmax(np.abs(col))) for col in d.T]
    if sorted(world) != [0, 1, 2] or any(abs(abs(d[w, a]) - 1.0) > tol for a, w in enumerate(world)):
        return "oblique"
    return "".join("LPS"[w] if d[w, a] > 0 else "RAI"[w] for a, w in enumerate(world))


def read_geometry(path: str | os.PathLike, series: "SeriesSelector | str | None" = None) -> ImageGrid:
    """The grid of a volume from its header only (NIfTI, .mha, or a DICOM series as `read_image` picks it)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{str(path)!r} does not exist; expected a NIfTI file, an .mha file or a DICOM series folder.")
    if path.is_dir() or not path.name.lower().endswith(NIFTI_SUFFIXES + MHA_SUFFIXES + NON_DICOM_SUFFIXES):
        return series_geometry(select_series(scan_series(path), series, repr(str(path))))
    if path.name.endswith(MHA_SUFFIXES):
        return _read_itk_image(path, header_only=True)
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as exc:
        raise DataError(f"Cannot read {str(path)!r} as a NIfTI volume ({type(exc).__name__}: {exc}).") from None
    if len(img.shape) not in (3, 4) or (len(img.shape) == 4 and img.shape[3] != 1):
        raise DataError(f"{str(path)!r} holds a {len(img.shape)}-D array of shape {img.shape}; expected a 3-D volume.")
    spacing, direction, origin = _nifti_grid(path, img.affine)
    return ImageGrid(tuple(int(n) for n in img.shape[:3])[::-1], spacing, direction, origin, str(path), "nifti")


def _sitk(path: Path):
    try:
        import SimpleITK as sitk
    except ImportError:
        raise DataError(f"{str(path)!r} is an ITK image; reading it needs SimpleITK (pip install SimpleITK), "
                        "or convert it to .nii.gz.") from None
    return sitk


def _read_itk_image(path: Path, header_only: bool = False) -> "Image | ImageGrid":
    """An .mha / .mhd / .nrrd volume (SimpleITK): the Image, or with header_only its ImageGrid."""
    sitk = _sitk(path)
    try:
        if header_only:
            img = sitk.ImageFileReader()
            img.SetFileName(str(path))
            img.ReadImageInformation()
        else:
            img = sitk.ReadImage(str(path))
    except Exception as exc:
        raise DataError(f"Cannot read {str(path)!r} as an ITK image ({exc}).") from None
    components = img.GetNumberOfComponents() if header_only else img.GetNumberOfComponentsPerPixel()
    if img.GetDimension() != 3 or components != 1:
        raise DataError(f"{str(path)!r} holds a {img.GetDimension()}-D image of size {img.GetSize()}; "
                        "expected a 3-D scalar volume.")
    sx, sy, sz = img.GetSpacing()
    spacing = (float(sz), float(sy), float(sx))
    direction = np.asarray(img.GetDirection(), float).reshape(3, 3)
    origin = np.asarray(img.GetOrigin(), float)
    if header_only:
        return ImageGrid(tuple(int(n) for n in img.GetSize())[::-1], spacing, direction, origin, str(path), "itk")
    return Image(sitk.GetArrayFromImage(img).astype(np.float32), spacing, direction, origin, str(path), "itk")


def _read_dicom_image(path: Path, series: "SeriesSelector | str | None" = None) -> Image:
    chosen = select_series(scan_series(path), series, repr(str(path)))
    volume, spacing, meta = load_series(chosen)
    geo = series_geometry(chosen)
    first = next(ds for p, ds in chosen.headers if str(p) == meta["files"][0])   # the first slice along the normal
    meta = {k: v for k, v in meta.items() if k != "padding_mask"}
    return Image(volume, spacing, geo.direction, geo.origin, str(path), "dicom", {**meta, "dicom": first})


def read_volume(path: str | os.PathLike, *, dtype=np.float32) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Read a NIfTI (or, with SimpleITK, .mha) volume as (z, y, x) in LPS voxel order and its (z, y, x) spacing."""
    img = read_image(path)
    return to_lps(img.array, img.direction).astype(dtype, copy=False), lps_spacing(img)


def write_nifti(path: str | os.PathLike, volume: np.ndarray, spacing: Sequence[float]) -> Path:
    """Write a (z, y, x) LPS volume as NIfTI: array (x, y, z), affine diag(-sx, -sy, sz) (ITK's LPS convention)."""
    import nibabel as nib

    sz, sy, sx = (float(s) for s in spacing)
    affine = np.diag([-sx, -sy, sz, 1.0])
    img = nib.Nifti1Image(np.ascontiguousarray(np.asarray(volume).transpose(2, 1, 0)), affine)
    img.header.set_xyzt_units("mm")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


# ----------------------------------------------------------------------------------------------- DICOM

def read_dicom_file(path: Path, header_only: bool):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=header_only)
    except InvalidDicomError:
        raise DataError(f"{str(path)!r} is not a DICOM file (no DICM header); expected DICOM slices only.") from None
    except Exception as exc:
        raise DataError(f"Cannot read DICOM file {str(path)!r} ({type(exc).__name__}: {exc}).") from None


def dicom_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and p.name not in SKIPPED_NAMES and not p.name.lower().endswith(NON_DICOM_SUFFIXES))


def _slice_position(ds, path: Path) -> float:
    """Distance of the slice along the normal: ImagePositionPatient · (row × column direction cosines)."""
    try:
        iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
        ipp = np.asarray(ds.ImagePositionPatient, dtype=float)
    except AttributeError:
        raise DataError(f"{str(path)!r} has no ImagePositionPatient / ImageOrientationPatient; "
                        "expected them to order the slices.") from None
    if iop.shape != (6,) or ipp.shape != (3,):
        raise DataError(f"{str(path)!r}: ImageOrientationPatient {list(iop)} / ImagePositionPatient {list(ipp)} "
                        "are malformed; expected 6 and 3 numbers.")
    return float(ipp @ np.cross(iop[:3], iop[3:]))


@dataclass(frozen=True)
class SeriesSelector:
    """Which DICOM series to read: by SeriesInstanceUID, SeriesDescription (glob or regex) or Modality.

    key "uid": the exact SeriesInstanceUID; "desc": a case-insensitive glob on SeriesDescription (`*T2*`; with no
    wildcard, a substring: `T2` = `*T2*`); "re": a case-insensitive regular expression searched in it;
    "modality": the Modality tag (MR, CT, ...), case-insensitive.
    """

    key: str
    value: str

    def __post_init__(self) -> None:
        if self.key not in SERIES_KEYS:
            raise DataError(f"Unknown series selector key {self.key!r}; expected one of "
                            f"{', '.join(k + '=' for k in SERIES_KEYS)} or a bare description pattern.")
        if not self.value.strip():
            raise DataError(f"Series selector {self.key}= has no value; expected e.g. uid=1.2.3, desc=*T2*, "
                            "re=t2.*tra or modality=MR.")
        if self.key == "re":
            try:
                re.compile(self.value)
            except re.error as exc:
                raise DataError(f"Series selector re={self.value!r} is not a valid regular expression ({exc}).") \
                    from None

    @classmethod
    def parse(cls, text: "SeriesSelector | str") -> "SeriesSelector":
        """`uid=1.2.3`, `desc=*T2*`, `re=t2.*tra`, `modality=MR`, or a bare description pattern (`*T2*`)."""
        if isinstance(text, SeriesSelector):
            return text
        text = str(text).strip()
        key, sep, value = text.partition("=")
        if sep and re.fullmatch(r"[A-Za-z]+", key.strip()):
            return cls(key.strip().lower(), value.strip())
        return cls("desc", text)

    def matches(self, series: "DicomSeries") -> bool:
        """Whether the series fits this selector."""
        if self.key == "uid":
            return series.uid == self.value
        if self.key == "modality":
            return series.modality.lower() == self.value.lower()
        if self.key == "re":
            return re.search(self.value, series.description, re.IGNORECASE) is not None
        pattern, desc = self.value.lower(), series.description.lower()
        return fnmatch.fnmatchcase(desc, pattern) if any(c in pattern for c in "*?[") else pattern in desc

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


SERIES_KEYS = ("uid", "desc", "re", "modality")


@dataclass
class DicomSeries:
    """The image slices of one SeriesInstanceUID: (file, header) pairs in the order found."""

    uid: str
    headers: list[tuple[Path, Any]]

    @property
    def first(self) -> Any:
        return self.headers[0][1]

    @property
    def modality(self) -> str:
        return str(self.first.get("Modality", ""))

    @property
    def description(self) -> str:
        return str(self.first.get("SeriesDescription", ""))

    @property
    def n_slices(self) -> int:
        return len(self.headers)

    def label(self) -> str:
        """`uid (modality, 'description', n slices)`, as errors and `ctmri inspect` name a series."""
        return f"{self.uid or '(no uid)'} ({self.modality or '?'}, {self.description!r}, {self.n_slices} slices)"


def scan_series(folder_or_files: str | os.PathLike | Iterable[str | os.PathLike]) -> list[DicomSeries]:
    """The image series of a DICOM folder (files anywhere below it), one file, or a list of files (headers only).

    Objects without an image (RT structures, reports) are left out; series come sorted by modality,
    description and uid.
    """
    if isinstance(folder_or_files, (str, os.PathLike)):
        folder = Path(folder_or_files).expanduser()
        if not folder.exists():
            raise DataError(f"DICOM path {str(folder)!r} does not exist.")
        files = [folder] if folder.is_file() else dicom_files(folder)
        if not files:
            raise DataError(f"DICOM folder {str(folder)!r} holds no files; expected DICOM slices.")
    else:
        files = [Path(p) for p in folder_or_files]
        if not files:
            raise DataError("No DICOM files given; expected at least one slice.")
    series: dict[str, list[tuple[Path, Any]]] = {}
    for path in files:
        ds = read_dicom_file(path, header_only=True)
        if "Rows" not in ds:  # RT structures, reports, presentation states: no image
            if "Image Storage" in getattr(ds.get("SOPClassUID"), "name", ""):
                raise DataError(f"DICOM file {str(path)!r} is an image ({ds.SOPClassUID.name}) cut off before its "
                                "image size and pixel data; expected a complete slice.")
            continue
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((path, ds))
    found = [DicomSeries(uid, items) for uid, items in series.items()]
    return sorted(found, key=lambda s: (s.modality, s.description, s.uid))


def list_series(found: Sequence[DicomSeries]) -> str:
    """`uid (MR, 'T2', 40 slices), ...` for an error message."""
    return ", ".join(s.label() for s in found) or "none"


def select_series(found: Sequence[DicomSeries], series: "SeriesSelector | str | None", where: str, *,
                  what: str = "DICOM", fullest: bool = False, hint: str = "--series") -> DicomSeries:
    """The one series of `found` that `series` picks (None: the only one); else a DataError listing them.

    fullest: of several matches, take the one with the most slices (then the largest uid) instead of refusing.
    where: the folder, as the error names it; what: the series wanted ("T2-weighted MR"); hint: how the user
    passes a selector, named in the error (`--series`, `CTMRI_GOLDATLAS_MR=`).
    """
    how = (f"pick one with {hint}{'' if hint.endswith('=') else ' '}uid=<uid> "
           "(or desc=<pattern>, re=<regex>, modality=<MR|CT>)")
    if series is None:
        if not found:
            raise DataError(f"{where} holds no DICOM images; expected a series of image slices.")
        if len(found) == 1:
            return found[0]
        raise DataError(f"{where} holds {len(found)} DICOM series: {list_series(found)}; {how}.")
    selector = SeriesSelector.parse(series)
    hits = [s for s in found if selector.matches(s)]
    if not hits:
        raise DataError(f"{where} has no {what} series matching {selector}; found {list_series(found)}; {how}.")
    if len(hits) > 1 and not fullest:
        raise DataError(f"{where} has {len(hits)} {what} series matching {selector}: {list_series(hits)}; {how}.")
    return max(hits, key=lambda s: (s.n_slices, s.uid))


def _sorted_headers(series: DicomSeries) -> list[tuple[Path, Any]]:
    """The slices of a series along the slice normal."""
    if series.n_slices == 1:
        return list(series.headers)
    return sorted(series.headers, key=lambda item: _slice_position(item[1], item[0]))


def series_geometry(series: DicomSeries) -> ImageGrid:
    """The grid of a DICOM series from its headers (no pixel data read)."""
    headers = _sorted_headers(series)
    first = headers[0][1]
    iop = np.asarray(first.get("ImageOrientationPatient", (1, 0, 0, 0, 1, 0)), float)
    origin = np.asarray(first.get("ImagePositionPatient", (0, 0, 0)), float)
    normal = np.cross(iop[:3], iop[3:])
    positions = [_slice_position(ds, p) for p, ds in headers] if len(headers) > 1 else []
    if positions:
        last = np.asarray(headers[-1][1].ImagePositionPatient, float)
        if np.linalg.norm(last - origin) > 0:
            normal = (last - origin) / np.linalg.norm(last - origin)
    row_mm, col_mm = (float(v) for v in first.get("PixelSpacing", (1.0, 1.0)))
    steps = np.diff(positions)
    dz = float(np.median(steps)) if steps.size else float(first.get("SpacingBetweenSlices",
                                                                    first.get("SliceThickness", 1.0)) or 1.0)
    shape = (len(headers), int(first.get("Rows", 0)), int(first.get("Columns", 0)))
    return ImageGrid(shape, (abs(dz), row_mm, col_mm), np.stack([iop[:3], iop[3:], normal], axis=1), origin,
                    str(headers[0][0]), "dicom")


def read_dicom_series(folder_or_files: str | os.PathLike | Iterable[str | os.PathLike], *,
                      series_uid: str | None = None, series: "SeriesSelector | str | None" = None
                      ) -> tuple[np.ndarray, tuple[float, float, float], dict]:
    """One DICOM series → (volume (z, y, x) float32 in HU when rescale tags exist, spacing mm, meta).

    series (or series_uid): which series of files holding several (`select_series`). Slices are sorted by
    ImagePositionPatient projected on the slice normal; voxels equal to PixelPaddingValue are set to the
    volume's minimum and flagged in meta["padding_mask"].
    """
    if series_uid is not None:
        series = SeriesSelector("uid", series_uid)
    where = (repr(str(folder_or_files)) if isinstance(folder_or_files, (str, os.PathLike))
             else "the DICOM files given")
    return load_series(select_series(scan_series(folder_or_files), series, where))


def load_series(series: DicomSeries) -> tuple[np.ndarray, tuple[float, float, float], dict]:
    """The pixels of one scanned series: (volume (z, y, x) float32, spacing (z, y, x) mm, meta) as read_dicom_series."""
    headers = _sorted_headers(series)
    uid = series.uid
    slices, padding = [], []
    for path, _ in headers:
        ds = read_dicom_file(path, header_only=False)
        if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            raise DataError(f"DICOM file {str(path)!r} ends before its pixel data ({path.stat().st_size} bytes; "
                            "cut off while copying?); expected a complete slice.")
        try:
            raw = np.asarray(ds.pixel_array)
        except Exception as exc:
            raise DataError(f"Cannot decode the pixel data of {str(path)!r}, truncated or corrupt "
                            f"({type(exc).__name__}: {exc}).") from None
        if raw.ndim != 2:
            raise DataError(f"{str(path)!r} holds pixel data of shape {raw.shape}; expected one 2-D slice.")
        pad_value = ds.get("PixelPaddingValue")
        padding.append(raw == pad_value if pad_value is not None else np.zeros(raw.shape, bool))
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        slices.append(raw.astype(np.float32) * np.float32(slope) + np.float32(intercept))
    shapes = {s.shape for s in slices}
    if len(shapes) > 1:
        raise DataError(f"The slices of DICOM series {uid!r} have different sizes {sorted(shapes)}; "
                        "expected one size.")
    volume, pad = np.stack(slices), np.stack(padding)
    if pad.any():
        volume[pad] = volume[~pad].min() if (~pad).any() else 0.0
    first = headers[0][1]
    positions = [_slice_position(ds, p) for p, ds in headers] if len(headers) > 1 else []
    steps = np.diff(positions) if positions else np.array([])
    if steps.size and np.any(np.isclose(steps, 0.0)):
        raise DataError(f"DICOM series {uid!r} has two slices at the same position; expected one per position.")
    if steps.size > 1 and np.max(np.abs(steps)) > 1.5 * np.median(np.abs(steps)):
        k = int(np.argmax(np.abs(steps)))
        raise DataError(f"DICOM series {uid!r} has a gap: slices {Path(headers[k][0]).name!r} and "
                        f"{Path(headers[k + 1][0]).name!r} are {abs(steps[k]):g} mm apart where the others are "
                        f"{float(np.median(np.abs(steps))):g} mm; a slice file is missing.")
    spacing = series_geometry(series).spacing
    meta = {"files": [str(p) for p, _ in headers], "series_uid": uid,
            "series_description": series.description, "modality": series.modality,
            "rescaled": "RescaleSlope" in first or "RescaleIntercept" in first, "padding_mask": pad}
    return volume, spacing, meta
