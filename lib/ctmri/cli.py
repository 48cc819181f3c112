"""`ctmri prepare|train|sample|evaluate|figures`: the notebooks' stages from the command line."""
from __future__ import annotations

import argparse
import sys


def _prepare(a: argparse.Namespace) -> None:
    from ctmri.data.prepare import prepare_dataset

    manifest = prepare_dataset(a.profile, dataset=a.dataset, data_dir=a.data_dir or None,
                               direction=a.direction, seed=a.seed)
    print(f"Prepared {manifest.get('n_slices', manifest)} for profile {a.profile!r}.")


def _train(a: argparse.Namespace) -> None:
    from ctmri.train.loop import train

    result = train(a.profile, a.method, steps=a.steps or None, resume=not a.fresh)
    print(result)


def _sample(a: argparse.Namespace) -> None:
    from ctmri.sample.mc import run_sampler

    path = run_sampler(a.profile, a.sampler, mc_samples=a.mc_samples or None, steps=a.steps or None)
    print(f"Wrote {path}")


def _evaluate(a: argparse.Namespace) -> None:
    from ctmri.evaluate.tables import evaluate

    for name, path in evaluate(a.profile).items():
        print(f"{name}: {path}")


def _figures(a: argparse.Namespace) -> None:
    from ctmri.figures.study import make_all_figures

    for path in make_all_figures(a.profile):
        print(path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctmri", description="MRI to CT with diffusion and score-matching models.")
    sub = p.add_subparsers(dest="command", required=True)

    def cmd(name: str, fn, help: str) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help)
        s.add_argument("--profile", default="smoke", help="smoke | cpu | gpu | paper (default: smoke)")
        s.set_defaults(fn=fn)
        return s

    s = cmd("prepare", _prepare, "build data/processed/<profile> from the phantom or real data")
    s.add_argument("--dataset", default="phantom", help="phantom | synthrad | goldatlas")
    s.add_argument("--data-dir", default="", help="folder of real data (synthrad / goldatlas)")
    s.add_argument("--direction", default="mr2ct", help="mr2ct | ct2mr")
    s.add_argument("--seed", type=int, default=None, help="split seed (default: the profile's)")

    s = cmd("train", _train, "train one method")
    s.add_argument("--method", required=True, help="ddpm | vesde | cnn | wgan")
    s.add_argument("--steps", type=int, default=0, help="optimiser steps (default: the profile's budget)")
    s.add_argument("--fresh", action="store_true", help="ignore an interrupted run's checkpoint")

    s = cmd("sample", _sample, "Monte-Carlo sample the test split with one sampler")
    s.add_argument("--sampler", required=True, help="ddpm ddim dpm++2m em pc ode heun cnn wgan")
    s.add_argument("--steps", type=int, default=0, help="sampler steps (default: the profile's)")
    s.add_argument("--mc-samples", type=int, default=0, help="MC replicates per slice (default: the profile's)")

    cmd("evaluate", _evaluate, "metrics, summary and claims tables")
    cmd("figures", _figures, "the study's figures")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"ctmri {args.command}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
