"""A tool's output folder that never eats a user's files: written to a temporary folder beside it, renamed into place
when complete, marked as ctmri's; `--overwrite` replaces only a marked folder holding nothing but what ctmri wrote,
never the input or a folder that holds it. Temporary folders of killed runs are removed by the next run."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterable

from ctmri import paths

MARKER = ".ctmri-output.json"   # inside every folder ctmri writes: the tool, and the files it wrote


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(out: Path) -> list[Path]:
    """Remove `.<out>.tmp-<pid>` / `.<out>.old-<pid>` folders beside `out` whose process is gone; the removed paths."""
    removed = []
    for p in out.parent.glob(f".{out.name}.*-*") if out.parent.exists() else []:
        kind, _, pid = p.name[len(out.name) + 2:].partition("-")
        if kind in ("tmp", "old") and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _ours(out: Path) -> tuple[bool, list[str]]:
    """Whether `out` carries ctmri's marker, and the entries in it that the marker does not list."""
    marker = out / MARKER
    try:
        listed = set(json.loads(marker.read_text()).get("files", []))
    except (OSError, ValueError):
        return False, []
    listed |= {MARKER}
    extra = sorted(p.name for p in out.iterdir() if p.name not in listed)
    return True, extra


def check_replaceable(out: Path, overwrite: bool, inputs: Iterable[Path]) -> None:
    """Refuse, in one sentence, an `out` that exists and is not an empty folder, unless `overwrite` and it is a folder
    ctmri wrote that holds only ctmri's files and none of the inputs."""
    out = out.expanduser().absolute()
    for inp in inputs:
        inp = Path(inp).expanduser().absolute()
        if inp == out or out in inp.parents:
            raise FileExistsError(f"Output folder {str(out)!r} is or holds the input {str(inp)!r}; choose another "
                                  "--out (ctmri never replaces its input).")
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"Output {str(out)!r} is a file, not a folder; choose another --out.")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"Output folder {str(out)!r} already exists; pass --overwrite to replace it or "
                              "choose another --out.")
    ours, extra = _ours(out)
    if not ours:
        raise FileExistsError(f"Output folder {str(out)!r} was not written by ctmri (no {MARKER} inside); "
                              "--overwrite replaces only ctmri's own output folders: choose another --out.")
    if extra:
        raise FileExistsError(f"Output folder {str(out)!r} holds files ctmri did not write ({', '.join(extra[:3])}"
                              f"{', …' if len(extra) > 3 else ''}); move them or choose another --out.")


def make_temporary(out: Path, overwrite: bool, inputs: Iterable[Path] = ()) -> Path:
    """Check `out` may be (re)placed, clean killed runs' leftovers, and make the temporary folder beside it."""
    check_replaceable(out, overwrite, inputs)
    paths.check_writable(out.parent, "output")
    clean_stale(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise PermissionError(f"Cannot create the output folder {str(out)!r} ({exc.strerror}); choose another "
                              "--out or --root.") from None
    return tmp


def publish(tmp: Path, out: Path, tool: str) -> None:
    """Mark the finished temporary folder as ctmri's and move it to `out`, replacing an old one only now."""
    files = sorted(p.name for p in tmp.iterdir())
    (tmp / MARKER).write_text(json.dumps({"tool": tool, "files": files}, indent=1))
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    if old.exists():
        shutil.rmtree(old) if old.is_dir() else old.unlink()
