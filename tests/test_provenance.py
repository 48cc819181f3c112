"""Provenance: a run that rewrites its own committed outputs still records a clean commit; a code change does not."""
import subprocess
from pathlib import Path

import pytest

from ctmri.provenance import git_commit


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    (tmp_path / "lib").mkdir()
    (tmp_path / "figures" / "cpu").mkdir(parents=True)
    (tmp_path / "lib" / "code.py").write_text("x = 1\n")
    (tmp_path / "figures" / "cpu" / "summary.md").write_text("old\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return tmp_path


def test_the_runs_own_outputs_do_not_make_the_commit_dirty(repo: Path):
    sha = git_commit(repo / "lib")
    assert len(sha) == 40
    (repo / "figures" / "cpu" / "summary.md").write_text("new results\n")
    assert git_commit(repo / "lib") == sha
    (repo / "lib" / "code.py").write_text("x = 2\n")
    assert git_commit(repo / "lib") == sha + "-dirty"
