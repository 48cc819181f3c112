"""notebooks/first_look.ipynb (issue 26): the one notebook committed with its outputs, the committed weights on one
phantom patient; nbval reruns it and compares every printed output with the stored one after the sanitizers of
notebooks/first_look.nbval.cfg. It is no stage of the study (no `NN_` prefix: neither make_vars nor the pipeline
runs it)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "first_look.ipynb"
SANITIZE = REPO / "notebooks" / "first_look.nbval.cfg"
# the documented results: what a reader of the stored outputs is told, and nbval must compare
DOCUMENTED = [r"MAE in the body: +\d+ HU", r"MC std in the body, mean: \d+ HU", r"in \d+ % of body voxels",
              r"mean h \d+ HU", r"sampler dpm\+\+2m-ve, 10 steps, NFE 10, 10 MC samples, 6 slices sampled",
              r"weights sha256: [0-9a-f]{12}", r"'written': True", r"with 11 Axes"]


def nbval_command(notebook: Path = NOTEBOOK) -> list[str]:
    """The README's command: nbval on the notebook, in this Python's kernel, with the notebook's sanitizers."""
    return [sys.executable, "-m", "pytest", "--nbval", str(notebook), "--nbval-current-env",
            "--nbval-sanitize-with", str(SANITIZE), "-p", "no:cacheprovider", "-q", "--color=no"]


def _outputs() -> list[dict]:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]]


def _text(output: dict) -> str:
    return "".join(output.get("text") or output.get("data", {}).get("text/plain", ""))


def _sanitizers() -> list[tuple[str, str]]:
    from nbval.plugin import get_sanitize_patterns

    return get_sanitize_patterns(SANITIZE.read_text())


def test_first_look_is_committed_with_its_outputs_and_is_no_stage() -> None:
    from ctmri.make_vars import stage_notebooks

    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"run top to bottom once, then saved: {counts}"
    assert all(o["output_type"] in ("stream", "display_data") for o in _outputs())         # no error, no result
    assert not [o for o in _outputs() if o.get("name") == "stderr"], "a warning in the stored outputs"
    assert any("image/png" in o.get("data", {}) for o in _outputs()), "the figure is stored"
    text = "\n".join(_text(o) for o in _outputs())
    for pattern in DOCUMENTED:
        assert re.search(pattern, text), pattern
    assert NOTEBOOK not in stage_notebooks(NOTEBOOK.parent)
    assert {p.stem[:3] for p in stage_notebooks(NOTEBOOK.parent)} >= {"00_", "03_", "06_"}


def test_the_sanitizers_hide_timings_paths_and_addresses_but_no_documented_number() -> None:
    def sanitize(s: str) -> str:
        for regex, replace in _sanitizers():
            s = re.sub(regex, replace, s)
        return s

    assert (sanitize("synthesize took 27.3 s, into /tmp/ctmri-first-look-h2qb351f/out (1.9 s per slice)")
            == "synthesize took <seconds> s, into <path> (<seconds> s per slice)")
    assert sanitize("<Net object at 0x7f3ab2c0d310>") == "<Net object at 0x<address>>"
    assert sanitize(r"C:\Users\me\AppData\Local\Temp\ctmri-first-look-x") == "<path>"
    assert sanitize("<Figure size 1036.8x187.2 with 11 Axes>") == "<Figure with 11 Axes>"
    for output in _outputs():
        text = _text(output)
        documented = [m.group(0) for p in DOCUMENTED for m in re.finditer(p, text)]
        assert all(d in sanitize(text) for d in documented), text
    text = "\n".join(sanitize(_text(o)) for o in _outputs())
    assert "weights/cpu/vesde.pt" in text and "10 steps" in text and "6 slices of 128×128" in text


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_nbval_reproduces_the_first_look_outputs() -> None:
    """nbval inside `make test`: the notebook rerun (about 45 s on 2 shared cores) prints what is stored."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "CTMRI_ROOT")}
    start = time.perf_counter()
    proc = subprocess.run(nbval_command(), cwd=REPO, env=env, capture_output=True, text=True, timeout=540)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, f"nbval failed after {seconds:.0f} s:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    cells = sum(c["cell_type"] == "code" for c in json.loads(NOTEBOOK.read_text())["cells"])
    assert re.search(rf"\b{cells} passed\b", proc.stdout), proc.stdout[-2000:]   # one item per code cell
