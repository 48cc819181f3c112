"""One CT / sCT pair → plans on the CT, the sCT doses, the metric rows (issue 18; SynthRAD2023's dose protocol)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ctmri.config import DoseConfig
from ctmri.dose.hu_tables import HuTable, check_hu
from ctmri.dose.metrics import compare, dose_uncertainty
from ctmri.dose.plans import MODALITIES, effective_grid, optimise, recompute
from ctmri.dose.structures import check_grid, require_target


def check_inputs(ct: np.ndarray, scts: Mapping[str, np.ndarray], structures: Mapping[str, np.ndarray],
                 target: str) -> None:
    """Grids, target and HU checked before any dose is computed, each failure one sentence."""
    check_hu(ct, "CT")
    for name, v in scts.items():
        check_grid(ct.shape, v.shape, name)
        check_hu(v, name)
    for name, m in structures.items():
        check_grid(ct.shape, np.shape(m), f"structure {name!r}")
    require_target(structures, target)


def dose_pair(ct: np.ndarray, sct: np.ndarray, spacing: Sequence[float], structures: Mapping[str, np.ndarray],
              target: str, cfg: DoseConfig, table: HuTable, samples: Sequence[np.ndarray] = (),
              modalities: Sequence[str] = MODALITIES, plans: dict | None = None) \
        -> tuple[list[dict], dict[str, dict[str, np.ndarray]]]:
    """Rows (one per modality: metrics of the sCT dose, and the MC dose uncertainty when samples are given) and the
    dose cubes per modality ('ct', 'sct', 'std', 'mean'); `plans`: a cache {modality: (plan, reference dose)} so
    the plans of one CT are optimised once for all its sCTs."""
    check_inputs(ct, {"sCT": sct, **{f"sCT sample {i}": s for i, s in enumerate(samples)}}, structures, target)
    rows, cubes = [], {}
    rx = float(cfg.fraction_gy)
    for modality in modalities:
        plans = {} if plans is None else plans
        if modality not in plans:
            plan = optimise(ct, spacing, structures, modality, cfg, table, target)
            plans[modality] = (plan, recompute(plan, ct))  # the reference by the same forward calculation as the sCTs
        plan, ref = plans[modality]
        d = recompute(plan, sct)
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
