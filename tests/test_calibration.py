"""Split-conformal calibration of the MC std (evaluate/calibration.py) on data whose error law is known."""
from __future__ import annotations

import numpy as np
import pytest

from ctmri.evaluate.calibration import TISSUES, Calibration, calibrate, conformal_quantile, coverage, tissue_of


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
    cal = calibrate(*_volume(rng, 200_000, exact), alpha=0.1, floor_hu=0.0)
    for name in TISSUES:
        assert cal.scales[name] == pytest.approx(1.645, rel=0.02), name
    skewed = dict(exact, bone=0.5, air=3.0)
    cal = calibrate(*_volume(rng, 200_000, skewed), alpha=0.1, floor_hu=0.0)
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
    cal = calibrate(mean, np.zeros_like(std), ct, mask, alpha=0.1)
    assert coverage(cal, mean, np.zeros_like(std), ct, mask)["overall"] >= 0.9
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_rare_class_falls_back_to_the_overall_scale_and_bad_inputs_are_refused() -> None:
    rng = np.random.default_rng(2)
    mean, std, ct, mask = _volume(rng, 5_000, {k: 1.0 for k in TISSUES})
    mean[:3], ct[:3] = 2500.0, 2500.0                  # three bone voxels; every other bone voxel is dropped below
    keep = (tissue_of(mean) != 3) | (np.arange(mean.size) < 3)
    cal = calibrate(mean[keep], std[keep], ct[keep], mask[keep])
    assert cal.n_voxels["bone"] == 3 and cal.scales["bone"] == cal.overall
    with pytest.raises(ValueError, match="one grid"):
        calibrate(mean, std[:-1], ct, mask)
    with pytest.raises(ValueError, match="mask is empty"):
        calibrate(mean, std, ct, np.zeros_like(mask))
    with pytest.raises(ValueError, match="negative"):
        calibrate(mean, -std, ct, mask)
