"""`make` with a bad PROFILE / DATASET / DIRECTION / DATA_DIR: one sentence on stderr, a non-zero exit, nothing created
(no runs/<profile>/, no data/) — checked before papermill starts (ctmri/check_args.py)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ctmri import check_args
from ctmri.config import PROFILES
from ctmri.data.readers import DATASET_KINDS

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None or not (REPO / ".venv" / ".ctmri-setup").exists(),
                                reason="needs make and the set-up venv (make setup)")


def make(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(REPO), "--no-print-directory", *args, f"ROOT={root}"],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("goal, args, says", [
    ("reproduce", ["PROFILE=nope"], "PROFILE='nope' is not a profile; expected one of smoke, "),
    ("data", ["DATASET=nifti"], "DATASET='nifti' is not a dataset; expected one of phantom, synthrad, goldatlas"),
    ("reproduce", ["DIRECTION=mr2pet"], "DIRECTION='mr2pet' is not a direction; expected one of mr2ct, ct2mr"),
    ("reproduce", ["DATASET=synthrad"], "DATASET=synthrad needs DATA_DIR"),
    ("reproduce", ["DATASET=goldatlas", "DATA_DIR=/no/such/folder"],
     "DATA_DIR='/no/such/folder' is not an existing folder"),
    ("train", ["PROFILE=smoke", "DATA_DIR=/no/such/folder"], "DATA_DIR='/no/such/folder' is not an existing folder"),
])
def test_a_bad_argument_is_one_sentence_and_creates_nothing(tmp_path: Path, goal: str, args: list[str],
                                                           says: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    proc = make(root, goal, *args)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout and proc.stdout == ""
    assert list(root.iterdir()) == []                                    # no runs/<profile>/, no data/


def test_good_arguments_pass(tmp_path: Path) -> None:
    (tmp_path / "patients").mkdir()
    assert check_args.problem("smoke", "phantom", "mr2ct", "") is None
    assert check_args.problem("cpu", "synthrad", "ct2mr", str(tmp_path / "patients")) is None
    assert check_args.problem("cpu", "phantom", "mr2ct", str(tmp_path / "patients")) is None   # a phantom folder
    assert check_args.main(["--profile", "smoke"]) == 0
    assert set(check_args.DATASET_KINDS) == set(DATASET_KINDS) and "smoke" in PROFILES


def test_the_checker_alone_says_one_sentence(capsys: pytest.CaptureFixture) -> None:
    assert check_args.main(["--profile", "CPU"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("PROFILE='CPU' is not a profile") and err.endswith(".")
