"""The training loop: every method learns, exact resume, epoch rule, load_model contract, bad input, torchrun DDP."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ctmri import config as C
from ctmri.train import loop as T
from ctmri.models.checkpoints import load_checkpoint, load_model

REPO = Path(__file__).resolve().parents[1]
TINY = C.get_profile(
    "smoke", data=C.DataConfig(image_size=8),
    model=C.ModelConfig(base_channels=8, channel_mults=(1, 2)),
    train=C.TrainConfig(batch_size=4, lr=3e-3, log_every=1, checkpoint_every=1000, n_critic=1, ema_decay=0.9))


@pytest.fixture(autouse=True)
def scratch_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CTMRI_ROOT", str(tmp_path))
    return tmp_path


pytestmark = pytest.mark.usefixtures("one_thread")


def toy_data(n: int = 4, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    cond = g.uniform(-1, 1, (n, 1, size, size)).astype(np.float32)
    return cond, np.clip(0.8 * cond[:, :, ::-1] + 0.1, -1, 1).astype(np.float32)  # target needs context


def tiny(**train_overrides) -> C.Profile:
    return dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, **train_overrides))


@pytest.mark.parametrize("method", ["ddpm", "cnn", "wgan"])   # vesde: tests/test_learning.py (its loss is mostly noise)
def test_each_method_overfits_a_tiny_batch(method: str) -> None:
    r = T.train(TINY, method, steps=40, dataset=toy_data(), progress=False)
    log = pd.read_csv(r["loss_log"])
    col = "mse" if method == "wgan" else "loss"
    assert list(log["step"]) == list(range(1, 41))
    assert log[col][-10:].mean() < 0.6 * log[col][:10].mean(), log[col].tolist()
    assert r["step"] == 40 and Path(r["checkpoint"]).exists()


@pytest.mark.parametrize("method", ["vesde", "wgan"])
def test_channels_last_trains_the_same_model(method: str, tmp_path: Path) -> None:
    """TrainConfig.channels_last changes the memory layout only: the same losses to rounding."""
    runs = {}
    for flag in (False, True):
        r = T.train(tiny(channels_last=flag), method, steps=6, dataset=toy_data(), progress=False,
                    checkpoint=tmp_path / f"{flag}" / f"{method}.pt")
        runs[flag] = (pd.read_csv(r["loss_log"]), load_checkpoint(r["checkpoint"]))
        assert len(runs[flag][0]) == 6
    col = "mse" if method == "wgan" else "loss"
    # the same losses step by step (weights are not compared: Adam turns rounding-level gradient differences of
    # near-zero gradients into steps of ~lr)
    np.testing.assert_allclose(runs[True][0][col], runs[False][0][col], rtol=1e-4, atol=1e-6)
    assert runs[True][1]["config"]["train"]["channels_last"] is True


def _assert_same_state(a: dict, b: dict) -> None:
    for key in ("nets", "ema", "optimizers"):
        ta, tb = a[key], b[key]
        if ta is None:
            assert tb is None
            continue
        fa, fb = torch.utils._pytree.tree_flatten(ta)[0], torch.utils._pytree.tree_flatten(tb)[0]
        assert len(fa) == len(fb)
        for x, y in zip(fa, fb):
            assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y, key


@pytest.mark.parametrize("method", ["ddpm", "wgan"])
def test_interrupted_then_resumed_run_is_bit_identical(method: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    p = dataclasses.replace(tiny(checkpoint_every=3, log_every=2, n_critic=2),
                            model=dataclasses.replace(TINY.model, dropout=0.1))
    data = toy_data(8)
    full = T.train(p, method, steps=9, dataset=data, progress=False, checkpoint=tmp_path / "full" / f"{method}.pt")

    real_step = T.train_step

    def crash_at_7(ctx, step):
        if step == 7:
            raise KeyboardInterrupt("simulated kill")
        return real_step(ctx, step)

    part = tmp_path / "part" / f"{method}.pt"
    monkeypatch.setattr(T, "train_step", crash_at_7)
    with pytest.raises(KeyboardInterrupt):
        T.train(p, method, steps=9, dataset=data, progress=False, checkpoint=part)
    assert load_checkpoint(part)["step"] == 6
    monkeypatch.setattr(T, "train_step", real_step)
    global_rng = torch.get_rng_state()
    resumed = T.train(p, method, steps=9, dataset=data, progress=False, checkpoint=part)
    assert torch.equal(torch.get_rng_state(), global_rng)  # dropout seeded in a forked RNG scope
    assert resumed["resumed_from"] == 6 and resumed["weights_sha256"] == full["weights_sha256"]
    _assert_same_state(load_checkpoint(full["checkpoint"]), load_checkpoint(part))
    a, b = pd.read_csv(full["loss_log"]), pd.read_csv(resumed["loss_log"])
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))


def test_finished_run_is_left_alone() -> None:
    r = T.train(TINY, "cnn", steps=3, dataset=toy_data(), progress=False)
    before = Path(r["checkpoint"]).read_bytes()
    again = T.train(TINY, "cnn", steps=3, dataset=toy_data(), progress=False)
    assert again["steps_this_run"] == 0 and Path(r["checkpoint"]).read_bytes() == before


def test_epoch_rule_stops_a_flat_loss() -> None:
    cfg = tiny(lr=0.0, epoch_rule=True, min_epochs=3, rule_window=2, max_epochs=50, diffusion_steps=0,
               baseline_steps=0)
    r = T.train(cfg, "cnn", dataset=toy_data(8), progress=False)  # lr 0: the loss never drops
    assert r["stopped_by"] == "epoch_rule" and r["epochs"] == 3 and r["step"] == 3 * 2
    falling = [1.0 * 0.9**k for k in range(5)]
    assert not T.rule_says_stop(falling, cfg.train) and T.rule_says_stop(falling + [0.7], cfg.train)


def test_load_model_follows_the_contract() -> None:
    data = toy_data()
    y, x = (torch.from_numpy(a) for a in data)
    for method in C.METHODS:
        r = T.train(TINY, method, steps=3, dataset=data, progress=False)
        lm = load_model(r["checkpoint"])
        assert lm.method == method and lm.profile == "smoke" and lm.meta["step"] == 3 and not lm.net.training
        with torch.no_grad():
            if method == "ddpm":
                state = load_checkpoint(r["checkpoint"])
                assert all(torch.equal(v, state["ema"][k]) for k, v in lm.net.state_dict().items())
                sigma = lm.process.sigma_of_t(torch.tensor([5, 5, 5, 5])).float()
                assert lm.model(x, y, sigma).shape == x.shape
            elif method == "vesde":       # EDM convention, sigma_data measured on the training targets
                t = torch.full((4,), 0.5)
                assert lm.meta["convention"]["kind"] == "ve-edm"
                assert lm.meta["convention"]["sigma_data"] == pytest.approx(float(x.std()), rel=1e-5)
                std = float(lm.process.marginal_std(0.5))
                d = lm.model(x, y, torch.full((4,), std))
                sd2 = lm.model.sigma_data**2                  # EDM Table 1: D = c_skip x + c_out F(c_in x)
                f = lm.net(x * (std**2 + sd2) ** -0.5, y, torch.full((4,), 1000 * math.log(std) / 4))
                assert torch.allclose(d, sd2 / (std**2 + sd2) * x + std * lm.model.sigma_data / (std**2 + sd2) ** 0.5 * f,
                                      atol=1e-5)
                # an older checkpoint (no stored convention) is read with Song's F / std(t), as it was trained
                state = load_checkpoint(r["checkpoint"])
                del state["convention"]
                old = Path(r["checkpoint"]).with_name("legacy.pt")
                torch.save(state, old)
                legacy = load_model(old)
                # Song's convention: D = x + std^2 s = x + std F(x, 1000 t)
                assert torch.allclose(legacy.model(x, y, torch.full((4,), std)), x + std * legacy.net(x, y, 1000 * t),
                                      atol=1e-5)
            else:
                assert lm.process is None and lm.model(y).shape == x.shape


# ---- bad input: one clear sentence, nothing overwritten ------------------------------------------

def _trained(method: str = "ddpm") -> tuple[Path, bytes]:
    r = T.train(TINY, method, steps=2, dataset=toy_data(), progress=False)
    return Path(r["checkpoint"]), Path(r["checkpoint"]).read_bytes()


def test_truncated_checkpoint() -> None:
    path, data = _trained()
    path.write_bytes(data[: len(data) // 2])
    log = path.with_name("ddpm_loss.csv").read_text()
    with pytest.raises(RuntimeError, match="truncated or corrupt"):
        T.train(TINY, "ddpm", steps=4, dataset=toy_data(), progress=False)
    assert path.read_bytes() == data[: len(data) // 2] and path.with_name("ddpm_loss.csv").read_text() == log
    with pytest.raises(RuntimeError, match="truncated or corrupt"):
        load_model(path)


def test_checkpoint_of_another_method_or_profile(scratch_root: Path) -> None:
    path, data = _trained("ddpm")
    other = path.with_name("vesde.pt")
    shutil.copy(path, other)
    with pytest.raises(RuntimeError, match="holds a 'ddpm' model, not 'vesde'"):
        T.train(TINY, "vesde", steps=4, dataset=toy_data(), progress=False)
    assert other.read_bytes() == data
    cpu_named = dataclasses.replace(TINY, name="cpu")
    with pytest.raises(RuntimeError, match="profile 'smoke', not 'cpu'"):
        T.train(cpu_named, "ddpm", steps=4, dataset=toy_data(), progress=False, checkpoint=path)
    wider = dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, base_channels=16))
    with pytest.raises(RuntimeError, match="another model configuration"):
        T.train(wider, "ddpm", steps=4, dataset=toy_data(), progress=False)
    assert path.read_bytes() == data


def test_unknown_method_and_missing_dataset(scratch_root: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match="Unknown method 'gan'"):
        T.train(TINY, "gan", dataset=toy_data())
    with pytest.raises(FileNotFoundError, match="No processed training data for profile 'smoke'"):
        T.train("smoke", "cnn", progress=False)
    assert T.main(["--method", "cnn", "--steps", "1", "--no-progress"]) == 2
    assert "No processed training data" in capsys.readouterr().err
    assert not (scratch_root / "runs").exists()
    with pytest.raises(ValueError, match="fewer than the batch size"):
        T.train(TINY, "cnn", dataset=toy_data(2), progress=False)


# ---- torchrun: 2 processes, gloo on CPU ------------------------------------------------------------

def write_processed(root: Path, profile: str = "smoke", n: int = 8, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A tiny processed dataset following the contract (ARCHITECTURE.md, Processed data)."""
    mr, ct = toy_data(n, size, seed=1)
    folder = root / "data" / "processed" / profile
    folder.mkdir(parents=True)
    for split in ("train", "test"):
        np.savez(folder / f"{split}.npz", mr=mr, ct=ct, mask=np.ones((n, size, size), bool),
                 patient=np.array(["p0"] * (n // 2) + ["p1"] * (n - n // 2)), slice_index=np.arange(n),
                 pixel_spacing=np.full((n, 2), 8.0))
    (folder / "manifest.json").write_text(json.dumps({
        "direction": "mr2ct", "profile": profile, "patients": {"train": ["p0", "p1"], "test": ["p0", "p1"]},
        "n_slices": {"train": n, "test": n}}))
    return mr, ct


def state_log(root: Path, method: str) -> Path:
    return root / "runs" / "smoke" / "checkpoints" / f"{method}_loss.csv"


@pytest.mark.slow
def test_torchrun_two_processes_agree(scratch_root: Path, tmp_path: Path) -> None:
    """WGAN-GP exercises the most: two DDP modules, a double backward through the critic, critic streams."""
    method = "wgan"
    pytest.importorskip("ctmri.data.prepare", reason="ctmri.data.prepare.load_split is not written yet")
    mr, ct = write_processed(scratch_root)
    env = {**os.environ, "CTMRI_ROOT": str(scratch_root), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO / "lib")}
    cmd = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2", "-m",
           "ctmri.train.loop", "--profile", "smoke", "--method", method, "--steps", "5", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    digests = dict(re.findall(r"rank (\d)/2 weights sha256 (\w+)", proc.stdout + proc.stderr))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"], digests
    # the same run in one process draws the same numbers (sharding by batch position), so it lands close
    state = load_checkpoint(scratch_root / "runs" / "smoke" / "checkpoints" / f"{method}.pt", method, "smoke")
    assert state["train_state"]["world_size"] == 2 and state["step"] == 5
    single = T.train("smoke", method, steps=5, dataset=(mr, ct), progress=False, checkpoint=tmp_path / "one.pt")
    one = load_checkpoint(single["checkpoint"])
    logs = [pd.read_csv(f).drop(columns="seconds") for f in (single["loss_log"], state_log(scratch_root, method))]
    # rtol 1e-3: the adaptive adversarial weight is a ratio of gradient norms whose shard sums nearly cancel at
    # init (random critic), so summation order shows at 1e-4; without it the logs agree to 1e-5
    pd.testing.assert_frame_equal(*logs, rtol=1e-3)
    diff = max(float((v - one["nets"]["net"][k]).abs().max()) for k, v in state["nets"]["net"].items())
    assert diff < 0.5 * 5 * C.SMOKE.train.lr  # Adam moves a weight by about lr per step; order-of-summation noise is below


# ---- precision (issue 24): recorded in the checkpoint, its provenance, the result and the stage note ----------------

def test_a_checkpoint_records_the_precision_it_trained_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ctmri import precision as P

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    note = tmp_path / "stage.note"
    monkeypatch.setenv(T.STAGE_NOTE_ENV, str(note))
    monkeypatch.delenv(P.ENV, raising=False)
    r = T.train(TINY, "cnn", steps=3, dataset=toy_data(), progress=False, checkpoint=tmp_path / "default" / "cnn.pt")
    assert r["precision"] == load_checkpoint(r["checkpoint"])["precision"] == "fp32"   # None: fp32 on the CPU
    losses = {}
    for env in ("fp32", "bf16"):
        monkeypatch.setenv(P.ENV, env)
        r = T.train(TINY, "cnn", steps=3, dataset=toy_data(), progress=False, checkpoint=tmp_path / env / "cnn.pt")
        state = load_checkpoint(r["checkpoint"])
        assert r["precision"] == state["precision"] == state["provenance"]["precision"]["precision"] == env
        assert r["precision_source"] == "env" and note.read_text() == f"precision={env}\n"
        losses[env] = pd.read_csv(r["loss_log"])["loss"].to_numpy()
    assert not np.array_equal(losses["fp32"], losses["bf16"])               # bf16 autocast was really on
    np.testing.assert_allclose(losses["bf16"], losses["fp32"], rtol=0.05)


def test_a_resumed_auto_run_keeps_its_precision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ctmri import precision as P

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(P.ENV, raising=False)
    monkeypatch.setattr(P, "native_bf16", lambda device: True)
    monkeypatch.setattr(P, "probe", lambda device: (0.2, 0.1))
    p = tiny(bf16_autocast="auto")
    first = T.train(p, "cnn", steps=2, dataset=toy_data(), progress=False)
    assert (first["precision"], first["precision_source"]) == ("bf16", "measured")
    P.cache_path().unlink()
    monkeypatch.setattr(P, "probe", lambda device: (0.1, 0.2))             # this machine would now pick fp32
    resumed = T.train(p, "cnn", steps=4, dataset=toy_data(), progress=False)
    assert resumed["resumed_from"] == 2
    assert (resumed["precision"], resumed["precision_source"]) == ("bf16", "checkpoint")
    fresh = T.train(p, "cnn", steps=2, dataset=toy_data(), progress=False, resume=False)
    assert fresh["precision"] == "fp32"


def test_channels_last_only_where_it_is_faster() -> None:
    """None: channels-last on CUDA and in fp32 on CPU (faster there), not under bf16 autocast on CPU (slower)."""
    from ctmri.precision import Decision
    from ctmri.train.loop import memory_format_channels_last
    cfg, cpu = C.TrainConfig(), torch.device("cpu")
    assert memory_format_channels_last(cfg, cpu, Decision("fp32", "config"))
    assert not memory_format_channels_last(cfg, cpu, Decision("bf16", "config"))
    assert memory_format_channels_last(cfg, torch.device("cuda"), Decision("bf16", "config"))
    assert not memory_format_channels_last(C.TrainConfig(channels_last=False), cpu, Decision("fp32", "config"))
