"""The samples contract: reading and writing `runs/<profile>/samples/<sampler>.npz`.

One file per sampler, written by the sampling stage and read by evaluation and figures. The keys
and shapes are listed in docs/ARCHITECTURE.md (Samples); `REQUIRED` are the keys every reader
needs. `load_samples` checks a file against the contract and fails with a message naming the
file and what was expected; `save_samples` checks the same before writing, so a file that does
not follow the contract is never written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ctmri.paths import samples_path
from ctmri.provenance import save_npz

REQUIRED = ("samples", "mean", "std", "target", "mask", "patient", "slice_index", "seconds_per_sample", "nfe")


def check_samples(d: dict[str, Any], source: str | Path) -> None:
    """Raise ValueError when the arrays `d` (read from / meant for `source`) break the samples contract."""
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise ValueError(f"Samples file {source} lacks {', '.join(missing)}; expected the contract in "
                         "docs/ARCHITECTURE.md.")
    s = np.asarray(d["samples"])
    if s.ndim != 5 or s.shape[2] != 1:
        raise ValueError(f"{source}: samples has shape {s.shape}; expected (N, K, 1, H, W).")
    n, _, _, h, w = s.shape
    for key, shape in (("mean", (n, 1, h, w)), ("std", (n, 1, h, w)), ("target", (n, 1, h, w)), ("mask", (n, h, w)),
                       ("patient", (n,)), ("slice_index", (n,))):
        if np.shape(d[key]) != shape:
            raise ValueError(f"{source}: {key} has shape {np.shape(d[key])}; expected {shape}.")
    for key in ("samples", "mean", "std", "target"):
        if not np.all(np.isfinite(d[key])):
            raise ValueError(f"{source}: {key} contains NaN or inf; expected finite values.")


def load_samples(path: str | Path) -> dict[str, Any]:
    """Load one `<sampler>.npz`, checked against the contract; adds `name` (the sampler) and `K`.

    Scalars come back as Python floats (`seconds_per_sample`, `nfe`), `mask` as bool, `patient` as str;
    `direction` defaults to "mr2ct" for files written before it existed.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"Cannot read samples file {path}: {exc}") from exc
    check_samples(d, path)
    d["name"] = path.stem
    d["K"] = int(d["samples"].shape[1])
    d["direction"] = str(d.get("direction", "mr2ct"))
    d["evaluation"] = str(d.get("evaluation", "subset"))            # files written before the evaluation sets
    d["test_index"] = np.asarray(d.get("test_index", np.arange(d["samples"].shape[0]))).astype(np.int64)
    d["seconds_per_sample"] = float(np.mean(d["seconds_per_sample"]))
    d["nfe"] = float(np.mean(d["nfe"]))
    d["mask"] = d["mask"].astype(bool)
    d["patient"] = d["patient"].astype(str)
    return d


def save_samples(profile: str, sampler: str, /, **arrays: Any) -> Path:
    """Check `arrays` against the contract, then write them atomically to runs/<profile>/samples/<sampler>.npz."""
    path = samples_path(profile, sampler)
    check_samples(arrays, path)
    return save_npz(path, **arrays)


def sample_files(profile: str, order: Iterable[str] = ()) -> dict[str, Path]:
    """Every samples file of a profile, keyed by sampler: those named in `order` first (in that order), then by name."""
    folder = samples_path(profile, "_").parent
    found = {p.stem: p for p in folder.glob("*.npz")} if folder.is_dir() else {}
    rank = {s: i for i, s in enumerate(order)}
    return {s: found[s] for s in sorted(found, key=lambda s: (rank.get(s, len(rank)), s))}
