"""DICOM series selection (issue 24): `SeriesSelector`, read_image(series=...), the Gold Atlas MR / CT selectors,
`ctmri synthesize --series`; mixed series written with pydicom in one folder."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from ctmri.data.readers import goldatlas_pick, read_dataset, read_goldatlas
from ctmri.data.volumes import (DataError, DicomSeries, SeriesSelector, read_dicom_series, read_image, scan_series,
                                write_nifti)


def template(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not shipped with this pydicom")
    return path


def write_series(folder: Path, description: str, n: int, *, ct: bool = False, size: int = 64, offset: int = 100,
                 slope: float | None = None, intercept: float | None = None, iop=(1, 0, 0, 0, 1, 0),
                 step=(0.0, 0.0, 3.0), patient_id: str = "GA01", spacing: float = 0.3125) -> str:
    """n slices (k: pixels + offset·k at k·step) of MR_small / CT_small (int16) in `folder`; the series uid."""
    uid = generate_uid(entropy_srcs=[str(folder), description, str(n)])
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        ds = pydicom.dcmread(template("CT_small.dcm" if ct else "MR_small.dcm"))
        arr = ds.pixel_array
        arr = arr[:: arr.shape[0] // size, :: arr.shape[1] // size]
        ds.Rows, ds.Columns = arr.shape
        ds.PixelData = (arr.astype(np.int32) + offset * k).astype(arr.dtype).tobytes()
        ds.SeriesDescription, ds.SeriesInstanceUID, ds.PatientID = description, uid, patient_id
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[uid, str(k)])
        ds.InstanceNumber = n - k                                    # not the spatial order
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.ImagePositionPatient = [float(v) for v in np.array([-80.0, -90.0, 6.0]) + k * np.asarray(step)]
        ds.PixelSpacing = [spacing, spacing]
        if slope is not None:
            ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.save_as(folder / f"IM_{uid[-6:]}_{(7 * k) % n:03d}")
    return uid


def pixels(name: str, size: int = 64) -> np.ndarray:
    arr = pydicom.dcmread(template(name)).pixel_array
    return arr[:: arr.shape[0] // size, :: arr.shape[1] // size].astype(np.float32)


@pytest.fixture()
def mixed(tmp_path: Path) -> dict[str, str]:
    """One folder: T2 MR (4 slices), T1 MR (4), CT int16 with RescaleSlope 2 / Intercept -1000 (4), and a text file."""
    folder = tmp_path / "mixed"
    uids = {"t2": write_series(folder, "T2 tse ax", 4), "t1": write_series(folder, "t1 vibe", 4, offset=7),
            "ct": write_series(folder, "CT pelvis", 4, ct=True, offset=10, slope=2.0, intercept=-1000.0)}
    (folder / "notes.txt").write_text("skipped by its suffix")
    return {**uids, "folder": str(folder)}


def fake_series(description: str, modality: str = "MR", uid: str = "1.2.3") -> DicomSeries:
    ds = Dataset()
    ds.SeriesDescription, ds.Modality, ds.SeriesInstanceUID = description, modality, uid
    return DicomSeries(uid, [(Path("x"), ds)])


# ---------------------------------------------------------------------------------------------- the selector

def test_selector_parse() -> None:
    assert SeriesSelector.parse("uid=1.2.840.1") == SeriesSelector("uid", "1.2.840.1")
    assert SeriesSelector.parse(" desc = *T2* ") == SeriesSelector("desc", "*T2*")
    assert SeriesSelector.parse("MODALITY=mr") == SeriesSelector("modality", "mr")
    assert SeriesSelector.parse("re=t2.*(ax|tra)") == SeriesSelector("re", "t2.*(ax|tra)")
    assert SeriesSelector.parse("*T2*") == SeriesSelector("desc", "*T2*")           # a bare pattern
    assert str(SeriesSelector.parse("T2 tse")) == "desc=T2 tse"
    for bad, why in (("colour=red", "Unknown series selector key 'colour'"), ("uid=", "uid= has no value"),
                     ("re=t2(", "not a valid regular expression")):
        with pytest.raises(DataError, match=re.escape(why)):
            SeriesSelector.parse(bad)


@pytest.mark.parametrize("selector, description, modality, hit", [
    ("desc=*t2*", "T2 tse ax", "MR", True),          # glob, case-insensitive
    ("desc=t2 tse*", "ax T2 tse", "MR", False),      # a glob matches the whole description
    ("desc=T2", "ax t2 tse", "MR", True),            # no wildcard: a substring (the Gold Atlas rule)
    ("desc=T2", "T1 vibe", "MR", False),
    ("re=^t2\\s+tse", "T2  TSE ax", "MR", True),     # a regex, searched, case-insensitive
    ("re=^tse", "T2 tse", "MR", False),
    ("modality=mr", "anything", "MR", True),
    ("modality=MR", "T2", "CT", False),
    ("uid=1.2.3", "x", "MR", True),
    ("uid=1.2", "x", "MR", False),                   # a uid is exact, not a prefix
])
def test_selector_matches(selector: str, description: str, modality: str, hit: bool) -> None:
    assert SeriesSelector.parse(selector).matches(fake_series(description, modality)) is hit


# ---------------------------------------------------------------------------------------------- read_image

def test_mixed_folder_without_selection_lists_the_series(mixed: dict[str, str]) -> None:
    with pytest.raises(DataError) as err:
        read_image(mixed["folder"])
    msg = str(err.value)
    assert re.search(r"mixed' holds 3 DICOM series: ", msg)
    for key, label in (("ct", "(CT, 'CT pelvis', 4 slices)"), ("t2", "(MR, 'T2 tse ax', 4 slices)"),
                       ("t1", "(MR, 't1 vibe', 4 slices)")):
        assert f"{mixed[key]} {label}" in msg
    assert "pick one with --series uid=<uid>" in msg
    assert msg.endswith(".") and ". " not in msg                      # one sentence


def test_each_series_picked(mixed: dict[str, str]) -> None:
    folder = mixed["folder"]
    t2 = read_image(folder, series="desc=*T2*")
    assert t2.array.shape == (4, 64, 64) and t2.meta["series_uid"] == mixed["t2"]
    for k in range(4):
        np.testing.assert_array_equal(t2.array[k], pixels("MR_small.dcm") + 100 * k)
    assert t2.spacing == pytest.approx((3.0, 0.3125, 0.3125))
    t1 = read_image(folder, series=SeriesSelector("uid", mixed["t1"]))
    np.testing.assert_array_equal(t1.array[3], pixels("MR_small.dcm") + 21)
    ct = read_image(folder, series="modality=ct")
    assert ct.meta["modality"] == "CT" and ct.meta["rescaled"] and ct.meta["dicom"].Modality == "CT"
    for k in range(4):                                                # int16 stored × 2 - 1000 = HU
        np.testing.assert_array_equal(ct.array[k], (pixels("CT_small.dcm") + 10 * k) * 2 - 1000)
    vol, _, meta = read_dicom_series(folder, series="re=^t1")
    assert meta["series_uid"] == mixed["t1"] and vol.shape == (4, 64, 64)
    assert read_dicom_series(folder, series_uid=mixed["t2"])[2]["series_description"] == "T2 tse ax"


def test_ambiguous_or_missing_selection_names_the_candidates(mixed: dict[str, str]) -> None:
    with pytest.raises(DataError) as err:
        read_image(mixed["folder"], series="modality=MR")
    msg = str(err.value)
    assert "has 2 DICOM series matching modality=MR: " in msg and "pick one with --series uid=<uid>" in msg
    assert mixed["t1"] in msg and mixed["t2"] in msg and mixed["ct"] not in msg
    with pytest.raises(DataError, match=r"has no DICOM series matching desc=\*flair\*; found .*'CT pelvis'.*"
                                        r"'T2 tse ax'.*'t1 vibe'.*--series uid="):
        read_image(mixed["folder"], series="desc=*flair*")


def test_series_selection_on_a_nifti_is_refused(tmp_path: Path) -> None:
    write_nifti(tmp_path / "mr.nii.gz", np.ones((2, 3, 4), np.float32), (3.0, 1.0, 1.0))
    assert read_image(tmp_path / "mr.nii.gz").array.shape == (2, 3, 4)
    with pytest.raises(DataError, match=r"mr\.nii\.gz' is one volume, not a DICOM folder.*uid=1\.2"):
        read_image(tmp_path / "mr.nii.gz", series="uid=1.2")


# ---------------------------------------------------------------------------------------------- Gold Atlas

@pytest.fixture()
def atlas(tmp_path: Path) -> dict[str, str]:
    """One Gold Atlas patient: T2, T1, the CTtoMR and the planning CT, all 3 slices on one 64² grid."""
    patient = tmp_path / "atlas" / "1_01_P"
    uids = {"t2": write_series(patient / "MR", "T2 ax", 3), "t1": write_series(patient / "MR", "T1 vibe", 3, offset=7),
            "ctmr": write_series(patient / "CT", "CTtoMR", 3, ct=True, offset=10, slope=1.0, intercept=-1024.0),
            "plan": write_series(patient / "CT", "planning", 3, ct=True, offset=20, slope=1.0, intercept=-1024.0)}
    return {**uids, "root": str(tmp_path / "atlas")}


def test_goldatlas_default_and_configured_selectors(atlas: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTMRI_GOLDATLAS_MR", raising=False)
    monkeypatch.delenv("CTMRI_GOLDATLAS_CT", raising=False)
    (case,) = read_goldatlas(atlas["root"])
    assert (case.meta["mr_series_uid"], case.meta["ct_series_uid"]) == (atlas["t2"], atlas["ctmr"])
    (case,) = read_goldatlas(atlas["root"], mr_series="desc=t1*", ct_series=f"uid={atlas['plan']}")
    assert (case.meta["mr_series"], case.meta["ct_series"]) == ("T1 vibe", "planning")
    np.testing.assert_array_equal(case.ct[2], pixels("CT_small.dcm") + 40 - 1024)
    monkeypatch.setenv("CTMRI_GOLDATLAS_MR", f"uid={atlas['t1']}")      # make prepare ... CTMRI_GOLDATLAS_MR=...
    monkeypatch.setenv("CTMRI_GOLDATLAS_CT", "re=^plan")
    (case,) = read_dataset("goldatlas", atlas["root"])
    assert (case.meta["mr_series_uid"], case.meta["ct_series_uid"]) == (atlas["t1"], atlas["plan"])
    (case,) = read_dataset("goldatlas", atlas["root"], mr_series="T2")   # a keyword beats the environment
    assert case.meta["mr_series_uid"] == atlas["t2"]


def test_goldatlas_selector_without_match_names_the_variable(atlas: dict[str, str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTMRI_GOLDATLAS_MR", "desc=*flair*")
    with pytest.raises(DataError) as err:
        read_goldatlas(atlas["root"])
    msg = str(err.value)
    assert re.search(r"1_01_P' has no T2-weighted MR series matching desc=\*flair\*; found ", msg)
    assert f"{atlas['t1']} (MR, 'T1 vibe', 3 slices)" in msg and atlas["ctmr"] not in msg  # the CT is taken
    assert "pick one with CTMRI_GOLDATLAS_MR=uid=<uid>" in msg and ". " not in msg
    monkeypatch.setenv("CTMRI_GOLDATLAS_MR", "flavour=x")
    with pytest.raises(DataError, match="Unknown series selector key 'flavour'"):
        read_goldatlas(atlas["root"])


def test_goldatlas_takes_the_fullest_of_several_matches(tmp_path: Path) -> None:
    short = write_series(tmp_path / "p", "T2 ax short", 2)
    full = write_series(tmp_path / "p", "T2 ax", 5, offset=3)
    ct = write_series(tmp_path / "p", "CTtoMR", 5, ct=True, slope=1.0, intercept=-1024.0)
    mr_s, ct_s = goldatlas_pick(scan_series(tmp_path / "p"), tmp_path / "p")
    assert (mr_s.uid, ct_s.uid) == (full, ct) and short != full
    mr_s, _ = goldatlas_pick(scan_series(tmp_path / "p"), tmp_path / "p", mr_series="modality=MR")
    assert mr_s.uid == full


# ---------------------------------------------------------------------------------------------- CLI

def fake_synthesize(calls: list):
    def synthesize(input, out=None, *, series=None, **kwargs):
        calls.append({"input": str(input), "series": series, **kwargs})
        return {"files": {"sct": "sct.nii.gz"}, "out": "x", "slices": 1, "mc_samples": 1, "sampler": "s",
                "seconds": 0.0, "seconds_per_slice": 0.0}
    return synthesize


def test_cli_synthesize_series_option(mixed: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture) -> None:
    import ctmri.sample.synthesize as synth
    from ctmri.cli import main

    calls: list = []
    monkeypatch.setattr(synth, "synthesize", fake_synthesize(calls))
    assert main(["synthesize", "--input", mixed["folder"], "--series", f"uid={mixed['t2']}"]) == 0
    assert calls[-1]["series"] == f"uid={mixed['t2']}" and calls[-1]["input"] == mixed["folder"]
    assert main(["synthesize", "--input", mixed["folder"]]) == 0
    assert calls[-1]["series"] is None
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["synthesize", "--input", mixed["folder"], "--series", "colour=red"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "argument --series: Unknown series selector key 'colour'" in err and err.count("\n") == 1


def test_synthesize_reads_the_selected_series(mixed: dict[str, str], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """synthesize(series=...) (sample/synthesize.py) reads the series asked for; skipped where it lacks the keyword."""
    import inspect

    import ctmri.sample.synthesize as synth

    if "series" not in inspect.signature(synth.synthesize).parameters:
        pytest.skip("this synthesize has no series keyword yet")
    seen: list = []

    class Stop(Exception):
        pass

    def spy(path, *args, **kwargs):
        seen.append(read_image(path, *args, **kwargs))
        raise Stop

    monkeypatch.setattr(synth, "read_image", spy)
    ckpt = tmp_path / "fake.pt"
    ckpt.write_bytes(b"")
    with pytest.raises(DataError, match="holds 3 DICOM series"):
        synth.synthesize(mixed["folder"], tmp_path / "out", checkpoint=ckpt, sampler="ddpm", device="cpu")
    with pytest.raises(Stop):
        synth.synthesize(mixed["folder"], tmp_path / "out", checkpoint=ckpt, sampler="ddpm", device="cpu",
                         series="desc=*T2*")
    assert seen and seen[0].meta["series_uid"] == mixed["t2"]
