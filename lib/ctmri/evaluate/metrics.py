"""Image metrics on numpy arrays: the study's SSIM / PSNR, SynthRAD2023 metrics in HU, bone Dice, uncertainty.

Conventions (docs/ALGORITHMS.md, Metrics):
- HU window [-1024, 3000] (data range 4024); the study's metrics scale that window to [0, 1].
- SSIM / PSNR come from scikit-image (`structural_similarity`, `peak_signal_noise_ratio`).
- SSIM window: skimage's default 7 needs every side >= 7; here `win_size = min(7, largest odd
  number <= the smallest side)`, so small smoke images (and thin 3-D stacks) still get an SSIM;
  fewer than 3 voxels along any axis is an error.
- A perfect prediction has PSNR = inf (not capped), as skimage returns it.
- Empty masks are an error (the caller decides what an empty body means). Bone Dice is 1 when
  neither image has bone in the mask (they agree; convention of MONAI's DiceMetric without
  ignore_empty). A Spearman rho on constant input is NaN (undefined).
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import spearmanr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ctmri.data.intensity import HU_MAX, HU_MIN

HU_RANGE = HU_MAX - HU_MIN       # 4024
SSIM_CROP = 3                    # SynthRAD2023: pixels cropped per side of the SSIM map and mask


def _finite(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != bool and not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf ({int(np.sum(~np.isfinite(a)))} values); expected finite values.")
    return a


def _check(**arrays: np.ndarray) -> list[np.ndarray]:
    """Same shape, finite, mask (if named `mask`) boolean and not empty."""
    out = {k: _finite(k, v) for k, v in arrays.items()}
    shapes = {k: v.shape for k, v in out.items()}
    if len(set(shapes.values())) != 1:
        listed = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise ValueError(f"Shape mismatch: {listed}; expected equal shapes.")
    if "mask" in out:
        out["mask"] = out["mask"].astype(bool)
        if not out["mask"].any():
            raise ValueError(f"mask of shape {out['mask'].shape} is empty; expected at least one voxel in the body.")
    return list(out.values())


def ssim_win_size(shape: tuple[int, ...]) -> int:
    """SSIM window: min(7, largest odd number <= smallest side) (skimage's default 7 needs sides >= 7)."""
    m = min(shape)
    w = min(7, m if m % 2 else m - 1)
    if w < 3:
        raise ValueError(f"SSIM needs at least 3 pixels along every axis; got an image of shape {tuple(shape)}.")
    return w


def hu_to_unit(hu: np.ndarray) -> np.ndarray:
    """HU clipped to [-1024, 3000] and scaled to [0, 1] (the study's display / metric range)."""
    return (np.clip(np.asarray(hu, dtype=np.float64), HU_MIN, HU_MAX) - HU_MIN) / HU_RANGE


def unit_ssim(ref: np.ndarray, test: np.ndarray) -> float:
    """SSIM of two images already in [0, 1], whole image, data_range 1 (Wang et al. 2004 via skimage)."""
    ref, test = _check(ref=ref, test=test)
    return float(structural_similarity(ref.astype(np.float64), test.astype(np.float64), data_range=1.0,
                                       win_size=ssim_win_size(ref.shape)))


def unit_psnr(ref: np.ndarray, test: np.ndarray) -> float:
    """PSNR of two images already in [0, 1], whole image, data_range 1 (inf when identical)."""
    ref, test = _check(ref=ref, test=test)
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(ref.astype(np.float64), test.astype(np.float64), data_range=1.0))


def paper_ssim(ct_hu: np.ndarray, sct_hu: np.ndarray) -> float:
    """The study's SSIM: CT and sCT in HU, window [-1024, 3000] scaled to [0, 1], whole image."""
    return unit_ssim(hu_to_unit(_finite("ct_hu", ct_hu)), hu_to_unit(_finite("sct_hu", sct_hu)))


def paper_psnr(ct_hu: np.ndarray, sct_hu: np.ndarray) -> float:
    """The study's PSNR: CT and sCT in HU, window [-1024, 3000] scaled to [0, 1], whole image."""
    return unit_psnr(hu_to_unit(_finite("ct_hu", ct_hu)), hu_to_unit(_finite("sct_hu", sct_hu)))


def _crop(a: np.ndarray) -> np.ndarray:
    """Crop SSIM_CROP voxels per side of every axis (fewer on axes too short to keep one voxel)."""
    crops = [min(SSIM_CROP, (n - 1) // 2) for n in a.shape]
    return a[tuple(slice(c, n - c) for c, n in zip(crops, a.shape))]


def synthrad_mae(ct_hu: np.ndarray, sct_hu: np.ndarray, mask: np.ndarray) -> float:
    """SynthRAD2023 MAE in HU: mean over mask voxels of |ct - sct| (no clipping)."""
    ct, sct, m = _check(ct_hu=ct_hu, sct_hu=sct_hu, mask=mask)
    return float(np.mean(np.abs(ct[m].astype(np.float64) - sct[m])))


def synthrad_psnr(ct_hu: np.ndarray, sct_hu: np.ndarray, mask: np.ndarray) -> float:
    """SynthRAD2023 PSNR: both clipped to [-1024, 3000], mask voxels only, data range 4024 (inf when equal)."""
    ct, sct, m = _check(ct_hu=ct_hu, sct_hu=sct_hu, mask=mask)
    a = np.clip(ct[m].astype(np.float64), HU_MIN, HU_MAX)
    b = np.clip(sct[m].astype(np.float64), HU_MIN, HU_MAX)
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(a, b, data_range=HU_RANGE))


def synthrad_ssim(ct_hu: np.ndarray, sct_hu: np.ndarray, mask: np.ndarray) -> float:
    """SynthRAD2023 SSIM: clip, outside mask -1024, +1024, SSIM map (range 4024), mean over the mask cropped by 3."""
    ct, sct, m = _check(ct_hu=ct_hu, sct_hu=sct_hu, mask=mask)
    a = np.where(m, np.clip(ct.astype(np.float64), HU_MIN, HU_MAX), HU_MIN) - HU_MIN
    b = np.where(m, np.clip(sct.astype(np.float64), HU_MIN, HU_MAX), HU_MIN) - HU_MIN
    _, smap = structural_similarity(a, b, data_range=HU_RANGE, full=True, win_size=ssim_win_size(a.shape))
    inner = _crop(m)
    if not inner.any():
        raise ValueError(f"mask of shape {m.shape} is empty after cropping {SSIM_CROP} voxels per side; "
                         "expected body voxels away from the image border.")
    return float(np.mean(_crop(smap)[inner]))


def synthrad_metrics(ct_hu: np.ndarray, sct_hu: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """SynthRAD2023 task-1 image metrics {mae, psnr, ssim} in HU inside the body mask (2-D slice or 3-D volume)."""
    return {"mae": synthrad_mae(ct_hu, sct_hu, mask), "psnr": synthrad_psnr(ct_hu, sct_hu, mask),
            "ssim": synthrad_ssim(ct_hu, sct_hu, mask)}


def bone_dice(ct_hu: np.ndarray, sct_hu: np.ndarray, mask: np.ndarray, threshold: float = 200.0) -> float:
    """Dice of bone (HU > threshold) inside the mask between CT and sCT; 1 when neither has bone."""
    ct, sct, m = _check(ct_hu=ct_hu, sct_hu=sct_hu, mask=mask)
    a, b = (ct > threshold) & m, (sct > threshold) & m
    total = int(a.sum() + b.sum())
    return float(2 * np.sum(a & b) / total) if total else 1.0


FALSE_BONE_SCT_HU = 300.0   # a hallucinated-bone voxel: sCT above this where the CT is below FALSE_BONE_CT_HU
FALSE_BONE_CT_HU = 100.0


def false_bone_fraction(ct_hu: np.ndarray, sct_hu: np.ndarray, mask: np.ndarray) -> float:
    """Hallucinated bone: the share of body voxels where the sCT exceeds 300 HU and the CT is below 100 HU."""
    ct, sct, m = _check(ct_hu=ct_hu, sct_hu=sct_hu, mask=mask)
    return float(np.mean((sct[m] > FALSE_BONE_SCT_HU) & (ct[m] < FALSE_BONE_CT_HU))) if m.any() else float("nan")


def missed_bone_fraction(ct_hu: np.ndarray, sct_hu: np.ndarray, mask: np.ndarray) -> float:
    """Missed bone: the share of the CT's bone voxels (> 300 HU) in the body the sCT puts below 100 HU (NaN: none)."""
    ct, sct, m = _check(ct_hu=ct_hu, sct_hu=sct_hu, mask=mask)
    bone = m & (ct > FALSE_BONE_SCT_HU)
    return float(np.mean(sct[bone] < FALSE_BONE_CT_HU)) if bone.any() else float("nan")


def mae_by_tissue(ct_hu: np.ndarray, sct_hu: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """MAE (HU, no clipping, as synthrad_mae) inside the body per tissue class of the CT (air / gas, fat, soft tissue,
    bone; interval.TISSUES), as the Gold Atlas sCT studies report it; NaN for a class with no voxel."""
    from ctmri.interval import TISSUES, tissue_of

    ct, sct, m = _check(ct_hu=ct_hu, sct_hu=sct_hu, mask=mask)
    cls = tissue_of(ct)
    return {name: float(np.mean(np.abs(ct - sct)[m & (cls == k)])) if np.any(m & (cls == k)) else float("nan")
            for k, name in enumerate(TISSUES)}


def uncertainty_score(std: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Model-uncertainty score (study, Fig. 3b): mean of the MC std map, inside the mask when given."""
    if mask is None:
        return float(np.mean(_finite("std", std)))
    s, m = _check(std=std, mask=mask)
    return float(np.mean(s[m]))


def spearman_uncertainty_error(std: np.ndarray, err: np.ndarray, mask: np.ndarray) -> float:
    """Spearman rho between the MC std and |error| over mask voxels (scipy.stats.spearmanr); NaN if constant."""
    s, e, m = _check(std=std, err=err, mask=mask)
    a, b = s[m].ravel(), np.abs(e[m]).ravel()
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(a, b).statistic)


def _remaining_mean(err_sorted_desc: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Mean of err after dropping the first `removed` entries of the descending-sorted list."""
    tail = np.concatenate([np.cumsum(err_sorted_desc[::-1])[::-1], [0.0]])
    return tail[removed] / (err_sorted_desc.size - removed)


def sparsification(std: np.ndarray, err: np.ndarray, mask: np.ndarray,
                   n: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparsification (Ilg et al. 2018): MAE of the voxels left after removing fraction f by decreasing std / |error|.

    Returns (fractions k/n for k = 0..n-1, curve when removing by std, oracle curve removing by |error|),
    in the units of `err`.
    """
    if n < 2:
        raise ValueError(f"sparsification needs n >= 2 fractions, got {n}.")
    s, e, m = _check(std=std, err=err, mask=mask)
    s, e = s[m].astype(np.float64).ravel(), np.abs(e[m].astype(np.float64)).ravel()
    fractions = np.arange(n) / n
    removed = np.floor(fractions * e.size).astype(int)
    by_std = _remaining_mean(e[np.argsort(-s, kind="stable")], removed)
    oracle = _remaining_mean(e[np.argsort(-e, kind="stable")], removed)
    return fractions, by_std, oracle


def ause(std: np.ndarray, err: np.ndarray, mask: np.ndarray, n: int = 20) -> float:
    """Area Under the Sparsification Error (curve by std minus oracle), trapezoid over fractions 0..(n-1)/n."""
    f, curve, oracle = sparsification(std, err, mask, n)
    return float(np.trapezoid(curve - oracle, f))


def high_frequency_power(img: np.ndarray, cutoff: float = 0.25) -> float:
    """Share of an image's spectral power (mean removed) above `cutoff` cycles / pixel in radius (0.5 = Nyquist):
    a checkerboard puts its power at the corners of the spectrum, a smooth image none (checkerboard check, issue of
    the WGAN-GP; compare a synthetic CT's value with the true CT's)."""
    a = _finite("img", np.asarray(img, dtype=np.float64))
    if a.ndim != 2:
        raise ValueError(f"high_frequency_power expects a 2-D image, got shape {a.shape}.")
    power = np.abs(np.fft.fft2(a - a.mean())) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(a.shape[0]), np.fft.fftfreq(a.shape[1]), indexing="ij")
    total = power.sum()
    return float(power[np.hypot(fy, fx) > cutoff].sum() / total) if total > 0 else 0.0


def through_plane_roughness(vol_hu: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared through-plane second difference (HU²) of a (z, y, x) volume, over voxels whose z-neighbours are
    all in the body: (v[z+1] − 2 v[z] + v[z−1])². Slice-to-slice flicker of a 2-D model raises it; compare an sCT's
    value with the CT's own (inter-slice consistency)."""
    v, m = _check(vol=np.asarray(vol_hu, np.float64), mask=np.asarray(mask, bool))
    if v.ndim != 3 or v.shape[0] < 3:
        raise ValueError(f"through_plane_roughness expects a (z, y, x) volume of >= 3 slices, got shape {v.shape}.")
    d2 = v[2:] - 2 * v[1:-1] + v[:-2]
    inside = m[2:] & m[1:-1] & m[:-2]
    if not inside.any():
        raise ValueError("through_plane_roughness: no voxel has both z-neighbours inside the mask.")
    return float(np.mean(d2[inside] ** 2))
