"""Write volumes in an input's exact geometry: NIfTI (header kept) and DICOM series (pydicom's dataset API)."""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ctmri.data.volumes import Image

# SOP classes of the series we write (PS3.4 B.5)
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
# Carried over from an input DICOM series (patient and frame of reference), never invented.
PATIENT_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientWeight",
                "PatientPosition", "FrameOfReferenceUID", "PositionReferenceIndicator", "AccessionNumber",
                "ReferringPhysicianName", "StudyID")


def write_nifti_image(path: str | os.PathLike, image: Image, array: np.ndarray, dtype=None,
                      description: str = "") -> Path:
    """Write `array` (z, y, x, the file order of `image`) with `image`'s affine; a NIfTI input's header is kept."""
    import nibabel as nib

    data = np.asarray(array if dtype is None else array.astype(dtype))
    data = np.ascontiguousarray(image.with_array(data).array.transpose(2, 1, 0))
    header = image.meta.get("nifti")
    if header is not None:  # same affine, qform / sform codes, units as the input, our dtype and no scaling
        img = nib.Nifti1Image(data, None, header=header.copy())
        img.header.set_data_dtype(data.dtype)
        img.header.set_slope_inter(1.0, 0.0)
    else:
        img = nib.Nifti1Image(data, image.affine_ras)
        img.header.set_xyzt_units("mm")
        img.set_qform(image.affine_ras, code=1)
        img.set_sform(image.affine_ras, code=1)
    if description:
        img.header["descrip"] = description[:79].encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def write_dicom_series(folder: str | os.PathLike, image: Image, array: np.ndarray, *, modality: str = "CT",
                       series_description: str = "ctmri synthetic CT", rescale_intercept: float = -1024.0,
                       extra: dict[str, Any] | None = None) -> list[Path]:
    """One file per slice of `array` (z, y, x, the file order of `image`), positions from `image`'s geometry.

    Values are stored as uint16 pixel = round(value − intercept) with RescaleSlope 1 and
    RescaleIntercept `rescale_intercept` (−1024 for HU). New Study / Series / SOP Instance UIDs;
    patient and frame-of-reference tags come from an input DICOM series (`image.meta["dicom"]`).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

    values = np.rint(np.asarray(array, dtype=np.float64) - rescale_intercept)
    if values.min() < 0 or values.max() > 65535:
        raise ValueError(f"Values {values.min() + rescale_intercept:g}..{values.max() + rescale_intercept:g} do not fit "
                         f"uint16 with RescaleIntercept {rescale_intercept:g}.")
    pixels = image.with_array(values.astype(np.uint16)).array
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source = image.meta.get("dicom")
    now = datetime.now()
    sop_class = CT_IMAGE_STORAGE if modality == "CT" else MR_IMAGE_STORAGE
    study, series = generate_uid(), generate_uid()
    frame = str(source.FrameOfReferenceUID) if source is not None and "FrameOfReferenceUID" in source \
        else generate_uid()
    d = np.asarray(image.direction, float)
    sz, sy, sx = (float(v) for v in image.spacing)
    files = []
    for k in range(pixels.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        if source is not None:
            for tag in PATIENT_TAGS:
                if tag in source:
                    setattr(ds, tag, source.data_element(tag).value)
        else:
            ds.PatientName, ds.PatientID = "", Path(image.source).name.split(".")[0] if image.source else ""
        ds.FrameOfReferenceUID = frame
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.Modality, ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = modality, series_description, 900, k + 1
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.Manufacturer, ds.ManufacturerModelName = "ctmri", "ctmri synthesize"
        ds.ImagePositionPatient = [float(v) for v in image.origin + k * sz * d[:, 2]]
        ds.ImageOrientationPatient = [float(v) for v in (*d[:, 0], *d[:, 1])]
        ds.PixelSpacing = [sy, sx]                         # row spacing (along j), column spacing (along i)
        ds.SliceThickness = sz
        ds.SpacingBetweenSlices = sz
        ds.SliceLocation = float(np.dot(image.origin + k * sz * d[:, 2], np.cross(d[:, 0], d[:, 1])))
        ds.Rows, ds.Columns = int(pixels.shape[1]), int(pixels.shape[2])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, rescale_intercept
        if modality == "CT":
            ds.RescaleType = "HU"
            ds.WindowCenter, ds.WindowWidth = 40, 400
        for key, value in (extra or {}).items():
            setattr(ds, key, value)
        ds.PixelData = np.ascontiguousarray(pixels[k]).tobytes()
        path = folder / f"{modality}{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files
