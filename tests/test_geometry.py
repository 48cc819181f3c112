"""Physical geometry (data/geometry.py): any voxel size and field of view lands on the model's mm grid and back.
Analytic cases: a linear ramp in mm is reproduced exactly by linear interpolation and by a symmetric anti-alias
filter away from the edges, so the model grid must hold the ramp at the model pixels' physical positions."""
from __future__ import annotations

import numpy as np
import pytest

from ctmri.data.geometry import SliceGrid, mask_to_model, plan_grid, to_model, to_source
from ctmri.data.volumes import DataError

SIZE, PIXEL = 32, 6.0     # a 192-mm model matrix


def ramp(shape, spacing, a=(0.7, -0.4, 0.25)) -> np.ndarray:
    """a · (z, y, x) in mm at voxel centres, the field of view's centre at 0 in-plane."""
    z, y, x = (np.arange(n) * s - (c * (n - 1) * s / 2) for n, s, c in zip(shape, spacing, (0, 1, 1)))
    return (a[0] * z[:, None, None] + a[1] * y[None, :, None] + a[2] * x[None, None, :]).astype(np.float64)


def model_positions(grid: SliceGrid) -> tuple[np.ndarray, ...]:
    """mm (same frame as `ramp`) of the model voxels' centres."""
    out = []
    for axis, (n_src, start, step, sp) in enumerate(zip(grid.source_shape, grid.start, grid.step,
                                                        grid.source_spacing)):
        m = grid.n_slices if axis == 0 else grid.size
        idx = start + step * np.arange(m)
        out.append(idx * sp - (0 if axis == 0 else (n_src - 1) * sp / 2))
    return tuple(out)


@pytest.mark.parametrize("spacing, shape", [((6.0, 6.0, 6.0), (8, 32, 32)),      # the model's own geometry
                                            ((6.0, 2.0, 2.0), (8, 96, 96)),      # 2-mm pixels
                                            ((6.0, 6.0, 6.0), (8, 44, 40)),      # a larger, non-square field of view
                                            ((3.0, 2.0, 3.0), (16, 96, 64)),     # thin slices, anisotropic pixels
                                            ((6.0, 8.0, 8.0), (8, 20, 20))])     # coarser pixels, smaller FOV
def test_a_ramp_in_mm_lands_on_the_model_grid_at_its_physical_positions(spacing, shape) -> None:
    vol = ramp(shape, spacing)
    grid = plan_grid(shape, spacing, SIZE, PIXEL, slice_mm=6.0)
    assert grid.model_spacing == pytest.approx((6.0, PIXEL, PIXEL))
    got = to_model(vol, grid, fill=np.nan)
    z, y, x = model_positions(grid)
    want = 0.7 * z[:, None, None] - 0.4 * y[None, :, None] + 0.25 * x[None, None, :]
    inside = np.isfinite(got)
    # away from the edges, where the anti-alias filter and linear interpolation are exact on a ramp
    core = np.zeros_like(inside)
    core[1:-1, 4:-4, 4:-4] = True
    sel = inside & core
    assert sel.sum() > 0.3 * sel.size
    np.testing.assert_allclose(got[sel], want[sel], atol=1e-3)


def test_the_model_geometry_is_the_identity_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(5, SIZE, SIZE)).astype(np.float32)
    grid = plan_grid(vol.shape, (6.0, PIXEL, PIXEL), SIZE, PIXEL, slice_mm=6.0)
    assert not grid.resamples_z and grid.start == (0.0, 0.0, 0.0)
    np.testing.assert_array_equal(to_model(vol, grid), vol)
    np.testing.assert_array_equal(to_source(vol, grid), vol)


def test_a_large_field_of_view_is_centred_on_the_body_and_maps_back() -> None:
    shape, sp = (4, 60, 80), (6.0, 6.0, 6.0)           # 360 × 480 mm, model 192 mm
    body = np.zeros(shape, bool)
    body[:, 10:35, 45:75] = True                        # off-centre, 150 × 180 mm
    grid = plan_grid(shape, sp, SIZE, PIXEL, body=body)
    m = mask_to_model(body, grid)
    assert m.sum() == body.sum()                        # the whole body is inside the model's matrix
    back = to_source(m.astype(np.float32), grid) > 0.5
    np.testing.assert_array_equal(back, body)


def test_a_body_wider_than_the_matrix_is_refused_in_mm() -> None:
    body = np.zeros((2, 60, 60), bool)
    body[:, 5:55, 20:40] = True                         # 300 mm along P > 192 mm
    with pytest.raises(DataError, match=r"300 mm wide along P.*192 mm the model covers"):
        plan_grid(body.shape, (6.0, 6.0, 6.0), SIZE, PIXEL, body=body, source="'x.nii.gz'")


def test_thin_slices_are_resampled_to_the_model_spacing_and_back() -> None:
    shape, sp = (24, SIZE, SIZE), (1.5, PIXEL, PIXEL)
    vol = ramp(shape, sp)
    grid = plan_grid(shape, sp, SIZE, PIXEL, slice_mm=6.0)
    assert grid.resamples_z and grid.n_slices == 6 and grid.step[0] == pytest.approx(4.0)
    back = to_source(to_model(vol, grid), grid)
    np.testing.assert_allclose(back[8:17], vol[8:17], atol=1e-3)   # a ramp survives the round trip (away from the ends)


def test_upsampled_output_reaches_every_input_voxel_smoothly() -> None:
    shape, sp = (3, 96, 96), (6.0, 2.0, 2.0)
    grid = plan_grid(shape, sp, SIZE, PIXEL)
    model = ramp((3, SIZE, SIZE), (6.0, PIXEL, PIXEL))
    back = to_source(model.astype(np.float32), grid)
    assert back.shape == shape
    np.testing.assert_allclose(back[:, 4:-4, 4:-4], ramp(shape, sp)[:, 4:-4, 4:-4], atol=1e-3)


def test_grid_round_trips_through_json_and_refuses_bad_spacing() -> None:
    grid = plan_grid((4, 50, 40), (2.5, 0.9, 1.1), SIZE, PIXEL, slice_mm=6.0)
    assert SliceGrid.from_dict(grid.to_dict()) == grid
    with pytest.raises(DataError, match="positive"):
        plan_grid((4, 50, 40), (2.5, 0.0, 1.1), SIZE, PIXEL)
