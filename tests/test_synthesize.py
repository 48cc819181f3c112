"""`ctmri synthesize`: whole volumes in any input geometry → sCT NIfTI / DICOM that read back identically;
bad input refused in one sentence with nothing left behind; artifacts that do not belong together refused."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

from ctmri.data.phantom import make_case
from ctmri.data.volumes import DataError, read_dicom_series, read_image
from ctmri.data.writers import write_dicom_series

SIZE = (9, 40, 36)          # odd slice count, non-square slices
SPACING = (6.0, 8.0, 7.0)   # (z, y, x) mm


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Smoke data and a few-step smoke DDPM for each direction, each in its own CTMRI_ROOT."""
    from ctmri.data.prepare import prepare_dataset
    from ctmri.train.loop import train

    roots = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for direction in ("mr2ct", "ct2mr"):
            root = tmp_path_factory.mktemp(direction)
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("CTMRI_ROOT", str(root))
                prepare_dataset("smoke", direction=direction)
                train("smoke", "ddpm", steps=3, progress=False)
            roots[direction] = root
    finally:
        torch.set_num_threads(threads)
    return roots


@pytest.fixture
def root(trained: dict[str, Path], monkeypatch: pytest.MonkeyPatch, one_thread) -> Path:
    monkeypatch.setenv("CTMRI_ROOT", str(trained["mr2ct"]))
    return trained["mr2ct"]


def ckpt(root: Path) -> Path:
    return root / "runs" / "smoke" / "checkpoints" / "ddpm.pt"


def rotation_affine(spacing=SPACING, degrees: float = 90.0, origin=(12.5, -40.0, 30.0)) -> np.ndarray:
    """RAS affine of voxel (i, j, k) with the in-plane axes rotated about the slice normal (a non-identity direction)."""
    a = np.deg2rad(degrees)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([-1.0, -1.0, 1.0]) @ np.diag(spacing[::-1])
    affine[:3, 3] = origin
    return affine


def phantom_nifti(path: Path, affine: np.ndarray | None = None, shape=SIZE, ct: bool = False) -> np.ndarray:
    case = make_case(3, shape, SPACING)
    vol = case.ct if ct else case.mr
    affine = rotation_affine() if affine is None else affine
    nib.save(nib.Nifti1Image(np.ascontiguousarray(vol.transpose(2, 1, 0)), affine), str(path))
    return affine


def run(input: Path, out: Path, **kw):
    from ctmri.sample.synthesize import synthesize

    kw.setdefault("checkpoint", ckpt(Path(os.environ["CTMRI_ROOT"])))
    # the smoke model's 16² slices of 24-mm pixels are too coarse to judge contrast (a smaller phantom body alone moves
    # the statistics); the contrast check is tested with the committed cpu weights (tests/test_real_inputs.py)
    kw.setdefault("accept_contrast", True)
    kw.setdefault("device", "cpu")
    return synthesize(input, out, mc_samples=kw.pop("mc_samples", 2), progress=False, **kw)


# ---------------------------------------------------------------------------------------------- geometry

def test_nifti_in_rotated_geometry_gives_sct_on_the_same_grid(root: Path, tmp_path: Path) -> None:
    affine = phantom_nifti(tmp_path / "mr.nii.gz")
    rec = run(tmp_path / "mr.nii.gz", tmp_path / "out", dicom=True)
    sct, std = nib.load(str(tmp_path / "out" / "sct.nii.gz")), nib.load(str(tmp_path / "out" / "sct_std.nii.gz"))
    assert sct.shape == std.shape == SIZE[::-1]
    np.testing.assert_allclose(sct.affine, affine, atol=1e-5)
    np.testing.assert_allclose(std.affine, affine, atol=1e-5)
    hu = np.asarray(sct.dataobj)
    assert hu.dtype == np.int16 and hu.min() >= -1024 and hu.max() <= 3000
    assert (hu == -1000).mean() > 0.2 and (hu != -1000).any()       # air outside the body, tissue inside
    sd = np.asarray(std.dataobj)
    assert sd.dtype == np.float32 and sd.min() >= 0 and sd[hu == -1000].max() == 0 and sd.max() > 0
    assert rec["slices"] == SIZE[0] and rec["mc_samples"] == 2 and rec["sampler"] == "ddpm"
    assert rec["direction"] == "mr2ct" and rec["profile"] == "smoke" and len(rec["checkpoint_digest"]) == 64
    on_disk = json.loads((tmp_path / "out" / "sct.json").read_text())
    for key in ("checkpoint", "checkpoint_commit", "profile", "sampler", "nfe", "mc_samples", "seeds", "seconds",
                "data_digest", "direction"):
        assert key in on_disk, key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mr.nii.gz", "out"]   # no temporary folder left

    # the DICOM series: same array and geometry through our reader, pydicom and SimpleITK
    series = tmp_path / "out" / "dicom"
    files = sorted(series.iterdir())
    assert len(files) == SIZE[0]
    img = read_image(series)
    ref = read_image(tmp_path / "out" / "sct.nii.gz")
    np.testing.assert_array_equal(img.array, ref.array)
    np.testing.assert_allclose(img.affine_lps, ref.affine_lps, atol=1e-4)
    ds = [pydicom.dcmread(f) for f in files]
    assert {d.Modality for d in ds} == {"CT"} and len({d.SeriesInstanceUID for d in ds}) == 1
    assert len({d.SOPInstanceUID for d in ds}) == SIZE[0]
    stack = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in ds])
    np.testing.assert_array_equal(stack, ref.array)
    sitk = pytest.importorskip("SimpleITK")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series)))
    simg = reader.Execute()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(simg), ref.array)
    np.testing.assert_allclose(np.reshape(simg.GetDirection(), (3, 3)), ref.direction, atol=1e-5)
    np.testing.assert_allclose(simg.GetOrigin(), ref.origin, atol=1e-4)
    np.testing.assert_allclose(simg.GetSpacing(), ref.spacing[::-1], atol=1e-5)


def test_saved_mc_samples_average_to_the_sct_and_feed_ctmri_dose(root: Path, tmp_path: Path) -> None:
    """--save-samples: K replicates on the input's grid whose mean is the written sCT (up to the HU rounding of each
    file), and `ctmri dose --sct-samples` takes their folder; a folder without volumes is refused."""
    from ctmri.cli import sample_files

    affine = phantom_nifti(tmp_path / "mr.nii.gz", rotation_affine())
    rec = run(tmp_path / "mr.nii.gz", tmp_path / "out", mc_samples=3, save_samples=True)
    folder = tmp_path / "out" / rec["files"]["sct_samples"]
    files = sample_files([str(folder)])
    assert [Path(f).name for f in files] == [f"sct_sample_{k:02d}.nii.gz" for k in range(3)]
    reps = np.stack([np.asarray(nib.load(f).dataobj) for f in files]).astype(np.float64)
    for f in files:
        np.testing.assert_allclose(nib.load(f).affine, affine, atol=1e-5)
    sct = np.asarray(nib.load(str(tmp_path / "out" / "sct.nii.gz")).dataobj).astype(np.float64)
    body = sct != -1000
    assert np.abs(reps.mean(0) - sct)[body].max() <= 1.0 and (reps[:, body].std(0) > 0).any()
    assert "sct_samples" not in run(tmp_path / "mr.nii.gz", tmp_path / "out2")["files"]      # only when asked
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no"):
        sample_files([str(tmp_path / "empty")])
    with pytest.raises(ValueError, match="at least two"):
        sample_files([files[0]])


def test_orientation_does_not_change_the_result(root: Path, tmp_path: Path) -> None:
    """The same voxels stored axis-aligned and rotated by 90° give the same sCT (the model sees the same slices)."""
    plain = np.diag([-SPACING[2], -SPACING[1], SPACING[0], 1.0])
    phantom_nifti(tmp_path / "a.nii.gz", plain)
    a = run(tmp_path / "a.nii.gz", tmp_path / "a")
    # swap the in-plane voxel axes and rotate the affine to match: the same anatomy in another storage order
    case = make_case(3, SIZE, SPACING)
    aff = np.eye(4)
    aff[:3, :3] = np.array([[0, -SPACING[2], 0], [-SPACING[1], 0, 0], [0, 0, SPACING[0]]])
    nib.save(nib.Nifti1Image(np.ascontiguousarray(case.mr.transpose(1, 2, 0)), aff), str(tmp_path / "b.nii.gz"))
    b = run(tmp_path / "b.nii.gz", tmp_path / "b")
    sa = np.asarray(nib.load(str(tmp_path / "a" / "sct.nii.gz")).dataobj)
    sb = np.asarray(nib.load(str(tmp_path / "b" / "sct.nii.gz")).dataobj)
    np.testing.assert_array_equal(sa, sb.transpose(1, 0, 2))
    assert a["seeds"] == b["seeds"]


def test_dicom_mr_series_in_keeps_patient_and_frame_of_reference(root: Path, tmp_path: Path) -> None:
    affine = phantom_nifti(tmp_path / "mr.nii.gz")
    mr = read_image(tmp_path / "mr.nii.gz")
    scaled = mr.with_array(np.rint(mr.array * 1000).astype(np.float32))
    write_dicom_series(tmp_path / "mr_dicom", scaled, scaled.array, modality="MR", rescale_intercept=0.0,
                       extra={"PatientID": "PELVIS-007", "PatientName": "Phantom^Seven"})
    src = pydicom.dcmread(next((tmp_path / "mr_dicom").iterdir()))
    rec = run(tmp_path / "mr_dicom", tmp_path / "out", dicom=True)
    assert rec["input_kind"] == "dicom" and rec["slices"] == SIZE[0]
    out = [pydicom.dcmread(f) for f in sorted((tmp_path / "out" / "dicom").iterdir())]
    assert {d.PatientID for d in out} == {"PELVIS-007"} and str(out[0].PatientName) == "Phantom^Seven"
    assert {d.FrameOfReferenceUID for d in out} == {src.FrameOfReferenceUID}
    assert out[0].StudyInstanceUID != src.StudyInstanceUID and out[0].SeriesInstanceUID != src.SeriesInstanceUID
    nii = nib.load(str(tmp_path / "out" / "sct.nii.gz"))
    np.testing.assert_allclose(nii.affine, affine, atol=1e-4)
    vol, spacing, _ = read_dicom_series(tmp_path / "out" / "dicom")
    np.testing.assert_array_equal(vol, read_image(tmp_path / "out" / "sct.nii.gz").array)


def test_mha_input(root: Path, tmp_path: Path) -> None:
    sitk = pytest.importorskip("SimpleITK")
    case = make_case(3, SIZE, SPACING)
    img = sitk.GetImageFromArray(case.mr)
    img.SetSpacing(SPACING[::-1])
    img.SetOrigin((1.0, 2.0, 3.0))
    sitk.WriteImage(img, str(tmp_path / "mr.mha"))
    run(tmp_path / "mr.mha", tmp_path / "out")
    back = read_image(tmp_path / "out" / "sct.nii.gz")
    np.testing.assert_allclose(back.origin, (1.0, 2.0, 3.0), atol=1e-5)
    assert back.array.shape == SIZE


def test_a_long_volume_streams_in_blocks(root: Path, tmp_path: Path) -> None:
    phantom_nifti(tmp_path / "mr.nii.gz", shape=(101, 24, 24))
    rec = run(tmp_path / "mr.nii.gz", tmp_path / "out", mc_samples=1, chunk_size=16, steps=2)
    assert rec["slices"] == 101 and np.asarray(rec["seeds"]).shape == (101, 1)


def test_ct2mr_takes_a_ct_and_writes_a_synthetic_mr(trained: dict[str, Path], monkeypatch, one_thread,
                                                    tmp_path: Path) -> None:
    monkeypatch.setenv("CTMRI_ROOT", str(trained["ct2mr"]))
    from ctmri.sample.stage import run_sampler

    assert run_sampler("smoke", "ddpm", mc_samples=2, device="cpu", progress=False).exists()
    phantom_nifti(tmp_path / "ct.nii.gz", ct=True)
    rec = run(tmp_path / "ct.nii.gz", tmp_path / "out", dicom=True)
    assert rec["direction"] == "ct2mr" and rec["files"]["smr"] == "smr.nii.gz"
    smr = np.asarray(nib.load(str(tmp_path / "out" / "smr.nii.gz")).dataobj)
    assert smr.shape == SIZE[::-1] and smr.min() >= 0 and smr.max() <= 1000
    assert {pydicom.dcmread(f).Modality for f in (tmp_path / "out" / "dicom").iterdir()} == {"MR"}
    phantom_nifti(tmp_path / "mr.nii.gz")
    with pytest.raises(DataError, match=r"mr\.nii\.gz.*does not look like a CT.*ct2mr"):
        run(tmp_path / "mr.nii.gz", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


# ---------------------------------------------------------------------------------------------- bad input

def _nothing_left(tmp_path: Path, out: Path) -> None:
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}")]


def test_ct_given_to_an_mr2ct_checkpoint(root: Path, tmp_path: Path) -> None:
    phantom_nifti(tmp_path / "ct.nii.gz", ct=True)
    with pytest.raises(DataError, match=r"ct\.nii\.gz.*looks like a CT in HU.*converts MR to CT \(mr2ct\)"):
        run(tmp_path / "ct.nii.gz", tmp_path / "out")
    _nothing_left(tmp_path, tmp_path / "out")


def test_2d_nifti_and_unreadable_and_missing_input(root: Path, tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.ones((8, 8), np.float32), np.eye(4)), str(tmp_path / "slice.nii.gz"))
    with pytest.raises(DataError, match=r"slice\.nii\.gz.*2-D array of shape \(8, 8\); expected a 3-D volume"):
        run(tmp_path / "slice.nii.gz", tmp_path / "out")
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(DataError, match=r"Cannot read .*bad\.nii\.gz.*NIfTI"):
        run(tmp_path / "bad.nii.gz", tmp_path / "out")
    with pytest.raises(DataError, match="does not exist"):
        run(tmp_path / "nope.nii.gz", tmp_path / "out")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    with pytest.raises(DataError, match=r"photo\.png.*not a volume this tool reads"):
        run(tmp_path / "photo.png", tmp_path / "out")
    _nothing_left(tmp_path, tmp_path / "out")


def test_existing_output_needs_overwrite_and_overwrite_replaces_only_ctmris_own(root: Path, tmp_path: Path) -> None:
    from ctmri.sample.output_folder import MARKER

    phantom_nifti(tmp_path / "mr.nii.gz")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match=r"out' already exists; pass --overwrite"):
        run(tmp_path / "mr.nii.gz", tmp_path / "out")
    with pytest.raises(FileExistsError, match=r"out' was not written by ctmri"):    # a user's folder: never replaced
        run(tmp_path / "mr.nii.gz", tmp_path / "out", overwrite=True)
    assert (tmp_path / "out" / "mine.txt").read_text() == "keep"
    run(tmp_path / "mr.nii.gz", tmp_path / "out2")
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == [MARKER, "sct.json", "sct.nii.gz", "sct_std.nii.gz"]
    run(tmp_path / "mr.nii.gz", tmp_path / "out2", overwrite=True)                 # ctmri's own output: replaced
    (tmp_path / "out2" / "notes.txt").write_text("a user's file put beside the outputs")
    with pytest.raises(FileExistsError, match=r"out2' holds files ctmri did not write \(notes\.txt\)"):
        run(tmp_path / "mr.nii.gz", tmp_path / "out2", overwrite=True)
    assert (tmp_path / "out2" / "notes.txt").exists()


def test_overwrite_never_touches_the_input_or_a_folder_holding_it(root: Path, tmp_path: Path) -> None:
    data = tmp_path / "patient"
    data.mkdir()
    phantom_nifti(data / "mr.nii.gz")
    for out in (data, tmp_path, data / "mr.nii.gz"):
        with pytest.raises(FileExistsError, match=r"is or holds the input"):
            run(data / "mr.nii.gz", out, overwrite=True)
    assert (data / "mr.nii.gz").exists()
    case = make_case(3, SIZE, SPACING)                               # a DICOM series folder as --out of itself
    write_dicom_series(tmp_path / "dcm", Image_of(case), case.mr, modality="MR")
    n = len(list((tmp_path / "dcm").iterdir()))
    with pytest.raises(FileExistsError, match=r"is or holds the input"):
        run(tmp_path / "dcm", tmp_path / "dcm", overwrite=True)
    assert len(list((tmp_path / "dcm").iterdir())) == n


def Image_of(case):
    from ctmri.data.volumes import Image

    return Image(case.mr, case.spacing, np.diag([1.0, 1.0, 1.0]), np.zeros(3), "phantom", "nifti")


def test_a_killed_runs_temporary_folder_is_removed_by_the_next_run(root: Path, tmp_path: Path) -> None:
    phantom_nifti(tmp_path / "mr.nii.gz")
    dead = tmp_path / ".out.tmp-999999999"                          # no such process
    dead.mkdir()
    (dead / "sct.nii.gz").write_bytes(b"half written")
    alive = tmp_path / f".out.tmp-{os.getpid()}x"                     # not ours to judge: left alone
    alive.mkdir()
    run(tmp_path / "mr.nii.gz", tmp_path / "out")
    assert not dead.exists() and alive.exists()


def test_unwritable_output_and_zero_counts(root: Path, tmp_path: Path) -> None:
    phantom_nifti(tmp_path / "mr.nii.gz")
    (tmp_path / "file").write_text("x")
    with pytest.raises(PermissionError, match=r"output folder .*file.* is not writable"):
        run(tmp_path / "mr.nii.gz", tmp_path / "file" / "out")
    with pytest.raises(ValueError, match="mc_samples must be at least 1, got 0"):
        run(tmp_path / "mr.nii.gz", tmp_path / "out", mc_samples=0)
    with pytest.raises(ValueError, match="steps must be at least 1, got 0"):
        run(tmp_path / "mr.nii.gz", tmp_path / "out", steps=0)


def test_checkpoint_of_the_other_direction_or_profile(root: Path, trained: dict[str, Path], tmp_path: Path) -> None:
    phantom_nifti(tmp_path / "mr.nii.gz")
    with pytest.raises(DataError, match=r"mr\.nii\.gz.*does not look like a CT.*converts CT to MR \(ct2mr\)"):
        run(tmp_path / "mr.nii.gz", tmp_path / "out", checkpoint=ckpt(trained["ct2mr"]))
    with pytest.raises(ValueError, match=r"converts ct2mr, not the mr2ct asked for"):
        run(tmp_path / "mr.nii.gz", tmp_path / "out", checkpoint=ckpt(trained["ct2mr"]), direction="mr2ct")
    with pytest.raises(ValueError, match=r"trained with profile 'smoke', not 'cpu'"):
        run(tmp_path / "mr.nii.gz", tmp_path / "out", profile="cpu")
    _nothing_left(tmp_path, tmp_path / "out")


# ---------------------------------------------------------------------------------------------- stale artifacts

@pytest.fixture
def copied_root(trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread) -> Path:
    root = tmp_path / "root"
    shutil.copytree(trained["mr2ct"], root)
    monkeypatch.setenv("CTMRI_ROOT", str(root))
    return root


def test_stages_refuse_artifacts_of_other_data(copied_root: Path) -> None:
    from ctmri.data.prepare import prepare_dataset
    from ctmri.evaluate.tables import evaluate
    from ctmri.sample.stage import run_sampler
    from ctmri.train.loop import train

    samples = run_sampler("smoke", "ddpm", mc_samples=2, device="cpu", progress=False)
    prov = json.loads(str(np.load(samples)["provenance"]))
    assert prov["data_digest"] and len(prov["checkpoint_digest"]) == 64 and prov["direction"] == "mr2ct"
    old = prov["data_digest"]
    new = prepare_dataset("smoke", seed=1)["digest"]                 # other patients: other data
    assert new != old
    with pytest.raises(RuntimeError, match=f"Sample file 'ddpm' was made from data with data_digest '{old}'.*'{new}'"):
        evaluate("smoke")
    with pytest.raises(RuntimeError, match=f"Checkpoint .*ddpm.pt was made from data with data_digest '{old}'.*"
                                           f"'{new}'"):
        run_sampler("smoke", "ddpm", mc_samples=2, device="cpu", progress=False)
    with pytest.raises(RuntimeError, match=f"Checkpoint .*ddpm.pt was made from data with data_digest '{old}'.*'{new}'; retrain with `--fresh`"):
        train("smoke", "ddpm", steps=4, progress=False)


def test_sample_refuses_a_checkpoint_of_another_profile(copied_root: Path) -> None:
    from ctmri.sample.stage import run_sampler

    path = ckpt(copied_root)
    state = torch.load(path, weights_only=True)
    state["profile"] = "cpu"
    torch.save(state, path)
    with pytest.raises(RuntimeError, match=r"ddpm\.pt was trained with profile 'cpu', not 'smoke'"):
        run_sampler("smoke", "ddpm", mc_samples=2, device="cpu", progress=False)


# ---------------------------------------------------------------------------------------------- refused before work

def test_non_finite_voxels_are_refused_naming_the_file_and_count(root: Path, tmp_path: Path) -> None:
    case = make_case(3, SIZE, SPACING)
    mr = case.mr.copy()
    mr[2, 5, 5:8] = np.nan
    mr[3, 1, 1] = np.inf
    nib.save(nib.Nifti1Image(np.ascontiguousarray(mr.transpose(2, 1, 0)), rotation_affine()), str(tmp_path / "n.nii.gz"))
    with pytest.raises(DataError, match=r"n\.nii\.gz' holds 4 NaN / Inf voxel\(s\) of 12,960"):
        run(tmp_path / "n.nii.gz", tmp_path / "out")
    _nothing_left(tmp_path, tmp_path / "out")


def test_a_volume_too_small_for_the_model_is_refused(root: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.uniform(0, 1, (3, 3, 3)).astype(np.float32), np.eye(4)), str(tmp_path / "t.nii.gz"))
    with pytest.raises(DataError, match=r"t\.nii\.gz' holds slices of only 3×3 voxels"):
        run(tmp_path / "t.nii.gz", tmp_path / "out")
    small = np.zeros((4, 20, 20), np.float32)
    small[:, 8:12, 8:12] = 1.0 + rng.uniform(0, 0.1, (4, 4, 4))    # a 4-mm "body"
    nib.save(nib.Nifti1Image(small.transpose(2, 1, 0).copy(), np.eye(4)), str(tmp_path / "s.nii.gz"))
    with pytest.raises(DataError, match=r"s\.nii\.gz': the body is only \d+×\d+ mm in-plane"):
        run(tmp_path / "s.nii.gz", tmp_path / "out")
    _nothing_left(tmp_path, tmp_path / "out")


def test_an_unavailable_device_is_refused_in_one_sentence(root: Path, tmp_path: Path) -> None:
    phantom_nifti(tmp_path / "mr.nii.gz")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"Device 'cuda' is not available here .*use --device cpu"):
            run(tmp_path / "mr.nii.gz", tmp_path / "out", device="cuda")
    with pytest.raises(ValueError, match=r"Unknown device 'gpu'"):
        run(tmp_path / "mr.nii.gz", tmp_path / "out", device="gpu")
    _nothing_left(tmp_path, tmp_path / "out")


def test_an_mc_count_that_will_not_fit_in_memory_is_refused_before_sampling(root: Path, tmp_path: Path,
                                                                           monkeypatch) -> None:
    from ctmri.sample import input_checks

    phantom_nifti(tmp_path / "mr.nii.gz")
    monkeypatch.setattr(input_checks, "available_bytes", lambda: 64 * 2**20)       # a 64 MiB machine
    calls = []
    monkeypatch.setattr("ctmri.sample.synthesize.monte_carlo", lambda *a, **k: calls.append(1))
    with pytest.raises(MemoryError, match=r"--mc 10000 with --save-samples needs about [\d.]+ GiB, more than the 0\.1 GiB"):
        run(tmp_path / "mr.nii.gz", tmp_path / "out", mc_samples=10000, save_samples=True)
    assert not calls
    _nothing_left(tmp_path, tmp_path / "out")


# ---------------------------------------------------------------------------------------------- the interval

def _calibrate(checkpoint: Path, **over) -> None:
    """A calibration record beside the smoke checkpoint for its default sampler at 2 MC, naming its digest."""
    from ctmri.diffusion.samplers import default_sampler
    from ctmri.provenance import file_digest

    record = {"sampler": default_sampler("ddpm"), "method": "ddpm", "alpha": 0.1, "mc_samples": 2, "steps": 10,
              "checkpoint_digest": file_digest(checkpoint),
              "calibration": {"alpha": 0.1, "scales": {"air": 2.0, "fat": 2.0, "soft": 2.0, "bone": 2.0},
                              "overall": 2.0, "n_voxels": 100, "floor_hu": 1.0}}
    record.update(over)
    checkpoint.with_name(f"{checkpoint.stem}.calibration.json").write_text(json.dumps(record))


def test_the_interval_is_written_only_for_the_settings_and_weights_it_was_calibrated_for(root: Path,
                                                                                         tmp_path: Path) -> None:
    from ctmri.diffusion.samplers import default_sampler

    own = tmp_path / "ddpm.pt"
    shutil.copy(ckpt(root), own)
    _calibrate(own)
    phantom_nifti(tmp_path / "mr.nii.gz")
    sampler = default_sampler("ddpm")
    rec = run(tmp_path / "mr.nii.gz", tmp_path / "a", checkpoint=own, sampler=sampler, steps=10)
    assert rec["interval"] == {"written": True, "reason": None} and (tmp_path / "a" / "sct_interval90.nii.gz").exists()
    for name, kw, why in (("b", {"mc_samples": 1}, "holds for 2 MC samples, not the 1"),
                          ("c", {"steps": 5}, "holds for 10 steps, not the 5")):
        rec = run(tmp_path / "mr.nii.gz", tmp_path / name, checkpoint=own, sampler=sampler, **{"steps": 10, **kw})
        assert not rec["interval"]["written"] and why in rec["interval"]["reason"]
        assert not (tmp_path / name / "sct_interval90.nii.gz").exists()
        assert json.loads((tmp_path / name / "sct.json").read_text())["interval"]["reason"] == rec["interval"]["reason"]
    _calibrate(own, checkpoint_digest="0" * 64)                       # fitted on other weights
    rec = run(tmp_path / "mr.nii.gz", tmp_path / "d", checkpoint=own, sampler=sampler, steps=10)
    assert not rec["interval"]["written"] and "fitted on weights with sha256 000000000000" in rec["interval"]["reason"]
