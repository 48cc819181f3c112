"""A phantom patient as a user's scanner would deliver it: the same anatomy (the seed's, drawn for a 384-mm field of
view) rendered at another pixel size and slice spacing, and shown in a larger or smaller field of view (padded with
the MR's own background noise and air on CT, or cropped). Used by tests and benchmarks of the physical geometry."""
from __future__ import annotations

import numpy as np

from ctmri.data.phantom import make_case
from ctmri.data.readers import Case

ANATOMY_FOV_MM = 384.0     # the field of view the anatomy is drawn for (the cpu study's)
LENGTH_MM = 120.0          # cranio-caudal extent rendered (the cpu study's 40 slices of 3 mm)


def phantom_at(seed: int, pixel_mm: float = 3.0, slice_mm: float = 3.0, fov_mm: float = ANATOMY_FOV_MM,
               misregistration_mm: float = 0.0, length_mm: float = LENGTH_MM) -> Case:
    """Phantom `seed` at `pixel_mm` × `pixel_mm` × `slice_mm` voxels in a square `fov_mm` field of view; a `length_mm`
    other than 120 mm squeezes or stretches the anatomy's cranio-caudal extent into it (quicker test volumes)."""
    n_yx = int(round(ANATOMY_FOV_MM / pixel_mm))
    n_z = int(round(length_mm / slice_mm))
    case = make_case(seed, (n_z, n_yx, n_yx), (slice_mm, pixel_mm, pixel_mm), case_id=f"phantom{seed:03d}",
                     misregistration_mm=misregistration_mm)
    target = int(round(fov_mm / pixel_mm))
    if target == n_yx:
        return case
    rng = np.random.default_rng([seed, 7])
    background = case.mr[~case.mask]

    def fit(vol: np.ndarray, fill) -> np.ndarray:
        if target < n_yx:
            a = (n_yx - target) // 2
            return np.ascontiguousarray(vol[:, a:a + target, a:a + target])
        a = (target - n_yx) // 2
        out = fill((vol.shape[0], target, target)).astype(vol.dtype)
        out[:, a:a + n_yx, a:a + n_yx] = vol
        return out

    mr = fit(case.mr, lambda s: rng.choice(background, size=s))
    ct = fit(case.ct, lambda s: np.full(s, -1000.0))
    mask = fit(case.mask, lambda s: np.zeros(s, bool))
    labels = fit(case.labels, lambda s: np.zeros(s, np.uint8)) if case.labels is not None else None
    return Case(id=case.id, mr=mr, ct=ct, mask=mask, spacing=case.spacing, labels=labels, source=case.source,
                meta={**case.meta, "fov_mm": float(fov_mm)}).validate()


def t1_like(case: Case, seed: int = 0) -> np.ndarray:
    """A T1-weighted-looking MR of a phantom case from its labels: fat and marrow bright, urine dark (relative units)."""
    from scipy import ndimage

    from ctmri.data import phantom as ph

    t1 = {ph.AIR: 0.0, ph.GAS: 0.0, ph.FAT: 0.9, ph.MUSCLE: 0.35, ph.SKIN: 0.4, ph.RECTAL_WALL: 0.35, ph.URINE: 0.08,
          ph.PROSTATE: 0.38, ph.PERIPHERAL_ZONE: 0.38, ph.MARROW: 0.8, ph.CORTICAL: 0.02}
    lut = np.array([t1[i] for i in range(ph.N_LABELS)], np.float32)
    clean = ndimage.gaussian_filter(lut[case.labels], (0.0, 0.6, 0.6))
    rng = np.random.default_rng(seed)
    n1, n2 = (rng.standard_normal(clean.shape, dtype=np.float32) for _ in range(2))
    return np.sqrt((clean + 0.025 * n1) ** 2 + (0.025 * n2) ** 2).astype(np.float32)


def block_mean(vol: np.ndarray, bz: int, byx: int) -> np.ndarray:
    """Average non-overlapping bz × byx × byx voxel blocks, as a scanner's larger voxels integrate the signal."""
    z, y, x = vol.shape
    return vol[:z - z % bz, :y - y % byx, :x - x % byx].reshape(z // bz, bz, y // byx, byx, x // byx, byx) \
        .mean(axis=(1, 3, 5))


def coarser(case: Case, bz: int, byx: int, fov_mm: float | None = None) -> Case:
    """The case with bz × byx × byx blocks averaged (mask: more than half inside), cropped centrally to `fov_mm`."""
    def one(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, np.float64)
        if fov_mm is not None:
            n = int(round(fov_mm / case.spacing[1]))
            a = (v.shape[1] - n) // 2
            v = v[:, a:a + n, a:a + n]
        return block_mean(v, bz, byx)

    sz, sy, sx = case.spacing
    return Case(id=case.id, mr=one(case.mr).astype(np.float32), ct=one(case.ct).astype(np.float32),
                mask=one(case.mask) > 0.5, spacing=(sz * bz, sy * byx, sx * byx), source=case.source,
                meta=dict(case.meta)).validate()
