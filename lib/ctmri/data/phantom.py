"""Paired 3-D T2w-MRI / CT male pelvis phantom, one seed = one patient (data/README.md, "The phantom").

Every slice is painted as a tissue label map on a grid `ss`× finer in-plane (ellipses and
super-ellipses evaluated in mm inside their bounding boxes), then each tissue's fraction per
voxel gives the partial-volume MR and CT values. MR gets a smooth multiplicative bias field and
Rician noise, CT a slight blur and Gaussian noise. Arrays are (z, y, x) in LPS voxel order:
z runs inferior → superior, y anterior → posterior (rows), x patient right → left (columns).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy import ndimage

from ctmri.data.readers import Case
from ctmri.data.volumes import write_nifti

# Tissue labels of the label map.
AIR, GAS, FAT, MUSCLE, SKIN, RECTAL_WALL, URINE, PROSTATE, PERIPHERAL_ZONE, MARROW, CORTICAL = range(11)
LABELS = {"air": AIR, "rectal_gas": GAS, "fat": FAT, "muscle": MUSCLE, "skin": SKIN, "rectal_wall": RECTAL_WALL,
          "urine": URINE, "prostate": PROSTATE, "peripheral_zone": PERIPHERAL_ZONE, "marrow": MARROW,
          "cortical_bone": CORTICAL}
N_LABELS = len(LABELS)
_TMP = 250  # scratch label while painting rings
LABELS_FILE = "phantom_labels.nii.gz"  # write_synthrad's tissue label map per patient (the dose stage's structures)

# data/README.md table: CT (HU) and T2w (relative) per tissue as (low, high) ranges drawn once per patient.
TISSUE_HU = {AIR: (-1000, -1000), GAS: (-1000, -1000), FAT: (-110, -90), MUSCLE: (32, 48), SKIN: (40, 40),
             RECTAL_WALL: (40, 40), URINE: (2, 8), PROSTATE: (40, 40), PERIPHERAL_ZONE: (40, 40),
             MARROW: (250, 350), CORTICAL: (1000, 1500)}
TISSUE_T2 = {AIR: (0.0, 0.0), GAS: (0.0, 0.0), FAT: (0.70, 0.80), MUSCLE: (0.15, 0.25), SKIN: (0.28, 0.32),
             RECTAL_WALL: (0.28, 0.32), URINE: (1.0, 1.0), PROSTATE: (0.35, 0.42), PERIPHERAL_ZONE: (0.45, 0.55),
             MARROW: (0.40, 0.60), CORTICAL: (0.02, 0.02)}
# Spatial texture (smooth field) amplitude per tissue: the "±" of the table that is not patient-level.
TEXTURE_HU = {FAT: 10.0, MUSCLE: 6.0, MARROW: 45.0, CORTICAL: 60.0}


@dataclass(frozen=True)
class Anatomy:
    """Per-patient anatomy parameters (mm unless noted), drawn from the seed."""

    k: float              # pelvis scale
    fat: float            # subcutaneous fat thickness
    body_ax: float        # body half-width (x)
    body_ay: float        # body half-depth (y)
    cy: float             # body centre offset (y, mm)
    cx: float             # body centre offset (x, mm)
    s_shift: float        # cranio-caudal shift of all levels (fraction of the volume)
    s_stretch: float      # cranio-caudal stretch
    cortex: float         # cortical thickness
    head_r: float         # femoral head radius
    bladder_fill: float   # 0.15 (empty) … 1 (full)
    prostate_size: float  # 0.85 … 1.3
    rectum_r: float       # rectal lumen radius
    rectal_wall: float    # rectal wall thickness
    gas_amount: float     # gas pocket radius / lumen radius (0: no gas)
    gas_angle: float      # direction of the gas pocket in the lumen (rad; pi/2 = posterior, next to bone)
    gas_s: tuple[float, float]   # levels (s) with rectal gas
    bowel: tuple[float, float, float] | None  # gas-filled bowel loop near the ilium: (side, s_top, s_bottom)
    wobble: float         # lateral wobble of the rectum


def _draw_anatomy(rng: np.random.Generator, fov_y: float, fov_x: float) -> Anatomy:
    k = rng.uniform(0.88, 1.05)
    fat = rng.uniform(10.0, 32.0)
    aspect = rng.uniform(0.62, 0.74)
    body_ax = k * 150.0 + fat
    body_ay = body_ax * aspect
    fit = min(1.0, 0.45 * fov_x / (body_ax * 1.06), 0.45 * fov_y / body_ay)  # body stays inside the FOV
    k, fat, body_ax, body_ay = k * fit, fat * fit, body_ax * fit, body_ay * fit
    gas = 0.0 if rng.random() < 0.15 else rng.uniform(0.35, 1.0)
    gas_angle = np.pi / 2 + rng.normal(0.0, 0.5) if rng.random() < 0.6 else rng.uniform(0, 2 * np.pi)
    g0 = rng.uniform(0.3, 0.65)
    bowel = (float(rng.choice([-1.0, 1.0])), rng.uniform(0.0, 0.1), rng.uniform(0.22, 0.36)) \
        if rng.random() < 0.5 else None
    return Anatomy(k=k, fat=fat, body_ax=body_ax, body_ay=body_ay, cy=rng.uniform(-8, 8) * fit,
                   cx=rng.uniform(-10, 10) * fit, s_shift=rng.uniform(-0.05, 0.05), s_stretch=rng.uniform(0.92, 1.08),
                   cortex=rng.uniform(3.0, 4.5) * max(fit, 0.7), head_r=k * rng.uniform(21.0, 25.0),
                   bladder_fill=rng.uniform(0.15, 1.0), prostate_size=rng.uniform(0.85, 1.3),
                   rectum_r=k * rng.uniform(9.0, 16.0), rectal_wall=rng.uniform(2.0, 3.0), gas_amount=gas,
                   gas_angle=gas_angle, gas_s=(g0, g0 + rng.uniform(0.1, 0.3)), bowel=bowel,
                   wobble=rng.uniform(-6.0, 6.0))


class _Canvas:
    """A fine in-plane label grid with painting of (super-)ellipses restricted to their bounding boxes."""

    def __init__(self, y: np.ndarray, x: np.ndarray):
        self.y, self.x = y, x
        self.lab = np.full((y.size, x.size), AIR, dtype=np.uint8)

    def _box(self, cy: float, cx: float, r: float):
        sy = slice(int(np.searchsorted(self.y, cy - r)), int(np.searchsorted(self.y, cy + r)))
        sx = slice(int(np.searchsorted(self.x, cx - r)), int(np.searchsorted(self.x, cx + r)))
        return sy, sx, self.y[sy, None], self.x[None, sx]

    @staticmethod
    def _inside(yv, xv, cy, cx, ay, ax, theta=0.0, p=2.0):
        dy, dx = yv - cy, xv - cx
        if theta == 0.0:  # separable: powers of the 1-D offsets, then one broadcast add
            return np.abs(dx / ax) ** p + np.abs(dy / ay) ** p <= 1.0
        c, s = np.cos(theta), np.sin(theta)
        u = (dx * c + dy * s) / ax
        v = (-dx * s + dy * c) / ay
        return np.abs(u) ** p + np.abs(v) ** p <= 1.0 if p != 2.0 else u * u + v * v <= 1.0

    def ellipse(self, label: int, cy: float, cx: float, ay: float, ax: float, theta: float = 0.0, p: float = 2.0,
                only: Sequence[int] | None = None, cut: tuple | None = None) -> None:
        """Paint `label` inside the ellipse; `only`: over these labels only; `cut`: minus another ellipse."""
        if ay <= 0 or ax <= 0:
            return
        sy, sx, yv, xv = self._box(cy, cx, max(ay, ax) * (1.3 if p > 2 else 1.0))
        if yv.size == 0 or xv.size == 0:
            return
        m = self._inside(yv, xv, cy, cx, ay, ax, theta, p)
        if cut is not None:
            m &= ~self._inside(yv, xv, *cut)
        sub = self.lab[sy, sx]
        if only is not None:
            m &= (sub == only[0]) if len(only) == 1 else np.isin(sub, only)
        sub[m] = label

    def bone(self, cy, cx, ay, ax, cortex, theta=0.0, cut=None) -> None:
        """Cortical shell of thickness `cortex` around marrow; `cut` = (cy, cx, ay, ax) removed (grown by cortex)."""
        self.ellipse(CORTICAL, cy, cx, ay, ax, theta, cut=None if cut is None else (*cut, theta))
        inner_cut = None if cut is None else (cut[0], cut[1], cut[2] + cortex, cut[3] + cortex, theta)
        self.ellipse(MARROW, cy, cx, ay - cortex, ax - cortex, theta, cut=inner_cut)

    def replace(self, old: int, new: int) -> None:
        self.lab[self.lab == old] = new


def _bump(s: float, lo: float, hi: float) -> float:
    """0 outside [lo, hi], rising to 1 in the middle (a smooth window over levels)."""
    if s <= lo or s >= hi:
        return 0.0
    return float(np.sin(np.pi * (s - lo) / (hi - lo)))


def _paint_slice(c: _Canvas, s: float, a: Anatomy) -> None:
    """Paint the pelvis at level s (0 = iliac crest, 1 = below the ischial tuberosities)."""
    k, cy, cx = a.k, a.cy, a.cx
    # Body: skin, subcutaneous fat, muscle wall, pelvic cavity fat.
    bx = a.body_ax * (1.0 + 0.06 * _bump(s, 0.35, 1.2))
    by = a.body_ay
    c.ellipse(SKIN, cy, cx, by, bx, p=2.4)
    c.ellipse(FAT, cy, cx, by - 2.0, bx - 2.0, p=2.4)
    c.ellipse(MUSCLE, cy + 0.15 * a.fat, cx, by - 0.8 * a.fat, bx - a.fat, p=2.4, only=(FAT,))
    cav_y, cav_ay, cav_ax = cy - k * 12, k * (62 - 12 * s), k * (88 - 30 * s)
    c.ellipse(FAT, cav_y, cx, cav_ay, cav_ax, only=(MUSCLE,))
    for side in (-1.0, 1.0):
        # Fat planes between the gluteal muscles and the rest of the muscle wall.
        gy, gx, gay, gax, gth = cy + k * 58, cx + side * k * 92, k * 42, k * 62, -side * 0.45
        c.ellipse(_TMP, gy, gx, gay + 2.5, gax + 2.5, gth, only=(MUSCLE,))
        c.ellipse(MUSCLE, gy, gx, gay, gax, gth, only=(_TMP,))
        c.replace(_TMP, FAT)
        if s < 0.62:  # iliopsoas
            py, px = cy - k * 30, cx + side * k * (66 + 12 * s)
            c.ellipse(MUSCLE, py, px, k * 20, k * 17, only=(FAT,))
        if 0.42 < s < 0.88:  # obturator internus along the lateral pelvic wall
            w = _bump(s, 0.42, 0.88)
            c.ellipse(MUSCLE, cy + k * 8, cx + side * k * 60, k * 32 * (0.5 + 0.5 * w), k * 9, only=(FAT,))
    _paint_bones(c, s, a)
    _paint_organs(c, s, a)


def _paint_bones(c: _Canvas, s: float, a: Anatomy) -> None:
    k, cy, cx, t = a.k, a.cy, a.cx, a.cortex
    for side in (-1.0, 1.0):
        if s < 0.46:  # ilium: a thin wing from the sacroiliac joint forwards, thickening towards the acetabulum
            u = s / 0.46
            c.bone(cy + k * (18 - 16 * u), cx + side * k * (84 + 4 * u), k * (6 + 12 * u), k * (66 - 38 * u), t,
                   theta=-side * (0.8 - 0.45 * u))
        r_head = a.head_r * np.sqrt(max(0.0, 1 - ((s - 0.5) / 0.11) ** 2))
        hy, hx = cy + k * 4, cx + side * k * 86
        if 0.37 < s < 0.61:  # acetabulum: a cup open laterally
            r_cup = a.head_r * (0.75 + 0.45 * _bump(s, 0.37, 0.61)) + 8
            c.bone(hy, hx - side * 9, r_cup, r_cup * 0.95, t)
            if r_head > 1.0:
                c.ellipse(MUSCLE, hy, hx, r_head + 1.5, r_head + 1.5)  # joint cartilage
        if 0.52 < s < 0.74:  # femoral neck running laterally
            u = (s - 0.52) / 0.22
            c.bone(hy + k * 6 * u, hx + side * k * 22 * u, k * 15, k * (22 - 6 * u), t, theta=side * 0.25)
        if 0.56 < s < 0.8:  # greater trochanter
            c.bone(hy + k * 8, cx + side * k * 112, k * 21 * (0.5 + 0.5 * _bump(s, 0.5, 0.8)), k * 17, t)
        if s > 0.74:  # femoral shaft
            c.bone(hy + k * 8, cx + side * k * (104 - 8 * (s - 0.74)), k * 15, k * 15, max(t, 5.5))
        if r_head > 1.0:  # femoral head (sphere: radius shrinks away from its centre level)
            c.bone(hy, hx, r_head, r_head, t)
        if 0.6 < s < 0.73:  # superior pubic ramus from the acetabulum to the symphysis
            c.bone(cy - k * 38, cx + side * k * 38, k * 9, k * 44, t, theta=side * 0.69)
        if 0.7 < s < 0.86:  # pubic body beside the symphysis (a 3 mm gap at the midline)
            c.bone(cy - k * 62, cx + side * (1.5 + k * 17), k * 11, k * 17, t)
        if 0.62 < s < 0.96:  # ischium / ischial tuberosity
            u = (s - 0.62) / 0.34
            c.bone(cy + k * (26 + 16 * u), cx + side * k * (62 - 6 * u), k * 20, k * 12, t, theta=side * 0.3)
    if s < 0.4:  # sacrum: wide posterior bone, concave in front, with the sacral canal
        u = s / 0.4
        sy, say, sax = cy + k * (70 + 10 * u), k * (22 - 6 * u), k * (52 - 30 * u)
        c.bone(sy, cx, say, sax, t, cut=(sy - say * 1.25, cx, say * 0.6, sax * 0.45))
        c.ellipse(FAT, sy + say * 0.25, cx, k * 4, k * 9 * (1 - 0.5 * u))
    elif s < 0.6:  # coccyx
        u = (s - 0.4) / 0.2
        c.bone(cy + k * (76 - 6 * u), cx, k * (8 - 2 * u), k * (10 - 3 * u), min(t, 2.5))


def _posterior_bone_y(s: float, a: Anatomy) -> float:
    """y of the anterior surface of sacrum / coccyx (the rectum lies just in front of it)."""
    k = a.k
    if s < 0.4:
        u = s / 0.4
        return a.cy + k * (70 + 10 * u) - k * (22 - 6 * u)
    if s < 0.6:
        u = (s - 0.4) / 0.2
        return a.cy + k * (76 - 6 * u) - k * (8 - 2 * u)
    return a.cy + k * 64 - k * 40 * (s - 0.6)


def _paint_organs(c: _Canvas, s: float, a: Anatomy) -> None:
    k, cy, cx = a.k, a.cy, a.cx
    # Bladder: an ellipsoid behind the pubis resting on the prostate; size with filling.
    f3 = a.bladder_fill ** (1 / 3)
    bz = 0.2 * f3
    bs = 0.6 - bz
    if abs(s - bs) < bz:
        r = np.sqrt(1 - ((s - bs) / bz) ** 2)
        by = cy - k * 22 - k * 28 * f3
        ay, ax = k * 40 * f3 * r, k * 54 * f3 * r
        c.ellipse(MUSCLE, by, cx, ay + 3, ax + 3)
        c.ellipse(URINE, by, cx, ay, ax)
    # Prostate: peripheral zone (bright on T2) behind a central gland.
    pz, ps = 0.74, 0.12
    if abs(s - pz) < ps:
        r = np.sqrt(1 - ((s - pz) / ps) ** 2) * a.prostate_size
        py, ay, ax = cy - k * 12, k * 17 * r, k * 22 * r
        c.ellipse(PERIPHERAL_ZONE, py, cx, ay, ax)
        c.ellipse(PROSTATE, py - 0.3 * ay, cx, 0.65 * ay, 0.72 * ax)
    # Rectum just in front of sacrum / coccyx: wall, content, and a gas pocket that may touch the bone side.
    if s > 0.28:
        lumen = a.rectum_r * (1.0 if s < 0.82 else max(0.0, 1 - (s - 0.82) / 0.1))
        outer = lumen + a.rectal_wall
        ry = _posterior_bone_y(s, a) - outer - 1.0
        rx = cx + a.wobble * np.sin(7 * s)
        c.ellipse(RECTAL_WALL, ry, rx, outer, outer * 1.15)
        g0, g1 = a.gas_s
        if a.gas_amount > 0 and g0 <= s <= g1 and lumen > 1.0:
            gr = a.gas_amount * lumen
            off = lumen - gr
            c.ellipse(_TMP, ry, rx, lumen, lumen * 1.15)
            c.ellipse(GAS, ry + off * np.sin(a.gas_angle), rx + off * np.cos(a.gas_angle), gr, gr * 1.15,
                      only=(_TMP,))
            c.replace(_TMP, RECTAL_WALL)
    if a.bowel is not None and a.bowel[1] < s < a.bowel[2]:  # sigmoid loop with gas against the ilium
        side = a.bowel[0]
        by, bx, r = cy + k * 5, cx + side * k * 52, k * 15 * (0.6 + 0.4 * _bump(s, a.bowel[1], a.bowel[2]))
        c.ellipse(RECTAL_WALL, by, bx, r + 2.5, r + 2.5, only=(FAT, MUSCLE))
        c.ellipse(GAS, by, bx, r, r, only=(RECTAL_WALL,))


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int, int], sigma: Sequence[float]) -> np.ndarray:
    """Zero-mean, unit-std smooth Gaussian random field."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-8)


def _bias_field(rng: np.random.Generator, shape: tuple[int, int, int], amplitude: float) -> np.ndarray:
    """Smooth multiplicative MR bias 1 + b, |b| <= amplitude (random quadratic polynomial in z, y, x)."""
    w, v, u = np.meshgrid(*(np.linspace(-1, 1, n, dtype=np.float32) for n in shape), indexing="ij", sparse=True)
    terms = (u, v, w, u * u, v * v, w * w, u * v, v * w, u * w)
    coef = rng.normal(0.0, 1.0, len(terms)) * np.array([1, 1, 0.5, 0.6, 0.6, 0.3, 0.5, 0.3, 0.3])
    b = sum(np.float32(cf) * t for cf, t in zip(coef, terms))
    b = np.broadcast_to(b, shape)
    b = b - b.mean()
    return (1.0 + amplitude * b / (np.abs(b).max() + 1e-8)).astype(np.float32)


def _misregistration(seed: int, shape: tuple[int, int, int], spacing: tuple[float, float, float],
                     amplitude_mm: float) -> np.ndarray:
    """Smooth in-plane displacement (2, z, y, x) in voxels, largest |d| = amplitude_mm: the residual MR-CT
    misregistration of a deformable registration (correlation lengths ~40 mm in-plane, ~30 mm through-plane).
    Drawn from its own generator, so the rest of a patient is the same with and without it."""
    rng = np.random.default_rng([int(seed), 1])
    sigma = (30.0 / spacing[0], 40.0 / spacing[1], 40.0 / spacing[2])
    d = np.stack([_smooth_field(rng, shape, sigma) for _ in range(2)])
    d *= amplitude_mm / (np.sqrt((d ** 2).sum(axis=0)).max() + 1e-8)
    return d / np.asarray(spacing[1:], np.float32)[:, None, None, None]


def _warp(volume: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """volume(z, y + dy, x + dx), trilinear, edges repeated."""
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in volume.shape), indexing="ij")
    return ndimage.map_coordinates(volume, [z, y + displacement[0], x + displacement[1]], order=1,
                                   mode="nearest").astype(np.float32)


def supersampling(spacing_yx: Sequence[float]) -> int:
    """In-plane supersampling factor: fine pixels of about 1 mm, between 2 and 4 per voxel side."""
    return int(np.clip(np.ceil(max(spacing_yx) / 1.0), 2, 4))


def render_fractions(anatomy: Anatomy, shape: tuple[int, int, int], spacing: tuple[float, float, float]) \
        -> np.ndarray:
    """Tissue fractions (N_LABELS, z, y, x) per voxel from the label map painted at ss× in-plane resolution."""
    nz, ny, nx = shape
    _, dy, dx = spacing
    ss = supersampling((dy, dx))
    y = ((np.arange(ny * ss) + 0.5) * dy / ss - ny * dy / 2).astype(np.float64)
    x = ((np.arange(nx * ss) + 0.5) * dx / ss - nx * dx / 2).astype(np.float64)
    block = ((np.arange(ny * ss) // ss)[:, None] * nx + (np.arange(nx * ss) // ss)[None, :]).ravel()
    fractions = np.empty((N_LABELS, nz, ny, nx), np.float32)
    for z in range(nz):
        level = 1.0 - (z + 0.5) / nz  # z runs inferior → superior; level 0 = cranial
        s = 0.5 + (level - 0.5) * anatomy.s_stretch + anatomy.s_shift
        canvas = _Canvas(y, x)
        _paint_slice(canvas, float(s), anatomy)
        counts = np.bincount(canvas.lab.ravel().astype(np.int64) * (ny * nx) + block, minlength=N_LABELS * ny * nx)
        fractions[:, z] = counts.reshape(N_LABELS, ny, nx) / float(ss * ss)
    return fractions


def make_case(seed: int, shape: Sequence[int] = (24, 96, 96), spacing: Sequence[float] = (5.0, 4.0, 4.0),
              case_id: str | None = None, misregistration_mm: float = 0.0) -> Case:
    """One phantom patient: MR (relative T2w), CT (HU), body mask, tissue labels; deterministic in `seed`.

    `misregistration_mm` > 0 warps the MR's anatomy (not its noise) by a smooth displacement of at most that many
    mm against the CT, labels and mask, as real registered pairs are misaligned."""
    shape = tuple(int(n) for n in shape)
    spacing = tuple(float(v) for v in spacing)
    if len(shape) != 3 or min(shape) < 1 or len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"Phantom shape {shape} / spacing {spacing}: expected three positive (z, y, x) values.")
    rng = np.random.default_rng(seed)
    anatomy = _draw_anatomy(rng, shape[1] * spacing[1], shape[2] * spacing[2])
    hu = np.array([rng.uniform(*TISSUE_HU[i]) for i in range(N_LABELS)], np.float32)
    t2 = np.array([rng.uniform(*TISSUE_T2[i]) for i in range(N_LABELS)], np.float32)
    tex_hu = np.array([TEXTURE_HU.get(i, 0.0) for i in range(N_LABELS)], np.float32)
    frac = render_fractions(anatomy, shape, spacing)
    labels = frac.argmax(axis=0).astype(np.uint8)
    mask = frac[AIR] < 0.5
    texture = _smooth_field(rng, shape, (0.4, 1.2, 1.2))
    mix = lambda table: np.tensordot(table, frac, axes=1)  # noqa: E731  (fraction-weighted tissue values)
    ct = mix(hu) + texture * mix(tex_hu)
    ct = ndimage.gaussian_filter(ct, (0.0, 0.6, 0.6))
    ct_noise = rng.uniform(10.0, 20.0)
    ct = np.clip(ct + ct_noise * rng.standard_normal(shape, dtype=np.float32), -1024, 3071).astype(np.float32)
    bias_amp = rng.uniform(0.1, 0.3)
    mr_clean = mix(t2) * (1.0 + 0.04 * _smooth_field(rng, shape, (0.4, 1.2, 1.2))) * _bias_field(rng, shape, bias_amp)
    if misregistration_mm > 0:
        mr_clean = _warp(mr_clean, _misregistration(seed, shape, spacing, float(misregistration_mm)))
    mr_noise = rng.uniform(0.015, 0.035)
    n1, n2 = (rng.standard_normal(shape, dtype=np.float32) for _ in range(2))
    mr = np.sqrt((mr_clean + mr_noise * n1) ** 2 + (mr_noise * n2) ** 2).astype(np.float32)  # Rician magnitude
    meta = {"seed": int(seed), "phantom": True, "hu": {n: float(hu[i]) for n, i in LABELS.items()},
            "t2": {n: float(t2[i]) for n, i in LABELS.items()}, "ct_noise_hu": float(ct_noise),
            "mr_noise": float(mr_noise), "mr_bias_amplitude": float(bias_amp),
            "bladder_fill": anatomy.bladder_fill, "rectal_gas": anatomy.gas_amount,
            "misregistration_mm": float(misregistration_mm)}
    return Case(id=case_id or f"phantom{seed:03d}", mr=mr, ct=ct, mask=mask, spacing=spacing, labels=labels,
                source="phantom", meta=meta).validate()


def make_cases(n: int, shape: Sequence[int] = (24, 96, 96), spacing: Sequence[float] = (5.0, 4.0, 4.0),
               first_seed: int = 0, misregistration_mm: float = 0.0) -> list[Case]:
    """`n` phantom patients with seeds first_seed, first_seed + 1, …"""
    return [make_case(first_seed + i, shape, spacing, misregistration_mm=misregistration_mm) for i in range(int(n))]


def write_synthrad(cases: Iterable[Case], root: str | os.PathLike) -> list[Path]:
    """Write cases in the SynthRAD2023 layout `<root>/<id>/{mr,ct,mask}.nii.gz` (CT rounded to int16 HU), and a
    phantom case's tissue label map (LABELS) as `<root>/<id>/phantom_labels.nii.gz` (uint8)."""
    root = Path(root)
    folders = []
    for case in cases:
        folder = root / case.id
        write_nifti(folder / "mr.nii.gz", case.mr.astype(np.float32), case.spacing)
        write_nifti(folder / "ct.nii.gz", np.round(case.ct).astype(np.int16), case.spacing)  # HU as int16
        if case.mask is not None:
            write_nifti(folder / "mask.nii.gz", case.mask.astype(np.uint8), case.spacing)
        if case.labels is not None:
            write_nifti(folder / LABELS_FILE, case.labels.astype(np.uint8), case.spacing)
        folders.append(folder)
    return folders
