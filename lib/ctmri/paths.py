"""Where every artifact lives: one function per folder, all under the project root."""
from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """$CTMRI_ROOT if set, else the nearest folder above the cwd holding pyproject.toml, else the cwd."""
    env = os.environ.get("CTMRI_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() and (folder / "lib" / "ctmri").exists():
            return folder
    return here


def raw_dir(profile: str) -> Path:
    """Generated phantom data in the SynthRAD2023 layout."""
    return project_root() / "data" / "raw" / "phantom" / profile


def processed_dir(profile: str) -> Path:
    """train.npz, test.npz and manifest.json of one profile."""
    return project_root() / "data" / "processed" / profile


def run_dir(profile: str) -> Path:
    return project_root() / "runs" / profile


def checkpoint_path(profile: str, method: str) -> Path:
    return run_dir(profile) / "checkpoints" / f"{method}.pt"


def samples_path(profile: str, sampler: str) -> Path:
    return run_dir(profile) / "samples" / f"{sampler}.npz"


def figures_dir(profile: str) -> Path:
    return project_root() / "figures" / profile
