"""Stage 00 (docs/ARCHITECTURE.md): cases of a data set → model-space slices split by patient → processed/<profile>/
{train,val,test}.npz + manifest.json. The slice contract the other stages read lives in data/slices.py."""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ctmri import paths
from ctmri.config import Profile, get_profile
from ctmri.data import contrast
from ctmri.data.readers import Case, DataError, read_dataset, read_synthrad
from ctmri.data.slices import (SPLITS, SliceSet, body_mask_from_mr, case_to_slices, check_direction,  # noqa: F401
                               check_same_data, context_stack, data_identity, has_validation, load_manifest,
                               load_split, model_geometry, model_slices_to_volume, select_slices)
from ctmri.provenance import provenance, save_npz, write_json

# ----------------------------------------------------------------------------------------------- split

def split_patients(ids: Sequence[str], n_test: int, seed: int) -> tuple[list[str], list[str]]:
    """Seeded patient-level split: (train ids, test ids); a patient is never in both."""
    ids = sorted(str(i) for i in ids)
    if len(set(ids)) != len(ids):
        raise DataError(f"Patient ids are not unique: {ids}; expected one folder per patient.")
    if n_test < 1 or len(ids) < n_test + 1:
        raise DataError(f"Found {len(ids)} patient(s) but the split needs at least {n_test + 1} "
                        f"({n_test} for testing and at least one for training).")
    order = np.random.default_rng(seed).permutation(len(ids))
    test = sorted(ids[i] for i in order[:n_test])
    return [i for i in ids if i not in test], test


def split_validation(train_ids: Sequence[str], n_val: int, seed: int) -> tuple[list[str], list[str]]:
    """Real data: `n_val` validation patients drawn (seeded) from the non-test pool; (train ids, val ids)."""
    train_ids = sorted(str(i) for i in train_ids)
    if n_val <= 0:
        return train_ids, []
    if len(train_ids) < n_val + 1:
        raise DataError(f"{len(train_ids)} non-test patient(s) cannot give {n_val} validation patient(s) and keep at "
                        "least one for training; lower DataConfig.n_val_patients.")
    order = np.random.default_rng([int(seed), 1]).permutation(len(train_ids))
    val = sorted(train_ids[i] for i in order[:n_val])
    return [i for i in train_ids if i not in val], val


# ----------------------------------------------------------------------------------------------- stage

def _phantom_cases(profile: Profile, first_seed: int) -> tuple[list[Case], Path, list[str]]:
    """Generate the profile's phantom patients, write them (SynthRAD layout) and read them back; the validation
    patients (n_val_patients) are generated beyond n_patients, so the train / test patients stay the same."""
    from ctmri.data.phantom import make_cases, write_synthrad

    d = profile.data
    raw = paths.raw_dir(profile.name)
    tmp = raw.with_name(f".{raw.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    made = make_cases(d.n_patients + max(0, d.n_val_patients), d.phantom_shape, d.phantom_spacing,
                      first_seed=first_seed, misregistration_mm=d.misregistration_mm)
    write_synthrad(made, tmp)
    shutil.rmtree(raw, ignore_errors=True)
    os.replace(tmp, raw)
    return read_synthrad(raw), raw, [c.id for c in made[d.n_patients:]]


def prepare_dataset(profile: str | Profile, dataset: str = "phantom", data_dir: str | os.PathLike | None = None,
                    direction: str = "mr2ct", seed: int | None = None) -> dict:
    """Stage 00: cases → model-space slices split by patient → processed/<profile>/{train,test}.npz + manifest."""
    start = time.perf_counter()
    profile = get_profile(profile)
    check_direction(direction)
    d = profile.data
    split_seed = d.split_seed if seed is None else int(seed)
    first_seed = 0 if seed is None else 10_000 * int(seed)
    if dataset == "phantom" and not data_dir:
        cases, source, val_ids = _phantom_cases(profile, first_seed)
        train_ids, test_ids = split_patients([c.id for c in cases if c.id not in val_ids], d.n_test_patients,
                                             split_seed)
    else:
        cases, source = read_dataset(dataset, data_dir), Path(data_dir)
        train_ids, test_ids = split_patients([c.id for c in cases], d.n_test_patients, split_seed)
        train_ids, val_ids = split_validation(train_ids, d.n_val_patients, split_seed)
    per_case, grids = {}, {}
    for c in cases:
        per_case[c.id], grids[c.id] = case_to_slices(c, profile)
    out = paths.processed_dir(profile.name)
    files, digests, val_digest = {}, hashlib.sha256(direction.encode()), hashlib.sha256(direction.encode())
    (out / "val.npz").unlink(missing_ok=True)               # a stale validation split from an earlier profile
    splits = {"train": train_ids, "test": test_ids, **({"val": val_ids} if val_ids else {})}
    for split, ids in splits.items():
        parts = [per_case[i] for i in ids]
        arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        # the digest of the content, unlike the npz bytes (zip timestamps); train / test only, so that adding
        # validation patients leaves the data identity of trained checkpoints unchanged
        h = val_digest if split == "val" else digests
        for key in sorted(arrays):
            h.update(f"{split}/{key}/{arrays[key].dtype}/{arrays[key].shape}".encode())
            h.update(np.ascontiguousarray(arrays[key]).tobytes())
        files[split] = str(save_npz(out / f"{split}.npz", **arrays))
    manifest = {
        "profile": profile.name, "dataset": dataset, "source": str(source), "direction": direction,
        "image_size": d.image_size, "slices_per_patient": d.slices_per_patient, "split_seed": split_seed,
        "phantom_first_seed": first_seed if dataset == "phantom" and not data_dir else None,
        "patients": {"train": train_ids, "test": test_ids, "val": val_ids},
        "n_slices": {s: int(sum(len(per_case[i]["patient"]) for i in ids)) for s, ids in splits.items()},
        "volumes": {c.id: {"shape": list(c.shape), "spacing_mm": list(c.spacing)} for c in cases},
        "model_geometry": {"pixel_mm": model_geometry(profile)[0], "slice_mm": model_geometry(profile)[1]},
        "grids": {c.id: grids[c.id].to_dict() for c in cases},
        "mr_stats": contrast.training_stats([per_case[i]["mr" if direction == "mr2ct" else "ct"] for i in train_ids],
                                            [per_case[i]["mask"] for i in train_ids]),
        "files": files, "digest": digests.hexdigest(),
        "val_digest": val_digest.hexdigest() if val_ids else None, "seconds": round(time.perf_counter() - start, 3),
        "provenance": provenance(profile.name, stage="prepare", dataset=dataset, direction=direction),
    }
    write_json(out / "manifest.json", manifest)
    return manifest
