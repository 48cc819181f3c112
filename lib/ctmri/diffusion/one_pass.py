"""The baselines as one-pass "samplers" (the study's UNet CNN and WGAN-GP, Section III): x0 = G(y), one network
call, one replicate, no trajectory. Declared here so tables, figures and the pipeline treat every method alike."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ctmri.diffusion.registry import SamplerSpec, declare


@torch.no_grad()
def forward_pass(generator_net: Callable[[torch.Tensor], torch.Tensor], process, y: torch.Tensor, *, steps: int = 1,
                 info: Optional[dict] = None, **ignored) -> torch.Tensor:
    """x0 = G(y): one call of the trained generator. NFE = 1."""
    if info is not None:
        info["nfe"] = 1
    return generator_net(y)


for _name, _label, _summary in (("cnn", "CNN", "UNet CNN baseline, MSE (one forward pass)"),
                                ("wgan", "WGAN-GP", "WGAN-GP baseline (one forward pass)")):
    declare(SamplerSpec(name=_name, method=_name, label=_label, role="baseline", run=forward_pass,
                        default_steps=1, nfe=lambda process, steps, o: 1, stochastic=False, one_pass=True,
                        method_default=True, summary=_summary))
