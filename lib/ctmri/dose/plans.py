"""Photon (coplanar IMRT) and proton (two lateral fields, IMPT) plans with pyRadPlan 0.5.0 (the Python matRad):
fluence optimised on the CT (scipy solver), the fixed weights recomputed on an sCT (SynthRAD2023's dose protocol)."""
from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ctmri.config import DoseConfig
from ctmri.data.volumes import DataError
from ctmri.dose.hu_tables import HuTable
from ctmri.dose.structures import TARGET

MODALITIES = ("photons", "protons")


@dataclass
class PlanResult:
    """A plan optimised on one CT: its pyRadPlan objects, the fixed weights and the dose (Gy per fraction, (z, y, x))."""

    modality: str
    pln: Any
    stf: Any
    cst: Any
    weights: np.ndarray
    dose: np.ndarray
    spacing: tuple[float, float, float]
    table: HuTable


def _quiet():
    """Silence pyRadPlan's own progress bars and logging (the stage shows its own)."""
    logging.getLogger("pyRadPlan").setLevel(logging.ERROR)
    return contextlib.redirect_stderr(io.StringIO())


def _ct(hu: np.ndarray, spacing: Sequence[float]):
    """A pyRadPlan CT from a (z, y, x) HU array; spacing (z, y, x) mm (no cubeDim key: numpy order is kept)."""
    from pyRadPlan.ct import create_ct

    return create_ct(cube_hu=np.ascontiguousarray(hu, np.float32),
                     resolution={"x": float(spacing[2]), "y": float(spacing[1]), "z": float(spacing[0])})


def _cst(ct: Any, structures: Mapping[str, np.ndarray], target: str, rx: float, min_voxels: int = 1):
    """The structure set with the objectives: target squared deviation from `rx`, OARs and BODY squared overdosing."""
    from pyRadPlan.cst import create_cst
    from pyRadPlan.cst._voi import OAR, ExternalVOI, Target
    from pyRadPlan.optimization.objectives import SquaredDeviation, SquaredOverdosing

    vois = []
    tmask = np.asarray(structures[target], bool)
    for name, mask in structures.items():
        m = np.ascontiguousarray(mask, np.uint8)
        if name != target and int(m.sum()) < min_voxels:
            continue  # smaller than a dose voxel: empty on the dose grid, where it makes the optimiser return zeros
        if not m.any() or (name != target and not (m.astype(bool) & ~tmask).any()):
            continue  # empty, or inside the target (the CTV): no objective of its own
        if name == target:
            vois.append(Target(name=name, ct_image=ct, mask=m, objectives=[SquaredDeviation(priority=1000.0, d_ref=rx)]))
        elif name.upper() in ("BODY", "EXTERNAL"):
            vois.append(ExternalVOI(name=name, ct_image=ct, mask=m,
                                    objectives=[SquaredOverdosing(priority=10.0, d_max=0.8 * rx)]))
        else:
            vois.append(OAR(name=name, ct_image=ct, mask=m, objectives=[SquaredOverdosing(priority=100.0, d_max=0.5 * rx)]))
    return create_cst(vois, ct=ct)


def _array(d: Any) -> np.ndarray:
    """A pyRadPlan result cube (numpy or SimpleITK) as a (z, y, x) float array."""
    if isinstance(d, np.ndarray):
        return d.astype(np.float32)
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(d).astype(np.float32)


def effective_grid(cfg: DoseConfig, spacing: Sequence[float]) -> tuple[float, float]:
    """(dose grid, bixel width) in mm: the profile's, but never finer than the CT's in-plane voxels (pyRadPlan 0.5.0's
    SSD ray trace fails on a dose grid or bixel finer than a coarse CT); a non-positive setting is refused."""
    for what, v in (("dose grid", cfg.grid_mm), ("bixel width", cfg.bixel_mm)):
        if not (np.isfinite(float(v)) and float(v) > 0):
            raise DataError(f"The {what} of {float(v):g} mm is not allowed; expected a positive number of mm.")
    floor = max(float(spacing[1]), float(spacing[2]))
    return max(float(cfg.grid_mm), floor), max(float(cfg.bixel_mm), floor)


def _pln(modality: str, cfg: DoseConfig, table: HuTable, spacing: Sequence[float]):
    """The plan object: beams, bixel width, dose grid, HU table, scipy solver."""
    from pyRadPlan import IonPlan, PhotonPlan

    if modality == "photons":
        pln = PhotonPlan(machine="Generic")
        angles = np.linspace(0.0, 360.0, int(cfg.photon_beams), endpoint=False)
    elif modality == "protons":
        pln = IonPlan(radiation_mode="protons", machine="Generic")
        angles = np.asarray(cfg.proton_angles, np.float64)
    else:
        raise ValueError(f"Unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}.")
    g, bixel = effective_grid(cfg, spacing)
    pln.prop_stf = {"gantry_angles": angles, "couch_angles": np.zeros(len(angles)), "bixel_width": bixel}
    pln.prop_opt = {"solver": "scipy"}
    pln.prop_dose_calc = {"dose_grid": {"resolution": {"x": g, "y": g, "z": g}}, "hlut": table.as_array()}
    return pln


def optimise(hu: np.ndarray, spacing: Sequence[float], structures: Mapping[str, np.ndarray], modality: str,
             cfg: DoseConfig, table: HuTable, target: str = TARGET) -> PlanResult:
    """A plan optimised on the CT `hu`: steering geometry, dose-influence matrix, fluence optimisation, its dose."""
    from pyRadPlan import calc_dose_influence, fluence_optimization, generate_stf

    ct = _ct(hu, spacing)
    grid = effective_grid(cfg, spacing)[0]
    cst = _cst(ct, structures, target, float(cfg.fraction_gy),
               min_voxels=int(np.ceil(np.prod([grid / float(s) for s in spacing]))))
    pln = _pln(modality, cfg, table, spacing)
    with _quiet():
        stf = generate_stf(ct, cst, pln)
        dij = calc_dose_influence(ct, cst, stf, pln)
        w = np.asarray(fluence_optimization(ct, cst, stf, dij, pln), np.float64)
        dose = _array(dij.compute_result_ct_grid(w)["physical_dose"])
    covered = float(np.median(dose[np.asarray(structures[target], bool)]))
    if not np.isfinite(covered) or covered < 0.5 * float(cfg.fraction_gy):
        raise RuntimeError(f"The {modality} plan failed: the optimised {target} median dose is {covered:.3g} Gy for a "
                           f"{cfg.fraction_gy:g} Gy prescription (pyRadPlan returned {int(np.count_nonzero(w))} "
                           "non-zero weights); no sCT dose is computed on a failed plan.")
    return PlanResult(modality, pln, stf, cst, w, dose, tuple(float(s) for s in spacing), table)


def recompute(plan: PlanResult, hu: np.ndarray) -> np.ndarray:
    """The plan's fixed weights recomputed on another CT (an sCT) of the same grid: dose (Gy per fraction)."""
    from pyRadPlan import calc_dose_forward

    with _quiet():
        out = calc_dose_forward(_ct(hu, plan.spacing), plan.cst, plan.stf, plan.pln, plan.weights)
    return _array(out["physical_dose"])
