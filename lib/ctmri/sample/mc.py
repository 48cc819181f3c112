"""Batched Monte-Carlo sampling of the test split: K replicates per slice, mean / std maps, timing, NFE.

Replicate k of test slice i draws all its noise from its own generator seeded with
`rng.replicate_seed(base_seed, i, k)`, so any one sample regenerates alone (`regenerate`).
The CNN and WGAN-GP baselines enter as one-pass "samplers" (K = 1, NFE = 1).
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from ctmri import rng
from ctmri.diffusion.samplers import get_sampler, spec
from ctmri.diffusion.trajectory import record_every
from ctmri.sample import shard
from ctmri.sample.settings import default_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def monte_carlo(model: Callable[..., torch.Tensor], process, sampler: str, cond, *, mc_samples: int, steps: int,
                base_seed: int = 0, chunk_size: int = 256, slice_ids: Optional[Sequence[int]] = None,
                trajectory_slices: Sequence[int] = (), trajectory_every: int = 0,
                options: Optional[dict] = None, out_channels: int = 1, device=None,
                progress: bool = True, distribute: bool = True) -> dict[str, Any]:
    """Sample every (slice, replicate) pair in chunks of `chunk_size`; return samples, mean, std, seeds, trajectory, timing.

    cond: (N, C, H, W) array or tensor. slice_ids: the index of each slice in the test split (seeds
    use it; default 0..N-1). trajectory_slices: positions in `cond` whose replicate 0 keeps x_t and
    x0_pred every `trajectory_every` steps (0: about 10 frames), the last step, and the final sample
    (see `trajectories`). std uses ddof = 1 (K > 1). Under torchrun each rank samples every world-th chunk and
    all ranks return the whole result (`sample/shard.py`); `distribute=False` keeps every chunk on this rank.
    """
    from tqdm.auto import tqdm

    device = torch.device(device or default_device())
    record = spec(sampler)
    one_pass = record.one_pass
    fn = record.run if one_pass else get_sampler(sampler, process)
    options = dict(options or {})
    cond_t = torch.as_tensor(np.asarray(cond, dtype=np.float32))
    n, k_rep = cond_t.shape[0], (1 if one_pass else int(mc_samples))
    if k_rep < 1:
        raise ValueError(f"mc_samples must be >= 1, got {mc_samples}.")
    slice_ids = np.arange(n) if slice_ids is None else np.asarray(slice_ids, dtype=np.int64)
    seeds = np.array([[rng.replicate_seed(base_seed, int(slice_ids[i]), k) for k in range(k_rep)]
                      for i in range(n)], dtype=np.int64)
    traj = [int(i) for i in trajectory_slices if 0 <= int(i) < n] if not one_pass else []
    every = int(trajectory_every) or max(1, math.ceil(steps / 10))
    shape = (out_channels, *cond_t.shape[2:])
    ranks = shard.current() if distribute else shard.Ranks()
    samples = np.zeros((n, k_rep, *shape), dtype=np.float32)
    pairs = [(i, k) for i in range(n) for k in range(k_rep)]
    chunks = [pairs[j:j + chunk_size] for j in range(0, len(pairs), chunk_size)]
    nfe_weighted = 0.0

    _sync(device)
    start = time.perf_counter()
    bar = tqdm(total=len(pairs), desc=f"{sampler} ({n} slices × {k_rep})", unit="sample",
               disable=not progress or not ranks.main)
    for c in shard.mine(len(chunks), ranks):
        chunk = chunks[c]
        idx = torch.tensor([i for i, _ in chunk])
        y = cond_t[idx].to(device)
        gens = None if one_pass else [rng.make_generator(int(seeds[i, k]), device) for i, k in chunk]
        info: dict = {}
        out = fn(model, process, y, steps=steps, generator=gens, info=info, out_channels=out_channels, **options)
        nfe_weighted += info["nfe"] * len(chunk)
        out = out.detach().float().cpu().numpy()
        for j, (i, k) in enumerate(chunk):
            samples[i, k] = out[j]
        bar.update(len(chunk) * ranks.world)
    bar.close()
    if ranks.world > 1:
        samples = shard.reduce(samples, ranks, device)
        nfe_weighted = float(shard.reduce(np.array([nfe_weighted]), ranks, device)[0])
    _sync(device)
    seconds = time.perf_counter() - start

    if not np.isfinite(samples).all():
        raise FloatingPointError(f"Sampler {sampler!r} produced NaN or inf values; check the model and step count.")
    # Trajectories are redrawn outside the timed loop (replicate 0 regenerates alone: exactly for the
    # stochastic samplers, to solver tolerance for the ODE), so recording never inflates the timing.
    if traj:
        recorded = trajectories(model, process, sampler, cond_t[traj], seeds[traj, 0], steps=steps, every=every,
                                chunk_size=chunk_size, options=options, out_channels=out_channels, device=device)
    else:
        recorded = {"trajectory": np.zeros((0, 0, *shape), dtype=np.float32),
                    "trajectory_x0": np.zeros((0, 0, *shape), dtype=np.float32),
                    **{k: np.zeros(0) for k in ("trajectory_steps", "trajectory_t", "trajectory_sigma", "trajectory_nfe")}}
    return {
        "samples": samples,
        "mean": samples.mean(axis=1),
        "std": samples.std(axis=1, ddof=1) if k_rep > 1 else np.zeros((n, *shape), dtype=np.float32),
        "seeds": seeds,
        **recorded,
        "trajectory_slices": np.asarray(traj, dtype=np.int64),
        "seconds_total": float(seconds),
        "seconds_per_sample": float(seconds / (n * k_rep)),
        "nfe": float(nfe_weighted / (n * k_rep)),
        "steps": int(steps),
    }


class _CountingDenoiser:
    """A denoiser wrapper that counts calls and keeps the noise level of the last one (the state a callback reports)."""

    def __init__(self, denoiser: Callable[..., torch.Tensor]):
        self.denoiser, self.calls, self.sigma = denoiser, 0, float("nan")

    def __call__(self, x: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.sigma = float(torch.as_tensor(sigma).reshape(-1)[0])
        return self.denoiser(x, y, sigma)


def frame_time(process, sigma: float) -> tuple[float, float]:
    """(the network's time t(sigma), the noise std of x_t = scale sigma) for a recorded frame."""
    return float(process.t_of_sigma(torch.tensor([sigma], dtype=torch.float64))[0]), sigma * process.scale_of_sigma(sigma)


def trajectories(model: Callable[..., torch.Tensor], process, sampler: str, cond, seeds: Sequence[int], *, steps: int,
                 every: int, chunk_size: int = 256, options: Optional[dict] = None, out_channels: int = 1,
                 device=None, progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Reverse trajectories of the conditions `cond` (S, C, H, W), element s drawing its noise from `seeds[s]`.

    Keeps x_t and x0_pred every `every` steps, the last step and the final sample: `trajectory`,
    `trajectory_x0` (S, F, C, H, W); per frame (F,): `trajectory_steps` (completed steps, 0 = the
    initial noise), `trajectory_t` (the network's time: DDPM index or VE-SDE t), `trajectory_sigma`
    (noise std of x_t) and `trajectory_nfe` (network calls spent before the frame; NaN for the
    adaptive ODE). The final frame has t = sigma = 0 and the sampler's NFE. Same seeds give the
    same draws as `monte_carlo`. progress(done, total) is called after each chunk.
    """
    device = torch.device(device or default_device())
    fn, adaptive = get_sampler(sampler, process), spec(sampler).adaptive
    cond_t = torch.as_tensor(np.asarray(cond, dtype=np.float32))
    xs, x0s, per_frame = [], [], None
    for j in range(0, len(seeds), chunk_size):
        timed, rec, at, info = _CountingDenoiser(model), record_every(every), {}, {}

        def callback(i: int, x: torch.Tensor, x0: torch.Tensor) -> None:
            at[i] = (*frame_time(process, timed.sigma), timed.calls - 1)
            rec(i, x, x0)

        gens = [rng.make_generator(int(sd), device) for sd in seeds[j:j + chunk_size]]
        final = fn(timed, process, cond_t[j:j + chunk_size].to(device), steps=steps, generator=gens,
                   callback=callback, info=info, out_channels=out_channels, **(options or {})).detach().float().cpu()
        xs.append(torch.cat([rec.x, final[None]]).numpy().swapaxes(0, 1))
        x0s.append(torch.cat([rec.x0_pred, final[None]]).numpy().swapaxes(0, 1))
        kept = rec.steps
        per_frame = np.array([(i, at[i][0], at[i][1], np.nan if adaptive else at[i][2]) for i in kept]
                             + [(len(at), 0.0, 0.0, info["nfe"])], dtype=np.float64)
        if progress is not None:
            progress(min(j + chunk_size, len(seeds)), len(seeds))
    return {"trajectory": np.concatenate(xs).astype(np.float32), "trajectory_x0": np.concatenate(x0s).astype(np.float32),
            "trajectory_steps": per_frame[:, 0].astype(np.int64), "trajectory_t": per_frame[:, 1],
            "trajectory_sigma": per_frame[:, 2], "trajectory_nfe": per_frame[:, 3]}


def regenerate(model: Callable[..., torch.Tensor], process, sampler: str, cond_slice, *, slice_id: int, replicate: int,
               steps: int, base_seed: int = 0, options: Optional[dict] = None, out_channels: int = 1,
               device=None) -> np.ndarray:
    """Redraw MC replicate `replicate` of test slice `slice_id` alone, (C, H, W); equals its value in the batch."""
    device = torch.device(device or default_device())
    y = torch.as_tensor(np.asarray(cond_slice, dtype=np.float32))[None].to(device)
    gen = [rng.make_generator(rng.replicate_seed(base_seed, slice_id, replicate), device)]
    out = get_sampler(sampler, process)(model, process, y, steps=steps, generator=gen, out_channels=out_channels,
                                         **(options or {}))
    return out[0].detach().float().cpu().numpy()
