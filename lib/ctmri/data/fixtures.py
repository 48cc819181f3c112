"""Realistic-format fixtures: phantom patients written as a user's data set would arrive, for tests of the whole DAG
on `DATASET=synthrad` and `DATASET=goldatlas` (tests/test_fixture_dag.py).

- `write_synthrad_fixture`: a SynthRAD2023-style folder `<root>/1PA00k/{mr,ct,mask}.nii.gz` (one patient in .mha),
  each patient with its own voxel size, non-square field of view, slice spacing, origin and stored orientation
  (ITK's LPS-direction NIfTI, a RAS-ordered NIfTI whose CT is uint16 with scl_inter -1024, an .mha);
- `write_goldatlas_fixture`: a Gold-Atlas-style DICOM tree, one folder per patient holding a T2 MR, a T1 MR, the CT
  registered to the T2 ("CTtoMR", int16 with RescaleSlope / RescaleIntercept, PixelPaddingValue outside its
  reconstruction circle), an unregistered CT on its own grid and frame of reference, and an RTSTRUCT referencing the
  registered CT with the phantom's planning structures (`dose.structures.phantom_structures`: PTV, PROSTATE,
  RECTUM, BLADDER, FEMUR_L / FEMUR_R, BODY); one patient oblique and feet-first.

Real data has ~1 mm pixels and 2.5-3 mm slices; the default specs are scaled to the smoke profile (3.5-5 mm pixels,
8-12 mm slices; its model pixel is 24 mm) so a whole DAG stays quick: the layout, the formats and the heterogeneity
between patients are what is tested, not the resolution. Volumes are rendered by `render.phantom_at` (the same
anatomy at any voxel size); each writer returns the truth it wrote, per patient, as `Case`s in LPS (S, P, L) order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Sequence

import numpy as np

from ctmri.data.readers import Case
from ctmri.data.render import phantom_at, t1_like
from ctmri.data.volumes import Image, from_lps
from ctmri.data.writers import CT_IMAGE_STORAGE, MR_IMAGE_STORAGE, write_nifti_image

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
STUDY_COMPONENT = "1.2.840.10008.3.1.2.3.1"      # RTReferencedStudySequence's ReferencedSOPClassUID (Detached Study)
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
MR_SCALE = 1000.0                 # MR stored as uint16 round(1000 · relative T2 / T1 signal), no rescale tags
PADDING_VALUE = -2000             # PixelPaddingValue of the registered CT (stored int16)
PTV_MARGIN_MM = 7.0               # the RTSTRUCT's PTV = prostate grown by this margin (DoseConfig.ptv_margin_mm)


def rotated_about_z(degrees: float, feet_first: bool = False) -> tuple[float, ...]:
    """A direction (3 × 3, columns = LPS unit vectors of voxel axes i, j, k, row-major) turned `degrees` about the
    slice normal; feet_first: columns toward the patient's right and slices from head to feet (x and z flipped)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    d = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    if feet_first:
        d = d @ np.diag([-1.0, 1.0, -1.0])
    return tuple(float(v) for v in d.ravel())


@dataclass(frozen=True)
class Grid:
    """One stored volume: voxel size, field of view (rows P × columns L, mm), cranio-caudal extent, direction and
    the LPS position (mm) of its centre."""

    pixel_mm: float
    slice_mm: float
    fov_mm: tuple[float, float]
    length_mm: float = 90.0
    direction: tuple[float, ...] = IDENTITY
    centre_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def matrix(self) -> np.ndarray:
        """The direction as a 3 × 3 matrix."""
        return np.asarray(self.direction, float).reshape(3, 3)


@dataclass(frozen=True)
class SynthradPatient:
    """One SynthRAD-style patient folder: seed, grid, file suffix (.nii.gz or .mha); ct_scaled: the NIfTI CT stored
    as uint16 HU + 1024 with scl_inter = -1024 (as some converters write it), else int16 HU."""

    id: str
    seed: int
    grid: Grid
    suffix: str = ".nii.gz"
    ct_scaled: bool = False


@dataclass(frozen=True)
class GoldatlasPatient:
    """One Gold-Atlas-style patient: the T2 grid (the registered CT and the RTSTRUCT share it), the T1's and the
    unregistered CT's grids, the registered CT's rescale, and whether every file lies in the patient folder itself."""

    id: str
    seed: int
    t2: Grid
    t1: Grid
    ct: Grid
    ct_slope: float = 1.0
    ct_intercept: float = -1024.0
    flat: bool = False
    series: dict[str, str] = field(default_factory=lambda: {"t2": "T2 tse tra", "t1": "T1 vibe tra",
                                                            "ct_reg": "CTtoMR deformable", "ct": "CT Pelvis 3.0 B31f"})


# Smoke-size patients (module docstring). The first split seed puts the last id in test and the first in validation.
SYNTHRAD_PATIENTS = (
    SynthradPatient("1PA001", 101, Grid(4.0, 10.0, (320.0, 400.0), 90.0, centre_mm=(-2.0, 31.0, -118.0))),
    SynthradPatient("1PA002", 102, Grid(3.5, 12.0, (294.0, 364.0), 96.0, rotated_about_z(180.0),
                                        (4.0, -12.0, 407.0)), ct_scaled=True),        # stored RAS (x, y flipped)
    SynthradPatient("1PA003", 103, Grid(4.5, 11.0, (342.0, 432.0), 88.0, centre_mm=(0.5, 20.0, -75.0)), ".mha"),
)
GOLDATLAS_PATIENTS = (
    GoldatlasPatient("1_01_P", 201, Grid(4.0, 10.0, (352.0, 416.0), 90.0, centre_mm=(0.0, 15.0, -60.0)),
                     Grid(5.0, 12.0, (360.0, 440.0), 90.0, centre_mm=(0.0, 15.0, -60.0)),
                     Grid(4.8, 8.0, (480.0, 480.0), 90.0, centre_mm=(3.0, 40.0, -52.0))),
    GoldatlasPatient("1_02_P", 202, Grid(3.6, 12.0, (324.0, 396.0), 96.0, centre_mm=(-4.0, 8.0, 210.0)),
                     Grid(5.0, 12.0, (360.0, 440.0), 96.0, centre_mm=(-4.0, 8.0, 210.0)),
                     Grid(4.8, 8.0, (480.0, 480.0), 96.0, centre_mm=(-9.0, 30.0, 230.0)),
                     ct_slope=0.5, ct_intercept=-1024.0, flat=True),
    GoldatlasPatient("1_03_P", 203, Grid(7.5, 10.0, (330.0, 420.0), 90.0, rotated_about_z(3.0, feet_first=True),
                                         (1.0, -5.0, 35.0)),
                     Grid(8.0, 10.0, (360.0, 440.0), 90.0, rotated_about_z(3.0, feet_first=True), (1.0, -5.0, 35.0)),
                     Grid(6.0, 8.0, (480.0, 480.0), 90.0, centre_mm=(6.0, 20.0, 50.0)), ct_slope=1.0,
                     ct_intercept=0.0),
)


# ----------------------------------------------------------------------------------------------- rendering

def _crop(vol: np.ndarray, n_p: int, n_l: int) -> np.ndarray:
    """The central n_p × n_l window of an (S, P, L) volume."""
    a, b = (vol.shape[1] - n_p) // 2, (vol.shape[2] - n_l) // 2
    return np.ascontiguousarray(vol[:, a:a + n_p, b:b + n_l])


def render(seed: int, grid: Grid) -> Case:
    """Phantom `seed` on `grid`'s voxels (LPS (S, P, L) arrays) in its non-square field of view; a field of view that
    cuts the body is refused."""
    case = phantom_at(seed, grid.pixel_mm, grid.slice_mm, fov_mm=max(grid.fov_mm), length_mm=grid.length_mm)
    n_p, n_l = (int(round(f / grid.pixel_mm)) for f in grid.fov_mm)
    mask = _crop(case.mask, n_p, n_l)
    if mask[:, [0, -1], :].any() or mask[:, :, [0, -1]].any():
        raise ValueError(f"Fixture {case.id}: a {grid.fov_mm} mm field of view cuts the body; widen it.")
    return Case(id=case.id, mr=_crop(case.mr, n_p, n_l), ct=_crop(case.ct, n_p, n_l), mask=mask,
                spacing=case.spacing, labels=_crop(case.labels, n_p, n_l), source=case.source, meta=dict(case.meta))


def placed(grid: Grid, lps_volume: np.ndarray) -> Image:
    """`lps_volume` (S, P, L) stored in `grid`'s direction (file order) with the origin that centres it."""
    d = grid.matrix
    if not np.allclose(np.abs(np.argmax(np.abs(d), axis=0)), [0, 1, 2]):
        raise ValueError(f"Fixture direction {d.round(3).tolist()} permutes the axes; only flips and small "
                         "rotations are written.")
    array = from_lps(np.asarray(lps_volume), d)
    spacing = (float(grid.slice_mm), float(grid.pixel_mm), float(grid.pixel_mm))
    half = (np.array(array.shape[::-1]) - 1) / 2 * np.array(spacing[::-1])     # (i, j, k) mm from voxel 0 to centre
    origin = np.asarray(grid.centre_mm, float) - d @ half
    return Image(array, spacing, d, origin, kind="fixture")


# ----------------------------------------------------------------------------------------------- SynthRAD

def _write_mha(path: Path, image: Image, dtype) -> None:
    """`image` as an ITK .mha (SimpleITK), its direction and origin kept."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.asarray(image.array).astype(dtype))
    img.SetSpacing(tuple(float(v) for v in image.spacing[::-1]))
    img.SetOrigin(tuple(float(v) for v in image.origin))
    img.SetDirection(tuple(float(v) for v in np.asarray(image.direction).ravel()))
    sitk.WriteImage(img, str(path), True)


def _write_nifti_offset(path: Path, image: Image, hu: np.ndarray) -> None:
    """A CT as uint16 HU + 1024 with the NIfTI scaling scl_slope 1, scl_inter -1024, in `image`'s geometry."""
    import nibabel as nib

    stored = np.ascontiguousarray((np.asarray(hu) + 1024.0).astype(np.uint16).transpose(2, 1, 0))
    img = nib.Nifti1Image(stored, image.affine_ras)
    img.set_qform(image.affine_ras, code=1)
    img.set_sform(image.affine_ras, code=1)
    img.header.set_xyzt_units("mm")
    img.header.set_slope_inter(1.0, -1024.0)
    nib.save(img, str(path))


def write_synthrad_patient(folder: str | os.PathLike, patient: SynthradPatient) -> Case:
    """One SynthRAD-style folder: mr (float32), ct (int16 HU, or uint16 with scl_inter), mask (uint8) on one grid;
    the truth in LPS order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    case = render(patient.seed, patient.grid)
    for stem, vol, dtype in (("mr", case.mr, np.float32), ("ct", np.round(case.ct), np.int16),
                             ("mask", case.mask, np.uint8)):
        image = placed(patient.grid, vol)
        if patient.suffix == ".mha":
            _write_mha(folder / f"{stem}.mha", image, dtype)
        elif stem == "ct" and patient.ct_scaled:
            _write_nifti_offset(folder / f"ct{patient.suffix}", image, image.array)
        else:
            write_nifti_image(folder / f"{stem}{patient.suffix}", image, image.array, dtype=dtype)
    case.ct = np.round(case.ct).astype(np.float32)
    case.id, case.source = patient.id, str(folder)
    case.meta.update(direction=patient.grid.direction, suffix=patient.suffix, ct_scaled=patient.ct_scaled)
    return case


def write_synthrad_fixture(root: str | os.PathLike,
                           patients: Sequence[SynthradPatient] = SYNTHRAD_PATIENTS) -> dict[str, Case]:
    """A SynthRAD2023-style data set below `root` (module docstring); the truth per patient id."""
    root = Path(root)
    return {p.id: write_synthrad_patient(root / p.id, p) for p in patients}


# ----------------------------------------------------------------------------------------------- DICOM

def _ds_number(v: float) -> str:
    """A decimal string (VR DS, at most 16 characters)."""
    text = f"{float(v):.6f}".rstrip("0").rstrip(".")
    return text if len(text) <= 16 else f"{float(v):.9g}"


@dataclass(frozen=True)
class Study:
    """What a patient's series share: patient id, study, and the frame of reference of the registered series."""

    patient_id: str
    study_uid: str
    frame_uid: str


def _file_meta(sop_class: str, sop_uid: str):
    """The file meta information of one DICOM file."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, sop_uid
    meta.TransferSyntaxUID, meta.ImplementationClassUID = ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID
    return meta


def _common(ds, study: Study, modality: str, description: str, number: int, series_uid: str) -> None:
    """Patient, study, series and frame-of-reference tags of one dataset."""
    today = datetime(2024, 5, 17, 10, 30)
    ds.PatientName, ds.PatientID, ds.PatientSex = study.patient_id, study.patient_id, "M"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study.study_uid, series_uid, study.frame_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = today.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = today.strftime("%H%M%S")
    ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
    ds.Modality, ds.SeriesDescription, ds.SeriesNumber = modality, description, number
    ds.Manufacturer = "ctmri fixture"


def write_series(folder: str | os.PathLike, image: Image, stored: np.ndarray, study: Study, *, modality: str,
                 description: str, number: int, rescale: tuple[float, float] | None = None,
                 padding: int | None = None, suffix: str = "") -> tuple[str, list[str]]:
    """One DICOM image series of `image`'s geometry holding `stored` (file order; int16 when `rescale` = (slope,
    intercept) is given, else uint16): one file per slice, named by SOP Instance UID; (series uid, SOP uids)."""
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.asarray(stored).astype(np.int16 if rescale else np.uint16)
    series_uid, sop_class = generate_uid(), CT_IMAGE_STORAGE if modality == "CT" else MR_IMAGE_STORAGE
    d, (sz, sy, sx) = np.asarray(image.direction, float), image.spacing
    normal = np.cross(d[:, 0], d[:, 1])
    uids = []
    for k in range(pixels.shape[0]):
        uid = generate_uid()
        ds = Dataset()
        ds.file_meta = _file_meta(sop_class, uid)
        _common(ds, study, modality, description, number, series_uid)
        ds.SOPClassUID, ds.SOPInstanceUID, ds.InstanceNumber = sop_class, uid, k + 1
        ds.ImageType, ds.PatientPosition = ["ORIGINAL", "PRIMARY", "AXIAL"], "FFS" if d[2, 2] < 0 else "HFS"
        position = image.origin + k * sz * d[:, 2]
        ds.ImagePositionPatient = [_ds_number(v) for v in position]
        ds.ImageOrientationPatient = [_ds_number(v) for v in (*d[:, 0], *d[:, 1])]
        ds.SliceLocation = _ds_number(float(position @ normal))
        ds.PixelSpacing = [_ds_number(sy), _ds_number(sx)]
        ds.SliceThickness = ds.SpacingBetweenSlices = _ds_number(sz)
        ds.Rows, ds.Columns = int(pixels.shape[1]), int(pixels.shape[2])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1 if rescale else 0
        if rescale:
            ds.RescaleSlope, ds.RescaleIntercept = _ds_number(rescale[0]), _ds_number(rescale[1])
            ds.RescaleType = "HU"
        if padding is not None:
            ds.add_new(0x00280120, "SS", int(padding))                        # PixelPaddingValue
        ds.PixelData = np.ascontiguousarray(pixels[k]).tobytes()
        ds.save_as(folder / f"{uid}{suffix}", enforce_file_format=True)
        uids.append(uid)
    return series_uid, uids


def ct_stored(hu: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """HU → the stored int16 values of a CT with RescaleSlope `slope` and RescaleIntercept `intercept`."""
    stored = np.rint((np.clip(hu, -1024.0, 3071.0) - intercept) / slope)
    if stored.min() < -32768 or stored.max() > 32767:
        raise ValueError(f"HU with slope {slope:g} / intercept {intercept:g} do not fit int16.")
    return stored.astype(np.int16)


def _outside_circle(shape_yx: tuple[int, int], body: np.ndarray, pixel_mm: float) -> np.ndarray:
    """(P, L) pixels outside the CT's reconstruction circle (radius: half the longer side) and away from the body."""
    from scipy import ndimage

    yy, xx = np.indices(shape_yx, dtype=float)
    cy, cx = (shape_yx[0] - 1) / 2, (shape_yx[1] - 1) / 2
    outside = np.hypot(yy - cy, xx - cx) * pixel_mm > max(shape_yx) * pixel_mm / 2
    near = ndimage.binary_dilation(body.any(axis=0), iterations=2)
    return outside & ~near


# ----------------------------------------------------------------------------------------------- RTSTRUCT

def _contours(mask2d: np.ndarray) -> list[np.ndarray]:
    """Closed contours (n, 2) in (row, column) pixel coordinates around a 2-D mask's pixel centres (outer and holes)."""
    from skimage import measure

    padded = np.pad(mask2d.astype(float), 1)
    return [c[:-1] - 1 for c in measure.find_contours(padded, 0.5) if len(c) > 3]


def _roi_contours(name: str, mask: np.ndarray, image: Image, image_uids: Sequence[str]):
    """The ContourSequence of one ROI: every slice's closed planar contours in LPS mm (`mask` in file order)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    affine = image.affine_lps
    items = []
    for k in range(mask.shape[0]):
        for rc in _contours(mask[k]):
            ijk1 = np.c_[rc[:, 1], rc[:, 0], np.full(len(rc), k), np.ones(len(rc))]
            xyz = (affine @ ijk1.T)[:3].T
            c = Dataset()
            ref = Dataset()
            ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CT_IMAGE_STORAGE, image_uids[k]
            c.ContourImageSequence = DicomSequence([ref])
            c.ContourGeometricType, c.NumberOfContourPoints = "CLOSED_PLANAR", len(xyz)
            c.ContourData = [f"{v:.3f}" for v in xyz.ravel()]
            items.append(c)
    if not items:
        raise ValueError(f"Fixture structure {name!r} is empty.")
    return DicomSequence(items)


def _referenced_frame(study: Study, series_uid: str, image_uids: Sequence[str]):
    """ReferencedFrameOfReferenceSequence: the frame, the study, the referenced series and each of its images."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    images = []
    for uid in image_uids:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CT_IMAGE_STORAGE, uid
        images.append(ref)
    series = Dataset()
    series.SeriesInstanceUID, series.ContourImageSequence = series_uid, DicomSequence(images)
    rt_study = Dataset()
    rt_study.ReferencedSOPClassUID, rt_study.ReferencedSOPInstanceUID = STUDY_COMPONENT, study.study_uid
    rt_study.RTReferencedSeriesSequence = DicomSequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID, frame.RTReferencedStudySequence = study.frame_uid, DicomSequence([rt_study])
    return DicomSequence([frame])


def write_rtstruct(path: str | os.PathLike, image: Image, masks: dict[str, np.ndarray], study: Study,
                   series_uid: str, image_uids: Sequence[str]) -> Path:
    """An RT Structure Set referencing the image series `series_uid` (its SOP uids `image_uids`): one ROI per mask
    (boolean, file order on `image`'s grid), contoured slice by slice."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import generate_uid

    uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _file_meta(RT_STRUCTURE_SET_STORAGE, uid)
    _common(ds, study, "RTSTRUCT", "RTSTRUCT fixture", 3000, generate_uid())
    del ds.FrameOfReferenceUID                                                 # not part of the RT Structure Set IOD
    ds.SOPClassUID, ds.SOPInstanceUID, ds.InstanceNumber = RT_STRUCTURE_SET_STORAGE, uid, 1
    ds.StructureSetLabel, ds.StructureSetName = "fixture", "phantom structures"
    ds.StructureSetDate, ds.StructureSetTime = ds.StudyDate, ds.StudyTime
    ds.ReferencedFrameOfReferenceSequence = _referenced_frame(study, series_uid, image_uids)
    rois, contours, observations = [], [], []
    for number, (name, mask) in enumerate(masks.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ReferencedFrameOfReferenceUID, roi.ROIName = number, study.frame_uid, name
        roi.ROIGenerationAlgorithm = "MANUAL"
        rois.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber, rc.ROIDisplayColor = number, [int(v) for v in (37 * number % 256, 90, 200)]
        rc.ContourSequence = _roi_contours(name, mask, image, image_uids)
        contours.append(rc)
        obs = Dataset()
        obs.ObservationNumber, obs.ReferencedROINumber, obs.ROIInterpreter = number, number, ""
        obs.RTROIInterpretedType = {"PTV": "PTV", "BODY": "EXTERNAL"}.get(name, "ORGAN")
        observations.append(obs)
    ds.StructureSetROISequence = DicomSequence(rois)
    ds.ROIContourSequence = DicomSequence(contours)
    ds.RTROIObservationsSequence = DicomSequence(observations)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


# ----------------------------------------------------------------------------------------------- Gold Atlas

def planning_structures(case: Case, margin_mm: float = PTV_MARGIN_MM) -> dict[str, np.ndarray]:
    """The dose stage's structures of a rendered phantom case (LPS (S, P, L) masks)."""
    from ctmri.dose.structures import phantom_structures

    return phantom_structures(case.labels, case.mask, case.spacing, margin_mm)


def write_goldatlas_patient(folder: str | os.PathLike, patient: GoldatlasPatient) -> Case:
    """One Gold-Atlas-style patient folder (module docstring); the truth (T2, registered CT in HU, the structures in
    meta["structures"]) in LPS order on the T2 grid."""
    from pydicom.uid import generate_uid

    folder = Path(folder)
    sub = (lambda name: folder) if patient.flat else (lambda name: folder / name)
    study = Study(patient.id, generate_uid(), generate_uid())
    case = render(patient.seed, patient.t2)
    names = patient.series
    t2 = placed(patient.t2, case.mr)
    write_series(sub("MR_T2"), t2, np.rint(t2.array * MR_SCALE), study, modality="MR", description=names["t2"],
                 number=301, suffix=".dcm")
    t1_case = render(patient.seed, patient.t1)
    t1 = placed(patient.t1, t1_like(t1_case, patient.seed))
    write_series(sub("MR_T1"), t1, np.rint(t1.array * MR_SCALE), study, modality="MR", description=names["t1"],
                 number=401, suffix=".dcm")
    ct = placed(patient.t2, case.ct)
    stored = ct_stored(ct.array, patient.ct_slope, patient.ct_intercept)
    pad = np.broadcast_to(_outside_circle(case.mask.shape[1:], case.mask, patient.t2.pixel_mm), case.mask.shape)
    stored[from_lps(pad, patient.t2.matrix)] = PADDING_VALUE
    ct_uid, ct_uids = write_series(sub("CT_CTtoMR"), ct, stored, study, modality="CT", description=names["ct_reg"],
                                   number=501, rescale=(patient.ct_slope, patient.ct_intercept),
                                   padding=PADDING_VALUE)
    raw = render(patient.seed, patient.ct)
    raw_study = Study(patient.id, study.study_uid, generate_uid())            # the planning CT's own frame
    raw_ct = placed(patient.ct, raw.ct)
    write_series(sub("CT"), raw_ct, ct_stored(raw_ct.array, 1.0, -1024.0), raw_study, modality="CT",
                 description=names["ct"], number=2)
    structures = planning_structures(case)
    masks = {name: from_lps(m, patient.t2.matrix) for name, m in structures.items()}
    write_rtstruct(sub("RTSTRUCT") / f"RS.{generate_uid()}.dcm", ct, masks, study, ct_uid, ct_uids)
    hu = np.clip(case.ct, -1024.0, 3071.0)
    truth_ct = np.rint((hu - patient.ct_intercept) / patient.ct_slope) * patient.ct_slope + patient.ct_intercept
    truth_ct[pad], truth_mr = -1024.0, np.where(pad, 0.0, np.rint(case.mr * MR_SCALE))   # as the reader fills them
    return Case(id=patient.id, mr=truth_mr.astype(np.float32), ct=truth_ct.astype(np.float32),
                mask=case.mask, spacing=case.spacing, labels=case.labels, source=str(folder),
                meta={**case.meta, "structures": structures, "padding": np.array(pad),
                      "direction": patient.t2.direction, "ct_series_uid": ct_uid,
                      "rescale": (patient.ct_slope, patient.ct_intercept)})


def write_goldatlas_fixture(root: str | os.PathLike,
                            patients: Sequence[GoldatlasPatient] = GOLDATLAS_PATIENTS) -> dict[str, Case]:
    """A Gold-Atlas-style DICOM tree below `root` (module docstring); the truth per patient id."""
    root = Path(root)
    return {p.id: write_goldatlas_patient(root / p.id, p) for p in patients}
