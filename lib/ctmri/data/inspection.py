"""`ctmri inspect PATH`: the patients, series and volumes ctmri finds in a folder or file, and what each reader picks.

Works on a DICOM tree (one folder per patient, as the Gold Atlas reader reads it), a SynthRAD2023 / 2025 folder
(`[<region>/]<patient>/{mr,ct,mask}.nii.gz|.mha`) or a single volume; headers only, no pixel data is read.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

from ctmri.data.readers import (GOLDATLAS_CT_ENV, GOLDATLAS_MR_ENV, goldatlas_ct, goldatlas_mr, goldatlas_patients,
                                goldatlas_selectors, synthrad_files, synthrad_folders, synthrad_ids)
from ctmri.data.volumes import (MHA_SUFFIXES, NIFTI_SUFFIXES, NON_DICOM_SUFFIXES, DataError, DicomSeries, ImageGrid,
                                SeriesSelector, read_geometry, scan_series, select_series, series_geometry)


def inspect_path(path: str | os.PathLike, *, series: SeriesSelector | str | None = None,
                 mr_series: SeriesSelector | str | None = None,
                 ct_series: SeriesSelector | str | None = None) -> dict[str, Any]:
    """What ctmri sees in `path` (a DICOM tree, a SynthRAD folder or one file), as a JSON-ready dict.

    series: the selection `ctmri synthesize --series` would get; mr_series / ct_series: the Gold Atlas selectors
    (default $CTMRI_GOLDATLAS_MR / _CT, else "T2" / "CTtoMR").
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{str(path)!r} does not exist; expected a DICOM folder, a SynthRAD folder or a volume file.")
    if series is not None:
        series = SeriesSelector.parse(series)
    goldatlas_selectors(mr_series, ct_series)                       # a bad selector fails here, once
    if path.is_file():
        return {"path": str(path), "kind": "file", "patients": [_file_patient(path, series)]}
    folders = synthrad_folders(path)
    if folders:
        patients = [_synthrad_patient(f, i) for f, i in zip(folders, synthrad_ids(path, folders))]
        return {"path": str(path), "kind": "synthrad", "patients": patients}
    patients = [_dicom_patient(p, p.name, series, mr_series, ct_series) for p in goldatlas_patients(path)]
    return {"path": str(path), "kind": "dicom", "patients": patients, "notes": _dicom_notes(path, patients)}


# ----------------------------------------------------------------------------------------------- rows

def _geometry_row(geo: ImageGrid) -> dict[str, Any]:
    """size and spacing as (x, y, z), orientation code."""
    return {"size": list(geo.shape[::-1]), "spacing": [round(float(v), 4) for v in geo.spacing[::-1]],
            "orientation": geo.orientation}


def _series_row(s: DicomSeries) -> dict[str, Any]:
    """One DICOM series: modality, description, geometry, slices, uid."""
    row: dict[str, Any] = {"modality": s.modality, "description": s.description}
    try:
        row.update(_geometry_row(series_geometry(s)))
    except DataError as err:
        row["error"] = str(err)
    return {**row, "slices": s.n_slices, "uid": s.uid}


def _volume_row(path: Path, role: str) -> dict[str, Any]:
    """One volume file (NIfTI / .mha) as a series row; `role` (mr, ct, mask) as its modality."""
    row: dict[str, Any] = {"modality": role.upper() if role in ("mr", "ct") else role, "description": path.name}
    try:
        geo = read_geometry(path)
        row.update(_geometry_row(geo), slices=int(geo.shape[0]))
    except DataError as err:
        row["error"] = str(err)
    return {**row, "file": str(path)}


def _chosen(s: DicomSeries, selector: SeriesSelector | None, matches: int) -> dict[str, Any]:
    return {"selector": str(selector) if selector else None, "matches": matches, "uid": s.uid,
            "modality": s.modality, "description": s.description, "slices": s.n_slices}


def _pick(found: Sequence[DicomSeries], selector: SeriesSelector | None,
          choose: Callable[[], DicomSeries]) -> dict[str, Any]:
    """What a reader picks (`choose`, the reader's own rule) or its refusal, with the number of matching series."""
    matches = len(found) if selector is None else sum(selector.matches(s) for s in found)
    try:
        return _chosen(choose(), selector, matches)
    except DataError as err:
        return {"selector": str(selector) if selector else None, "matches": matches, "error": str(err)}


# ----------------------------------------------------------------------------------------------- patients

def _dicom_patient(folder: Path, pid: str, series: SeriesSelector | None, mr_series, ct_series) -> dict[str, Any]:
    """One DICOM patient folder: its series and the picks of synthesize and the Gold Atlas reader."""
    rec: dict[str, Any] = {"id": pid, "folder": str(folder)}
    try:
        found = scan_series(folder)
    except DataError as err:
        return {**rec, "patient_id": "", "series": [], "picks": {}, "error": str(err)}
    mr_sel, ct_sel = goldatlas_selectors(mr_series, ct_series)
    ct = _pick(found, ct_sel, lambda: goldatlas_ct(found, folder, ct_sel))
    rest = [s for s in found if s.uid != ct.get("uid")]
    picks = {"synthesize": _pick(found, series, lambda: select_series(found, series, repr(str(folder)))),
             "goldatlas_mr": _pick(rest, mr_sel, lambda: goldatlas_mr(found, folder, mr_sel, ct.get("uid"))),
             "goldatlas_ct": ct}
    ids = sorted({str(s.first.get("PatientID", "")) for s in found})
    return {**rec, "patient_id": ", ".join(ids), "series": [_series_row(s) for s in found], "picks": picks}


def _synthrad_patient(folder: Path, pid: str) -> dict[str, Any]:
    """One SynthRAD patient folder: its mr / ct / mask volumes and the files the SynthRAD reader takes."""
    files = synthrad_files(folder)
    rows = [_volume_row(f, role) for role, f in files.items() if f is not None]
    picks = {f"synthrad_{role}": ({"file": str(f)} if f is not None else
                                  {"error": f"no {role}.nii.gz / {role}.mha" + ("" if role == "mask" else
                                                                               "; the SynthRAD reader refuses it")})
             for role, f in files.items()}
    if files["mr"] is not None:
        picks["synthesize"] = {"file": str(files["mr"])}
    return {"id": pid, "folder": str(folder), "patient_id": "", "series": rows, "picks": picks}


def _file_patient(path: Path, series: SeriesSelector | None) -> dict[str, Any]:
    """A single file: one volume (NIfTI / .mha) or one DICOM file (its series)."""
    if path.name.lower().endswith(NIFTI_SUFFIXES + MHA_SUFFIXES):
        return {"id": path.name, "folder": str(path.parent), "patient_id": "", "series": [_volume_row(path, "")],
                "picks": {"synthesize": {"file": str(path)}}}
    if path.name.lower().endswith(NON_DICOM_SUFFIXES):
        raise DataError(f"{str(path)!r} is not a volume this tool reads; expected a NIfTI file (.nii.gz / .nii), an "
                        ".mha file, a DICOM file or a folder.")
    found = scan_series(path)
    ids = sorted({str(s.first.get("PatientID", "")) for s in found})
    picks = {"synthesize": _pick(found, series, lambda: select_series(found, series, repr(str(path))))}
    return {"id": path.name, "folder": str(path.parent), "patient_id": ", ".join(ids),
            "series": [_series_row(s) for s in found], "picks": picks}


def _dicom_notes(root: Path, patients: list[dict[str, Any]]) -> list[str]:
    """Warnings on the layout: sub-folders that look like one patient's series folders."""
    ids = {p["patient_id"] for p in patients if p.get("patient_id")}
    if len(patients) > 1 and len(ids) == 1:
        return [f"every sub-folder of {str(root)!r} holds PatientID {ids.pop()}: this may be one patient's folder; "
                "the goldatlas reader takes each sub-folder as one patient, so give it the folder above."]
    return []


# ----------------------------------------------------------------------------------------------- table

PICK_NAMES = {"synthesize": "synthesize", "goldatlas_mr": "goldatlas MR", "goldatlas_ct": "goldatlas CT",
              "synthrad_mr": "synthrad MR", "synthrad_ct": "synthrad CT", "synthrad_mask": "synthrad mask"}
PICK_HINTS = {"synthesize": "--series", "goldatlas_mr": f"{GOLDATLAS_MR_ENV}=", "goldatlas_ct": f"{GOLDATLAS_CT_ENV}="}
KIND_NAMES = {"dicom": "DICOM tree", "synthrad": "SynthRAD folder", "file": "single file"}


def _fmt(values: Sequence[float]) -> str:
    return "×".join(f"{v:g}" for v in values)


def _pick_text(name: str, pick: dict[str, Any]) -> str:
    """One line: what a reader takes, or why it refuses and how to choose."""
    if "file" in pick:
        return pick["file"]
    if "uid" in pick:
        how = f" of {pick['matches']} matching {pick['selector']}, the fullest" if pick["matches"] > 1 else ""
        return f"{pick['modality']} {pick['description']!r}, {pick['slices']} slices, uid {pick['uid']}{how}"
    if "matches" not in pick:
        return f"none ({pick['error']})"
    hint = PICK_HINTS.get(name, "--series")
    sep = "" if hint.endswith("=") else " "
    if pick["selector"] is None:
        why = "no image series" if not pick["matches"] else f"{pick['matches']} series, none chosen by default"
    elif not pick["matches"]:
        why = f"no series matches {pick['selector']}"
    else:
        why = f"{pick['matches']} series match {pick['selector']}"
    return f"none: {why}; choose with {hint}{sep}uid=<uid> (or desc=, re=, modality=)"


def _series_table(rows: list[dict[str, Any]]) -> list[str]:
    """Aligned columns: modality, description, size, spacing, orientation, slices, uid (or file)."""
    head = ["modality", "description", "size x×y×z", "spacing mm", "orient", "slices", "uid / file"]
    body = [[r["modality"] or "?", r["description"] or "''",
             _fmt(r["size"]) if "size" in r else "?", _fmt(r["spacing"]) if "spacing" in r else "?",
             r.get("orientation", "?"), str(r.get("slices", "?")), r.get("uid") or r.get("file", "")]
            for r in rows]
    widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head] + body]
    return lines + [f"  ! {r['error']}" for r in rows if "error" in r]


def format_report(report: dict[str, Any]) -> str:
    """The report of `inspect_path` as a readable text table."""
    patients = report["patients"]
    lines = [f"{report['path']}: {KIND_NAMES[report['kind']]}, {len(patients)} "
             f"patient{'s' if len(patients) != 1 else ''}"]
    for p in patients:
        pid = f" (PatientID {p['patient_id']})" if p.get("patient_id") else ""
        lines += ["", f"{p['id']}{pid}: {p['folder']}"]
        if "error" in p:
            lines.append(f"  ! {p['error']}")
            continue
        lines += _series_table(p["series"])
        width = max((len(PICK_NAMES[k]) for k in p["picks"]), default=0)
        lines += [f"  {PICK_NAMES[k] + ':':{width + 1}s} {_pick_text(k, v)}" for k, v in p["picks"].items()]
    lines += [f"note: {n}" for n in report.get("notes", [])]
    return "\n".join(lines)
