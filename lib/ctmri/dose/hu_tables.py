"""HU → relative electron density (photons) / stopping-power ratio (protons) tables: pyRadPlan's default (matRad's
`hlut`), or a user's two-column CSV calibration curve; each result records the table's name and digest."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HU_RANGE = (-1100.0, 4000.0)  # a volume outside this is not in HU (model space, MR intensities, a wrong rescale)


@dataclass(frozen=True)
class HuTable:
    """One calibration curve: HU (ascending) → rED (photons) or SPR (protons), with its name and digest."""

    name: str
    hu: np.ndarray
    value: np.ndarray

    @property
    def digest(self) -> str:
        """sha256 (first 16 hex) of the curve's values, so a result names the exact table it used."""
        return hashlib.sha256(np.stack([self.hu, self.value]).astype(np.float64).tobytes()).hexdigest()[:16]

    def as_array(self) -> np.ndarray:
        """The (n, 2) array pyRadPlan's engines take as `hlut`."""
        return np.stack([self.hu, self.value], axis=1).astype(np.float64)

    def record(self) -> dict[str, str]:
        """What every dose result carries about the table."""
        return {"hu_table": self.name, "hu_table_digest": self.digest}


def default_table() -> HuTable:
    """pyRadPlan 0.5.0's `default_hlut()` (matRad's generic table, one curve for photons and protons)."""
    from pyRadPlan.ct import default_hlut

    t = np.asarray(default_hlut(), np.float64)
    return HuTable("pyRadPlan-default", t[:, 0], t[:, 1])


def table_from_csv(path: str | os.PathLike) -> HuTable:
    """A user's calibration curve: two columns (HU, rED or SPR), optional header line, ≥ 2 rows, HU ascending."""
    path = Path(path)
    try:
        rows = np.genfromtxt(path, delimiter=",", comments="#", dtype=np.float64)
    except OSError as e:
        raise ValueError(f"HU table {path}: cannot be read ({e}).") from None
    rows = np.atleast_2d(rows)
    rows = rows[np.isfinite(rows).all(axis=1)] if rows.ndim == 2 and rows.shape[1] == 2 else None
    if rows is None or len(rows) < 2 or np.any(np.diff(rows[:, 0]) <= 0) or np.any(rows[:, 1] < 0):
        raise ValueError(f"HU table {path}: expected two numeric columns (HU ascending, density >= 0) with at least "
                         "two rows.")
    return HuTable(f"csv:{path.name}", rows[:, 0], rows[:, 1])


def load_table(path: str | os.PathLike | None = None) -> HuTable:
    """The default table, or the user's CSV when a path is given."""
    return default_table() if path is None else table_from_csv(path)


def check_hu(volume: np.ndarray, what: str) -> None:
    """Refuse a volume whose values are not plausible HU, in one sentence."""
    lo, hi = float(np.min(volume)), float(np.max(volume))
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < HU_RANGE[0] or hi > HU_RANGE[1]:
        raise ValueError(f"The {what} has values in [{lo:.1f}, {hi:.1f}], outside the HU range "
                         f"[{HU_RANGE[0]:.0f}, {HU_RANGE[1]:.0f}]; is it in HU (not model space or MR intensities)?")
