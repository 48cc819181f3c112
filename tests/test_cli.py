"""The `ctmri` command: help, and one clear line (exit 2) for bad input instead of a traceback."""
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
