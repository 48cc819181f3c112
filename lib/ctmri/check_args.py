"""The Makefile's variables checked before any stage runs: `python -m ctmri.check_args --profile P --dataset D
--direction R --data-dir DIR` prints nothing and exits 0 when they are good, else prints one sentence (stdout with
--make, for the Makefile's $(error); stderr otherwise) and exits 2. Nothing is created either way."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ctmri.config import DIRECTIONS, PROFILES
from ctmri.data.readers import DATASET_KINDS


def problem(profile: str, dataset: str, direction: str, data_dir: str) -> str | None:
    """The first thing wrong with the study's arguments, as one sentence, or None."""
    if profile not in PROFILES:
        return f"PROFILE={profile!r} is not a profile; expected one of {', '.join(PROFILES)}."
    if dataset not in DATASET_KINDS:
        return f"DATASET={dataset!r} is not a dataset; expected one of {', '.join(DATASET_KINDS)}."
    if direction not in DIRECTIONS:
        return f"DIRECTION={direction!r} is not a direction; expected one of {', '.join(DIRECTIONS)}."
    if not data_dir and dataset != "phantom":
        return f"DATASET={dataset} needs DATA_DIR, the folder of its patients; none was given."
    if data_dir and not Path(data_dir).expanduser().is_dir():
        return f"DATA_DIR={data_dir!r} is not an existing folder; expected the {dataset} data's folder."
    return None


def main(argv: list[str] | None = None) -> int:
    """Check the arguments; 0 when good, 2 with one sentence when not."""
    ap = argparse.ArgumentParser(prog="python -m ctmri.check_args", description=__doc__)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--dataset", default="phantom")
    ap.add_argument("--direction", default="mr2ct")
    ap.add_argument("--data-dir", default="")
    ap.add_argument("--make", action="store_true", help="print the sentence on stdout, without its full stop")
    a = ap.parse_args(argv)
    message = problem(a.profile, a.dataset, a.direction, a.data_dir.strip())
    if message is None:
        return 0
    if a.make:
        print(message.rstrip("."))
    else:
        print(message, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
