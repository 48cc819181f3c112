"""One training loop for ddpm, vesde, cnn and wgan: Adam, EMA, flips, step budget or the study's epoch rule,
atomic checkpoints, exact resume, DDP through torchrun (nccl on GPU, gloo on CPU), bf16 autocast where the device
runs it natively and faster (ctmri/precision.py)."""
from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from ctmri import config as C
from ctmri import distributed
from ctmri.distributed import Ranks
from ctmri import paths
from ctmri import precision as P
from ctmri.models.build import DIFFUSION, build_model
from ctmri.models.checkpoints import convention_of, load_checkpoint, plain, save_checkpoint
from ctmri.diffusion.precond import convention_for, from_description
from ctmri.diffusion.processes import make_process
from ctmri.provenance import provenance
from ctmri.data.slices import check_same_data, data_identity
from ctmri.rng import seed_of
from ctmri.train.steps import Batches, StepContext, train_step
from ctmri.train.validation import log_validation, validation_set


STAGE_NOTE_ENV = "CTMRI_STAGE_NOTE"


def pick_device(device: str | torch.device | None, info: Ranks) -> torch.device:
    """`device`, else cuda (cuda:LOCAL_RANK under DDP) when available, else cpu."""
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", info.local_rank if info.world > 1 else torch.cuda.current_device())
        return device
    if torch.cuda.is_available():
        torch.cuda.set_device(info.local_rank)
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def load_training_data(profile: C.Profile, dataset: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(cond, target) float32 tensors of the train split (`prepare.load_split`), or of `dataset` (.cond/.target or a pair)."""
    if dataset is None:
        split = paths.processed_dir(profile.name) / "train.npz"
        if not split.exists():
            raise FileNotFoundError(f"No processed training data for profile {profile.name!r} at {split}; run "
                                    f"`make data PROFILE={profile.name}` (notebook 00_prepare_data) first.")
        from ctmri.data.slices import load_split
        dataset = load_split(profile.name, "train", context=profile.model.context_slices)
    cond, target = dataset if isinstance(dataset, (tuple, list)) else (dataset.cond, dataset.target)
    cond, target = (torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in (cond, target))
    m = profile.model
    if cond.dim() != 4 or target.dim() != 4 or cond.shape[0] != target.shape[0] \
            or cond.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"Training data must be cond (N, C, H, W) and target (N, 1, H, W) with equal N, H, W; "
                         f"got {tuple(cond.shape)} and {tuple(target.shape)}.")
    if cond.shape[1] != m.condition_channels or target.shape[1] != m.out_channels:
        raise ValueError(f"Profile {profile.name!r} expects {m.condition_channels} condition and {m.out_channels} "
                         f"target channel(s); the data has {cond.shape[1]} and {target.shape[1]}.")
    if not (torch.isfinite(cond).all() and torch.isfinite(target).all()):
        raise ValueError("Training data contains NaN or infinite values.")
    return cond, target


def ema_update(ema: list[torch.Tensor], params: list[torch.Tensor], step: int, decay: float) -> None:
    """ema ← d·ema + (1 − d)·θ with warm-up d = min(decay, (1 + step) / (10 + step)) (Ho et al. 2020 use EMA 0.9999)."""
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for e, p in zip(ema, params):
            e.lerp_(p, 1.0 - d)


def rule_says_stop(history: list[float], cfg: C.TrainConfig) -> bool:
    """The study's rule: after >= min_epochs, stop when the last epoch's mean loss is not 1 % below the
    mean of the previous `rule_window` epochs."""
    if len(history) < max(cfg.min_epochs, cfg.rule_window + 1):
        return False
    reference = float(np.mean(history[-cfg.rule_window - 1:-1]))
    return history[-1] > (1 - cfg.rule_min_drop) * reference


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 of every tensor of a state dict (to compare ranks and runs bit for bit)."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class LossLog:
    """Append-only CSV `step, loss, seconds, ...` (rank 0); on resume rows past the checkpoint are dropped."""

    def __init__(self, path: Path, columns: list[str], resume_step: int | None, active: bool):
        self.path, self.columns, self.active = path, ["step", *columns, "seconds"], active
        if not active:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = []
        if resume_step is not None and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, self.columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    def write(self, row: dict[str, float]) -> None:
        if self.active:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)


def _check_resumable(state: dict, profile: C.Profile, path: Path) -> None:
    if "nets" not in state or "optimizers" not in state:
        raise RuntimeError(f"Checkpoint {path} holds exported weights only (no optimiser state) and cannot be "
                           f"resumed; train afresh with resume=False (`--fresh`).")
    saved, now = state["config"], plain(profile.to_dict())
    for key in ("model", "process"):
        if saved[key] != now[key]:
            raise RuntimeError(f"Checkpoint {path} was trained with another {key} configuration "
                               f"({saved[key]} vs {now[key]}); train afresh with resume=False (`--fresh`).")
    if saved["data"]["image_size"] != now["data"]["image_size"]:
        raise RuntimeError(f"Checkpoint {path} was trained at image size {saved['data']['image_size']}, "
                           f"the profile asks for {now['data']['image_size']}; train afresh with resume=False.")


def choose_precision(cfg: C.TrainConfig, device: torch.device, info: Ranks, state: dict | None) -> P.Decision:
    """fp32 or bf16 autocast (`precision.decide`; under DDP rank 0 decides for all); noted for the stage line."""
    resumed = state.get("precision") if state is not None else None
    decision = P.decide(cfg.bf16_autocast, device, resumed=resumed) if info.rank == 0 else None
    if info.world > 1:
        box = [decision]
        dist.broadcast_object_list(box, src=0)
        decision = box[0]
    if info.rank == 0:
        note_stage(f"precision={decision.precision}")
    return decision


def note_stage(text: str) -> None:
    """Write `text` to the file named by $CTMRI_STAGE_NOTE: the Makefile appends it to the stage's line of
    runs/<profile>/stage_seconds.txt."""
    target = os.environ.get(STAGE_NOTE_ENV)
    if target:
        Path(target).write_text(text + "\n")


def train(profile: str | C.Profile, method: str, *, steps: int | None = None, resume: bool = True,
          device: str | torch.device | None = None, progress: bool = True, dataset: Any = None,
          checkpoint: str | Path | None = None) -> dict[str, Any]:
    """Train `method` on the profile's train split; returns a summary (checkpoint path, steps, losses, timing).

    `steps`: total optimiser steps (default: the profile's budget, or the study's epoch rule when
    `train.epoch_rule`). `dataset`: in-memory data instead of `prepare.load_split` (tests).
    `checkpoint`: path instead of runs/<profile>/checkpoints/<method>.pt (its loss log sits beside it).
    """
    C.check_method(method)
    p = C.get_profile(profile)
    cfg = p.train
    info = distributed.join()
    try:
        return _train(p, method, cfg, info, steps, resume, pick_device(device, info), progress, dataset,
                      Path(checkpoint) if checkpoint else paths.checkpoint_path(p.name, method))
    finally:
        if info.created and dist.is_initialized():
            dist.destroy_process_group()


def memory_format_channels_last(cfg: C.TrainConfig, device: torch.device, decision: P.Decision) -> bool:
    """Channels-last nets and batches: as configured, else on CUDA, and on CPU in fp32 only (train step 1.16x faster
    for the UNet, 1.09x for the WGAN-GP on an AMD EPYC; 1.5x slower under bf16: benchmarks/results/train_speed_cpu.md)."""
    if cfg.channels_last is not None:
        return bool(cfg.channels_last)
    return device.type == "cuda" or decision.precision == "fp32"


def _train(p: C.Profile, method: str, cfg: C.TrainConfig, info: Ranks, steps: int | None, resume: bool,
           device: torch.device, progress: bool, dataset: Any, ckpt_path: Path) -> dict[str, Any]:
    state = None
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, expect_method=method, expect_profile=p.name)
        _check_resumable(state, p, ckpt_path)
    cond, target = load_training_data(p, dataset)
    data_info = {} if dataset is not None else data_identity(p.name)
    if state is not None and data_info:
        check_same_data(state.get("provenance") or {}, p.name, f"Checkpoint {ckpt_path}", "retrain with `--fresh`")
    cuda = device.type == "cuda"
    decision = choose_precision(cfg, device, info, state)
    channels_last = memory_format_channels_last(cfg, device, decision)
    batches = Batches(cond, target, cfg.batch_size, cfg.seed, info.rank, info.world, device, channels_last=channels_last)
    use_rule = steps is None and cfg.epoch_rule
    total = int(steps) if steps is not None else (cfg.max_epochs * batches.steps_per_epoch if use_rule
                                                  else p.steps_for(method))
    if total < 1:
        raise ValueError(f"Nothing to train: a budget of {total} steps (set steps or the profile's budget).")

    raw = build_model(method, p)
    for net in raw.values():
        net.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format).train()
    lr = cfg.wgan_lr if method == "wgan" and cfg.wgan_lr else cfg.lr
    opts = {k: torch.optim.Adam(n.parameters(), lr=lr, betas=tuple(cfg.adam_betas), eps=cfg.adam_eps)
            for k, n in raw.items()}
    params = [t for t in raw["net"].state_dict().values()]
    ema = [t.detach().clone() for t in params] if method in DIFFUSION else None
    step, seconds, history, window, epoch_losses = 0, 0.0, [], [], []
    if state is not None:
        for k, net in raw.items():
            net.load_state_dict(state["nets"][k])
            opts[k].load_state_dict(state["optimizers"][k])
        if ema is not None:
            for e, v in zip(ema, state["ema"].values()):
                e.copy_(v)
        ts = state["train_state"]
        step, seconds, history = state["step"], ts["seconds"], list(ts["rule_history"])
        window = [{k: torch.tensor(v, device=device) for k, v in r.items()} for r in ts["window"]]
        epoch_losses = [torch.tensor(v, device=device) for v in ts["epoch_losses"]]
    resumed_from = step if state is not None else None

    nets = {k: DDP(n, device_ids=[device.index] if cuda else None) if info.world > 1 else n for k, n in raw.items()}
    autocast = P.autocast_factory(decision, device)
    process = make_process(method, p.process) if method in DIFFUSION else None
    convention = None
    if method in DIFFUSION:
        convention = (from_description(convention_of(state), nets["net"], process) if state is not None
                      else convention_for(method, p.process, nets["net"], process, float(target.std())))
    sigma_data = getattr(convention, "sigma_data", None) or (p.process.sigma_data or float(target.std()))
    ctx = StepContext(method, nets, raw, opts, process, cfg, batches, autocast=autocast, convention=convention,
                      sigma_data=sigma_data)
    extra = ["mse", "critic", "adv_weight"] if method == "wgan" else []
    log = LossLog(ckpt_path.with_name(f"{method}_loss.csv"), ["loss", *extra], resumed_from, info.rank == 0)
    is_main = info.rank == 0

    def reduce_mean(values: list[torch.Tensor]) -> torch.Tensor:
        v = torch.stack(values).float().mean().to(device)
        if info.world > 1:
            dist.all_reduce(v)
            v /= info.world
        return v.cpu()

    val_data = validation_set(p) if is_main and dataset is None else None
    val_rows: list[dict] = []
    val_seconds = 0.0

    def validate() -> None:
        """The convergence curve: the validation MAE of the weights just saved (rank 0; not counted as training)."""
        nonlocal val_seconds
        if val_data is None or not len(val_data):
            return
        t = time.perf_counter()
        val_rows.append(log_validation(ckpt_path, method, p, val_data, step, device))
        val_seconds += time.perf_counter() - t

    def checkpoint(last_loss: float | None) -> None:
        if not is_main:
            return
        save_checkpoint(ckpt_path, {
            "method": method, "profile": p.name, "config": plain(p.to_dict()), "step": step, "loss": last_loss,
            "nets": {k: n.state_dict() for k, n in raw.items()},
            "ema": dict(zip(raw["net"].state_dict().keys(), ema)) if ema is not None else None,
            "optimizers": {k: o.state_dict() for k, o in opts.items()},
            "convention": convention.describe() if convention is not None else None,
            "rng": {"scheme": "per-step generators seeded by (seed, step, stream, position)", "seed": cfg.seed,
                    "next_step": step},
            "train_state": {"seconds": seconds, "rule_history": history, "world_size": info.world,
                            "window": [{k: float(v) for k, v in r.items()} for r in window],
                            "epoch_losses": [float(v) for v in epoch_losses]},
            "precision": decision.precision,
            "provenance": plain(provenance(p.name, method=method, device=str(device), world_size=info.world,
                                           precision=decision.describe(), **data_info)),
        })

    bar = None
    if progress and is_main:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, initial=step, desc=f"train {method} ({p.name})", unit="step")
    last_loss, stopped_by, start_step, t0 = None, "budget", step, time.perf_counter()
    dropout = p.model.dropout > 0
    while step < total:
        rng_scope = (torch.random.fork_rng(devices=[device.index] if cuda else [])
                     if dropout else contextlib.nullcontext())
        with rng_scope:
            if dropout:  # nn.Dropout draws from the global RNG: seed it per step inside a forked scope
                torch.manual_seed(seed_of(cfg.seed, 3, step, info.rank))
            out = train_step(ctx, step)
        step += 1
        if ema is not None:
            ema_update(ema, params, step, cfg.ema_decay)
        window.append(out)
        epoch_losses.append(out.get("mse", out["loss"]))
        if step % cfg.log_every == 0 or step == total:
            row = {k: float(reduce_mean([r[k] for r in window])) for k in window[0]}
            if not np.isfinite(row["loss"]):
                raise FloatingPointError(f"Training {method} diverged: loss {row['loss']} at step {step}.")
            last_loss, window = row["loss"], []
            log.write({"step": step, **row, "seconds": round(seconds + time.perf_counter() - t0, 3)})
            if bar is not None:
                bar.set_postfix(loss=f"{last_loss:.4g}")
        if bar is not None:
            bar.update(1)
        if step % batches.steps_per_epoch == 0:
            history.append(float(reduce_mean(epoch_losses)))
            epoch_losses = []
            if use_rule and rule_says_stop(history, cfg):
                stopped_by = "epoch_rule"
                break
        if step % cfg.checkpoint_every == 0 and step < total:
            checkpoint(last_loss)
            validate()
    run_seconds = time.perf_counter() - t0 - val_seconds
    seconds += run_seconds
    if bar is not None:
        bar.close()
    if step > start_step or state is None:
        checkpoint(last_loss)
        validate()
    if use_rule and stopped_by == "budget":
        stopped_by = "max_epochs"
    digest = weights_digest(raw["net"])
    if info.world > 1:
        print(f"[ctmri.train.loop] rank {info.rank}/{info.world} weights sha256 {digest}", flush=True)
        dist.barrier()
    done = step - start_step
    return {"method": method, "profile": p.name, "checkpoint": str(ckpt_path), "loss_log": str(log.path),
            "step": step, "steps_this_run": done, "resumed_from": resumed_from, "stopped_by": stopped_by,
            "epochs": len(history), "final_loss": last_loss, "seconds": run_seconds, "seconds_total": seconds,
            "images_per_second": done * cfg.batch_size / run_seconds if done and run_seconds > 0 else None,
            "device": str(device), "world_size": info.world, "weights_sha256": digest,
            "precision": decision.precision, "precision_source": decision.source,
            "val_mae_hu": val_rows[-1]["val_mae_hu"] if val_rows else None, "seconds_validation": val_seconds}


def main(argv: list[str] | None = None) -> int:
    """`python -m ctmri.train.loop --profile P --method M [--steps N] [--fresh]` (also under torchrun)."""
    ap = argparse.ArgumentParser(prog="python -m ctmri.train.loop", description=__doc__)
    ap.add_argument("--profile", default="smoke", help="smoke | cpu | gpu | paper")
    ap.add_argument("--method", required=True, help="ddpm | vesde | cnn | wgan")
    ap.add_argument("--steps", type=int, default=0, help="total optimiser steps (0: the profile's budget)")
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start over")
    ap.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: auto)")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    a = ap.parse_args(argv)
    try:
        result = train(a.profile, a.method, steps=a.steps or None, resume=not a.fresh, device=a.device,
                       progress=not a.no_progress)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"ctmri.train.loop: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
