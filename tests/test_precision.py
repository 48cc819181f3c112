"""Precision by capability (issue 24): bf16 autocast only where the device has native bf16 and a probe finds it faster,
the probe cached per machine, $CTMRI_PRECISION over the config."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ctmri import precision as P
from ctmri.config import get_profile

CPU = torch.device("cpu")
CPUINFO = "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse avx2 {extra}\n\n"


@pytest.fixture(autouse=True)
def scratch_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cache under tmp_path, no $CTMRI_PRECISION, a CPU without native bf16 unless a test says otherwise."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(P.ENV, raising=False)
    cpu(tmp_path, monkeypatch, bf16=False)
    return tmp_path / "cache" / "ctmri" / "precision.json"


def cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bf16: bool) -> None:
    """A /proc/cpuinfo with or without the avx512_bf16 flag."""
    info = tmp_path / f"cpuinfo-{bf16}"
    info.write_text(CPUINFO.format(extra="avx512f avx512_bf16" if bf16 else "avx512f"))
    monkeypatch.setattr(P, "CPUINFO", info)


class Timer:
    """A fake probe: fixed (fp32, bf16) seconds, counting its calls."""

    def __init__(self, fp32: float, bf16: float):
        self.result, self.calls = (fp32, bf16), 0

    def __call__(self, device: torch.device) -> tuple[float, float]:
        self.calls += 1
        return self.result


def test_no_native_bf16_means_fp32_without_measuring() -> None:
    timer = Timer(1.0, 0.1)
    d = P.decide("auto", CPU, measure=timer)
    assert (d.precision, d.source, timer.calls) == ("fp32", "no-native-bf16", 0)
    assert not P.native_bf16(CPU)


def test_native_bf16_that_is_slower_stays_fp32(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu(tmp_path, monkeypatch, bf16=True)
    timer = Timer(0.2, 3.6)
    d = P.decide("auto", CPU, measure=timer)
    assert (d.precision, d.source, timer.calls) == ("fp32", "measured", 1)
    assert (d.fp32_s, d.bf16_s) == (0.2, 3.6)


def test_native_bf16_that_is_faster_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu(tmp_path, monkeypatch, bf16=True)
    d = P.decide("auto", CPU, measure=Timer(0.2, 0.13))
    assert (d.precision, d.source) == ("bf16", "measured") and d.bf16
    assert P.decide("auto", CPU, measure=Timer(0.2, 0.19)).precision == "bf16"   # cached: the first answer stands


def test_a_marginal_gain_is_not_enough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu(tmp_path, monkeypatch, bf16=True)
    assert P.decide("auto", CPU, measure=Timer(0.2, 0.2 / (P.MIN_SPEEDUP * 0.98))).precision == "fp32"


def test_the_measurement_is_cached_per_cpu_torch_and_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             scratch_cache: Path) -> None:
    cpu(tmp_path, monkeypatch, bf16=True)
    first = Timer(0.2, 0.1)
    assert P.decide("auto", CPU, measure=first).source == "measured"
    stored = json.loads(scratch_cache.read_text())
    key = f"cpu: Test CPU 9000 | torch {torch.__version__} | {torch.get_num_threads()} threads"
    assert list(stored) == [key] and stored[key]["fp32_s"] == 0.2 and stored[key]["bf16_s"] == 0.1
    again = Timer(0.1, 0.2)
    d = P.decide("auto", CPU, measure=again)
    assert (d.precision, d.source, again.calls) == ("bf16", "cached", 0)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)         # another thread count is another machine
        other = Timer(0.1, 0.2)
        assert P.decide("auto", CPU, measure=other).precision == "fp32" and other.calls == 1
    finally:
        torch.set_num_threads(threads)
    assert len(json.loads(scratch_cache.read_text())) == 2


def test_a_corrupt_cache_is_measured_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           scratch_cache: Path) -> None:
    cpu(tmp_path, monkeypatch, bf16=True)
    scratch_cache.parent.mkdir(parents=True)
    scratch_cache.write_text("{not json")
    timer = Timer(0.2, 0.1)
    assert P.decide("auto", CPU, measure=timer).precision == "bf16" and timer.calls == 1


@pytest.mark.parametrize("env, expected", [("fp32", "fp32"), ("bf16", "bf16"), ("BF16", "bf16")])
def test_the_environment_overrides_the_config(env: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(P.ENV, env)
    timer = Timer(1.0, 0.1)
    for setting in (True, False, None, "auto"):
        d = P.decide(setting, CPU, measure=timer)
        assert (d.precision, d.source) == (expected, "env")
    assert timer.calls == 0


def test_env_auto_decides_even_where_the_config_forces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu(tmp_path, monkeypatch, bf16=True)
    monkeypatch.setenv(P.ENV, "auto")
    assert P.decide(False, CPU, measure=Timer(0.2, 0.1)).precision == "bf16"
    monkeypatch.setenv(P.ENV, "half")
    with pytest.raises(ValueError, match="CTMRI_PRECISION='half' is not a precision; expected one of fp32, bf16, auto"):
        P.decide(None, CPU)


def test_config_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu(tmp_path, monkeypatch, bf16=True)
    never = Timer(0.2, 0.1)
    assert P.decide(True, CPU, measure=never).precision == "bf16"
    assert P.decide(False, CPU, measure=never).precision == "fp32"
    assert P.decide(None, CPU, measure=never).precision == "fp32"       # the old default: fp32 on the CPU, unmeasured
    assert P.decide("auto", CPU, resumed="fp32", measure=never).source == "checkpoint"  # a resumed run keeps its own
    assert never.calls == 0
    assert get_profile("cpu").train.bf16_autocast == "auto"
    with pytest.raises(ValueError, match="bf16_autocast='fast' is not a precision setting"):
        P.decide("fast", CPU)


def test_the_probe_times_both_precisions() -> None:
    fp32_s, bf16_s = P.probe(CPU, budget_s=0.0)
    assert 0 < fp32_s < 5 and 0 < bf16_s < 5
