"""Shared fixtures."""
from pathlib import Path

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny nets gain nothing from threads, and OpenMP spin-waits badly when other jobs share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_smoke_run(root: Path, methods: tuple[str, ...], samplers: tuple[str, ...] = ()) -> Path:
    """A scratch CTMRI_ROOT: smoke data, `methods` trained 3 steps, `samplers` sampled; one thread throughout."""
    from ctmri.data.prepare import prepare_dataset
    from ctmri.sample.stage import run_sampler
    from ctmri.train.loop import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CTMRI_ROOT", str(root))
            prepare_dataset("smoke")
            for method in methods:
                train("smoke", method, steps=3, progress=False)
            for sampler in samplers:
                run_sampler("smoke", sampler, progress=False, device="cpu")
    finally:
        torch.set_num_threads(threads)
    return root
