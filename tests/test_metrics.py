"""Metrics against hand-computed cases: SynthRAD2023 MAE / PSNR / SSIM in HU, the study's metrics, Dice, uncertainty."""
from __future__ import annotations

import numpy as np
import pytest

from ctmri.data.intensity import HU_PER_UNIT, hu_to_model, model_to_hu, std_to_hu
from ctmri.evaluate import metrics as M

RANGE = 4024.0


def body(shape: tuple[int, ...]) -> np.ndarray:
    """A box mask well inside the image (3-D: through every slice), so the 3-pixel SSIM crop keeps voxels."""
    m = np.zeros(shape, bool)
    m[(..., slice(2, shape[-2] - 2), slice(2, shape[-1] - 2))] = True
    return m


def ct(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-900, 1500, shape)   # offsets of ±100 stay inside the window


SHAPES = [(16, 16), (5, 16, 16)]


@pytest.mark.parametrize("shape", SHAPES)
def test_perfect_prediction(shape: tuple[int, ...]) -> None:
    x = ct(shape)
    r = M.synthrad_metrics(x, x.copy(), body(shape))
    assert r["mae"] == 0 and r["psnr"] == np.inf and r["ssim"] == pytest.approx(1.0)   # PSNR is inf, not capped


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("d", [1.0, 25.0, -100.0])
def test_constant_offset_has_known_mae_and_psnr(shape: tuple[int, ...], d: float) -> None:
    x = ct(shape)
    r = M.synthrad_metrics(x, x + d, body(shape))
    assert r["mae"] == pytest.approx(abs(d))
    assert r["psnr"] == pytest.approx(10 * np.log10(RANGE**2 / d**2))
    assert 0.9 < r["ssim"] < 1.0


@pytest.mark.parametrize("shape", SHAPES)
def test_voxels_outside_the_mask_are_ignored(shape: tuple[int, ...]) -> None:
    x, y, m = ct(shape), ct(shape, 1), body(shape)
    wild = y.copy()
    wild[~m] = np.random.default_rng(2).uniform(-5000, 9000, (~m).sum())
    a, b = M.synthrad_metrics(x, y, m), M.synthrad_metrics(x, wild, m)
    assert a == pytest.approx(b)
    x2 = x.copy()
    x2[~m] = 3000.0
    assert M.synthrad_metrics(x2, y, m) == pytest.approx(a)


def test_psnr_and_ssim_clip_to_the_hu_window_but_mae_does_not() -> None:
    x, m = ct((16, 16)), body((16, 16))
    x[5, 5] = 2500.0
    y = x.copy()
    y[5, 5] = 4000.0                                   # clipped to 3000: error 500 in PSNR, 1500 in MAE
    r = M.synthrad_metrics(x, y, m)
    n = m.sum()
    assert r["mae"] == pytest.approx(1500.0 / n)
    assert r["psnr"] == pytest.approx(10 * np.log10(RANGE**2 / (500.0**2 / n)))
    z = x.copy()
    z[5, 5] = 3000.0                                   # same after clipping as 4000
    assert M.synthrad_ssim(x, y, m) == pytest.approx(M.synthrad_ssim(x, z, m))


def test_ssim_is_the_mean_of_the_cropped_map_over_the_mask() -> None:
    from skimage.metrics import structural_similarity

    x, y = ct((20, 20)), ct((20, 20), 1)
    m = np.zeros((20, 20), bool)
    m[1:15, 4:19] = True
    a = np.where(m, x, -1024) + 1024
    b = np.where(m, y, -1024) + 1024
    _, smap = structural_similarity(a, b, data_range=RANGE, full=True, win_size=7)
    expect = smap[3:-3, 3:-3][m[3:-3, 3:-3]].mean()
    assert M.synthrad_ssim(x, y, m) == pytest.approx(expect)


def test_ssim_window_for_small_images() -> None:
    assert M.ssim_win_size((512, 512)) == 7
    assert M.ssim_win_size((6, 64, 64)) == 5 and M.ssim_win_size((3, 16, 16)) == 3
    with pytest.raises(ValueError, match="at least 3 pixels"):
        M.synthrad_ssim(ct((2, 16, 16)), ct((2, 16, 16)), body((2, 16, 16)))


def test_paper_metrics_on_the_unit_scale() -> None:
    x = ct((16, 16))
    d = 40.24                                           # 0.01 on the [0, 1] scale
    assert M.paper_psnr(x, x + d) == pytest.approx(40.0)
    assert M.paper_ssim(x, x) == pytest.approx(1.0)
    assert M.paper_psnr(np.full((8, 8), -3000.0), np.full((8, 8), -1024.0)) == np.inf   # both clip to 0


def test_bone_dice() -> None:
    x = np.full((10, 10), 40.0)
    y = x.copy()
    x[2:6, 2:6] = 800.0                                 # 16 bone pixels
    y[4:8, 2:6] = 800.0                                 # 16, overlap 8
    m = np.ones((10, 10), bool)
    assert M.bone_dice(x, y, m) == pytest.approx(2 * 8 / 32)
    assert M.bone_dice(x, x, m) == 1.0
    assert M.bone_dice(np.zeros((4, 4)), np.zeros((4, 4)), np.ones((4, 4), bool)) == 1.0   # both bone-free: agree
    assert M.bone_dice(x, y, m, threshold=900.0) == 1.0                # no bone above 900 HU in either
    assert M.bone_dice(x, np.zeros((10, 10)), m) == 0.0
    y[0, 0] = 300.0
    assert M.bone_dice(x, y, m) == pytest.approx(2 * 8 / 33)          # 300 HU counts as bone (> 200)


def test_uncertainty_score_is_the_mean_std_in_the_mask() -> None:
    std = np.arange(16.0).reshape(4, 4)
    m = np.zeros((4, 4), bool)
    m[0] = True
    assert M.uncertainty_score(std, m) == pytest.approx(1.5)
    assert M.uncertainty_score(std) == pytest.approx(7.5)


def test_std_equal_to_error_is_perfectly_calibrated() -> None:
    err = np.random.default_rng(0).random((24, 24))
    m = body((24, 24))
    assert M.spearman_uncertainty_error(err, err, m) == pytest.approx(1.0)
    f, curve, oracle = M.sparsification(err, err, m, n=10)
    np.testing.assert_allclose(curve, oracle)
    assert f[0] == 0 and curve[0] == pytest.approx(err[m].mean()) and len(f) == 10
    assert M.ause(err, err, m) == pytest.approx(0.0)
    assert M.ause(3 * err + 1, err, m) == pytest.approx(0.0)           # any monotone std ranks the same


def test_anticorrelated_std_has_positive_ause() -> None:
    err = np.random.default_rng(0).random((24, 24))
    m = body((24, 24))
    assert M.spearman_uncertainty_error(-err, err, m) == pytest.approx(-1.0)
    f, curve, oracle = M.sparsification(-err, err, m)
    assert curve[-1] > curve[0] > oracle[-1]                            # removing the safest pixels first
    assert M.ause(-err, err, m) > M.ause(np.random.default_rng(1).random((24, 24)), err, m) > 0


def test_sparsification_by_hand() -> None:
    err = np.array([[4.0, 3.0, 2.0, 1.0]])
    std = np.array([[1.0, 2.0, 3.0, 4.0]])                # ranks exactly reversed
    m = np.ones((1, 4), bool)
    f, curve, oracle = M.sparsification(std, err, m, n=4)
    np.testing.assert_allclose(f, [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(oracle, [2.5, 2.0, 1.5, 1.0])
    np.testing.assert_allclose(curve, [2.5, 3.0, 3.5, 4.0])
    assert M.ause(std, err, m, n=4) == pytest.approx(np.trapezoid([0, 1, 2, 3], f))


def test_constant_std_gives_nan_spearman() -> None:
    err = np.random.default_rng(0).random((8, 8))
    assert np.isnan(M.spearman_uncertainty_error(np.ones((8, 8)), err, np.ones((8, 8), bool)))


@pytest.mark.parametrize("fn", [M.synthrad_metrics, M.bone_dice])
def test_bad_shapes_are_a_clear_error(fn) -> None:
    with pytest.raises(ValueError, match="Shape mismatch.*ct_hu \\(8, 8\\).*sct_hu \\(8, 9\\)"):
        fn(np.zeros((8, 8)), np.zeros((8, 9)), np.ones((8, 8), bool))


def test_nan_and_empty_mask_are_clear_errors() -> None:
    x = ct((16, 16))
    y = x.copy()
    y[3, 3] = np.nan
    with pytest.raises(ValueError, match="sct_hu contains NaN"):
        M.synthrad_metrics(x, y, body((16, 16)))
    with pytest.raises(ValueError, match="mask .* is empty"):
        M.synthrad_mae(x, x, np.zeros((16, 16), bool))
    with pytest.raises(ValueError, match="Shape mismatch"):
        M.sparsification(np.ones((4, 4)), np.ones((4, 5)), np.ones((4, 4), bool))


def test_high_frequency_power_sees_a_checkerboard() -> None:
    from ctmri.evaluate.metrics import high_frequency_power
    yy, xx = np.mgrid[:32, :32]
    smooth = np.sin(2 * np.pi * yy / 32) + np.cos(2 * np.pi * xx / 16)
    checker = smooth + 0.5 * ((yy + xx) % 2)
    assert high_frequency_power(smooth) < 1e-6
    assert high_frequency_power(checker) > 0.05
    assert high_frequency_power(np.ones((8, 8))) == 0.0


def test_mc_mean_and_std_convert_to_hu_like_the_replicates() -> None:
    """The HU map is affine: the mean of HU replicates is model_to_hu(mean), their std (ddof 1) is HU_PER_UNIT × std."""
    rng = np.random.default_rng(1)
    reps = rng.uniform(-1, 1, size=(6, 1, 8, 8))               # K = 6 replicates in model space
    hu = model_to_hu(reps)
    np.testing.assert_allclose(hu.mean(0), model_to_hu(reps.mean(0)), atol=1e-9)
    np.testing.assert_allclose(hu.std(0, ddof=1), std_to_hu(reps.std(0, ddof=1)), rtol=1e-12)
    assert float(model_to_hu(-1.0)) == -1024.0 and float(model_to_hu(1.0)) == 3000.0   # the study's HU window
    np.testing.assert_allclose(hu_to_model(model_to_hu(reps)), reps, atol=1e-12)


def test_through_plane_roughness_is_zero_on_planes_and_ramps_and_6_sigma2_on_white_noise() -> None:
    """(v[z+1] − 2v[z] + v[z−1])² vanishes on any volume linear in z; on white noise of std s its mean is 6 s²."""
    from ctmri.evaluate.metrics import through_plane_roughness

    mask = np.ones((40, 16, 16), bool)
    ramp = np.broadcast_to(np.arange(40.0)[:, None, None] * 7.0 + np.arange(16.0)[None, :, None], mask.shape)
    assert through_plane_roughness(ramp, mask) == pytest.approx(0.0, abs=1e-9)
    noise = np.random.default_rng(0).normal(0, 20.0, mask.shape)
    assert through_plane_roughness(noise, mask) == pytest.approx(6 * 20.0 ** 2, rel=0.05)
    smooth = np.cumsum(noise, axis=0) / 10          # correlated in z: a different value, still finite
    assert np.isfinite(through_plane_roughness(smooth, mask))
    with pytest.raises(ValueError, match=">= 3 slices"):
        through_plane_roughness(noise[:2], mask[:2])
    alternating = mask.copy()
    alternating[::2] = False
    with pytest.raises(ValueError, match="no voxel has both z-neighbours"):
        through_plane_roughness(noise, alternating)


# ---------------------------------------------------------------------------------------------- hallucination

def test_false_and_missed_bone_fractions_count_the_voxels_they_name() -> None:
    from ctmri.evaluate.metrics import false_bone_fraction, missed_bone_fraction

    ct = np.full((10, 10), 40.0)
    ct[:2] = 1000.0                                   # 20 bone voxels
    mask = np.ones((10, 10), bool)
    sct = ct.copy()
    sct[5, :7] = 500.0                                # 7 hallucinated bone voxels in soft tissue
    sct[0, :5] = 50.0                                 # 5 of the 20 bone voxels missed
    sct[1, :3] = 200.0                                # 3 bone voxels too dark, but not below 100: not missed
    assert false_bone_fraction(ct, sct, mask) == pytest.approx(7 / 100)
    assert missed_bone_fraction(ct, sct, mask) == pytest.approx(5 / 20)
    mask[5] = False                                   # outside the body: not counted
    assert false_bone_fraction(ct, sct, mask) == 0.0
    assert false_bone_fraction(ct, ct, mask) == 0.0 and missed_bone_fraction(ct, ct, mask) == 0.0
    assert np.isnan(missed_bone_fraction(np.full((4, 4), 40.0), np.full((4, 4), 40.0), np.ones((4, 4), bool)))


def test_mae_by_tissue_is_the_mae_over_each_ct_class() -> None:
    from ctmri.evaluate.metrics import mae_by_tissue

    ct = np.array([[-1000.0, -100.0, 40.0, 1200.0]] * 2)
    sct = ct + np.array([[300.0, -20.0, 10.0, -400.0], [100.0, 20.0, 30.0, 0.0]])
    got = mae_by_tissue(ct, sct, np.ones_like(ct, bool))
    assert got == pytest.approx({"air": 200.0, "fat": 20.0, "soft tissue": 20.0, "bone": 200.0})
    only_soft = mae_by_tissue(np.full((2, 2), 40.0), np.full((2, 2), 50.0), np.ones((2, 2), bool))
    assert only_soft["soft tissue"] == 10.0 and np.isnan(only_soft["bone"]) and np.isnan(only_soft["air"])
