"""Convergence shown (issue 25): the validation-MAE curve logged at every checkpoint (train/validation.py) and the
verdict read off it (evaluate/convergence.py), on curves whose answer is known and on a real smoke training run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctmri.evaluate.convergence import convergence_table, curve_change, unconverged


def test_a_curve_still_falling_in_its_last_fifth_is_not_converged() -> None:
    steps = np.arange(500, 3001, 500)
    falling = 100 * np.exp(-steps / 3000) + 50                       # still dropping
    got = curve_change(steps, falling)
    start = np.interp(2400, steps, falling)
    assert got["mae_last_fifth_start"] == pytest.approx(start)
    assert got["change"] == pytest.approx((falling[-1] - start) / start) and got["change"] < -0.03
    assert got["converged"] is False and got["final_step"] == 3000 and got["points"] == 6


def test_a_flat_or_noisy_flat_curve_is_converged_and_one_point_is_unknown() -> None:
    steps = np.arange(500, 3001, 500)
    assert curve_change(steps, np.array([90, 70, 62, 61, 60.5, 60.2]))["converged"] is True
    assert curve_change(steps, np.array([90, 70, 60, 60, 61.5, 60.0]))["converged"] is True      # ±1 % noise
    assert curve_change(steps, np.array([90, 70, 60, 60, 60, 66.0]))["converged"] is False      # rising: moving too
    assert curve_change(np.array([3000]), np.array([60.0]))["converged"] is None


def test_claims_name_the_unconverged_models_they_are_judged_on() -> None:
    table = pd.DataFrame([{"method": "cnn", "converged": True}, {"method": "wgan", "converged": False},
                          {"method": "ddpm", "converged": False}, {"method": "vesde", "converged": True}])
    assert unconverged("C1", table) == ["ddpm"]
    assert unconverged("C4", table) == ["wgan", "ddpm"]
    assert unconverged("V3", table) == []
    assert unconverged("C1", pd.DataFrame()) == []


def test_training_logs_the_validation_curve_at_every_checkpoint(tmp_path: Path, monkeypatch, one_thread) -> None:
    from ctmri.data.prepare import prepare_dataset
    from ctmri.train.loop import train

    monkeypatch.setenv("CTMRI_ROOT", str(tmp_path))
    prepare_dataset("smoke")
    result = train("smoke", "vesde", steps=20, progress=False)          # smoke checkpoints every 10 steps
    curve = pd.read_csv(tmp_path / "runs" / "smoke" / "checkpoints" / "vesde_val.csv")
    assert list(curve["step"]) == [10, 20] and (curve["sampler"] == "dpm++2m-ve").all()
    assert (curve["val_mae_hu"] > 0).all() and result["val_mae_hu"] == curve["val_mae_hu"].iloc[-1]
    assert curve["val_mae_hu"].iloc[0] != curve["val_mae_hu"].iloc[1]   # the weights moved, the seeds did not
    train("smoke", "vesde", steps=30, progress=False)                   # resumed: the curve goes on
    curve = pd.read_csv(tmp_path / "runs" / "smoke" / "checkpoints" / "vesde_val.csv")
    assert list(curve["step"]) == [10, 20, 30]
    table = convergence_table(tmp_path / "runs" / "smoke" / "checkpoints")
    assert list(table["method"]) == ["vesde"] and table["final_step"].iloc[0] == 30
