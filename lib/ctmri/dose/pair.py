"""One CT / sCT pair → plans on the CT, the sCT doses, the metric rows (issue 18; SynthRAD2023's dose protocol).

Inputs are arrays on one grid (shapes checked) or `data.volumes.Image`s, whose world grids (origin, spacing,
direction) must match the CT's (issue 24); Images are dosed in LPS voxel order, so the beams are patient-relative."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Union

import numpy as np

from ctmri.config import DoseConfig
from ctmri.data.volumes import Image, lps_spacing, to_lps
from ctmri.dose.grid import MASK_HINT, SCT_HINT, check_same_grid
from ctmri.dose.hu_tables import HuTable, check_hu
from ctmri.dose.metrics import compare, dose_uncertainty
from ctmri.dose.plans import MODALITIES, effective_grid, optimise, recompute
from ctmri.dose.structures import check_grid, require_target

Volume = Union[np.ndarray, Image]


def _array(v: Volume) -> np.ndarray:
    """The voxels of an array or an Image (file order)."""
    return v.array if isinstance(v, Image) else np.asarray(v)


def _named(what: str, v: Volume) -> str:
    """`what` followed by the Image's file, for the sentences of a refusal."""
    return f"{what} {v.source!r}" if isinstance(v, Image) and v.source else what


def _check_grids(ct: Volume, volumes: Mapping[str, Volume], hint: str) -> None:
    """Every volume on the CT's grid: world geometry when both are Images, else the array shape."""
    for what, v in volumes.items():
        if isinstance(ct, Image) and isinstance(v, Image):
            check_same_grid(ct, v, what, hint)
        else:
            check_grid(_array(ct).shape, np.shape(_array(v)), _named(what, v))


def check_inputs(ct: Volume, scts: Mapping[str, Volume], structures: Mapping[str, Volume], target: str) -> None:
    """Grids, HU, target checked before any dose is computed, each failure one sentence naming the file."""
    check_hu(_array(ct), _named("CT", ct))
    _check_grids(ct, scts, SCT_HINT)
    for name, v in scts.items():
        check_hu(_array(v), _named(name, v))
    _check_grids(ct, {f"structure {n!r}": m for n, m in structures.items()}, MASK_HINT)
    require_target({n: _array(m) for n, m in structures.items()}, target)


def _lps(v: Volume, ct: Volume) -> np.ndarray:
    """`v` in the voxel order the plans use: an Image CT's LPS order (arrays given with it are on its stored grid)."""
    a = _array(v)
    return to_lps(a, ct.direction) if isinstance(ct, Image) else a


def dose_pair(ct: Volume, sct: Volume, spacing: Sequence[float] | None, structures: Mapping[str, Volume],
              target: str, cfg: DoseConfig, table: HuTable, samples: Sequence[Volume] = (),
              modalities: Sequence[str] = MODALITIES, plans: dict | None = None) \
        -> tuple[list[dict], dict[str, dict[str, np.ndarray]]]:
    """Rows (one per modality: metrics of the sCT dose, and the MC dose uncertainty when samples are given) and the
    dose cubes per modality ('ct', 'sct', 'std', 'mean'); `spacing` (z, y, x) mm of arrays, None for an Image CT
    (its own); `plans`: a cache {modality: (plan, reference dose)} so the plans of one CT are optimised once."""
    check_inputs(ct, {"sCT": sct, **{f"sCT sample {i}": s for i, s in enumerate(samples)}}, structures, target)
    if isinstance(ct, Image):
        if spacing is not None:
            raise ValueError("dose_pair: an Image CT carries its spacing; pass spacing=None.")
        spacing = lps_spacing(ct)
    elif spacing is None:
        raise ValueError("dose_pair: an array CT needs its (z, y, x) spacing in mm.")
    effective_grid(cfg, spacing)                        # a non-positive dose grid is refused before any plan
    hu = _lps(ct, ct).astype(np.float32)
    sct_hu = _lps(sct, ct).astype(np.float32)
    samples = [_lps(s, ct).astype(np.float32) for s in samples]
    structures = {n: _lps(m, ct).astype(bool) for n, m in structures.items()}
    rows, cubes = [], {}
    rx = float(cfg.fraction_gy)
    for modality in modalities:
        plans = {} if plans is None else plans
        if modality not in plans:
            plan = optimise(hu, spacing, structures, modality, cfg, table, target)
            plans[modality] = (plan, recompute(plan, hu))  # the reference by the same forward calculation as the sCTs
        plan, ref = plans[modality]
        d = recompute(plan, sct_hu)
        row = {"modality": modality, **compare(ref, d, structures, target, rx, spacing, cfg.gamma_points),
               **table.record(), "dose_grid_mm": effective_grid(cfg, spacing)[0]}
        cubes[modality] = {"ct": ref, "sct": d}
        if len(samples) > 1:
            sd = np.stack([recompute(plan, s) for s in samples])
            std, rho = dose_uncertainty(sd, ref)
            row.update({"dose_std_mean_gy": float(std[ref >= 0.1 * ref.max()].mean()), "spearman": rho})
            cubes[modality]["std"], cubes[modality]["mean"] = std, sd.mean(axis=0)
        rows.append(row)
    return rows, cubes
