"""HU → relative electron density (photons) / stopping-power ratio (protons) tables: pyRadPlan's default (matRad's
`hlut`), or a user's two-column CSV calibration curve; each result records the table's name and digest."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctmri.data.readers import HU_AIR_BELOW
from ctmri.data.volumes import DataError

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


def _number(text: str) -> float | None:
    """A finite float, or None for text that is not one."""
    try:
        v = float(text)
    except ValueError:
        return None
    return v if np.isfinite(v) else None


def _csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank, non-comment line of a CSV file."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"HU table {path}: cannot be read ({e}).") from None
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append((n, [f.strip() for f in line.split(",")]))
    return out


def table_from_csv(path: str | os.PathLike) -> HuTable:
    """A user's calibration curve: two columns (HU, rED or SPR), optional header line, >= 2 rows, HU strictly
    ascending, density >= 0; a bad row is refused in one sentence naming the file and the row."""
    path = Path(path)
    rows = _csv_rows(path)
    if rows and any(_number(f) is None for f in rows[0][1]) and len(rows[0][1]) == 2:
        rows = rows[1:]                                     # a header line such as "hu,red"
    hu: list[float] = []
    value: list[float] = []
    for n, fields in rows:
        nums = [_number(f) for f in fields]
        if len(fields) != 2 or None in nums:
            raise DataError(f"HU table {path}: row {n} ({','.join(fields)!r}) is not two numeric columns "
                            "(HU, rED or SPR).")
        if hu and nums[0] <= hu[-1]:
            raise DataError(f"HU table {path}: row {n} has HU {nums[0]:g} after {hu[-1]:g}; expected HU strictly "
                            "ascending.")
        if nums[1] < 0:
            raise DataError(f"HU table {path}: row {n} has a negative density {nums[1]:g}; expected rED / SPR >= 0.")
        hu.append(nums[0])
        value.append(nums[1])
    if len(hu) < 2:
        raise DataError(f"HU table {path}: {len(hu)} data row(s); expected two numeric columns (HU ascending, "
                        "density >= 0) with at least two rows.")
    return HuTable(f"csv:{path.name}", np.asarray(hu, np.float64), np.asarray(value, np.float64))


def load_table(path: str | os.PathLike | None = None) -> HuTable:
    """The default table, or the user's CSV when a path is given."""
    return default_table() if path is None else table_from_csv(path)


def check_hu(volume: np.ndarray, what: str) -> None:
    """Refuse a volume whose values are not plausible HU, or that has no air (an MR given for a CT), in one sentence."""
    lo, hi = float(np.min(volume)), float(np.max(volume))
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < HU_RANGE[0] or hi > HU_RANGE[1]:
        raise DataError(f"The {what} has values in [{lo:.1f}, {hi:.1f}], outside the HU range "
                        f"[{HU_RANGE[0]:.0f}, {HU_RANGE[1]:.0f}]; is it in HU (not model space or MR intensities)?")
    if lo >= HU_AIR_BELOW:
        raise DataError(f"The {what} has no value below {HU_AIR_BELOW:.0f} (its darkest voxel is {lo:.1f}), but a CT "
                        "in HU has air near -1000 around the body; is it an MR or a volume not in HU?")
