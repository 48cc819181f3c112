"""The package's import graph: no two modules import each other in a cycle, and every notebook stage's Make
prerequisites hold every package file the stage imports (so a changed module re-runs the stages that use it)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ctmri.imports import cycles, import_graph, stage_files

REPO = Path(__file__).resolve().parents[1]


def test_lib_has_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert not found, " ; ".join(" -> ".join(c) for c in found)


def test_a_cycle_is_found_when_there_is_one(tmp_path: Path) -> None:
    """The check can fail: a two-module cycle hidden in a function-level import is reported."""
    pkg = tmp_path / "ctmri"
    (pkg / "a").mkdir(parents=True)
    for f in ("__init__.py", "a/__init__.py"):
        (pkg / f).write_text("")
    (pkg / "a" / "x.py").write_text("from ctmri.a.y import f\n")
    (pkg / "a" / "y.py").write_text("def f():\n    from ctmri.a import x\n")
    found = cycles(import_graph(pkg))
    assert found and set(found[0]) == {"ctmri.a.x", "ctmri.a.y"}


@pytest.fixture(scope="module")
def make_database() -> str:
    """`make -p` of the smoke DAG (nothing run), after one plain call has generated build/make/vars.mk (make
    does not remake an included makefile in -n / -q mode, so a fresh clone needs that first call)."""
    first = subprocess.run(["make", "-s", "-C", str(REPO), "--no-print-directory", "print-METHODS"],
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    return subprocess.run(["make", "-C", str(REPO), "-pnq", "PROFILE=smoke", "ROOT=/nonexistent", "print-METHODS"],
                          capture_output=True, text=True, timeout=120).stdout


def _prerequisites(out: str, target_pattern: str) -> set[str]:
    """Prerequisites of the Makefile rule whose target matches `target_pattern` in a `make -p` database."""
    for line in out.splitlines():
        if re.match(target_pattern, line) and ":" in line and not line.startswith("#"):
            return set(line.split(":", 1)[1].replace("|", " ").split())
    raise AssertionError(f"no rule for {target_pattern!r} in `make -p`")


@pytest.mark.parametrize("notebook,target", [
    ("00_prepare_data", r"^/nonexistent/data/processed/smoke/manifest\.json:"),
    ("01_train", r"^/nonexistent/runs/smoke/checkpoints/%\.trained:"),
    ("02_sample", r"^/nonexistent/runs/smoke/samples/%\.npz:"),
    ("03_evaluate", r"^/nonexistent/runs/smoke/metrics\.csv:"),
    ("04_figures", r"^/nonexistent/runs/smoke/figures\.done:"),
    ("05_explore", r"^/nonexistent/runs/smoke/notebooks/05_explore\.html:"),
])
def test_each_stage_depends_on_every_file_it_imports(make_database: str, notebook: str, target: str) -> None:
    imported = {str(p.relative_to(REPO)) for p in stage_files(REPO / "notebooks" / f"{notebook}.ipynb")}
    assert imported, notebook
    missing = imported - _prerequisites(make_database, target)
    assert not missing, f"{notebook}: the Makefile misses {sorted(missing)}"


def test_evaluation_depends_on_the_sampling_code_it_imports() -> None:
    """The case the hand-kept lists got wrong: evaluate/tables.py imports sample/, so 03_evaluate depends on it."""
    files = {str(p.relative_to(REPO)) for p in stage_files(REPO / "notebooks" / "03_evaluate.ipynb")}
    assert any(f.startswith("lib/ctmri/sample/") for f in files)
