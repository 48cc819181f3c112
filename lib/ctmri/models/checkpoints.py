"""Build a method's networks from a profile, save checkpoints atomically, load them safely (weights_only)."""
from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ctmri import config as C
from ctmri.diffusion.processes import DDPM, VESDE, make_process
from ctmri.provenance import atomic_path
from ctmri.models.unet import Critic, UNet

FORMAT = "ctmri-checkpoint/1"
DIFFUSION = ("ddpm", "vesde")
TIME_SCALE = {"ddpm": 1.0, "vesde": 1000.0}


def profile_from_dict(d: dict) -> C.Profile:
    """Rebuild a Profile from `Profile.to_dict()` (lists back to tuples), as stored in a checkpoint."""
    def section(cls, values: dict):
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names})

    return C.Profile(name=d["name"], data=section(C.DataConfig, d["data"]), model=section(C.ModelConfig, d["model"]),
                     process=section(C.ProcessConfig, d["process"]), train=section(C.TrainConfig, d["train"]),
                     sample=section(C.SampleConfig, d["sample"]))


def plain(obj: Any) -> Any:
    """JSON-plain copy (dicts, lists, str, numbers) that `torch.load(weights_only=True)` accepts."""
    return json.loads(json.dumps(obj, default=str))


def build_model(method: str, profile: C.Profile | str, seed: int | None = None) -> dict[str, nn.Module]:
    """The networks of `method`: {"net": UNet} (+ {"critic": Critic} for wgan); diffusion nets embed time.

    Initial weights are drawn inside a forked RNG scope seeded by `seed` (default: profile.train.seed),
    so building is reproducible and leaves the global RNG untouched.
    """
    C.check_method(method)
    p = C.get_profile(profile)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(p.train.seed if seed is None else seed)
        return _build(method, p)


def _build(method: str, p: C.Profile) -> dict[str, nn.Module]:
    m = p.model
    diffusion = method in DIFFUSION
    net = UNet(x_channels=m.out_channels if diffusion else 0, cond_channels=m.cond_channels,
               out_channels=m.out_channels, base_channels=m.base_channels, channel_mults=m.channel_mults,
               num_res_blocks=m.num_res_blocks, attention_resolutions=m.attention_resolutions,
               dropout=m.dropout, image_size=p.data.image_size, time_embedding=diffusion,
               time_scale=TIME_SCALE.get(method, 1.0))
    nets: dict[str, nn.Module] = {"net": net}
    if method == "wgan":
        nets["critic"] = Critic(m.out_channels, m.cond_channels, m.base_channels, m.channel_mults)
    return nets


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Atomically torch.save `state` (temp file + rename): a killed run never leaves a half checkpoint."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, expect_method: str | None = None,
                    expect_profile: str | None = None) -> dict:
    """torch.load(weights_only=True) with one clear sentence for a missing, truncated or foreign checkpoint."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}; train it first (`ctmri train`, notebook 01_train).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as err:
        raise RuntimeError(f"Checkpoint {path} is truncated or corrupt and cannot be read ({type(err).__name__}); "
                           f"delete it or retrain with resume=False (`ctmri train --fresh`).") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RuntimeError(f"{path} is not a ctmri checkpoint (expected format {FORMAT!r}).")
    if expect_method is not None and state["method"] != expect_method:
        raise RuntimeError(f"Checkpoint {path} holds a {state['method']!r} model, not {expect_method!r}.")
    if expect_profile is not None and state["profile"] != expect_profile:
        raise RuntimeError(f"Checkpoint {path} was trained with profile {state['profile']!r}, "
                           f"not {expect_profile!r}.")
    return state


@dataclass
class LoadedModel:
    """A trained model ready to sample (ARCHITECTURE.md, Models contract)."""

    method: str
    net: nn.Module
    process: DDPM | VESDE | None
    model: Callable[..., torch.Tensor]
    profile: str
    meta: dict = field(default_factory=dict)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Networks rebuilt from the checkpoint's own config, EMA weights for diffusion, eval mode, on `device`."""
    state = load_checkpoint(path)
    method = state["method"]
    profile = profile_from_dict(state["config"])
    net = build_model(method, profile)["net"]
    if method in DIFFUSION and state.get("ema") is None:
        raise ValueError(f"Checkpoint {path} of a {method} model holds no EMA weights; expected a checkpoint "
                         f"written by ctmri.train.loop (sampling uses the EMA weights).")
    weights = state["ema"] if method in DIFFUSION else state["nets"]["net"]
    net.load_state_dict(weights)
    net.to(device).eval()
    process = make_process(method, profile.process) if method in DIFFUSION else None
    if method == "ddpm":
        model: Callable[..., torch.Tensor] = net
    elif method == "vesde":
        model = process.score_model(net)
    else:
        def model(y: torch.Tensor) -> torch.Tensor:
            return net(None, y)
    meta = {"step": state["step"], "loss": state.get("loss"), "provenance": state.get("provenance", {}),
            "config": state["config"]}
    return LoadedModel(method=method, net=net, process=process, model=model, profile=state["profile"], meta=meta)
