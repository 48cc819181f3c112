"""The sampler registry is the one place a sampler is declared: every record is complete and true to its sampler,
the rest of the code derives its lists from it, and no module of the package lists sampler names by hand."""
from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest
import torch

from ctmri.config import METHODS, get_profile
from ctmri.diffusion.processes import make_process
from ctmri.diffusion.registry import SamplerSpec, declare
from ctmri.diffusion.samplers import SAMPLERS, default_sampler, get_sampler, names, spec

REPO = Path(__file__).resolve().parents[1]
LIB = REPO / "lib" / "ctmri"
SMOKE = get_profile("smoke")


def gaussian(x: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The exact denoiser of x0 ~ N(y / 2, 0.3^2) (either process, in sigma space)."""
    return 0.5 * y + 0.09 / (0.09 + sigma.view(-1, 1, 1, 1) ** 2) * (x - 0.5 * y)


@pytest.mark.parametrize("name", [n for n, r in SAMPLERS.items() if not r.one_pass])
def test_nfe_rule_and_flags_tell_the_truth(name: str) -> None:
    """At the smoke profile's steps and options: the record's NFE equals what the sampler counts (None: adaptive),
    and a sampler marked deterministic gives the same sample for two generators that share the initial noise."""
    rec = spec(name)
    process = make_process(rec.method, SMOKE.process)
    steps, options = rec.settings(SMOKE.sample)
    y = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x_init = process.prior_sample((2, 1, 8, 8), torch.Generator().manual_seed(1))
    info: dict = {}
    a = rec.run(gaussian, process, y, steps=steps, x_init=x_init, generator=torch.Generator().manual_seed(2),
                info=info, **options)
    predicted = rec.nfe(process, steps, options)
    assert (predicted is None) == rec.adaptive
    if predicted is not None:
        assert info["nfe"] == predicted
    b = rec.run(gaussian, process, y, steps=steps, x_init=x_init, generator=torch.Generator().manual_seed(3), **options)
    assert torch.equal(a, b) != rec.stochastic, f"{name}: stochastic={rec.stochastic} but outputs say otherwise"


def test_every_method_has_samplers_and_one_default_each() -> None:
    for method in METHODS:
        assert names(method=method), method
        assert spec(default_sampler(method)).method == method
    assert spec(default_sampler()).default and not spec(default_sampler()).one_pass
    assert [n for n, r in SAMPLERS.items() if r.one_pass] == names(role="baseline")


def test_one_pass_records_are_not_diffusion_samplers() -> None:
    for name in names(role="baseline"):
        with pytest.raises(ValueError, match="one-pass baseline"):
            get_sampler(name)


def test_a_record_is_declared_once_with_a_known_method_and_role() -> None:
    base = dict(label="X", run=None, default_steps=1, nfe=lambda p, s, o: 1, stochastic=False)
    with pytest.raises(ValueError, match="declared twice"):
        declare(SamplerSpec(name="ddpm", method="ddpm", role="study", **base))
    with pytest.raises(ValueError, match="method must be one of"):
        declare(SamplerSpec(name="new-one", method="gan", role="fast", **base))
    with pytest.raises(ValueError, match="another sampler already is"):
        declare(SamplerSpec(name="new-two", method="vesde", role="fast", default=True, **base))
    with pytest.raises(ValueError, match="evaluation must be one of"):
        declare(SamplerSpec(name="new-three", method="vesde", role="fast", evaluation="some", **base))
    assert "new-one" not in SAMPLERS and "new-two" not in SAMPLERS and "new-three" not in SAMPLERS


def test_long_samplers_run_on_the_subset_the_others_on_whole_volumes() -> None:
    """The study's four long samplers at the study's step counts cost 100-1000 NFE: they run on the profile's subset
    (Figs. 1-3); the baselines and the few-step samplers on every test slice (the volume metrics)."""
    from ctmri.config import get_profile
    from ctmri.sample.stage import sampler_slices

    assert {n for n in SAMPLERS if SAMPLERS[n].evaluation == "subset"} == set(names(role="study"))
    cpu = get_profile("cpu")
    n = 80
    for name in SAMPLERS:
        sel = sampler_slices(cpu, name, n)
        assert len(sel) == (cpu.sample.max_test_slices if name in names(role="study") else n), name


def test_profiles_name_only_registered_samplers() -> None:
    from ctmri.config import PROFILES
    for profile in PROFILES.values():
        assert set(profile.sample.sampler_steps) <= set(SAMPLERS), profile.name


def test_makefile_sampler_lists_come_from_the_registry() -> None:
    """`make` reads its sampler targets from the registry (build/make/vars.mk, generated)."""
    out = subprocess.run(["make", "-s", "-C", str(REPO), "--no-print-directory", "print-SAMPLERS",
                          "print-SAMPLERS_vesde"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-2].split() == names() and lines[-1].split() == names(method="vesde")


def _string_literals(path: Path) -> set[str]:
    return {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


# Modules that may name samplers: the records themselves, the entry point, profiles' per-sampler budgets (config),
# and the study's claims, which are statements about the paper's own named algorithms (EM and PC vs DDPM and ODE).
MAY_NAME_SAMPLERS = {"diffusion/registry.py", "diffusion/samplers.py", "diffusion/one_pass.py",
                     "diffusion/ddpm_ancestral.py", "diffusion/ve_sde_samplers.py", "diffusion/sigma_solvers.py",
                     "config.py", "evaluate/claims.py",
                     "figures/study.py",   # the study's Fig. 4 columns, in the paper's order
                     "figures/style.py"}   # one colour per sampler (checked below: every sampler has one)


def test_every_sampler_has_its_own_colour_in_the_figures_style() -> None:
    from ctmri.figures.style import COLORS
    assert set(COLORS) == set(names()), set(COLORS) ^ set(names())
    assert len(set(COLORS.values())) == len(COLORS)


def test_no_module_lists_sampler_names_by_hand() -> None:
    """Outside the registry no module of lib/ctmri holds a sampler name as a string (method names are allowed
    where a sampler and its method share a name, e.g. "ddpm", "cnn": they are methods there)."""
    sampler_only = set(SAMPLERS) - set(METHODS)
    offenders = {}
    for path in LIB.rglob("*.py"):
        rel = str(path.relative_to(LIB))
        if rel in MAY_NAME_SAMPLERS:
            continue
        named = _string_literals(path) & sampler_only
        if named:
            offenders[rel] = sorted(named)
    assert not offenders, offenders
