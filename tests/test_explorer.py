"""The 05_explore widget: every control shows the right frame, replicate, slice, sampler and map; clear messages."""
from __future__ import annotations

import numpy as np
import pytest

from ctmri.data.intensity import model_to_hu
from explorer_fake_run import write_fake_run

pytest.importorskip("ipywidgets")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("CTMRI_ROOT", str(tmp_path_factory.mktemp("root")))
    written = write_fake_run("demo")
    yield written
    mp.undo()


@pytest.fixture
def ex(run):
    from ctmri.figures.explorer import Explorer

    return Explorer("demo", ["ddpm", "em", "cnn"])


def test_trajectories_of_every_evaluated_slice_with_readout(run):
    d = run["ddpm"]
    assert list(d["trajectory_slices"]) == [0, 1, 2]
    assert d["trajectory"].shape[:2] == (3, 6) and d["trajectory_x0"].shape == d["trajectory"].shape
    assert list(d["trajectory_steps"]) == [0, 2, 4, 6, 7, 8]
    assert d["trajectory_t"][0] == 99 and np.all(np.diff(d["trajectory_sigma"]) < 0)
    assert list(d["trajectory_nfe"]) == [0, 2, 4, 6, 7, 8]
    np.testing.assert_allclose(d["trajectory"][:, -1], d["samples"][:, 0], atol=1e-5)   # final frame = replicate 0


def test_step_slider_moves_every_sampler(ex, run):
    for step in (0, ex.step.max):
        ex.step.value = step
        for name in ("ddpm", "em"):
            d = run[name]
            f = 0 if step == 0 else d["trajectory"].shape[1] - 1
            np.testing.assert_allclose(ex.panels[("x_t", name)], model_to_hu(d["trajectory"][0, f, 0]), rtol=1e-6)
            np.testing.assert_allclose(ex.panels[("x0_hat", name)], model_to_hu(d["trajectory_x0"][0, f, 0]),
                                       rtol=1e-6)
        assert ex.panels[("x_t", "cnn")] is None                 # one pass: no reverse process
    ex.step.value = 0
    assert "initial noise" in ex.info.value and "σ" in ex.info.value


def test_slice_slider_covers_every_slice(ex, run):
    ex.step.value = 1
    for pos in range(3):
        ex.slice.value = pos
        f = round(1 / ex.step.max * (run["ddpm"]["trajectory"].shape[1] - 1))
        np.testing.assert_allclose(ex.panels[("x_t", "ddpm")], model_to_hu(run["ddpm"]["trajectory"][pos, f, 0]),
                                   rtol=1e-6)
        np.testing.assert_allclose(ex.panels[("replicate", "cnn")], model_to_hu(run["cnn"]["samples"][pos, 0, 0]),
                                   rtol=1e-6)


def test_replicate_slider_moves_every_panel(ex, run):
    ex.replicate.value = 2
    for name in ("ddpm", "em"):
        np.testing.assert_allclose(ex.panels[("replicate", name)], model_to_hu(run[name]["samples"][0, 2, 0]),
                                   rtol=1e-6)
        assert ex.panels[("x_t", name)] is None              # no checkpoint here: x_t of replicate 2 is not faked
    assert "no checkpoint" in ex.info.value


def test_map_toggle_in_hu(ex, run):
    d = run["em"]
    ex.view.value = "MC std"
    np.testing.assert_allclose(ex.panels[("map", "em")], d["std"][0, 0] * 2012.0, rtol=1e-5)
    ex.view.value = "|error|"
    np.testing.assert_allclose(ex.panels[("map", "em")],
                               np.abs(model_to_hu(d["mean"][0, 0]) - model_to_hu(d["target"][0, 0])), atol=1e-2)
    ex.view.value = "MC mean"
    np.testing.assert_allclose(ex.panels[("map", "em")], model_to_hu(d["mean"][0, 0]), rtol=1e-6)


def test_sampler_choice_and_window_redraw(ex):
    before = ex.image.value
    ex.samplers.value = ("ddim",)
    assert {n for _, n in ex.panels} == {"ddim"}
    assert ex.image.value != before
    ex.window.value = "bone"
    assert ex.image.value[:4] == b"\x89PNG"


def test_clear_messages(run):
    from ctmri.figures.explorer import Explorer, ExplorerError, explore, open_run

    with pytest.raises(ExplorerError, match="Did you mean 'ddpm'"):
        open_run("demo", ["DDPM"])
    with pytest.raises(ExplorerError, match=r"ctmri sample --profile demo --sampler pc"):
        Explorer("demo", ["pc"])
    with pytest.raises(ExplorerError, match=r"make reproduce PROFILE=cpu"):
        open_run("cpu")
    assert "make demo" in explore("smoke").data


def test_every_sampler_the_pipeline_writes_can_be_explored(run):
    """Every registered sampler and baseline is a known name; the default view opens the few-step VE sampler."""
    from ctmri.diffusion.samplers import SAMPLERS, default_sampler
    from ctmri.figures.explorer import Explorer, check_sampler

    assert [check_sampler(s) for s in SAMPLERS] == list(SAMPLERS)
    default = Explorer("demo")
    assert {n for _, n in default.panels} >= {default_sampler(), "ddpm", "em"}
    assert default.image.value[:4] == b"\x89PNG"


def test_smoke_profile_says_it_only_tests_the_pipeline(tmp_path, monkeypatch):
    from ctmri.figures.explorer import explore

    monkeypatch.setenv("CTMRI_ROOT", str(tmp_path))
    write_fake_run("smoke", n=2, size=8, k=2)
    box = explore("smoke")
    assert "only tests that the pipeline runs" in box.children[0].value


def test_animation_is_self_contained(run):
    from ctmri.figures.explorer import reverse_process_animation

    html = reverse_process_animation("demo", ["ddpm", "em", "cnn"]).data
    assert "<script" in html and "data:image/png;base64" in html and "https://" not in html


def test_replicate_trajectory_is_regenerated_from_the_checkpoint(run, monkeypatch):
    from types import SimpleNamespace

    from ctmri.diffusion.processes import DDPM
    from ctmri.figures import explorer_regen
    from ctmri.figures.explorer import Explorer
    from explorer_fake_run import toy_model

    d = run["ddpm"]
    fake = SimpleNamespace(model=toy_model(DDPM(100), d["cond"], d["target"]), process=DDPM(100))
    monkeypatch.setattr(explorer_regen, "_model", lambda profile, method: fake)
    ex = Explorer("demo", ["ddpm"])
    ex.step.value, ex.slice.value, ex.replicate.value = 0, 1, 2
    assert "regenerated from the checkpoint" in ex.info.value
    start = ex.panels[("x_t", "ddpm")]
    assert not np.allclose(start, model_to_hu(d["trajectory"][1, 0, 0]))      # its own initial noise
    ex.step.value = ex.step.max
    np.testing.assert_allclose(ex.panels[("x_t", "ddpm")], model_to_hu(d["samples"][1, 2, 0]), atol=0.05)
