"""The `ctmri` command: help, and one clear line (exit 2) for bad input instead of a traceback."""
import json

import numpy as np
import pytest

from ctmri.cli import build_parser, main


def test_every_stage_has_a_subcommand() -> None:
    text = build_parser().format_help()
    for stage in ("prepare", "train", "sample", "evaluate", "figures"):
        assert stage in text


def test_unknown_profile_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--profile", "nope", "--method", "ddpm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ctmri train:") and "nope" in err and "\n" not in err


def test_unknown_method_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--profile", "smoke", "--method", "gan"]) == 2
    assert "gan" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- issue 10

def one_line_error(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith(f"ctmri {command}"), err
    return err[-1]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from ctmri import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"ctmri {__version__}"


@pytest.mark.parametrize("argv", [["sample", "--sampler", "ddpm", "--mc-samples", "0"],
                                  ["sample", "--sampler", "ddpm", "--steps", "0"],
                                  ["train", "--method", "ddpm", "--steps", "0"],
                                  ["synthesize", "--input", "x.nii.gz", "--mc", "0"]])
def test_zero_counts_are_refused_not_defaulted(argv, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    line = one_line_error(capsys, argv[0])
    assert exit_.value.code == 2 and "0 is not allowed; give at least 1" in line


def test_unwritable_root_is_one_sentence(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    assert main(["prepare", "--root", str(tmp_path / "file" / "root")]) == 2
    line = one_line_error(capsys, "prepare")
    assert "root folder" in line and "is not writable" in line


def test_figures_with_nothing_to_plot_fails(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["figures", "--root", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert f"outputs under {tmp_path}" in captured.out and "Nothing to plot for profile 'smoke'" in captured.err


def test_prepare_mr_only_folder(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from ctmri.data.volumes import write_nifti

    write_nifti(tmp_path / "data" / "1PA001" / "mr.nii.gz", np.ones((4, 8, 8), np.float32), (3.0, 1.0, 1.0))
    assert main(["prepare", "--root", str(tmp_path), "--dataset", "synthrad", "--data-dir",
                 str(tmp_path / "data")]) == 2
    line = one_line_error(capsys, "prepare")
    assert "1PA001" in line and "no ct.nii.gz" in line and "ctmri synthesize" in line
    assert not (tmp_path / "data" / "processed").exists()


def test_train_already_trained_says_fresh(tmp_path, capsys: pytest.CaptureFixture[str], one_thread) -> None:
    root = ["--root", str(tmp_path)]
    assert main(["prepare", *root]) == 0
    assert main(["train", *root, "--method", "cnn", "--steps", "2"]) == 0
    capsys.readouterr()
    assert main(["train", *root, "--method", "cnn", "--steps", "2"]) == 0
    said = capsys.readouterr().out
    assert "cnn (smoke) is already trained" in said and "pass --fresh to retrain" in said
    assert main(["train", *root, "--method", "cnn", "--steps", "2", "--fresh"]) == 0
    assert "Trained cnn (smoke) to step 2" in capsys.readouterr().out


def test_synthesize_from_the_command_line(tmp_path, capsys: pytest.CaptureFixture[str], one_thread) -> None:
    from ctmri.data.phantom import make_case
    from ctmri.data.volumes import write_nifti

    root = ["--root", str(tmp_path)]
    assert main(["prepare", *root]) == 0
    assert main(["train", *root, "--method", "vesde", "--steps", "2"]) == 0   # the default sampler's method
    case = make_case(5, (5, 32, 32), (6.0, 8.0, 8.0))
    write_nifti(tmp_path / "mr.nii.gz", case.mr, case.spacing)
    write_nifti(tmp_path / "ct.nii.gz", case.ct, case.spacing)
    argv = ["synthesize", *root, "--profile", "smoke", "--input", str(tmp_path / "mr.nii.gz"), "--mc", "2", "--steps",
            "3", "--dicom", "--no-progress", "--device", "cpu", "--accept-contrast"]   # a 24-mm model: see test_synthesize
    assert main(argv) == 0
    out = tmp_path / "synthetic" / "mr"
    assert f"to {out}" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [".ctmri-output.json", "dicom", "sct.json", "sct.nii.gz", "sct_std.nii.gz"]
    assert main(argv) == 2
    assert "already exists; pass --overwrite" in one_line_error(capsys, "synthesize")
    assert main([*argv, "--overwrite"]) == 0
    assert json.loads((out / "sct.json").read_text())["profile"] == "smoke"
    bad = [("ct.nii.gz", "looks like a CT in HU"), ("nope.nii.gz", "does not exist")]
    for name, says in bad:
        assert main(["synthesize", *root, "--input", str(tmp_path / name), "--out", str(tmp_path / "o")]) == 2
        assert says in one_line_error(capsys, "synthesize")
        assert not (tmp_path / "o").exists()
