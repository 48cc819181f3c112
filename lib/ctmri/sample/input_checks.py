"""What `ctmri synthesize` refuses before it spends time: an unavailable device, non-finite voxels, a volume too small
for the model, an MC count that will not fit in memory. Each refusal is one sentence naming the file or value."""
from __future__ import annotations

import os

import numpy as np
import torch

from ctmri.data.geometry import SliceGrid
from ctmri.data.volumes import DataError, Image

MIN_VOXELS = 8            # an in-plane side of the input below this is not a volume the model can serve
MIN_BODY_MM = 60.0        # a body narrower than this (mm) is not a pelvis
MEMORY_FRACTION = 0.8     # refuse when the estimate exceeds this share of the available memory


def resolve_device(name: str | None) -> torch.device:
    """The torch device asked for (default: cuda when available), or a one-sentence refusal."""
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"Unknown device {name!r}; expected cpu, cuda or cuda:N.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"Device {name!r} is not available here (this PyTorch sees no CUDA GPU); use --device cpu.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"Device {name!r} does not exist: {torch.cuda.device_count()} CUDA GPU(s) here.")
    elif device.type != "cpu":
        raise ValueError(f"Device {name!r} is not supported; expected cpu, cuda or cuda:N.")
    return device


def check_finite(image: Image) -> None:
    """Refuse NaN / Inf voxels, naming the file and how many."""
    bad = ~np.isfinite(image.array)
    if bad.any():
        raise DataError(f"{image.source!r} holds {int(bad.sum()):,} NaN / Inf voxel(s) of {bad.size:,}; expected finite "
                        "intensities (fill or mask them first).")


def check_size(image: Image, grid: SliceGrid, body_model: np.ndarray) -> None:
    """Refuse an input whose slices, or whose body, are too small for a model trained on whole pelvis slices."""
    _, n_p, n_l = grid.source_shape
    if min(n_p, n_l) < MIN_VOXELS:
        raise DataError(f"{image.source!r} holds slices of only {n_p}×{n_l} voxels; expected whole axial slices "
                        f"(at least {MIN_VOXELS}×{MIN_VOXELS}).")
    rows, cols = body_model.any(axis=(0, 2)), body_model.any(axis=(0, 1))
    extent = [(np.flatnonzero(a)[-1] - np.flatnonzero(a)[0] + 1) * grid.pixel_mm if a.any() else 0.0
              for a in (rows, cols)]
    if min(extent) < MIN_BODY_MM:
        raise DataError(f"{image.source!r}: the body is only {extent[0]:.0f}×{extent[1]:.0f} mm in-plane; the model "
                        f"was trained on whole pelvis slices (at least {MIN_BODY_MM:.0f} mm); expected a pelvis volume.")


def available_bytes() -> int:
    """Memory this process can still take (MemAvailable on Linux, else the free physical pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def memory_estimate(grid: SliceGrid, mc: int, block: int, channels: int, save_samples: bool) -> int:
    """Bytes a synthesis holds at its peak: the MC samples of one block, every replicate when they are saved, the
    model-grid maps, and the float64 resampling of a few volumes on the input's grid."""
    model_slice = grid.size * grid.size * 4
    samples_block = mc * block * model_slice * 2                      # samples and their float32 copy
    saved = mc * grid.n_slices * model_slice if save_samples else 0
    maps = 6 * grid.n_slices * model_slice + channels * grid.n_slices * model_slice
    source = 4 * int(np.prod(grid.source_shape)) * 8
    return int(samples_block + saved + maps + source)


def check_memory(grid: SliceGrid, mc: int, block: int, channels: int, save_samples: bool) -> int:
    """Refuse before sampling when the estimate exceeds the memory available; the estimate in bytes."""
    need, have = memory_estimate(grid, mc, block, channels, save_samples), available_bytes()
    if need > MEMORY_FRACTION * have:
        raise MemoryError(f"--mc {mc}{' with --save-samples' if save_samples else ''} needs about "
                          f"{need / 2**30:.1f} GiB, more than the {have / 2**30:.1f} GiB available; lower --mc"
                          f"{' or drop --save-samples' if save_samples else ''}.")
    return need
