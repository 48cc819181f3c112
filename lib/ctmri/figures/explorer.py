"""JupyterLab explorer: several samplers side by side on the same slice and the same initial noise.

A step slider (with a play button) scrubs every sampler's reverse process at once (each at the same
fraction of its own steps), a replicate slider moves every panel (trajectories of replicates other
than 0 are regenerated from the checkpoint on demand, with a progress bar), a slice slider covers
every evaluated test slice, and toggles show the MC mean, std or |error| map in HU. The drawing
lives in `explorer_views`; the samples files are read with `ctmri.sample.store.load_samples`.
"""
from __future__ import annotations

import difflib
import html

import numpy as np

from ctmri import paths
from ctmri.diffusion.samplers import default_sampler, names, study_order
from ctmri.figures import explorer_views as views
from ctmri.sample.store import load_samples, sample_files

ORDER = tuple(study_order())        # every sampler the pipeline can write (the registry), in the study's order
# shown side by side by default when sampled: the default sampler (the fastest good one) first, then the study's own
STUDY = tuple(dict.fromkeys((default_sampler(), *names(role="study"))))
NOTES = {
    "smoke": "Profile <b>smoke</b> only tests that the pipeline runs: its models are trained for a few steps, so "
             "every panel is noise. For a real reverse diffusion run <code>make demo</code> (about ten minutes) "
             "and set <code>profile = \"demo\"</code>, or <code>make reproduce</code> for the cpu study.",
    "demo": "Profile <b>demo</b>: a DDPM trained for a few minutes on 32² phantom slices, far from study quality "
            "(<code>make reproduce</code> runs the cpu study).",
}


class ExplorerError(ValueError):
    """A sampler or run the explorer cannot show, with the command that makes it."""


def check_sampler(sampler: str) -> str:
    """`sampler` when it is a known sampler name, else an ExplorerError naming the closest one."""
    if sampler in ORDER:
        return sampler
    close = difflib.get_close_matches(sampler.lower(), ORDER, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ExplorerError(f"Unknown sampler {sampler!r}.{hint} Known samplers: {', '.join(ORDER)}.")


def make_command(profile: str) -> str:
    """The make target that samples a profile."""
    return {"demo": "make demo", "smoke": "make reproduce-min"}.get(profile, f"make reproduce PROFILE={profile}")


def missing_run_message(profile: str, sampler: str) -> str:
    return (f"No samples of {sampler!r} for profile {profile!r} at {paths.samples_path(profile, sampler)}. "
            f"Run `{make_command(profile)}` (the whole pipeline) or `ctmri sample --profile {profile} "
            f"--sampler {sampler}` (needs its trained model).")


def available_samplers(profile: str) -> list[str]:
    """Samplers whose samples exist for `profile`, in the study's order."""
    return list(sample_files(profile, ORDER))


def open_run(profile: str, samplers: list[str] | tuple[str, ...] | str | None = None) -> dict[str, dict]:
    """The samples of `samplers` (default: every one sampled) of `profile`, checked; clear errors otherwise."""
    samplers = [samplers] if isinstance(samplers, str) else list(samplers or available_samplers(profile))
    if not samplers:
        raise ExplorerError(f"No samples at all for profile {profile!r} under {paths.run_dir(profile) / 'samples'}. "
                            + f"Run `{make_command(profile)}`"
                            + ("." if profile == "demo" else ", or `make demo` for a ten-minute run."))
    out = {}
    for s in samplers:
        path = paths.samples_path(profile, check_sampler(s))
        if not path.exists():
            raise ExplorerError(missing_run_message(profile, s))
        out[s] = load_samples(path)
    return out


class Explorer:
    """The widget: `Explorer(profile, samplers).widget` in a notebook; the controls are attributes for tests."""

    def __init__(self, profile: str, samplers=None, *, regenerate: bool = True):
        import ipywidgets as w

        self.profile = profile
        shown = [samplers] if isinstance(samplers, str) else list(samplers or [])
        open_run(profile, shown or None)               # unknown sampler / missing run: the clear message
        self.data = open_run(profile, None)
        study = [s for s in STUDY if s in self.data]
        shown = (shown or (study if len(study) > 1 else None)
                 or [s for s in self.data if views.has_trajectory(self.data[s])][:3] or list(self.data)[:1])
        self.regenerate, self.regen_error = regenerate, ""
        self._traj_cache: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]] = {}
        first = self.data[shown[0]]
        n_slices = first["samples"].shape[0]
        n_frames = max((d["trajectory"].shape[1] for d in self.data.values() if views.has_trajectory(d)), default=1)
        n_rep = max(d["samples"].shape[1] for d in self.data.values())
        self.samplers = w.SelectMultiple(options=list(self.data), value=tuple(shown), description="samplers",
                                         rows=min(len(self.data), 9))
        self.step = w.IntSlider(n_frames - 1, 0, n_frames - 1, description="step", continuous_update=False)
        self.play = w.Play(value=n_frames - 1, min=0, max=n_frames - 1, interval=400, description="play")
        w.jslink((self.play, "value"), (self.step, "value"))
        self.replicate = w.IntSlider(0, 0, n_rep - 1, description="replicate", continuous_update=False)
        self.slice = w.IntSlider(0, 0, n_slices - 1, description="slice", continuous_update=False)
        self.view = w.ToggleButtons(options=views.MAPS, value="MC mean", description="map")
        self.window = w.Dropdown(options=list(views.WINDOWS), value="full", description="HU window")
        self.info = w.HTML()
        self.progress = w.IntProgress(0, 0, 1, description="regenerating", layout=w.Layout(visibility="hidden"))
        self.image = w.Image(format="png")
        self.panels: dict[tuple[str, str], np.ndarray | None] = {}
        note = NOTES.get(profile, "")
        head = w.HTML(f"<div style='background:#fff3cd;padding:6px;border:1px solid #e0c36c'>{note}</div>"
                      if note else "")
        for c in (self.samplers, self.step, self.replicate, self.slice, self.view, self.window):
            c.observe(self.redraw, names="value")
        self.widget = w.VBox([head, w.HBox([self.samplers, w.VBox([w.HBox([self.play, self.step]), self.replicate,
                                                                   self.slice])]),
                              w.HBox([self.view, self.window]), self.info, self.progress, self.image])
        self.redraw()

    # -- state --------------------------------------------------------------------------------
    def _trajectory(self, name: str, pos: int, k: int):
        """x_t / x0 frames of slice `pos`, replicate k: recorded for k = 0, regenerated (cached) otherwise."""
        d = self.data[name]
        if k == 0 or not views.has_trajectory(d) or not self.regenerate or k >= d["samples"].shape[1]:
            return None
        key = (name, pos, k)
        if key not in self._traj_cache:
            from ctmri.figures.explorer_regen import regenerate_trajectory

            self.progress.layout.visibility = "visible"
            try:
                self._traj_cache[key] = regenerate_trajectory(self.profile, name, d, pos, k, self._progress)
            except Exception as err:  # noqa: BLE001 - no checkpoint, or one this code cannot load: say so, keep going
                self.regen_error = f"{type(err).__name__}: {err}"
                return None
            finally:
                self.progress.layout.visibility = "hidden"
        return self._traj_cache[key]

    def _progress(self, done: int, total: int) -> None:
        self.progress.max, self.progress.value = total, done

    def state(self) -> dict:
        """The arrays each panel shows, keyed (row, sampler), plus the frame each sampler is at."""
        names = list(self.samplers.value) or [next(iter(self.data))]
        frac = self.step.value / max(self.step.max, 1)
        pos = int(np.clip(self.slice.value, 0, min(d["samples"].shape[0] for d in self.data.values()) - 1))
        cols, frames, regenerated = {}, {}, False
        for name in names:
            d = self.data[name]
            frames[name] = views.frame_of(d, frac)
            traj = self._trajectory(name, pos, self.replicate.value)
            regenerated = regenerated or traj is not None
            cols[name] = views.panels(d, frame=frames[name], replicate=self.replicate.value, pos=pos,
                                      view=self.view.value, traj=traj)
            if traj is None and self.replicate.value > 0:             # no trajectory of this replicate: blank
                cols[name].update(x_t=None, x0_hat=None)
            cols[name]["one_pass"] = not views.has_trajectory(d)
        return {"columns": cols, "frames": frames, "pos": pos, "names": names, "regenerated": regenerated}

    def redraw(self, _=None) -> None:
        st = self.state()
        cols, pos = st["columns"], st["pos"]
        self.panels = {(row, n): cols[n][row] for n in cols for row in ("x_t", "x0_hat", "replicate", "map")}
        ref = self.data[st["names"][0]]
        reference = {"mr": ref["cond"][pos, 0] if "cond" in ref else np.zeros_like(ref["target"][pos, 0]),
                     "ct": views.model_to_hu(ref["target"][pos, 0])}
        std_max = max(float(d["std"].max()) * views.HU_PER_UNIT for d in self.data.values()) or 1.0
        titles = {n: views.readout(self.data[n], st["frames"][n]) for n in cols}
        fig = views.draw(cols, reference, window=self.window.value, view=self.view.value, std_max=std_max,
                         err_max=500.0, titles={n: views.readout(self.data[n], st["frames"][n], "\n") for n in cols},
                         replicate=self.replicate.value)
        self.image.layout.width = f"{int(fig.get_size_inches()[0] * views.DPI)}px"     # native size
        self.image.value = views.png_bytes(fig)
        k = self.replicate.value
        regen = "" if k == 0 else (" (x_t / x̂₀ regenerated from the checkpoint)" if st["regenerated"] else
                                   " (x_t / x̂₀: no checkpoint here to regenerate this replicate's trajectory"
                                   + (f": {html.escape(self.regen_error)}" if self.regen_error else "") + ")")
        rows = "".join(f"<li><b>{n}</b>: {titles[n]}</li>" for n in cols)
        self.info.value = (f"slice {pos} (patient {ref['patient'][pos]}, slice {int(ref['slice_index'][pos])}) · "
                           f"replicate {k}{regen} · same initial noise for every sampler (seeded by slice and "
                           f"replicate) · HU window {self.window.value}<ul style='margin:0'>{rows}</ul>")


def _message(err: Exception):
    from IPython.display import HTML

    return HTML(f"<div style='background:#f8d7da;padding:8px;border:1px solid #d49'><b>Nothing to explore yet.</b> "
                f"{html.escape(str(err))}</div>")


def explore(profile: str, samplers=None, **kwargs):
    """The explorer widget for a notebook (see `Explorer`), or a message box saying which command to run."""
    try:
        return Explorer(profile, samplers, **kwargs).widget
    except ExplorerError as err:
        return _message(err)


def reverse_process_animation(profile: str, samplers=None, pos: int = 0, window: str = "full"):
    """The kernel-free view: a self-contained animation (inline PNG frames, no CDN) of every chosen sampler."""
    from IPython.display import HTML

    try:
        data = open_run(profile, samplers)
    except ExplorerError as err:
        return _message(err)
    data = {n: d for n, d in data.items() if views.has_trajectory(d)}
    if not data:
        return _message(ExplorerError(f"None of the chosen samplers of profile {profile!r} has a recorded trajectory."))
    note = NOTES.get(profile, "")
    return HTML((f"<p>{note}</p>" if note else "") + views.animation_html(data, pos, window))
