"""`ctmri synthesize`: a whole MR volume (NIfTI, .mha, DICOM series) → synthetic CT with its MC uncertainty.

read (any axis-aligned orientation, any voxel size) → prepare: body mask from the MR, MR robust scaling, physical
resampling to the model's pixel and slice spacing with the body in the model's matrix (data/geometry.py), checks of
size and contrast against the training data → Monte-Carlo sampling in streamed blocks → back onto the input's exact
grid in output units → write `sct.nii.gz` (int16 HU, −1000 outside the body), `sct_std.nii.gz` (HU), `sct.json`
(what made it), optionally `dicom/`, and `sct_interval90.nii.gz` (the calibrated 90 % half-width in HU) only when a
calibration of these weights, this sampler, steps and MC count is stored with the checkpoint. With a `ct2mr`
checkpoint the same path takes a CT in HU and writes `smr*`. Outputs appear only when complete, in a folder marked
as ctmri's (sample/output_folder.py).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ctmri import paths
from ctmri.data import contrast
from ctmri.data.geometry import SliceGrid, grid_summary, plan_grid, to_model, to_source
from ctmri.data.intensity import HU_MAX, HU_MIN, hu_to_model, model_to_hu, normalise_mr, std_to_hu
from ctmri.data.slices import body_mask_from_mr, context_stack, model_geometry
from ctmri.data.readers import HU_AIR_BELOW
from ctmri.data.volumes import DataError, Image, from_lps, lps_spacing, read_image, to_lps
from ctmri.diffusion.samplers import default_sampler, spec
from ctmri.interval import Calibration
from ctmri.provenance import file_digest, provenance, write_json
from ctmri.sample import input_checks, output_folder, shard
from ctmri.sample.mc import monte_carlo
from ctmri.sample.settings import sampler_method, sampler_settings

COMMITTED_PROFILE = "cpu"    # without --profile / --checkpoint: the committed weights of the cpu study (weights/cpu/)
# The default sampler is the registry's (`default=True`; the best quality per second measured, benchmarks/README.md):
# without --checkpoint it also picks the checkpoint, runs/<profile>/checkpoints/<its method>.pt; with --checkpoint and
# no --sampler, the checkpoint method's own default (`method_default=True`).
AIR_HU = -1000               # written outside the body
MR_SCALE = 1000.0            # synthetic MR: model space [-1, 1] → [0, 1000] (arbitrary T2w units)
OUTPUT_STEM = {"mr2ct": "sct", "ct2mr": "smr"}


def _checkpoint_direction(meta: dict) -> str:
    """The direction a checkpoint was trained for (checkpoints before it was recorded: mr2ct)."""
    prov = meta.get("provenance") or {}
    return str(prov.get("direction") or (prov.get("data") or {}).get("direction") or "mr2ct")


def _check_modality(volume: np.ndarray, image: Image, direction: str, ckpt: Path) -> None:
    """Refuse an input that is not the modality the checkpoint converts from, in one sentence naming both."""
    lo = float(np.percentile(volume, 1))
    dicom_modality = str(getattr(image.meta.get("dicom"), "Modality", "") or "")
    if float(np.ptp(volume)) == 0:
        raise DataError(f"{image.source!r} is constant ({float(volume.flat[0]):g}); expected an image with contrast.")
    if direction == "mr2ct" and (lo < HU_AIR_BELOW or dicom_modality == "CT"):
        raise DataError(f"{image.source!r} looks like a CT in HU (darkest voxels {lo:.0f}"
                        f"{', Modality CT' if dicom_modality == 'CT' else ''}), but checkpoint {str(ckpt)!r} converts "
                        "MR to CT (mr2ct); give a T2w MR volume, or a ct2mr checkpoint to make an MR from this CT.")
    if direction == "ct2mr" and (lo > HU_AIR_BELOW or dicom_modality == "MR"):
        raise DataError(f"{image.source!r} does not look like a CT in HU (darkest voxels {lo:+.0f}, air should be "
                        f"near -1000{', Modality MR' if dicom_modality == 'MR' else ''}), but checkpoint {str(ckpt)!r} "
                        "converts CT to MR (ct2mr); give a CT in HU, or an mr2ct checkpoint for this MR.")


def body_mask(volume: np.ndarray, direction: str) -> np.ndarray:
    """Body mask of an (S, P, L) input as in training: from the MR, or from the CT mapped to model space + 1."""
    return body_mask_from_mr(volume if direction == "mr2ct" else hu_to_model(volume) + 1.0)


def _read_mask(path: str | os.PathLike, image: Image) -> np.ndarray:
    m = read_image(path)
    if m.array.shape != image.array.shape or not np.allclose(m.affine_lps, image.affine_lps, atol=1e-3):
        raise DataError(f"Mask {str(path)!r} (shape {m.array.shape}) is not on the grid of the input "
                        f"{image.source!r} (shape {image.array.shape}); expected the same voxels and geometry.")
    return to_lps(m.array > 0.5, image.direction)


def find_calibration(ckpt: Path, sampler: str) -> Optional[dict]:
    """The calibration record of `sampler` stored with a checkpoint: `<stem>.calibration.json` beside it, else the
    checkpoint's "calibration" entry; None when there is none or it calibrates another sampler."""
    path = paths.calibration_json(ckpt)
    if path.exists():
        record = json.loads(path.read_text())
        record.setdefault("file", str(path))
    else:
        from ctmri.models.checkpoints import load_checkpoint
        record = load_checkpoint(ckpt).get("calibration")
        if not isinstance(record, dict):
            return None
        record = {**record, "file": f"{ckpt} (checkpoint entry)"}
    if "calibration" not in record:                         # a bare Calibration dict
        record = {"calibration": record, "file": record.get("file")}
    record["calibration"] = {k: v for k, v in record["calibration"].items() if k != "file"}
    return record if record.get("sampler") in (None, sampler) else None


def interval_refusal(calibration: Optional[dict], ckpt_digest: str, sampler: str, steps: int, mc: int) -> Optional[str]:
    """Why a calibrated interval cannot be written for these settings (one line), or None when it keeps its promise:
    a calibration holds for the weights file, sampler, steps and MC count it was fitted with."""
    if calibration is None:
        return f"no calibration of sampler {sampler!r} is stored with the checkpoint"
    recorded = calibration.get("checkpoint_digest")
    if recorded and recorded != ckpt_digest:
        return (f"the calibration {calibration.get('file')!r} was fitted on weights with sha256 {recorded[:12]}…, not "
                f"on the checkpoint loaded ({ckpt_digest[:12]}…)")
    for what, want, have in (("steps", calibration.get("steps"), steps), ("MC samples", calibration.get("mc_samples"), mc)):
        if want is not None and int(want) != int(have):
            return f"the calibration holds for {want} {what}, not the {have} asked for (the spread differs)"
    return None


@dataclass
class Prepared:
    """An input volume on the model's grid: the condition, body masks on both grids, the slices to sample."""

    volume: np.ndarray          # (S, P, L) input, axial order
    body: np.ndarray            # (S, P, L) bool
    grid: SliceGrid
    cond: np.ndarray            # (n_slices, C, size, size): the slice and its 2.5-D neighbours
    todo: np.ndarray            # model slices that hold body
    contrast: dict


def _prepare(image: Image, loaded, prof, direction: str, ckpt: Path, mask, accept_contrast: bool) -> Prepared:
    """read → model grid: modality and size checks, body mask, MR scaling, physical resampling, contrast check."""
    volume = to_lps(image.array, image.direction)          # (S, P, L) axial slices, as in training
    _check_modality(volume, image, direction, ckpt)
    body = _read_mask(mask, image) if mask else body_mask(volume, direction)
    if not body.any():
        raise DataError(f"No body found in {image.source!r} (the body mask is empty); pass --mask.")
    pixel_mm, slice_mm = model_geometry(prof)
    grid = plan_grid(volume.shape, lps_spacing(image), prof.data.image_size, pixel_mm, slice_mm, body,
                     source=repr(image.source))
    cover = to_model(body.astype(np.float32), grid, fill=0.0)
    input_checks.check_size(image, grid, cover > 0.5)
    cond = normalise_mr(volume, body) if direction == "mr2ct" else hu_to_model(volume).astype(np.float32)
    cond_m = to_model(cond, grid, fill=-1.0)
    todo = np.flatnonzero(cover.reshape(grid.n_slices, -1).max(axis=1) > 0)    # slices without body stay air
    stats = (loaded.meta.get("provenance") or {}).get("mr_stats")
    verdict = contrast.check(stats, cond_m[todo], cover[todo] > 0.5)
    if verdict["ok"] is False and not accept_contrast:
        kind = "MR" if direction == "mr2ct" else "CT"
        raise DataError(f"{image.source!r}: its intensities inside the body differ from the training {kind}'s (distance "
                        f"{verdict['distance']:.2f} > {verdict['max_distance']:.2f}: inverted, T1-weighted or another "
                        "sequence?); pass --accept-contrast to convert it anyway (recorded in the output's json).")
    if verdict["ok"] is False:
        warnings.warn(f"{image.source!r}: contrast far from the training data's (distance {verdict['distance']:.2f} > "
                      f"{verdict['max_distance']:.2f}); converting it because --accept-contrast was given.", stacklevel=2)
    n = grid.n_slices
    cond_in = context_stack(cond_m[:, None], np.zeros(n, int), np.arange(n), prof.model.context_slices)
    return Prepared(volume, body, grid, cond_in, todo, {**verdict, "accepted_by_user": bool(accept_contrast)})


def _sample(loaded, sampler: str, prep: Prepared, k_rep: int, steps: int, seed: int, chunk: int, options: dict,
            device: torch.device, save_samples: bool, progress: bool) -> dict[str, Any]:
    """Monte-Carlo sampling of the body slices in streamed blocks (under torchrun: every world-th block per rank)."""
    from tqdm.auto import tqdm

    n_slices, size, todo = prep.grid.n_slices, prep.grid.size, prep.todo
    mean = np.full((n_slices, size, size), -1.0, np.float32)
    std = np.zeros((n_slices, size, size), np.float32)
    seeds = np.zeros((n_slices, k_rep), np.int64)
    reps = np.full((k_rep, n_slices, size, size), -1.0, np.float32) if save_samples else None
    block = max(1, chunk // k_rep)
    seconds, nfe = 0.0, 0.0
    ranks = shard.current()
    bar = tqdm(total=len(todo) * k_rep, desc=f"synthesize {sampler} ({len(todo)} slices × {k_rep})", unit="sample",
               disable=not (progress and ranks.main))
    blocks = [todo[j:j + block] for j in range(0, len(todo), block)]
    for b in shard.mine(len(blocks), ranks):
        idx = blocks[b]
        res = monte_carlo(loaded.model, loaded.process, sampler, prep.cond[idx], mc_samples=k_rep, steps=steps,
                          base_seed=seed, chunk_size=chunk, slice_ids=idx, options=options, out_channels=1,
                          device=device, progress=False, distribute=False)
        mean[idx], std[idx], seeds[idx] = res["mean"][:, 0], res["std"][:, 0], res["seeds"]
        if reps is not None:
            reps[:, idx] = np.moveaxis(res["samples"][:, :, 0], 1, 0)
        seconds += res["seconds_total"]
        nfe = res["nfe"]
        bar.update(len(idx) * k_rep * ranks.world)
    bar.close()
    if ranks.world > 1:                                     # each rank holds its own blocks: add them up
        own = np.zeros(n_slices, bool)
        for b in shard.mine(len(blocks), ranks):
            own[blocks[b]] = True
        rest = np.setdiff1d(np.arange(n_slices), todo)
        mean = shard.reduce(np.where(own[:, None, None], mean, 0).astype(np.float32), ranks, device)
        std = shard.reduce(np.where(own[:, None, None], std, 0).astype(np.float32), ranks, device)
        seeds = shard.reduce(np.where(own[:, None], seeds, 0), ranks, device)
        if reps is not None:
            reps = shard.reduce(np.where(own[None, :, None, None], reps, 0).astype(np.float32), ranks, device)
            reps[:, rest] = -1.0
        mean[rest] = -1.0
        nfe = float(shard.reduce(np.array([nfe]), ranks, device, op="max")[0])
        seconds = float(shard.reduce(np.array([seconds]), ranks, device, op="max")[0])
    return {"mean": mean, "std": std, "seeds": seeds, "reps": reps, "nfe": nfe, "seconds": seconds}


def _to_output_units(model_values: np.ndarray, prep: Prepared, direction: str) -> np.ndarray:
    """Model-space slices → the input's (S, P, L) grid in output units (int16 HU, −1000 outside the body; or MR)."""
    values = to_source(model_values, prep.grid)
    if direction == "mr2ct":
        return np.where(prep.body, np.clip(np.rint(model_to_hu(values)), HU_MIN, HU_MAX), AIR_HU).astype(np.int16)
    return np.where(prep.body, (np.clip(values, -1, 1) + 1) * (MR_SCALE / 2), 0.0).astype(np.float32)


def _spread_units(std: np.ndarray, prep: Prepared, direction: str) -> np.ndarray:
    """The MC std on the input's grid in output units (HU, or the synthetic MR's units)."""
    values = np.maximum(to_source(std, prep.grid), 0.0)
    scaled = std_to_hu(values) if direction == "mr2ct" else values * (MR_SCALE / 2)
    return np.where(prep.body, scaled, 0.0).astype(np.float32)


def synthesize(input: str | os.PathLike, out: str | os.PathLike | None = None, *,
               checkpoint: str | os.PathLike | None = None, profile: str | None = None,
               sampler: str | None = None, mc_samples: Optional[int] = None, steps: Optional[int] = None,
               mask: str | os.PathLike | None = None, dicom: bool = False, device: str | None = None,
               overwrite: bool = False, direction: str | None = None, chunk_size: Optional[int] = None,
               seed: Optional[int] = None, progress: bool = True, save_samples: bool = False,
               series: Optional[str] = None, accept_contrast: bool = False) -> dict[str, Any]:
    """Convert one whole volume; returns the record written to `<stem>.json` (with `out` and `files`).

    checkpoint: a `.pt` file, else runs/<profile>/checkpoints/<method of the sampler>.pt, else the committed weights
    (weights/<profile>/, without --profile the committed cpu study's). mc_samples: MC replicates per slice (default:
    the checkpoint profile's). direction: the conversion expected (refused when the checkpoint's differs).
    chunk_size: samples per forward batch; slices stream through in blocks of chunk_size // mc_samples.
    save_samples: also write every MC replicate (`<stem>_samples/`), e.g. for `ctmri dose --sct-samples`.
    series: which DICOM series of a mixed folder (`uid=…`, `desc=…`, `modality=…`). accept_contrast: convert an
    input whose intensities differ from the training condition's (refused otherwise).
    """
    from ctmri.models.checkpoints import load_checkpoint, load_model

    start = time.perf_counter()
    if sampler is None and checkpoint is not None and Path(checkpoint).exists():
        sampler = default_sampler(load_checkpoint(checkpoint)["method"])
    sampler = sampler or default_sampler()
    method = sampler_method(sampler)
    for name, value in (("mc_samples", mc_samples), ("steps", steps), ("chunk_size", chunk_size)):
        if value is not None and int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}.")
    if direction is not None and direction not in OUTPUT_STEM:
        raise ValueError(f"Unknown direction {direction!r}; expected one of {', '.join(OUTPUT_STEM)}.")
    torch_device = input_checks.resolve_device(device)
    input = Path(input).expanduser()
    ckpt = find_checkpoint(checkpoint, profile, method)
    out = Path(out) if out else paths.synthesis_dir(input.name.split(".")[0] or "volume")
    image = read_image(input, series=series) if series else read_image(input)   # bad input fails before any write
    input_checks.check_finite(image)
    ranks = shard.join()                                    # under torchrun the ranks share the slices; rank 0 writes
    inputs = [input] + ([Path(mask)] if mask else [])
    tmp = output_folder.make_temporary(out, overwrite, inputs) if ranks.main else Path(tempfile.mkdtemp(prefix="ctmri-"))
    try:
        loaded = load_model(ckpt, torch_device)
        record = _run(image, tmp, out, ckpt, loaded, profile, sampler, method, mc_samples, steps, mask, dicom,
                      torch_device, direction, chunk_size, seed, progress, start, save_samples, accept_contrast)
        if ranks.main:
            output_folder.publish(tmp, out, "ctmri synthesize")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def find_checkpoint(checkpoint, profile: Optional[str], method: str) -> Path:
    """--checkpoint, else the profile's trained run, else the committed weights (without --profile: the cpu study's)."""
    if checkpoint:
        ckpt = Path(checkpoint).expanduser()
        if not ckpt.exists():
            raise FileNotFoundError(f"No checkpoint at {str(ckpt)!r}; pass an existing .pt file to --checkpoint.")
        return ckpt
    for name in ([profile] if profile else [COMMITTED_PROFILE]):
        for ckpt in (paths.checkpoint_path(name, method), paths.committed_weights(name, method)):
            if ckpt.exists():
                return ckpt
    name = profile or COMMITTED_PROFILE
    raise FileNotFoundError(f"No checkpoint of {method!r} for profile {name!r} (neither {str(paths.checkpoint_path(name, method))!r} "
                            f"nor committed weights); train one (`ctmri train --profile {name} --method {method}`) or "
                            "pass --checkpoint.")


def _run(image: Image, tmp: Path, out: Path, ckpt: Path, loaded, profile: str | None, sampler: str, method: str,
         mc_samples, steps, mask, dicom: bool, device: torch.device, direction: str | None, chunk_size, seed,
         progress: bool, start: float, save_samples: bool, accept_contrast: bool) -> dict[str, Any]:
    from ctmri.config import profile_from_dict

    if loaded.method != method:
        raise ValueError(f"Checkpoint {str(ckpt)!r} holds a {loaded.method!r} model; sampler {sampler!r} needs "
                         f"{method!r}.")
    if profile is not None and loaded.profile != profile:
        raise ValueError(f"Checkpoint {str(ckpt)!r} was trained with profile {loaded.profile!r}, not {profile!r}.")
    ckpt_direction = _checkpoint_direction(loaded.meta)
    if direction is not None and direction != ckpt_direction:
        raise ValueError(f"Checkpoint {str(ckpt)!r} converts {ckpt_direction}, not the {direction} asked for.")
    prof = profile_from_dict(loaded.meta["config"])
    default_steps, options = sampler_settings(prof, sampler)
    steps = int(steps or default_steps)
    k_rep = 1 if spec(sampler).one_pass else int(mc_samples or prof.sample.mc_samples)
    chunk = int(chunk_size or prof.sample.chunk_size)
    seed = prof.sample.seed if seed is None else int(seed)

    prep = _prepare(image, loaded, prof, ckpt_direction, ckpt, mask, accept_contrast)
    input_checks.check_memory(prep.grid, k_rep, max(1, chunk // k_rep), prep.cond.shape[1], save_samples)
    res = _sample(loaded, sampler, prep, k_rep, steps, seed, chunk, options, device, save_samples, progress)

    stem = OUTPUT_STEM[ckpt_direction]
    result = _to_output_units(res["mean"], prep, ckpt_direction)
    spread = _spread_units(res["std"], prep, ckpt_direction)
    unit = "HU" if ckpt_direction == "mr2ct" else f"T2w, model space [-1, 1] mapped to [0, {MR_SCALE:g}]"
    ckpt_digest = file_digest(ckpt)
    calibration = find_calibration(ckpt, sampler) if ckpt_direction == "mr2ct" else None
    refusal = (interval_refusal(calibration, ckpt_digest, sampler, steps, k_rep) if ckpt_direction == "mr2ct"
               else "intervals are calibrated for mr2ct only")
    interval = None
    if refusal is None:
        cal = Calibration.from_dict(calibration["calibration"])
        interval = np.where(prep.body, cal.half_width(model_to_hu(to_source(res["mean"], prep.grid)), spread), 0.0)
    elif calibration is not None or ckpt_direction == "mr2ct":
        print(f"ctmri synthesize: no calibrated interval written: {refusal}.", file=sys.stderr)

    files = _write(tmp, image, stem, sampler, k_rep, unit, result, spread, interval, calibration, res["reps"], prep,
                   ckpt_direction, dicom)
    ckpt_prov = loaded.meta.get("provenance") or {}
    seconds = time.perf_counter() - start
    record = {
        "input": str(image.source), "input_kind": image.kind,
        "input_digest": file_digest(image.source) if Path(image.source).is_file() else None,
        "shape_zyx": list(image.array.shape), "spacing_zyx_mm": list(image.spacing),
        "origin_lps_mm": [float(v) for v in image.origin], "direction_lps": np.asarray(image.direction).tolist(),
        "geometry": {"summary": grid_summary(prep.grid), "model_pixel_mm": prep.grid.pixel_mm,
                     "model_slice_mm": prep.grid.model_spacing[0], "grid": prep.grid.to_dict()},
        "contrast": prep.contrast,
        "checkpoint": str(ckpt), "checkpoint_digest": ckpt_digest, "checkpoint_commit": ckpt_prov.get("git_commit"),
        "checkpoint_step": loaded.meta.get("step"), "profile": loaded.profile, "method": method,
        "direction": ckpt_direction, "data_digest": ckpt_prov.get("data_digest"),
        "sampler": sampler, "steps": steps, "options": options, "nfe": res["nfe"], "mc_samples": k_rep,
        "seed": seed, "seed_scheme": "rng.replicate_seed(seed, slice, replicate); slice = the model grid's axial index",
        "seeds": res["seeds"].tolist(), "slices": int(prep.body.shape[0]), "model_slices": int(prep.grid.n_slices),
        "slices_sampled": int(len(prep.todo)),
        "mask": str(mask) if mask else "from the input (body_mask_from_mr)", "unit": unit,
        "outside_body": AIR_HU if ckpt_direction == "mr2ct" else 0,
        "device": str(device), "seconds": round(seconds, 3), "seconds_sampling": round(res["seconds"], 3),
        "seconds_per_slice": round(seconds / prep.body.shape[0], 4),
        "files": files, "out": str(out),
        "interval": {"written": interval is not None, "reason": refusal},
        "calibration": None if calibration is None else {
            "file": calibration.get("file"), "sampler": calibration.get("sampler", sampler),
            "alpha": calibration["calibration"]["alpha"], "scales": calibration["calibration"].get("scales"),
            "hu_factors": calibration["calibration"].get("hu_factors") or None,
            "val_patients": calibration.get("val_patients"), "mc_samples_calibrated": calibration.get("mc_samples"),
            "steps_calibrated": calibration.get("steps"), "checkpoint_digest": calibration.get("checkpoint_digest")},
        "provenance": provenance(loaded.profile, stage="synthesize", sampler=sampler, direction=ckpt_direction),
    }
    write_json(tmp / files["record"], record)
    return json.loads(json.dumps(record, default=str))


def _write(tmp: Path, image: Image, stem: str, sampler: str, k_rep: int, unit: str, result: np.ndarray,
           spread: np.ndarray, interval: Optional[np.ndarray], calibration: Optional[dict], reps: Optional[np.ndarray],
           prep: Prepared, direction: str, dicom: bool) -> dict[str, str]:
    """Write the outputs on the input's exact grid (voxel order and affine of the file); the names written."""
    from ctmri.data.writers import write_dicom_series, write_nifti_image

    files = {stem: f"{stem}.nii.gz", f"{stem}_std": f"{stem}_std.nii.gz", "record": f"{stem}.json"}
    back = lambda v: from_lps(v, image.direction)  # noqa: E731
    write_nifti_image(tmp / files[stem], image, back(result), description=f"ctmri {sampler} {k_rep} MC mean ({unit})")
    write_nifti_image(tmp / files[f"{stem}_std"], image, back(spread), description=f"ctmri {sampler} MC std ({unit})")
    if interval is not None:
        level = round(100 * (1 - float(calibration["calibration"]["alpha"])))
        key = f"{stem}_interval{level}"
        files[key] = f"{key}.nii.gz"
        write_nifti_image(tmp / files[key], image, back(interval.astype(np.float32)),
                          description=f"ctmri {sampler} calibrated {level}% half-width (HU)")
    if reps is not None:                                    # every MC replicate, as the mean is written
        files[f"{stem}_samples"] = f"{stem}_samples/"
        (tmp / files[f"{stem}_samples"]).mkdir()
        for k in range(k_rep):
            write_nifti_image(tmp / files[f"{stem}_samples"] / f"{stem}_sample_{k:02d}.nii.gz", image,
                              back(_to_output_units(reps[k], prep, direction)), description=f"ctmri {sampler} MC sample {k}")
    if dicom:
        modality = "CT" if direction == "mr2ct" else "MR"
        write_dicom_series(tmp / "dicom", image, back(result), modality=modality,
                           rescale_intercept=-1024.0 if modality == "CT" else 0.0,
                           series_description=f"ctmri synthetic {modality} ({sampler}, {k_rep} MC)")
        files["dicom"] = "dicom/"
    return files
