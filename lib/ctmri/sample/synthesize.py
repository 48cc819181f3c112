"""`ctmri synthesize`: a whole MR volume (NIfTI, .mha, DICOM series) → synthetic CT with its MC uncertainty.

volume (any axis-aligned orientation) → axial (S, P, L) slices exactly as in training (body mask
from the MR, MR robust scaling, square padding, resize to the model's grid) → Monte-Carlo sampling
in streamed blocks → back to the input's grid → `sct.nii.gz` (int16 HU, −1000 outside the body),
`sct_std.nii.gz` (HU), `sct.json` (what made it), optionally `dicom/` (a CT series), and, when the
checkpoint carries a calibration of this sampler (`<checkpoint stem>.calibration.json` beside it, or a
"calibration" entry in the checkpoint), `sct_interval90.nii.gz`: the calibrated 90 % interval
half-width in HU (the true CT lies in sCT ± that with 90 % probability, per tissue class). With a
`ct2mr` checkpoint the same path takes a CT in HU and writes `smr*` (a synthetic T2w MR).
Outputs appear only when complete: they are written to a temporary folder beside `out` and
renamed into place.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ctmri import paths
from ctmri.data.intensity import HU_MAX, HU_MIN, hu_to_model, model_to_hu, normalise_mr, std_to_hu
from ctmri.sample import shard
from ctmri.data.prepare import body_mask_from_mr, context_stack, resample_slices, unresample_slices
from ctmri.data.readers import HU_AIR_BELOW
from ctmri.data.volumes import DataError, Image, from_lps, lps_spacing, read_image, to_lps
from ctmri.provenance import file_digest, provenance, write_json
from ctmri.sample.mc import monte_carlo
from ctmri.diffusion.samplers import default_sampler, spec
from ctmri.sample.settings import default_device, sampler_method, sampler_settings

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


def _prepare_out(out: Path, overwrite: bool) -> Path:
    """Refuse an existing output folder unless `overwrite`; make a fresh temporary folder beside it."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"Output folder {str(out)!r} already exists; pass --overwrite to replace it or "
                              "choose another --out.")
    paths.check_writable(out.parent, "output")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise PermissionError(f"Cannot create the output folder {str(out)!r} ({exc.strerror}); choose another "
                              "--out or --root.") from None
    return tmp


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished temporary folder to `out`, replacing an old one only now."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    if old.exists():
        shutil.rmtree(old) if old.is_dir() else old.unlink()


def synthesize(input: str | os.PathLike, out: str | os.PathLike | None = None, *,
               checkpoint: str | os.PathLike | None = None, profile: str | None = None,
               sampler: str | None = None, mc_samples: Optional[int] = None, steps: Optional[int] = None,
               mask: str | os.PathLike | None = None, dicom: bool = False, device: str | None = None,
               overwrite: bool = False, direction: str | None = None, chunk_size: Optional[int] = None,
               seed: Optional[int] = None, progress: bool = True, save_samples: bool = False) -> dict[str, Any]:
    """Convert one whole volume; returns the record written to `<stem>.json` (with `out` and `files`).

    checkpoint: a `.pt` file, else runs/<profile>/checkpoints/<method of the sampler>.pt.
    mc_samples: MC replicates per slice (default: the checkpoint profile's). direction: the
    conversion expected (refused when the checkpoint's differs). chunk_size: samples per forward
    batch (default: the profile's); slices stream through in blocks of chunk_size // mc_samples.
    save_samples: also write every MC replicate (`<stem>_samples/<stem>_sample_KK.nii.gz`, HU), e.g. for
    `ctmri dose --sct-samples` (the dose std of the MC samples).
    """
    from tqdm.auto import tqdm

    from ctmri.models.checkpoints import load_model

    start = time.perf_counter()
    if sampler is None and checkpoint is not None and Path(checkpoint).exists():
        from ctmri.models.checkpoints import load_checkpoint
        sampler = default_sampler(load_checkpoint(checkpoint)["method"])
    sampler = sampler or default_sampler()
    method = sampler_method(sampler)
    for name, value in (("mc_samples", mc_samples), ("steps", steps), ("chunk_size", chunk_size)):
        if value is not None and int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}.")
    if direction is not None and direction not in OUTPUT_STEM:
        raise ValueError(f"Unknown direction {direction!r}; expected one of {', '.join(OUTPUT_STEM)}.")
    input = Path(input).expanduser()
    ckpt = Path(checkpoint) if checkpoint else paths.checkpoint_path(profile or "smoke", method)
    if not checkpoint and not ckpt.exists() and paths.committed_weights(profile or "smoke", method).exists():
        ckpt = paths.committed_weights(profile or "smoke", method)     # e.g. weights/cpu/vesde.pt, no training needed
    out = Path(out) if out else paths.synthesis_dir(input.name.split(".")[0] or "volume")
    if not ckpt.exists():
        raise FileNotFoundError(f"No checkpoint at {str(ckpt)!r}; train one (`ctmri train --profile "
                                f"{profile or 'smoke'} --method {method}`) or pass --checkpoint.")
    image = read_image(input)                               # bad input fails before anything is written
    ranks = shard.join()                                    # under torchrun the ranks share the slices; rank 0 writes
    tmp = _prepare_out(out, overwrite) if ranks.main else Path(tempfile.mkdtemp(prefix="ctmri-rank-"))
    try:
        record = _run(image, input, tmp, out, ckpt, profile, sampler, method, mc_samples, steps, mask, dicom,
                      torch.device(device or default_device()), direction, chunk_size, seed, progress, start,
                      load_model, tqdm, save_samples)
        if ranks.main:
            _publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def _run(image: Image, input: Path, tmp: Path, out: Path, ckpt: Path, profile: str | None, sampler: str,
         method: str, mc_samples, steps, mask, dicom: bool, device: torch.device, direction: str | None,
         chunk_size, seed, progress: bool, start: float, load_model, tqdm,
         save_samples: bool = False) -> dict[str, Any]:
    from ctmri.config import profile_from_dict

    loaded = load_model(ckpt, device)
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
    size = prof.data.image_size

    volume = to_lps(image.array, image.direction)          # (S, P, L) axial slices, as in training
    _check_modality(volume, image, ckpt_direction, ckpt)
    body = _read_mask(mask, image) if mask else body_mask(volume, ckpt_direction)
    if not body.any():
        raise DataError(f"No body found in {image.source!r} (the body mask is empty); pass --mask.")
    cond = normalise_mr(volume, body) if ckpt_direction == "mr2ct" else hu_to_model(volume).astype(np.float32)
    (cond_r,), _, _ = resample_slices([cond], body, size, lps_spacing(image)[1:])
    todo = np.flatnonzero(body.reshape(body.shape[0], -1).any(axis=1))   # slices without body stay air
    n_slices = cond_r.shape[0]
    cond_in = context_stack(cond_r[:, None], np.zeros(n_slices, int), np.arange(n_slices), prof.model.context_slices)
    mean = np.full(cond_r.shape, -1.0, np.float32)
    std = np.zeros(cond_r.shape, np.float32)
    seeds = np.zeros((body.shape[0], k_rep), np.int64)
    reps = np.full((k_rep,) + cond_r.shape, -1.0, np.float32) if save_samples else None   # (K, S, size, size)
    block = max(1, chunk // k_rep)
    sampling_seconds, nfe = 0.0, 0.0
    bar = tqdm(total=len(todo) * k_rep, desc=f"synthesize {sampler} ({len(todo)} slices × {k_rep})",
               unit="sample", disable=not progress)
    ranks = shard.current()                                 # under torchrun: every world-th block on this rank
    blocks = [todo[j:j + block] for j in range(0, len(todo), block)]
    for b in shard.mine(len(blocks), ranks):
        idx = blocks[b]
        res = monte_carlo(loaded.model, loaded.process, sampler, cond_in[idx], mc_samples=k_rep,
                          steps=steps, base_seed=seed, chunk_size=chunk, slice_ids=idx, options=options,
                          out_channels=1, device=device, progress=False, distribute=False)
        mean[idx], std[idx], seeds[idx] = res["mean"][:, 0], res["std"][:, 0], res["seeds"]
        if reps is not None:
            reps[:, idx] = np.moveaxis(res["samples"][:, :, 0], 1, 0)
        sampling_seconds += res["seconds_total"]
        nfe = res["nfe"]
        bar.update(len(idx) * k_rep * ranks.world)
    bar.close()
    if ranks.world > 1:                                     # each rank holds its own blocks: add them up
        own = np.zeros(n_slices, bool)
        for b in shard.mine(len(blocks), ranks):
            own[blocks[b]] = True
        mean = shard.reduce(np.where(own[:, None, None], mean, 0).astype(np.float32), ranks, device)
        std = shard.reduce(np.where(own[:, None, None], std, 0).astype(np.float32), ranks, device)
        seeds = shard.reduce(np.where(own[:, None], seeds, 0), ranks, device)
        if reps is not None:
            reps = shard.reduce(np.where(own[None, :, None, None], reps, 0).astype(np.float32), ranks, device)
            reps[:, np.setdiff1d(np.arange(n_slices), todo)] = -1.0
        mean[np.setdiff1d(np.arange(n_slices), todo)] = -1.0
        nfe = float(shard.reduce(np.array([nfe]), ranks, device, op="max")[0])
        sampling_seconds = float(shard.reduce(np.array([sampling_seconds]), ranks, device, op="max")[0])

    h, w = body.shape[1:]
    mean, std = unresample_slices(mean, (h, w)), unresample_slices(std, (h, w))
    stem = OUTPUT_STEM[ckpt_direction]
    if ckpt_direction == "mr2ct":
        result = np.where(body, np.clip(np.rint(model_to_hu(mean)), HU_MIN, HU_MAX), AIR_HU).astype(np.int16)
        spread = np.where(body, std_to_hu(std), 0.0).astype(np.float32)
        unit = "HU"
    else:
        result = np.where(body, (np.clip(mean, -1, 1) + 1) * (MR_SCALE / 2), 0.0).astype(np.float32)
        spread = np.where(body, std * (MR_SCALE / 2), 0.0).astype(np.float32)
        unit = f"T2w, model space [-1, 1] mapped to [0, {MR_SCALE:g}]"
    interval, calibration = None, None
    if ckpt_direction == "mr2ct":
        calibration = find_calibration(ckpt, sampler)
        if calibration is not None:
            from ctmri.evaluate.calibration import Calibration
            cal = Calibration.from_dict(calibration["calibration"])
            interval = np.where(body, cal.half_width(model_to_hu(mean), spread), 0.0).astype(np.float32)
            interval = from_lps(interval, image.direction)
    result, spread = from_lps(result, image.direction), from_lps(spread, image.direction)

    from ctmri.data.writers import write_dicom_series, write_nifti_image

    files = {stem: f"{stem}.nii.gz", f"{stem}_std": f"{stem}_std.nii.gz", "record": f"{stem}.json"}
    write_nifti_image(tmp / files[stem], image, result, description=f"ctmri {sampler} {k_rep} MC mean ({unit})")
    write_nifti_image(tmp / files[f"{stem}_std"], image, spread, description=f"ctmri {sampler} MC std ({unit})")
    if interval is not None:
        level = round(100 * (1 - float(calibration["calibration"]["alpha"])))
        key = f"{stem}_interval{level}"
        files[key] = f"{key}.nii.gz"
        write_nifti_image(tmp / files[key], image, interval,
                          description=f"ctmri {sampler} calibrated {level}% half-width (HU)")
    if reps is not None:                                    # every MC replicate, as the mean is written
        files[f"{stem}_samples"] = f"{stem}_samples/"
        (tmp / files[f"{stem}_samples"]).mkdir()
        for k in range(k_rep):
            rep = unresample_slices(reps[k], (h, w))
            if ckpt_direction == "mr2ct":
                rep = np.where(body, np.clip(np.rint(model_to_hu(rep)), HU_MIN, HU_MAX), AIR_HU).astype(np.int16)
            else:
                rep = np.where(body, (np.clip(rep, -1, 1) + 1) * (MR_SCALE / 2), 0.0).astype(np.float32)
            write_nifti_image(tmp / files[f"{stem}_samples"] / f"{stem}_sample_{k:02d}.nii.gz", image,
                              from_lps(rep, image.direction), description=f"ctmri {sampler} MC sample {k}")
    if dicom:
        modality = "CT" if ckpt_direction == "mr2ct" else "MR"
        write_dicom_series(tmp / "dicom", image, result, modality=modality,
                           rescale_intercept=-1024.0 if modality == "CT" else 0.0,
                           series_description=f"ctmri synthetic {modality} ({sampler}, {k_rep} MC)")
        files["dicom"] = "dicom/"
    ckpt_prov = loaded.meta.get("provenance") or {}
    seconds = time.perf_counter() - start
    record = {
        "input": str(image.source), "input_kind": image.kind,
        "input_digest": file_digest(image.source) if Path(image.source).is_file() else None,
        "shape_zyx": list(image.array.shape), "spacing_zyx_mm": list(image.spacing),
        "origin_lps_mm": [float(v) for v in image.origin], "direction_lps": np.asarray(image.direction).tolist(),
        "checkpoint": str(ckpt), "checkpoint_digest": file_digest(ckpt), "checkpoint_commit": ckpt_prov.get("git_commit"),
        "checkpoint_step": loaded.meta.get("step"), "profile": loaded.profile, "method": method,
        "direction": ckpt_direction, "data_digest": ckpt_prov.get("data_digest"),
        "sampler": sampler, "steps": steps, "options": options, "nfe": nfe, "mc_samples": k_rep,
        "seed": seed, "seed_scheme": "rng.replicate_seed(seed, slice, replicate); slice = axial (S, P, L) index",
        "seeds": seeds.tolist(), "slices": int(body.shape[0]), "slices_sampled": int(len(todo)),
        "mask": str(mask) if mask else "from the input (body_mask_from_mr)", "unit": unit,
        "outside_body": AIR_HU if ckpt_direction == "mr2ct" else 0,
        "device": str(device), "seconds": round(seconds, 3), "seconds_sampling": round(sampling_seconds, 3),
        "seconds_per_slice": round(seconds / body.shape[0], 4),
        "files": files, "out": str(out),
        "calibration": None if calibration is None else {
            "file": calibration.get("file"), "sampler": calibration.get("sampler", sampler),
            "alpha": calibration["calibration"]["alpha"], "scales": calibration["calibration"].get("scales"),
            "hu_factors": calibration["calibration"].get("hu_factors") or None,
            "val_patients": calibration.get("val_patients"), "mc_samples_calibrated": calibration.get("mc_samples")},
        "provenance": provenance(loaded.profile, stage="synthesize", sampler=sampler, direction=ckpt_direction),
    }
    write_json(tmp / files["record"], record)
    return json.loads(json.dumps(record, default=str))
