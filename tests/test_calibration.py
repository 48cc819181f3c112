"""Normalised split-conformal calibration of the MC std (evaluate/calibration.py) on data whose error law is known."""
from __future__ import annotations

import numpy as np
import pytest

from ctmri.evaluate.calibration import (TISSUES, Calibration, calibrate, conformal_quantile, coverage,
                                        split_fit_conformal, tissue_of)


def _volume(rng: np.random.Generator, n: int, std_scale: dict[str, float]) -> tuple[np.ndarray, ...]:
    """A flat 'volume' with every tissue: errors ~ N(0, true_std²), the reported std = true_std × std_scale[tissue]."""
    centres = {"air": -1000.0, "fat": -100.0, "soft tissue": 40.0, "bone": 800.0}
    names = rng.choice(list(TISSUES), size=n)
    mean = np.array([centres[k] for k in names])
    true_std = rng.uniform(5.0, 60.0, n)
    ct = mean + true_std * rng.standard_normal(n)
    std = true_std * np.array([std_scale[k] for k in names])
    return mean, std, ct, np.ones(n, bool)


def test_conformal_quantile_is_the_finite_sample_rank() -> None:
    s = np.arange(1, 20, dtype=float)                   # n = 19: ceil(20 * 0.9) = 18th smallest
    assert conformal_quantile(s, 0.1) == 18.0
    assert conformal_quantile(s[:5], 0.1) == float("inf")   # 5 scores cannot give a 90 % guarantee
    with pytest.raises(ValueError, match=r"alpha must lie in \(0, 1\)"):
        conformal_quantile(s, 1.5)


def test_calibrated_std_learns_the_gaussian_scale_and_covers_90_percent() -> None:
    """Exact std: the scale is the normal 95th percentile 1.645 (|z| ≤ q with prob 0.9); a std reported 2x too small
    in bone and 3x too large in air gets its own scale, and fresh data are covered 90 % in every tissue."""
    rng = np.random.default_rng(0)
    exact = {k: 1.0 for k in TISSUES}
    cal = calibrate(*_volume(rng, 200_000, exact), alpha=0.1, floor_hu=0.0, hu_bins=0)
    for name in TISSUES:
        assert cal.scales[name] == pytest.approx(1.645, rel=0.02), name
    skewed = dict(exact, bone=0.5, air=3.0)
    cal = calibrate(*_volume(rng, 200_000, skewed), alpha=0.1, floor_hu=0.0, hu_bins=0)
    assert cal.scales["bone"] == pytest.approx(2 * 1.645, rel=0.03) and cal.scales["air"] == pytest.approx(1.645 / 3, rel=0.03)
    cov = coverage(cal, *_volume(rng, 200_000, skewed))
    for name in ("overall", *TISSUES):
        assert cov[name] == pytest.approx(0.90, abs=0.01), (name, cov)
    uncalibrated = Calibration(alpha=0.1, scales={k: 1.645 for k in TISSUES}, overall=1.645, floor_hu=0.0)
    assert coverage(uncalibrated, *_volume(rng, 100_000, skewed))["bone"] < 0.7   # what calibration repairs


def test_a_constant_std_still_gets_coverage_and_a_json_round_trip() -> None:
    """MC std 0 everywhere (a deterministic sampler): the floor turns the interval into a conformal band of fixed
    width per tissue, still covering 90 %."""
    rng = np.random.default_rng(1)
    mean, std, ct, mask = _volume(rng, 50_000, {k: 1.0 for k in TISSUES})
    cal = calibrate(mean, np.zeros_like(std), ct, mask, alpha=0.1, hu_bins=0)
    assert coverage(cal, mean, np.zeros_like(std), ct, mask)["overall"] >= 0.9
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_rare_class_falls_back_to_the_overall_scale_and_bad_inputs_are_refused() -> None:
    rng = np.random.default_rng(2)
    mean, std, ct, mask = _volume(rng, 5_000, {k: 1.0 for k in TISSUES})
    mean[:3], ct[:3] = 2500.0, 2500.0                  # three bone voxels; every other bone voxel is dropped below
    keep = (tissue_of(mean) != 3) | (np.arange(mean.size) < 3)
    cal = calibrate(mean[keep], std[keep], ct[keep], mask[keep], hu_bins=0)
    assert cal.n_voxels["bone"] == 3 and cal.scales["bone"] == cal.overall
    with pytest.raises(ValueError, match="one grid"):
        calibrate(mean, std[:-1], ct, mask)
    with pytest.raises(ValueError, match="mask is empty"):
        calibrate(mean, std, ct, np.zeros_like(mask))
    with pytest.raises(ValueError, match="negative"):
        calibrate(mean, -std, ct, mask)


def _hu_dependent(rng: np.random.Generator, n_slices: int, sigma_at: float = 0.1) -> tuple[np.ndarray, ...]:
    """(n_slices, 32, 32) 'volumes' whose error scale is a known function of the sCT HU (σ = 10 HU at −1000 growing
    to 300 HU at 1000) while the reported std is pure noise, independent of the error."""
    mean = rng.uniform(-1000.0, 1000.0, (n_slices, 32, 32))
    sigma = 10.0 * np.exp(np.log(30.0) * (mean + 1000.0) / 2000.0)
    ct = mean + sigma * rng.standard_normal(mean.shape)
    std = rng.uniform(1.0, 100.0, mean.shape)
    return mean, std, ct, np.ones(mean.shape, bool)


def test_hu_factors_learn_an_error_scale_that_the_std_does_not_carry() -> None:
    """The std is uninformative (ρ ≈ 0): the HU factors recover σ(HU) (factor ratio ≈ σ ratio across the range),
    the calibrated uncertainty ranks the errors (ρ near the oracle σ's), and the intervals still cover 90 %; without
    factors the interval is as wide everywhere and misses in the high-σ bins."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    mean, std, ct, mask = _hu_dependent(rng, 40)
    cal = calibrate(mean, np.zeros_like(std), ct, mask, alpha=0.1, hu_bins=16)
    f = np.asarray(cal.hu_factors)
    assert len(f) == 16 and np.all(np.diff(f) > 0)                          # monotone, as σ(HU)
    assert f[-1] / f[0] == pytest.approx(30.0 ** (15 / 16), rel=0.25)        # bin centres 1/32 .. 31/32 of the range
    fresh_mean, fresh_std, fresh_ct, fresh_mask = _hu_dependent(rng, 40)
    err = np.abs(fresh_ct - fresh_mean).ravel()
    oracle = spearmanr(10.0 * np.exp(np.log(30.0) * (fresh_mean + 1000.0) / 2000.0).ravel(), err).statistic
    u = cal.uncertainty(fresh_mean, np.zeros_like(fresh_std)).ravel()
    assert spearmanr(u, err).statistic >= oracle - 0.02 and abs(spearmanr(fresh_std.ravel(), err).statistic) < 0.02
    assert coverage(cal, fresh_mean, np.zeros_like(fresh_std), fresh_ct, fresh_mask)["overall"] == pytest.approx(0.9, abs=0.01)
    top = fresh_mean > 800                                                  # the highest-σ voxels
    plain = calibrate(mean, np.zeros_like(std), ct, mask, alpha=0.1, hu_bins=0)
    inside = lambda c: np.abs(fresh_ct - fresh_mean)[top] <= c.half_width(fresh_mean, np.zeros_like(fresh_std))[top]
    assert inside(cal).mean() == pytest.approx(0.9, abs=0.03) and inside(plain).mean() < 0.75


def test_near_deterministic_errors_give_a_narrow_interval() -> None:
    """sCT = CT up to 0.01 HU: every factor sits at that scale and the interval is a fraction of a HU wide."""
    rng = np.random.default_rng(4)
    mean = rng.uniform(-1000, 1000, (10, 16, 16))
    ct = mean + 0.01 * rng.standard_normal(mean.shape)
    cal = calibrate(mean, np.zeros_like(mean), ct, np.ones(mean.shape, bool), hu_bins=8)
    assert cal.half_width(mean, np.zeros_like(mean)).max() < 0.05
    assert coverage(cal, mean, np.zeros_like(mean), ct, np.ones(mean.shape, bool))["overall"] >= 0.88


def test_the_factors_and_the_scales_never_see_the_same_patients() -> None:
    groups = np.array(["p3", "p3", "p1", "p1", "p2", "p2", "p4", "p4"])
    fit, conf = split_fit_conformal(8, groups)
    assert set(groups[fit]) == {"p1", "p2"} and set(groups[conf]) == {"p3", "p4"}
    fit, conf = split_fit_conformal(5, np.array(["v"] * 5))                  # one patient: first half of its slices
    assert fit.tolist() == [True, True, False, False, False] and not (fit & conf).any()
    with pytest.raises(ValueError, match="one label per slice"):
        split_fit_conformal(4, np.array(["a", "b"]))
    rng = np.random.default_rng(5)
    mean, std, ct, mask = _hu_dependent(rng, 1)
    with pytest.raises(ValueError, match="at least two slices"):
        calibrate(mean, std, ct, mask)
    mask2 = np.ones((2, 32, 32), bool)
    mask2[1] = False                                                         # nothing left to calibrate on
    with pytest.raises(ValueError, match="no body voxel"):
        calibrate(*_hu_dependent(rng, 2)[:3], mask2)


def test_a_calibration_written_before_the_hu_factors_still_loads_and_means_factor_one() -> None:
    old = {"alpha": 0.1, "scales": {k: 2.0 for k in TISSUES}, "overall": 2.0, "n_voxels": {}, "floor_hu": 1.0}
    cal = Calibration.from_dict(old)
    assert cal.half_width(np.array([40.0]), np.array([9.0]))[0] == pytest.approx(20.0)
    with pytest.raises(ValueError, match="one factor per bin"):
        Calibration.from_dict({**old, "hu_edges": [0.0], "hu_factors": [1.0]})
