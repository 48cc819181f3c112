"""Checkpoints: save atomically, load safely (weights_only), and rebuild a trained model with its stored convention."""
from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ctmri import config as C
from ctmri.diffusion.precond import EpsPrediction, VEScoreOverStd, from_description
from ctmri.diffusion.processes import DDPM, VESDE, make_process
from ctmri.models.build import DIFFUSION, build_model
from ctmri.provenance import atomic_path

FORMAT = "ctmri-checkpoint/1"
LEGACY_CONVENTIONS = {"ddpm": EpsPrediction.kind, "vesde": VEScoreOverStd.kind}  # checkpoints without "convention"


def convention_of(state: dict) -> dict | None:
    """The network convention a checkpoint stores; older checkpoints (none stored) used Song's F / std(t) for the VE-SDE."""
    if state.get("method") not in DIFFUSION:
        return None
    return state.get("convention") or {"kind": LEGACY_CONVENTIONS[state["method"]]}


def plain(obj: Any) -> Any:
    """JSON-plain copy (dicts, lists, str, numbers) that `torch.load(weights_only=True)` accepts."""
    return json.loads(json.dumps(obj, default=str))


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
    """Networks rebuilt from the checkpoint's own config, EMA weights for diffusion, eval mode, on `device`, in the
    channels-last memory format (the outputs follow it): a cpu-profile UNet forward of 10-240 slices at 128² in fp32
    ran 1.07-1.34x faster than contiguous on an AMD EPYC with 2 threads (benchmarks/results/inference_memory_format.md)."""
    state = load_checkpoint(path)
    method = state["method"]
    profile = C.profile_from_dict(state["config"])
    net = build_model(method, profile)["net"]
    if method in DIFFUSION and state.get("ema") is None:
        raise ValueError(f"Checkpoint {path} of a {method} model holds no EMA weights; expected a checkpoint "
                         f"written by ctmri.train.loop (sampling uses the EMA weights).")
    weights = state["ema"] if method in DIFFUSION else (state["nets"]["net"] if "nets" in state else state["generator"])
    net.load_state_dict(weights)
    net.to(device, memory_format=torch.channels_last).eval()
    process = make_process(method, profile.process) if method in DIFFUSION else None
    if method in DIFFUSION:
        model: Callable[..., torch.Tensor] = from_description(convention_of(state), net, process)
    else:
        def model(y: torch.Tensor) -> torch.Tensor:
            return net(None, y)
    meta = {"step": state["step"], "loss": state.get("loss"), "provenance": state.get("provenance", {}),
            "config": state["config"], "convention": convention_of(state)}
    return LoadedModel(method=method, net=net, process=process, model=model, profile=state["profile"], meta=meta)


def export_weights(src: str | Path, dst: str | Path, *, profile: str | None = None,
                   dtype: torch.dtype = torch.float16) -> Path:
    """A small sampling-only copy of a trained checkpoint: the EMA (diffusion) or generator weights in `dtype`, the
    config, convention and provenance, nothing to resume training from; `profile` renames the profile it serves
    (the original is kept in provenance["exported_from"])."""
    state = load_checkpoint(src)
    method = state["method"]
    weights = state["ema"] if method in DIFFUSION else state["nets"]["net"]
    if weights is None:
        raise ValueError(f"Checkpoint {src} holds no weights to export.")
    cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()}
    config = dict(state["config"], name=profile or state["profile"])
    out = {k: state[k] for k in ("method", "step", "loss", "convention") if k in state}
    out.update(config=config, profile=profile or state["profile"],
               provenance={**state.get("provenance", {}),
                           "exported_from": {"profile": state["profile"], "step": state["step"],
                                             "dtype": str(dtype).replace("torch.", "")}})
    out["ema" if method in DIFFUSION else "generator"] = cast
    save_checkpoint(dst, out)
    carry_calibration(src, dst)
    return Path(dst)


def carry_calibration(src: str | Path, dst: str | Path) -> Path | None:
    """Copy the calibration json beside `src` to beside `dst`, naming `dst`'s digest (the file a user loads; synthesize
    checks it) and keeping the digest of the checkpoint whose samples fitted it."""
    import json

    from ctmri import paths
    from ctmri.provenance import file_digest, write_json

    cal = paths.calibration_json(src)
    if not cal.exists():
        return None
    record = json.loads(cal.read_text())
    record.setdefault("fitted_on_checkpoint_digest", record.get("checkpoint_digest"))
    record["checkpoint_digest"] = file_digest(dst)
    return write_json(paths.calibration_json(dst), record)
