"""`ctmri prepare|train|sample|evaluate|figures|synthesize|inspect`: the notebooks' stages, and the sCT tools, from
the shell.

Every stage prints where its outputs go (`--root`, default $CTMRI_ROOT or the repository) and
answers bad input with one sentence on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

from ctmri import __version__
from ctmri.distributed import is_main_process


def _prepare(a: argparse.Namespace) -> None:
    from ctmri.data.prepare import prepare_dataset

    manifest = prepare_dataset(a.profile, dataset=a.dataset, data_dir=a.data_dir or None,
                               direction=a.direction, seed=a.seed)
    print(f"Prepared {manifest.get('n_slices', manifest)} for profile {a.profile!r}.")


def _train(a: argparse.Namespace) -> None:
    from ctmri.train.loop import train

    result = train(a.profile, a.method, steps=a.steps, resume=not a.fresh)
    if result["steps_this_run"] == 0:
        print(f"{a.method} ({a.profile}) is already trained: {result['checkpoint']} holds step {result['step']}; "
              "pass --fresh to retrain.")
        return
    print(f"Trained {a.method} ({a.profile}) to step {result['step']} in {result['seconds']:.1f} s: "
          f"{result['checkpoint']}")


def _sample(a: argparse.Namespace) -> None:
    from ctmri.sample.stage import run_sampler

    path = run_sampler(a.profile, a.sampler, mc_samples=a.mc_samples, steps=a.steps)
    if is_main_process():                                  # under torchrun only rank 0 reports (rank 0 writes)
        print(f"Wrote {path}")


def _evaluate(a: argparse.Namespace) -> None:
    from ctmri.evaluate.tables import evaluate

    for name, path in evaluate(a.profile).items():
        print(f"{name}: {path}")


def _figures(a: argparse.Namespace) -> None:
    from ctmri import paths
    from ctmri.figures.study import make_all_figures

    made = make_all_figures(a.profile)
    if not made:
        raise FileNotFoundError(f"Nothing to plot for profile {a.profile!r}: no samples or summary under "
                                f"{paths.run_dir(a.profile)}; run `ctmri sample` and `ctmri evaluate` first.")
    for path in made:
        print(path)


def _synthesize(a: argparse.Namespace) -> None:
    from ctmri.sample.synthesize import synthesize

    extra = {}
    if a.series:                                            # passed only when given (an older synthesize lacks it)
        import inspect

        if "series" not in inspect.signature(synthesize).parameters:
            raise ValueError("--series is not supported by this version's synthesize; give the series folder alone.")
        extra["series"] = a.series
    rec = synthesize(a.input, a.out or None, checkpoint=a.checkpoint or None,
                     profile=a.profile if a.profile_given else None,
                     sampler=a.sampler or None, mc_samples=a.mc, steps=a.steps, mask=a.mask or None,
                     dicom=a.dicom, device=a.device or None, overwrite=a.overwrite, direction=a.direction or None,
                     progress=not a.no_progress, save_samples=a.save_samples,
                     accept_contrast=a.accept_contrast, **extra)
    files = ", ".join(rec["files"].values())
    if is_main_process():                                  # under torchrun only rank 0 reports (rank 0 writes)
        print(f"Wrote {files} to {rec['out']} ({rec['slices']} slices × {rec['mc_samples']} MC, {rec['sampler']}, "
              f"{rec['seconds']:.1f} s, {rec['seconds_per_slice']:.3f} s per slice).")


def _inspect(a: argparse.Namespace) -> None:
    import json

    from ctmri.data.inspection import format_report, inspect_path

    report = inspect_path(a.path, series=a.series or None, mr_series=a.goldatlas_mr or None,
                          ct_series=a.goldatlas_ct or None)
    print(json.dumps(report, indent=1) if a.json else format_report(report))


def _series(text: str) -> str:
    """argparse type: a DICOM series selector (uid=..., desc=..., re=..., modality=..., or a bare pattern)."""
    from ctmri.data.volumes import DataError, SeriesSelector

    try:
        SeriesSelector.parse(text)
    except DataError as err:
        raise argparse.ArgumentTypeError(str(err).rstrip(".")) from None
    return text


def _samplers(a: argparse.Namespace) -> None:
    from ctmri.config import get_profile
    from ctmri.diffusion.processes import make_process
    from ctmri.diffusion.samplers import SAMPLERS, names

    chosen = names(method=a.method or None, role=a.role or None)
    if not a.table:
        print(" ".join(chosen))
        return
    prof = get_profile(a.profile)
    print(f"{'sampler':12s} {'method':6s} {'role':8s} {'steps':>5s} {'NFE':>5s}  stochastic  (profile {a.profile})")
    for name in chosen:
        rec = SAMPLERS[name]
        steps, options = rec.settings(prof.sample)
        process = None if rec.one_pass else make_process(rec.method, prof.process)
        nfe = rec.nfe(process, steps, options)
        nfe = "adapt" if nfe is None else str(nfe)
        print(f"{name:12s} {rec.method:6s} {rec.role:8s} {steps:5d} {nfe:>5s}  {'yes' if rec.stochastic else 'no':10s}"
              f"  {rec.summary}{'  [default]' if rec.default else ''}")


def _dose(a: argparse.Namespace) -> None:
    import dataclasses
    import json
    import math
    from pathlib import Path

    import pandas as pd

    from ctmri.config import get_profile
    from ctmri.data.volumes import DataError, read_image
    from ctmri.dose.grid import check_same_grid
    from ctmri.dose.hu_tables import load_table
    from ctmri.dose.pair import dose_pair
    from ctmri.dose.plans import MODALITIES
    from ctmri.dose.structures import masks_from_nifti

    if a.grid_mm is not None and not (math.isfinite(a.grid_mm) and a.grid_mm > 0):
        raise DataError(f"--grid-mm {a.grid_mm:g} is not allowed; give a positive dose grid in mm (leave the option "
                        "out for the profile's).")
    table = load_table(a.hu_table or None)                  # a bad table is refused before any volume is read
    ct = read_image(a.ct)
    sct = read_image(a.sct)
    samples = [read_image(f) for f in sample_files(a.sct_samples)]
    for what, img in {"sCT": sct, **{f"sCT sample {i}": s for i, s in enumerate(samples)}}.items():
        check_same_grid(ct, img, what)                      # the volumes' world grids first, then the masks'
    structures = masks_from_nifti(a.structures, ct)         # each mask file's world grid checked against the CT
    if a.rtstruct:                                          # NIfTI masks given by name override the RTSTRUCT's
        from ctmri.dose.rtstruct import masks_from_rtstruct
        structures = {**masks_from_rtstruct(a.rtstruct, ct), **structures}
    cfg = get_profile(a.profile).dose
    if a.grid_mm is not None:
        cfg = dataclasses.replace(cfg, grid_mm=float(a.grid_mm))
    rows, _ = dose_pair(ct, sct, None, structures, a.target, cfg, table, samples,
                        MODALITIES if a.modality == "both" else (a.modality,))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "dose.csv", index=False)
    (out / "dose.json").write_text(json.dumps({"ct": a.ct, "sct": a.sct, "target": a.target,
                                               "dose_config": dataclasses.asdict(cfg), "rows": rows}, indent=1))
    for r in rows:
        print(f"{r['modality']}: dose MAE {r['dose_mae_pct']:.2f} % of prescription, gamma 2%/2mm "
              f"{r['gamma_2_2']:.1f} %, 1%/1mm {r['gamma_1_1']:.1f} %, {a.target} D98 difference "
              f"{r['d_' + a.target + '_D98']:+.3f} Gy")
    print(f"Wrote {out / 'dose.csv'} and {out / 'dose.json'}.")


def sample_files(items: list[str]) -> list[str]:
    """`--sct-samples`: the files given, a folder's volumes (`ctmri synthesize --save-samples`) in name order."""
    from pathlib import Path

    out: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.iterdir() if f.name.endswith((".nii.gz", ".nii", ".mha")))
            if not found:
                raise FileNotFoundError(f"--sct-samples folder {item!r} holds no .nii.gz / .nii / .mha volume.")
            out += found
        else:
            out.append(item)
    if len(out) == 1:
        raise ValueError("--sct-samples needs at least two MC samples for a dose std; got one.")
    return out


def _positive(text: str) -> int:
    """argparse type: an integer >= 1 (0 used to mean "the default" silently)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed; give at least 1 (leave the option out for the "
                                         "profile's default)")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`ctmri train: --steps: 0 is not allowed; ...`) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message}.\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ctmri", description="MRI to CT with diffusion and score-matching models.")
    p.add_argument("--version", action="version", version=f"ctmri {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def cmd(name: str, fn, help: str) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help)
        s.add_argument("--profile", default=None, help="smoke | cpu | gpu | paper (default: smoke)")
        s.add_argument("--root", default=None, help="where data/, runs/, figures/ go (default: $CTMRI_ROOT, "
                                                     "else the repository)")
        s.set_defaults(fn=fn)
        return s

    s = cmd("prepare", _prepare, "build data/processed/<profile> from the phantom or real data")
    s.add_argument("--dataset", default="phantom", help="phantom | synthrad | goldatlas")
    s.add_argument("--data-dir", default="", help="folder of real data (synthrad / goldatlas)")
    s.add_argument("--direction", default="mr2ct", help="mr2ct | ct2mr")
    s.add_argument("--seed", type=int, default=None, help="split seed (default: the profile's)")

    s = cmd("train", _train, "train one method")
    s.add_argument("--method", required=True, help="ddpm | vesde | cnn | wgan")
    s.add_argument("--steps", type=_positive, default=None, help="optimiser steps (default: the profile's budget)")
    s.add_argument("--fresh", action="store_true", help="retrain from scratch, ignoring an existing checkpoint")

    s = cmd("sample", _sample, "Monte-Carlo sample the test split with one sampler")
    s.add_argument("--sampler", required=True, help="a registered sampler (`ctmri samplers` lists them)")
    s.add_argument("--steps", type=_positive, default=None, help="sampler steps (default: the profile's)")
    s.add_argument("--mc-samples", type=_positive, default=None, help="MC replicates per slice (default: the profile's)")

    s = cmd("samplers", _samplers, "list the registered samplers (names only, or --table)")
    s.add_argument("--method", default="", help="only the samplers of one trained method: ddpm | vesde | cnn | wgan")
    s.add_argument("--role", default="", help="only one role: baseline | study | fast")
    s.add_argument("--table", action="store_true", help="one line per sampler: method, role, the profile's steps, ...")

    cmd("evaluate", _evaluate, "metrics, summary and claims tables")
    cmd("figures", _figures, "the study's figures")

    s = cmd("synthesize", _synthesize, "whole MR volume → synthetic CT (NIfTI, optional DICOM) with its MC std")
    s.add_argument("--input", required=True, help="MR volume: .nii.gz / .nii, .mha (SimpleITK) or a DICOM series "
                                                  "folder (a CT in HU with a ct2mr checkpoint)")
    s.add_argument("--out", default="", help="output folder (default: <root>/synthetic/<input name>)")
    s.add_argument("--checkpoint", default="", help="a .pt file (default: runs/<profile>/checkpoints/<method>.pt)")
    s.add_argument("--sampler", default="", help="any of `ctmri sample`'s samplers (default: the checkpoint "
                                                 "method's default, `ctmri samplers --table` marks the overall default)")
    s.add_argument("--mc", type=_positive, default=None, help="MC replicates per slice (default: the profile's)")
    s.add_argument("--steps", type=_positive, default=None, help="sampler steps (default: the profile's)")
    s.add_argument("--mask", default="", help="body mask volume on the input's grid (default: from the input)")
    s.add_argument("--dicom", action="store_true", help="also write a DICOM series (one file per slice) in dicom/")
    s.add_argument("--device", default="", help="cpu | cuda | cuda:N (default: cuda when available)")
    s.add_argument("--direction", default="", help="mr2ct | ct2mr: refuse a checkpoint of the other direction")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--save-samples", action="store_true", help="also write every MC replicate (sct_samples/), e.g. "
                                                               "for `ctmri dose --sct-samples`")
    s.add_argument("--accept-contrast", action="store_true", help="convert an input whose intensities differ from the "
                                                                  "training MR's (refused otherwise; recorded in sct.json)")
    s.add_argument("--series", type=_series, default=None, help="which series of a DICOM folder holding several: "
                   "uid=<SeriesInstanceUID>, desc=<glob on SeriesDescription, e.g. *T2*>, re=<regex>, modality=MR, "
                   "or a bare glob (default: the folder's only series; `ctmri inspect` lists them)")

    s = cmd("inspect", _inspect, "list the patients, DICOM series and volumes under PATH and what each reader takes")
    s.add_argument("path", help="a DICOM folder (one sub-folder per patient, or one patient), a SynthRAD folder "
                                "([<region>/]<patient>/{mr,ct,mask}.nii.gz|.mha) or one volume file")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.add_argument("--series", type=_series, default=None, help="the selector to try for synthesize's pick (as "
                                                              "`ctmri synthesize --series`)")
    s.add_argument("--goldatlas-mr", type=_series, default=None, help="the Gold Atlas MR selector to try (default: "
                   "$CTMRI_GOLDATLAS_MR, else desc=T2)")
    s.add_argument("--goldatlas-ct", type=_series, default=None, help="the Gold Atlas CT selector to try (default: "
                   "$CTMRI_GOLDATLAS_CT, else desc=CTtoMR)")

    s = cmd("dose", _dose, "a plan on the CT recomputed on an sCT: dose MAE, gamma, DVH differences (pyRadPlan)")
    s.add_argument("--ct", required=True, help="CT volume in HU (NIfTI, .mha or DICOM series)")
    s.add_argument("--sct", required=True, help="synthetic CT on the CT's grid (e.g. `ctmri synthesize`'s output)")
    s.add_argument("--sct-samples", nargs="*", default=[], help="MC sample sCTs, files or a folder (`ctmri "
                   "synthesize --save-samples`'s sct_samples/): adds the dose std and its Spearman with the dose error")
    s.add_argument("--structures", nargs="+", default=[], help="NAME=FILE masks on the CT grid (one BODY / EXTERNAL)")
    s.add_argument("--rtstruct", default="", help="a DICOM RT Structure Set of the CT: every ROI with contours, by "
                                                  "its ROIName (with --structures, those override)")
    s.add_argument("--target", default="PTV", help="the target structure's NAME (default: PTV)")
    s.add_argument("--out", required=True, help="output folder for dose.csv and dose.json")
    s.add_argument("--hu-table", default="", help="two-column CSV calibration curve HU → rED / SPR (default: "
                                                  "pyRadPlan's table)")
    s.add_argument("--modality", default="both", choices=("both", "photons", "protons"), help="which plans")
    s.add_argument("--grid-mm", type=float, default=None, help="dose grid in mm (default: the profile's)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.profile_given = args.profile is not None
    args.profile = args.profile or "smoke"
    if args.root:
        os.environ["CTMRI_ROOT"] = os.path.abspath(os.path.expanduser(args.root))
    try:
        from ctmri import paths
        from ctmri.config import get_profile

        root = paths.project_root()
        get_profile(args.profile)
        if args.command not in ("synthesize", "samplers", "dose", "inspect"):
            paths.check_writable(root, "root")
            if is_main_process():
                print(f"ctmri {args.command}: outputs under {root} (--root or CTMRI_ROOT to change)", flush=True)
        args.fn(args)
    except (ValueError, OSError, RuntimeError, MemoryError) as err:  # OSError: missing / unwritable files, existing --out
        message = " ".join(str(err).split())
        print(f"ctmri {args.command}: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
