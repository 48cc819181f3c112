"""The sampling stage (02_sample): one sampler over a profile's test split, written to runs/<profile>/samples/; at
its default settings also the validation patients, written to runs/<profile>/calibration/ (same samples contract)
for the split-conformal calibration of its uncertainty (the method defaults on their full validation set, the other
samplers on a few slices per validation patient)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ctmri import paths
from ctmri.config import METHODS, Profile, get_profile
from ctmri.data.intensity import model_to_hu, std_to_hu
from ctmri.sample.mc import monte_carlo
from ctmri.diffusion.samplers import default_sampler, spec
from ctmri.sample.settings import default_device, sampler_method, sampler_settings


def evaluation_slices(n: int, max_slices: Optional[int]) -> np.ndarray:
    """All slices, or `max_slices` evenly spaced through the test split (so every test patient is seen)."""
    if not max_slices or max_slices >= n:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_slices)).astype(np.int64))


def sampler_slices(profile: Profile, sampler: str, n: int) -> np.ndarray:
    """A sampler's evaluation set (its record's `evaluation`): every test slice, or the profile's subset."""
    if spec(sampler).evaluation == "volumes":
        return np.arange(n)
    return evaluation_slices(n, profile.sample.max_test_slices)


VAL_SEED_OFFSET = 7919        # the validation patients' MC seeds: base seed + this, apart from the test slices'


def calibrated_samplers() -> list[str]:
    """The samplers calibrated on their full validation set, whose calibration ships with the checkpoints: the
    default, then each method's default."""
    found = [default_sampler()] + [default_sampler(m) for m in METHODS]
    return list(dict.fromkeys(found))


def centred_slices(n: int, m: int) -> np.ndarray:
    """`m` slice indices at the centres of m equal parts of 0..n-1 (one per patient when m is the patient count)."""
    if m >= n:
        return np.arange(n)
    return np.unique(np.floor((np.arange(m) + 0.5) * n / m).astype(np.int64))


def validation_slices(profile: Profile, sampler: str, n: int) -> np.ndarray:
    """A sampler's validation slices. The method defaults: the whole volumes, or for a "subset" sampler one slice per
    validation patient. The other samplers (only their report needs them): one slice per validation patient for the
    few-step samplers, two in all for the long ones (1000 network calls a sample: a third of EM's and PC's time went
    to six validation slices); at least two."""
    n_val = max(1, profile.data.n_val_patients)
    volumes = spec(sampler).evaluation == "volumes" or not profile.sample.max_test_slices
    if sampler in calibrated_samplers():
        return np.arange(n) if volumes else centred_slices(n, max(2, n_val))
    return centred_slices(n, max(2, n_val) if volumes else 2)


def run_sampler(profile: str | Profile, sampler: str, *, mc_samples: Optional[int] = None,
                steps: Optional[int] = None, device=None, progress: bool = True,
                max_slices: Optional[int] = None, calibration: bool = True) -> Path:
    """Monte-Carlo sample a profile's test split with one sampler; write runs/<profile>/samples/<sampler>.npz.

    The slices are the sampler's evaluation set (`sampler_slices`) unless `max_slices` asks for a subset; trajectories
    are kept on the profile's `trajectory_slices`, else on the subset slices (those of Figs. 1-2). `calibration`:
    afterwards, when the sampler ran at its default slices, steps and MC count, sample the validation patients too
    (`validation_slices` → `runs/<profile>/calibration/<sampler>.npz`); skipped when the profile has none."""
    from ctmri.models import checkpoints
    from ctmri.data import slices
    from ctmri.provenance import file_digest
    from ctmri.sample import shard

    prof = get_profile(profile)
    method = sampler_method(sampler)
    ranks = shard.join()                                 # under torchrun: the chunks split over ranks, rank 0 writes
    ckpt = paths.checkpoint_path(prof.name, method)
    if not ckpt.exists():
        raise FileNotFoundError(f"Sampler {sampler!r} needs the {method!r} checkpoint {ckpt}, which is missing; "
                                f"train it with `ctmri train --profile {prof.name} --method {method}` "
                                f"or run `make reproduce PROFILE={prof.name}`.")
    default_steps, options = sampler_settings(prof, sampler)
    steps = int(steps or default_steps)
    mc_samples = 1 if spec(sampler).one_pass else int(mc_samples or prof.sample.mc_samples)
    device = torch.device(device or default_device())

    data = slices.load_split(prof.name, "test", context=prof.model.context_slices)
    loaded = checkpoints.load_model(ckpt, device)
    if loaded.method != method:
        raise RuntimeError(f"{ckpt} holds a {loaded.method!r} model; sampler {sampler!r} needs {method!r}.")
    if loaded.profile != prof.name:
        raise RuntimeError(f"Checkpoint {ckpt} was trained with profile {loaded.profile!r}, not {prof.name!r}.")
    slices.check_same_data(loaded.meta.get("provenance") or {}, prof.name, f"Checkpoint {ckpt}",
                            "retrain it (`ctmri train --fresh`)")
    sel = sampler_slices(prof, sampler, len(data)) if max_slices is None else evaluation_slices(len(data), max_slices)
    cond, target = data.cond[sel], data.target[sel]          # cond[:, :1] is the slice's own (2.5-D: + neighbours)
    wanted = set(prof.sample.trajectory_slices) or set(evaluation_slices(len(data), prof.sample.max_test_slices).tolist())
    trajectory_slices = [j for j, i in enumerate(sel) if not wanted or i in wanted] or [0]
    res = monte_carlo(loaded.model, loaded.process, sampler, cond, mc_samples=mc_samples, steps=steps,
                      base_seed=prof.sample.seed, chunk_size=prof.sample.chunk_size, slice_ids=sel,
                      trajectory_slices=trajectory_slices, trajectory_every=prof.sample.trajectory_every,
                      options=options, out_channels=target.shape[1], device=device, progress=progress)
    prov_args = dict(sampler=sampler, method=method, steps=steps, mc_samples=mc_samples, options=options,
                     device=str(device), checkpoint=str(ckpt), checkpoint_step=loaded.meta.get("step"),
                     checkpoint_digest=file_digest(ckpt), **slices.data_identity(prof.name))
    path = paths.samples_path(prof.name, sampler)
    if ranks.main:
        path = _write(path, prof, sampler, method, res, data, sel, cond, target,
                      spec(sampler).evaluation if max_slices is None else "subset", prov_args, split="test")
    default_k = 1 if spec(sampler).one_pass else int(prof.sample.mc_samples)
    if (calibration and max_slices is None and mc_samples == default_k and steps == int(default_steps)
            and slices.has_validation(prof.name)):
        val = slices.load_split(prof.name, "val", context=prof.model.context_slices)
        vsel = validation_slices(prof, sampler, len(val))
        vcond, vtarget = val.cond[vsel], val.target[vsel]
        vres = monte_carlo(loaded.model, loaded.process, sampler, vcond, mc_samples=mc_samples, steps=steps,
                           base_seed=prof.sample.seed + VAL_SEED_OFFSET, chunk_size=prof.sample.chunk_size,
                           slice_ids=vsel, trajectory_slices=[0], trajectory_every=prof.sample.trajectory_every,
                           options=options, out_channels=vtarget.shape[1], device=device, progress=progress)
        if ranks.main:
            _write(paths.calibration_samples_path(prof.name, sampler), prof, sampler, method, vres, val, vsel, vcond,
                   vtarget, "volumes" if len(vsel) == len(val) else "subset", {**prov_args, "base_seed": prof.sample.seed + VAL_SEED_OFFSET},
                   split="val")
    return path


def _write(path: Path, prof: Profile, sampler: str, method: str, res: dict, data, sel: np.ndarray, cond: np.ndarray,
           target: np.ndarray, evaluation: str, prov_args: dict, split: str) -> Path:
    """One samples file (the contract of sample/store.py) of `sel` slices of a split."""
    from ctmri.provenance import provenance, save_npz
    from ctmri.sample.store import check_samples

    out: dict[str, Any] = dict(res)
    out.update(target=target.astype(np.float32), cond=cond.astype(np.float32), mask=data.mask[sel],
               patient=np.asarray(data.patient[sel]).astype(str), slice_index=np.asarray(data.slice_index[sel]),
               test_index=sel, sampler=np.array(sampler), method=np.array(method),
               evaluation=np.array(evaluation), direction=np.array(data.direction), split=np.array(split))
    if data.direction == "mr2ct":                       # target is CT: HU maps for evaluation
        out["mean_hu"] = model_to_hu(res["mean"][:, 0]).astype(np.float32)
        out["std_hu"] = std_to_hu(res["std"][:, 0]).astype(np.float32)
    prov = provenance(prof.name, split=split, **prov_args)
    out["provenance"] = np.array(json.dumps(prov, default=str))
    if split == "val":
        check_samples(out, path)                        # test files: load_samples checks them in evaluation
    return save_npz(path, **out)
