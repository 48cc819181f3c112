"""Training precision by capability (issue 24): bf16 autocast only where the device runs bf16 natively and faster.

`TrainConfig.bf16_autocast` asks for it: True (bf16) and False (fp32) as given; None the old default, unmeasured
(bf16 on a CUDA device with native bf16, fp32 on the CPU); "auto" is decided here. A device without native bf16
(CPU: no avx512_bf16 / amx_bf16 flag in /proc/cpuinfo, aarch64 no bf16; CUDA: not
`torch.cuda.is_bf16_supported(including_emulation=False)`) trains in fp32, unmeasured; one with it runs `probe`, a
few forward + backward passes of a small conv net in fp32 and under bf16 autocast (1-2 s; on the CPU one thread's
CPU time), and takes bf16 only when its fastest pass is MIN_SPEEDUP times faster. The probe's result is cached in
$XDG_CACHE_HOME/ctmri/precision.json (else ~/.cache/ctmri/precision.json) under the CPU model (GPU name), torch
version and thread count; delete the file to measure again. A resumed "auto" run keeps the precision its
checkpoint recorded. The environment variable CTMRI_PRECISION=fp32|bf16|auto overrides the config.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

ENV = "CTMRI_PRECISION"
MODES = ("fp32", "bf16", "auto")
CPUINFO = Path("/proc/cpuinfo")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")   # x86 (AVX-512 BF16, AMX) and aarch64 (FEAT_BF16)
MIN_SPEEDUP = 1.1                                       # bf16 must take <= 1 / 1.1 of the fp32 probe time


@dataclass(frozen=True)
class Decision:
    """The precision a run trains in and why: source is env, config, default, no-native-bf16, measured, cached or
    checkpoint (a resumed "auto" run keeps the precision it started with)."""

    precision: str
    source: str
    fp32_s: float | None = None          # probe seconds per forward + backward pass
    bf16_s: float | None = None
    key: str | None = None               # the cache key of a measured decision

    @property
    def bf16(self) -> bool:
        """Whether the networks run under bf16 autocast."""
        return self.precision == "bf16"

    def describe(self) -> dict[str, Any]:
        """A plain dict for checkpoints and result dicts."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def requested(setting: bool | str | None) -> tuple[str, str]:
    """(mode, source): $CTMRI_PRECISION when set, else the config value; mode is fp32, bf16, auto or default."""
    env = os.environ.get(ENV, "").strip().lower()
    if env:
        if env not in MODES:
            raise ValueError(f"{ENV}={os.environ[ENV]!r} is not a precision; expected one of {', '.join(MODES)}.")
        return env, "env"
    if setting is None:
        return "default", "default"
    if isinstance(setting, bool):
        return ("bf16" if setting else "fp32"), "config"
    if isinstance(setting, str) and setting.lower() == "auto":
        return "auto", "config"
    raise ValueError(f"TrainConfig.bf16_autocast={setting!r} is not a precision setting; expected True, False, "
                     f"None or 'auto'.")


def cpu_info() -> dict[str, Any]:
    """The CPU's model name and flags from /proc/cpuinfo (Linux); an empty flag set where it cannot be read."""
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        return {"model": platform.processor() or platform.machine() or "unknown cpu", "flags": set()}
    model, flags = "", set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name in ("model name", "cpu model") and not model:
            model = value.strip()
        elif name in ("flags", "features") and not flags:
            flags = set(value.split())
    return {"model": model or platform.processor() or platform.machine() or "unknown cpu", "flags": flags}


def native_bf16(device: torch.device) -> bool:
    """Whether the device computes bf16 natively: CPU flags avx512_bf16 / amx_bf16 (aarch64: bf16), CUDA compute
    capability (torch.cuda.is_bf16_supported without emulation)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type == "cpu":
        return bool(cpu_info()["flags"] & set(CPU_BF16_FLAGS))
    return False


def cache_key(device: torch.device) -> str:
    """What a measured decision depends on: CPU model (GPU name), torch version and thread count."""
    name = (torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_info()["model"])
    return f"{device.type}: {name} | torch {torch.__version__} | {torch.get_num_threads()} threads"


def cache_path() -> Path:
    """$XDG_CACHE_HOME/ctmri/precision.json, else ~/.cache/ctmri/precision.json."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ctmri" / "precision.json"


def read_cache() -> dict[str, dict]:
    """The cached probe results by key; empty when the file is missing or unreadable."""
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_cache(key: str, entry: dict) -> None:
    """Store one probe result (atomically; a cache that cannot be written is skipped)."""
    path = cache_path()
    data = {**read_cache(), key: entry}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except OSError:
        pass


def _probe_net(channels: int = 32) -> nn.Module:
    """Convs, GroupNorm and SiLU at the widths of the cpu UNet behind its 4x stem."""
    return nn.Sequential(nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.GroupNorm(8, 2 * channels), nn.SiLU(),
                         nn.Conv2d(2 * channels, 2 * channels, 3, padding=1), nn.GroupNorm(8, 2 * channels), nn.SiLU(),
                         nn.Conv2d(2 * channels, channels, 3, padding=1))


def _pass_seconds(net: nn.Module, x: torch.Tensor, bf16: bool) -> float:
    """Seconds of one forward + backward pass, in fp32 or under bf16 autocast: this thread's CPU time on the CPU
    (a pass descheduled by a neighbour or a CPU quota is not charged for it), wall time on a GPU."""
    cuda = x.device.type == "cuda"
    clock = time.perf_counter if cuda else time.thread_time
    ctx = (torch.autocast(x.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext())
    if cuda:
        torch.cuda.synchronize(x.device)
    t0 = clock()
    with ctx:
        loss = net(x).float().square().mean()
    loss.backward()
    if cuda:
        torch.cuda.synchronize(x.device)
    return clock() - t0


def probe(device: torch.device, budget_s: float = 2.0, max_pairs: int = 20) -> tuple[float, float]:
    """(fp32, bf16) seconds per forward + backward pass of a small conv net (batch 8, 32 -> 64 channels, 32²): the
    fastest pass of each, alternating fp32 and bf16 passes after one untimed pass each, for about `budget_s`
    seconds (at least 2 pairs, at most `max_pairs`; 1 when bf16 is twice as slow). On the CPU it runs on one thread in CPU time: bf16's gain there
    is per-core throughput (AVX-512 BF16, AMX), and CPU time does not count a neighbour's load."""
    g = torch.Generator().manual_seed(0)
    net = _probe_net().to(device)
    x = torch.randn(8, 32, 32, 32, generator=g).to(device)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        _pass_seconds(net, x, False), _pass_seconds(net, x, True)
        best = {False: float("inf"), True: float("inf")}
        start = time.perf_counter()
        for pair in range(max_pairs):
            if pair >= 2 and time.perf_counter() - start > budget_s or pair >= 1 and best[True] > 2 * best[False]:
                break                       # time is up, or bf16 is clearly slower (emulated)
            for bf16 in (False, True):
                best[bf16] = min(best[bf16], _pass_seconds(net, x, bf16))
    finally:
        torch.set_num_threads(threads)
    return best[False], best[True]


def measured(device: torch.device, measure: Callable[[torch.device], tuple[float, float]] | None = None) -> Decision:
    """bf16 when the probe (cached per machine) finds it MIN_SPEEDUP times faster than fp32, else fp32."""
    key = cache_key(device)
    entry = read_cache().get(key)
    source = "cached"
    if not (isinstance(entry, dict) and isinstance(entry.get("fp32_s"), (int, float))
            and isinstance(entry.get("bf16_s"), (int, float))):
        fp32_s, bf16_s = (measure or probe)(device)
        entry = {"fp32_s": float(fp32_s), "bf16_s": float(bf16_s),
                 "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_cache(key, entry)
        source = "measured"
    faster = entry["bf16_s"] * MIN_SPEEDUP <= entry["fp32_s"]
    return Decision("bf16" if faster else "fp32", source, entry["fp32_s"], entry["bf16_s"], key)


def decide(setting: bool | str | None, device: str | torch.device, *, resumed: str | None = None,
           measure: Callable[[torch.device], tuple[float, float]] | None = None) -> Decision:
    """The precision of a training run on `device` (see the module docstring); `resumed`: the precision recorded in
    the checkpoint a run resumes, kept under "auto"; `measure` replaces `probe` (tests)."""
    device = torch.device(device)
    mode, source = requested(setting)
    if mode in ("fp32", "bf16"):
        return Decision(mode, source)
    if mode == "default":
        return Decision("bf16" if device.type == "cuda" and native_bf16(device) else "fp32", source)
    if resumed in ("fp32", "bf16"):
        return Decision(resumed, "checkpoint")
    if not native_bf16(device):
        return Decision("fp32", "no-native-bf16")
    return measured(device, measure)


def autocast_factory(decision: Decision, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A no-argument context factory: bf16 autocast on `device`, or nothing."""
    if decision.bf16:
        return functools.partial(torch.autocast, torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def main(argv: list[str] | None = None) -> int:
    """`python -m ctmri.precision [--profile cpu] [--device cpu]`: the decision a training run would take here."""
    ap = argparse.ArgumentParser(prog="python -m ctmri.precision", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", help="whose TrainConfig.bf16_autocast to resolve (default cpu)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    a = ap.parse_args(argv)
    from ctmri.config import get_profile

    try:
        d = decide(get_profile(a.profile).train.bf16_autocast, a.device)
    except ValueError as err:
        print(f"ctmri.precision: {err}", file=sys.stderr)
        return 2
    print(json.dumps({**d.describe(), "cache": str(cache_path())}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
