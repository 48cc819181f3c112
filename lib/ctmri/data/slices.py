"""The processed-data contract every stage shares (docs/ARCHITECTURE.md, "Processed data"): body mask, slice selection,
a case on the model's physical grid, the manifest, `load_split` / `SliceSet`, the 2.5-D condition stack, the data
identity and its one compatibility check, and the way back from model slices to a patient's grid."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ctmri import paths
from ctmri.config import DIRECTIONS, Profile
from ctmri.data.geometry import SliceGrid, mask_to_model, plan_grid, to_model, to_source
from ctmri.data.intensity import hu_to_model, normalise_mr
from ctmri.data.readers import Case, DataError

SPLITS = ("train", "test", "val")   # val: calibration patients (DataConfig.n_val_patients), may be absent


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"Unknown direction {direction!r}; expected one of {', '.join(DIRECTIONS)}.")
    return direction


# ----------------------------------------------------------------------------------------------- mask, slices

def body_mask_from_mr(mr: np.ndarray, factor: float = 0.5) -> np.ndarray:
    """Body mask: MR above `factor` × its Otsu threshold, largest 3-D component, holes filled per slice."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    smooth = ndimage.gaussian_filter(np.asarray(mr, dtype=np.float32), (0.0, 0.5, 0.5))
    if np.ptp(smooth) == 0:
        return np.zeros(smooth.shape, bool)
    fg = smooth > factor * threshold_otsu(smooth)
    fg = ndimage.binary_opening(fg, structure=np.ones((1, 3, 3), bool))
    lab, n = ndimage.label(fg)
    if n == 0:
        return np.zeros(smooth.shape, bool)
    fg = lab == (1 + int(np.argmax(np.bincount(lab.ravel())[1:])))
    return np.stack([ndimage.binary_fill_holes(s) for s in fg])


def select_slices(mask: np.ndarray, n: int, min_fraction: float = 0.2) -> np.ndarray:
    """`n` axial slice indices evenly through the body (slices with ≥ min_fraction of the largest body area); 0 = all."""
    area = np.asarray(mask).reshape(mask.shape[0], -1).sum(axis=1)
    body = np.flatnonzero(area >= min_fraction * area.max()) if area.max() > 0 else np.arange(mask.shape[0])
    if n <= 0 or n >= body.size:
        return body
    return np.unique(np.round(np.linspace(body[0], body[-1], n)).astype(int))


def model_geometry(profile: Profile) -> tuple[float, Optional[float]]:
    """(pixel mm, slice mm or None) the profile's model sees: slices are resampled in z only for a 2.5-D condition
    on whole volumes (the neighbours must lie `slice_mm` apart)."""
    d = profile.data
    z_mm = d.model_slice_mm if (profile.model.context_slices > 0 and d.slices_per_patient == 0) else None
    return d.model_pixel_mm, z_mm


def case_to_slices(case: Case, profile: Profile) -> tuple[dict[str, np.ndarray], SliceGrid]:
    """One case → its selected slices on the model's physical grid (data/geometry.py) in model space: mr, ct,
    mask, slice_index (model slice), pixel_spacing; and the grid that maps them back to the case's voxels."""
    case.validate().check_intensities()
    d = profile.data
    mask = case.mask if case.mask is not None else body_mask_from_mr(case.mr)
    if not mask.any():
        raise DataError(f"Case {case.id!r}: the body mask is empty; expected a body in the MR volume.")
    pixel_mm, slice_mm = model_geometry(profile)
    grid = plan_grid(case.mr.shape, case.spacing, d.image_size, pixel_mm, slice_mm, mask, source=f"Case {case.id!r}")
    m = mask_to_model(mask, grid)
    idx = select_slices(m, d.slices_per_patient)
    mr = to_model(normalise_mr(case.mr, mask), grid, fill=-1.0)[idx]
    ct = to_model(hu_to_model(case.ct).astype(np.float32), grid, fill=-1.0)[idx]
    pix = np.float32(grid.model_spacing[1:])
    return ({"mr": mr[:, None], "ct": ct[:, None], "mask": m[idx], "patient": np.array([case.id] * len(idx)),
             "slice_index": idx.astype(np.int64), "pixel_spacing": np.tile(pix, (len(idx), 1))}, grid)


# ----------------------------------------------------------------------------------------------- loading

@dataclass
class SliceSet:
    """Prepared slices of one split in model space; `cond` / `target` follow the direction."""

    mr: np.ndarray             # (N, 1, H, W)
    ct: np.ndarray             # (N, 1, H, W)
    mask: np.ndarray           # (N, H, W) bool
    patient: np.ndarray        # (N,) str
    slice_index: np.ndarray    # (N,) int
    pixel_spacing: np.ndarray  # (N, 2) mm after resampling
    direction: str = "mr2ct"
    context: int = 0           # 2.5-D: adjacent condition slices on each side stacked into `cond`

    @property
    def cond(self) -> np.ndarray:
        """The condition (N, C (1 + 2 context), H, W): the slice's own channels first, then its neighbours."""
        own = self.mr if check_direction(self.direction) == "mr2ct" else self.ct
        return context_stack(own, self.patient, self.slice_index, self.context) if self.context else own

    @property
    def target(self) -> np.ndarray:
        return self.ct if check_direction(self.direction) == "mr2ct" else self.mr

    def __len__(self) -> int:
        return int(self.mr.shape[0])


def has_validation(profile: str | Profile) -> bool:
    """Whether a profile's prepared data holds a validation split (val.npz listed in the manifest)."""
    name = profile.name if isinstance(profile, Profile) else str(profile)
    try:
        manifest = load_manifest(name)
    except DataError:
        return False
    return bool((manifest.get("patients") or {}).get("val")) and (paths.processed_dir(name) / "val.npz").exists()


def load_manifest(profile: str | Profile) -> dict:
    """The manifest of a profile's processed data, or a DataError saying how to make it."""
    import json

    name = profile.name if isinstance(profile, Profile) else str(profile)
    path = paths.processed_dir(name) / "manifest.json"
    if not path.exists():
        raise DataError(f"No prepared data for profile {name!r} ({path} is missing); run `make reproduce "
                        f"PROFILE={name}` or `ctmri prepare --profile {name}` first.")
    return json.loads(path.read_text())


def data_identity(profile: str | Profile) -> dict[str, str]:
    """What a stage records about the prepared data it used: {"data_digest", "direction"} from the manifest."""
    from ctmri.provenance import file_digest

    manifest = load_manifest(profile)
    name = profile.name if isinstance(profile, Profile) else str(profile)
    digest = manifest.get("digest") or file_digest(paths.processed_dir(name) / "manifest.json")  # older manifests
    info = {"data_digest": str(digest), "direction": str(manifest.get("direction", "mr2ct"))}
    if manifest.get("mr_stats"):                            # the condition's intensity statistics (data/contrast.py)
        info["mr_stats"] = manifest["mr_stats"]
    if manifest.get("model_geometry"):
        info["model_geometry"] = manifest["model_geometry"]
    return info


def check_same_data(provenance: dict, profile: str | Profile, what: str, remedy: str) -> None:
    """Refuse an artifact made from other prepared data (or the other direction) than the profile's, in one sentence
    naming both: the one compatibility check of train (resume), sample and evaluate."""
    current = data_identity(profile)
    name = profile.name if isinstance(profile, Profile) else str(profile)
    for key in ("data_digest", "direction"):
        if provenance.get(key) not in (None, current[key]):
            raise RuntimeError(f"{what} was made from data with {key} {provenance[key]!r}, but the prepared data of "
                               f"profile {name!r} has {current[key]!r}; {remedy}.")


def context_stack(images: np.ndarray, patient: np.ndarray, slice_index: np.ndarray, k: int) -> np.ndarray:
    """2.5-D condition (YODA; Honey et al. 2025): each slice's channels, then those of slices -1, +1, ..., -k, +k
    of the same patient, the end slices repeated at a volume's edges. Needs contiguous slices per patient."""
    images = np.asarray(images)
    if k < 0:
        raise ValueError(f"context slices must be >= 0, got {k}.")
    if k == 0:
        return images
    patient, slice_index = np.asarray(patient).astype(str), np.asarray(slice_index).astype(int)
    neighbour = {}
    for p in np.unique(patient):
        rows = np.flatnonzero(patient == p)
        rows = rows[np.argsort(slice_index[rows], kind="stable")]
        z = slice_index[rows]
        if len(z) > 1 and np.any(np.diff(z) != 1):
            raise ValueError(f"2.5-D conditioning needs contiguous slices, but patient {p!r} has slices "
                             f"{z.min()}..{z.max()} with gaps (prepare with slices_per_patient=0).")
        for j, row in enumerate(rows):
            for off in range(1, k + 1):
                neighbour[row, -off] = rows[max(j - off, 0)]
                neighbour[row, off] = rows[min(j + off, len(rows) - 1)]
    n = len(images)
    parts = [images]
    for off in range(1, k + 1):
        for sign in (-1, 1):
            parts.append(images[[neighbour[i, sign * off] for i in range(n)]])
    return np.concatenate(parts, axis=1)


def load_split(profile: str | Profile, split: str, direction: str | None = None, context: int = 0) -> SliceSet:
    """Load `train`, `test` or `val` (the calibration patients, when the profile has them) of a profile; direction defaults to the one recorded in the manifest; `context`:
    adjacent condition slices on each side stacked into `cond` (ModelConfig.context_slices)."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    manifest = load_manifest(profile)
    name = profile.name if isinstance(profile, Profile) else str(profile)
    path = paths.processed_dir(name) / f"{split}.npz"
    if not path.exists() and split == "val" and not (manifest.get("patients") or {}).get("val"):
        raise DataError(f"Profile {name!r} has no validation patients ({path} is missing); set "
                        "DataConfig.n_val_patients > 0 and prepare again.")
    if not path.exists():
        raise DataError(f"{path} is missing; run `ctmri prepare --profile {name}` first.")
    with np.load(path) as z:
        arrays = {k: z[k] for k in ("mr", "ct", "mask", "patient", "slice_index", "pixel_spacing")}
    return SliceSet(**arrays, direction=check_direction(direction or manifest["direction"]), context=int(context))


def model_slices_to_volume(profile: str | Profile, patient: str, slices: np.ndarray, slice_index: np.ndarray,
                           base: np.ndarray) -> np.ndarray:
    """Model-space slices (n, size, size) of one prepared patient back on its raw (S, P, L) grid (the grid recorded
    in the manifest); voxels that no given slice reaches keep `base` (same shape as the raw volume)."""
    grid = SliceGrid.from_dict(load_manifest(profile)["grids"][str(patient)])
    stack = np.zeros((grid.n_slices, grid.size, grid.size), np.float32)
    given = np.zeros(grid.n_slices, np.float32)
    idx = np.asarray(slice_index, int)
    stack[idx], given[idx] = slices, 1.0
    reached = to_source(np.broadcast_to(given[:, None, None], stack.shape), grid) > 1 - 1e-4
    return np.where(reached, to_source(stack, grid), np.asarray(base, np.float32))
