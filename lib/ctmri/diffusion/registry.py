"""The sampler registry: every sampler declared once, next to its algorithm, as a `SamplerSpec` record.

Everything the rest of the code asks about a sampler comes from its record: which trained method it
samples, its label (tables and figures), its default step count (a profile may override it in
`SampleConfig.sampler_steps`), the options it takes from the profile, how many network calls it
spends (`nfe`), whether it is stochastic or adaptive, its role in the study, and which sampler is the
default. Its colour belongs to the figures (`figures/style.py: COLORS`). Records register themselves with `@register(...)` (as score_sde's `register_predictor`); the
sampler modules are imported by `diffusion/samplers.py`, the package's entry point to the registry.

This module imports nothing that registers, so it can never take part in an import cycle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ctmri.config import METHODS

ROLES = ("baseline", "study", "fast")          # the study's one-pass baselines, its own algorithms, our fast solvers


@dataclass(frozen=True)
class SamplerSpec:
    """What the code knows about one sampler (see the module docstring)."""

    name: str
    method: str                                 # the trained method whose checkpoint it samples
    label: str                                  # display label (figures, tables); "-M" is added for MC means
    role: str                                   # "baseline" | "study" | "fast"
    run: Optional[Callable[..., Any]]           # run(denoiser, process, y, *, steps, generator, ...) -> (B, C, H, W)
    default_steps: int                          # the study's (or our measured) step count
    nfe: Callable[[Any, int, dict], Optional[int]]  # network calls per sample for (process, steps, options); None: adaptive
    stochastic: bool                            # draws noise along the way (MC replicates differ beyond x_T)
    options: Callable[[Any], dict] = field(default=lambda sample_cfg: {})   # options from a SampleConfig
    adaptive: bool = False                      # step count chosen by the solver (the ODE)
    one_pass: bool = False                      # a plain forward pass G(y): one replicate, no trajectory
    default: bool = False                       # `ctmri synthesize`'s and the explorer's default sampler
    method_default: bool = False                # the sampler synthesize uses for a checkpoint of this method
    summary: str = ""                           # one line for `ctmri samplers`
    evaluation: str = "volumes"                 # the study's evaluation set: "volumes" (every test slice, the whole
    #                                             contiguous volumes) or "subset" (SampleConfig.max_test_slices
    #                                             slices through the test split: the long samplers)

    def steps_for(self, sample_cfg) -> int:
        """This sampler's steps in a profile: its `sampler_steps` override, else the record's default."""
        return int(dict(sample_cfg.sampler_steps).get(self.name, self.default_steps))

    def settings(self, sample_cfg) -> tuple[int, dict[str, Any]]:
        """(steps, options) of this sampler in a profile's `SampleConfig`."""
        return self.steps_for(sample_cfg), dict(self.options(sample_cfg))


SAMPLERS: dict[str, SamplerSpec] = {}
EVALUATION_SETS = ("volumes", "subset")


def register(name: str, **record: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: declare the function below as sampler `name` with the given record fields."""
    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        declare(SamplerSpec(name=name, run=fn, **record))
        return fn
    return add


def declare(spec: SamplerSpec) -> SamplerSpec:
    """Add a record (one name, once; known method and role; at most one global default per registry)."""
    if spec.name in SAMPLERS:
        raise ValueError(f"Sampler {spec.name!r} is declared twice.")
    if spec.method not in METHODS or spec.role not in ROLES:
        raise ValueError(f"Sampler {spec.name!r}: method must be one of {METHODS}, role one of {ROLES}.")
    if spec.evaluation not in EVALUATION_SETS:
        raise ValueError(f"Sampler {spec.name!r}: evaluation must be one of {EVALUATION_SETS}, not {spec.evaluation!r}.")
    if spec.default and any(s.default for s in SAMPLERS.values()):
        raise ValueError(f"Sampler {spec.name!r} cannot be the default: another sampler already is.")
    SAMPLERS[spec.name] = spec
    return spec


def names(*, method: Optional[str] = None, role: Optional[str] = None) -> list[str]:
    """Registered sampler names (in declaration order), optionally of one method or one role."""
    return [n for n, s in SAMPLERS.items() if (method is None or s.method == method) and (role is None or s.role == role)]


def study_order() -> list[str]:
    """Every sampler in the order tables and figures show them: baselines, the study's algorithms, then ours."""
    return [n for role in ROLES for n in names(role=role)]


def spec(name: str) -> SamplerSpec:
    """The record of sampler `name`, or one sentence listing the samplers that exist."""
    if name not in SAMPLERS:
        by_method = "; ".join(f"{m}: {', '.join(names(method=m))}" for m in METHODS if names(method=m))
        raise ValueError(f"Unknown sampler {name!r}; expected one of {', '.join(SAMPLERS)} ({by_method}).")
    return SAMPLERS[name]


def require_process(name: str, process: Any) -> None:
    """Fail fast (one sentence, listing the samplers that fit) when `process` is not the kind sampler `name` needs."""
    needed = spec(name).method
    kind = getattr(process, "kind", process)
    if kind != needed:
        raise ValueError(f"Sampler {name!r} needs a {needed!r} process, got {kind!r}; "
                         f"samplers for {kind!r}: {', '.join(names(method=str(kind))) or 'none'}.")


def default_sampler(method: Optional[str] = None) -> str:
    """The default sampler (`default=True`), or for a method the one marked `method_default`."""
    if method is None:
        found = [n for n, s in SAMPLERS.items() if s.default]
    else:
        found = [n for n, s in SAMPLERS.items() if s.method == method and s.method_default]
    if len(found) != 1:
        raise LookupError(f"Expected one default sampler{f' for {method!r}' if method else ''}, found {found}.")
    return found[0]
