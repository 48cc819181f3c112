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


def committed_weights(profile: str, method: str) -> Path:
    """The repository's committed sampling weights of a profile's method (weights/<profile>/<method>.pt)."""
    return Path(__file__).resolve().parents[2] / "weights" / profile / f"{method}.pt"


def samples_path(profile: str, sampler: str) -> Path:
    return run_dir(profile) / "samples" / f"{sampler}.npz"


def calibration_samples_path(profile: str, sampler: str) -> Path:
    """MC samples of the validation patients (the samples contract) that calibrate a sampler's MC std."""
    return run_dir(profile) / "calibration" / f"{sampler}.npz"


def calibration_json(checkpoint: str | os.PathLike) -> Path:
    """The fitted calibration stored beside a checkpoint: <checkpoint stem>.calibration.json."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.calibration.json")


def figures_dir(profile: str) -> Path:
    return project_root() / "figures" / profile


def synthesis_dir(name: str) -> Path:
    """Default output folder of `ctmri synthesize` for an input called `name`."""
    return project_root() / "synthetic" / name


def check_writable(folder: str | os.PathLike, what: str = "output") -> Path:
    """`folder` (created if missing) accepts new files; else a PermissionError in one sentence naming it."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(f"The {what} folder {str(folder)!r} is not writable ({str(probe)!r} "
                              f"{'is not a folder' if not probe.is_dir() else 'denies writing'}); choose another "
                              "place (--root, CTMRI_ROOT or --out).")
    return folder
