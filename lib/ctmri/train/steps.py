"""Deterministic batches and one optimisation step per method (Ho 2020 Alg. 1; Song 2021 DSM; MSE; Gulrajani 2017 Alg. 1).

Every random draw of step s is a pure function of (seed, s): epoch e visits the training slices in
a permutation seeded by (seed, e), and batch position b of step s draws its flip, t and noise from
a generator seeded by (seed, s, stream, b). Resuming therefore needs only the step counter, and a
DDP run (rank r takes positions [r B/W, (r+1) B/W) of every batch) draws the same numbers as a
single process.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ctmri.diffusion import losses
from ctmri.rng import uniform
from ctmri.train import losses as baseline_losses
from ctmri.rng import make_generator, seed_of


class Batches:
    """Training slices on the host; `get(step, stream)` returns this rank's shard, flipped, on `device`."""

    def __init__(self, cond: torch.Tensor, target: torch.Tensor, batch_size: int, seed: int, rank: int = 0,
                 world: int = 1, device: torch.device | str = "cpu", channels_last: bool = False):
        n = cond.shape[0]
        if n < batch_size:
            raise ValueError(f"The training split has {n} slices, fewer than the batch size {batch_size}; "
                             f"prepare more slices or lower train.batch_size.")
        if batch_size % world:
            raise ValueError(f"Batch size {batch_size} must be a multiple of the {world} DDP processes.")
        self.cond, self.target, self.n, self.batch_size, self.seed = cond, target, n, batch_size, seed
        self.steps_per_epoch = n // batch_size
        local = batch_size // world
        self.positions = range(rank * local, (rank + 1) * local)
        self.device, self.channels_last = torch.device(device), channels_last
        self._perm: tuple[int, torch.Tensor] | None = None

    def indices(self, step: int, stream: int = 0) -> torch.Tensor:
        """Global batch: stream 0 walks the epoch permutation; other streams (WGAN critic) draw a fresh batch."""
        if stream:
            return torch.randperm(self.n, generator=make_generator(seed_of(self.seed, 2, step, stream)))[
                :self.batch_size]
        epoch, i = divmod(step, self.steps_per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, torch.randperm(self.n, generator=make_generator(seed_of(self.seed, 1, epoch))))
        return self._perm[1][i * self.batch_size:(i + 1) * self.batch_size]

    def get(self, step: int, stream: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[torch.Generator]]:
        """(cond, target, generators) of this rank's shard; each sample flipped left-right with p = 1/2."""
        idx = self.indices(step, stream)[self.positions.start:self.positions.stop]
        gens = [make_generator(seed_of(self.seed, 0, step, stream, b)) for b in self.positions]
        flip = uniform(len(gens), gens) < 0.5
        c, x = self.cond[idx], self.target[idx]
        c = torch.where(flip[:, None, None, None], c.flip(-1), c)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        move = lambda a: a.to(self.device, non_blocking=True).contiguous(memory_format=fmt)  # noqa: E731
        return move(c), move(x), gens


@dataclass
class StepContext:
    """What a step needs: nets (DDP-wrapped when distributed), their raw modules, optimisers, process, config."""

    method: str
    nets: dict[str, nn.Module]
    raw: dict[str, nn.Module]
    opts: dict[str, torch.optim.Optimizer]
    process: object
    cfg: object  # config.TrainConfig
    batches: Batches
    convention: object = None  # diffusion/precond.py convention around nets["net"] (diffusion methods)
    sigma_data: float | None = None
    autocast: Callable[[], contextlib.AbstractContextManager] = field(default=contextlib.nullcontext)


def optimise(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def wgan_step(ctx: StepContext, step: int) -> dict[str, torch.Tensor]:
    """n_critic critic updates on fresh batches, then one generator update (Gulrajani et al. 2017, Alg. 1)."""
    cfg = ctx.cfg
    for j in range(1, cfg.n_critic + 1):
        c, x, gens = ctx.batches.get(step, stream=j)
        with ctx.autocast():
            d_loss = baseline_losses.critic_loss(ctx.nets["critic"], ctx.raw["net"], x, c, gens, cfg.gp_lambda)
        optimise(ctx.opts["critic"], d_loss)
    c, x, _ = ctx.batches.get(step, stream=0)
    ctx.raw["critic"].requires_grad_(False)
    try:
        with ctx.autocast():
            g_loss, mse, w_adv = baseline_losses.generator_loss(ctx.nets["net"], ctx.raw["critic"], x, c, cfg.wgan_mse_weight,
                                                       cfg.wgan_adv_ratio, ctx.raw["net"].conv_out.weight,
                                                       cfg.wgan_adv_weight)
        optimise(ctx.opts["net"], g_loss)
    finally:
        ctx.raw["critic"].requires_grad_(True)
    return {"loss": g_loss.detach(), "mse": mse.detach(), "critic": d_loss.detach(), "adv_weight": w_adv.detach()}


def train_step(ctx: StepContext, step: int) -> dict[str, torch.Tensor]:
    """One optimiser step of ctx.method on the batch of `step`; returns detached scalar losses."""
    if ctx.method == "wgan":
        return wgan_step(ctx, step)
    c, x, gens = ctx.batches.get(step)
    net = ctx.nets["net"]
    with ctx.autocast():
        if ctx.method == "ddpm" and getattr(ctx.convention, "kind", "") != "vp-edm":
            loss = losses.eps_loss(ctx.convention, ctx.process, x, c, gens, ctx.cfg.ddpm_loss_weighting)
        elif ctx.method in ("ddpm", "vesde"):           # the VE model, or the DDPM in EDM's formulation: one recipe
            cfg = ctx.cfg
            loss = losses.dsm_loss(ctx.convention, ctx.process, x, c, gens, weighting=cfg.dsm_weighting,
                                   sigma_data=ctx.sigma_data, sigma_distribution=cfg.sigma_distribution,
                                   p_mean=cfg.sigma_p_mean, p_std=cfg.sigma_p_std)
        else:
            loss = baseline_losses.mse_loss(net, x, c)
    optimise(ctx.opts["net"], loss)
    return {"loss": loss.detach()}
