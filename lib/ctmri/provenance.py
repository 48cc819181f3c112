"""Provenance (git commit, profile, package versions) and atomic writes of every artifact (JSON, npz, figures)."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

PACKAGES = ("ctmri", "torch", "numpy", "scipy", "scikit-image", "pydicom", "nibabel", "pandas", "matplotlib")


RUN_OUTPUTS = ("figures",)   # tracked folders the pipeline itself writes (figures/<profile>/): not code changes


def git_commit(repo: Path | None = None) -> str:
    """HEAD of the repository holding this package, with '-dirty' when tracked files other than the pipeline's own
    outputs (`RUN_OUTPUTS`) changed: a run that rewrites figures/cpu/ still records the commit that made it."""
    here = Path(repo) if repo is not None else Path(__file__).resolve().parent
    outputs = [f":(top,exclude){folder}" for folder in RUN_OUTPUTS]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", *outputs],
                               cwd=here, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha or "unknown") + ("-dirty" if sha and dirty else "")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance(profile: str, **extra: Any) -> dict[str, Any]:
    """What made an artifact: commit, profile, versions, machine, time, plus `extra`."""
    return {"git_commit": git_commit(), "profile": profile, "versions": package_versions(),
            "machine": f"{platform.machine()} {os.cpu_count()} cpus", "created": datetime.now(timezone.utc)
            .isoformat(timespec="seconds"), **extra}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write `obj` as indented JSON."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    return Path(path)


def save_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    """Atomically write a compressed .npz (numpy appends nothing since the temp name ends in .npz)."""
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    return Path(path)


def save_figure(fig: Any, stem: str | os.PathLike, dpi: float | None = None, close: bool = False) -> Path:
    """Atomically save a matplotlib figure as <stem>.png and <stem>.pdf (tight bounding box); return the PNG path.

    dpi: None takes rcParams["savefig.dpi"] (the style in force). close: close the figure afterwards
    (scripts; a notebook that still shows the figure keeps it open).
    """
    stem = Path(stem)
    for ext in ("pdf", "png"):
        with atomic_path(stem.with_name(f"{stem.name}.{ext}")) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return stem.with_name(f"{stem.name}.png")


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (checkpoints, inputs): what an artifact records to name what it was made from."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
