"""Profiles (smoke, cpu, gpu, paper): every size, budget and hyper-parameter of the study in one place."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

METHODS = ("ddpm", "vesde", "cnn", "wgan")
DIRECTIONS = ("mr2ct", "ct2mr")


@dataclass(frozen=True)
class DataConfig:
    """Which patients, how many slices, at what size."""

    image_size: int = 32                  # slices are resampled to image_size × image_size
    n_patients: int = 8                   # phantom patients generated (real data: all found)
    n_test_patients: int = 2              # patients held out for testing (split by patient)
    slices_per_patient: int = 16          # axial slices per patient, evenly through the body (0 = all)
    phantom_shape: tuple[int, int, int] = (24, 96, 96)        # (z, y, x) voxels of a phantom volume
    phantom_spacing: tuple[float, float, float] = (5.0, 4.0, 4.0)  # (z, y, x) mm of a phantom voxel
    misregistration_mm: float = 0.0       # phantom: largest in-plane MR-CT displacement of a smooth warp (0 = exact pairs)
    split_seed: int = 0                   # seed of the patient-level train/test split
    n_val_patients: int = 0               # validation patients for calibration, neither trained nor tested on (phantom:
    #                                     generated beyond n_patients, so the train / test split is unchanged)
    pixel_mm: float | None = None         # the model's in-plane pixel (mm); None: the phantom's field of view / image_size
    slice_mm: float | None = None         # the model's slice spacing (mm) for the 2.5-D condition; None: the phantom's

    @property
    def model_pixel_mm(self) -> float:
        """In-plane mm per model pixel: every input is resampled to it (data/geometry.py)."""
        if self.pixel_mm is not None:
            return float(self.pixel_mm)
        return float(max(self.phantom_spacing[1] * self.phantom_shape[1],
                         self.phantom_spacing[2] * self.phantom_shape[2]) / self.image_size)

    @property
    def model_slice_mm(self) -> float:
        """Slice spacing (mm) the 2.5-D condition's neighbours are taken at."""
        return float(self.slice_mm if self.slice_mm is not None else self.phantom_spacing[0])


@dataclass(frozen=True)
class ModelConfig:
    """The shared UNet (SR3 / Palette style)."""

    base_channels: int = 32               # channels at full resolution
    channel_mults: tuple[int, ...] = (1, 2, 4)  # multiplier per resolution level
    num_res_blocks: int = 1               # residual blocks per level
    attention_resolutions: tuple[int, ...] = ()  # feature-map sizes (pixels) with self-attention
    dropout: float = 0.0
    cond_channels: int = 1                # condition channels (MR slices) concatenated to x_t
    out_channels: int = 1                 # target channels
    patch_size: int = 1                   # > 1: pixel-unshuffle stem, the UNet runs at image_size / patch_size
    stem_skip: bool = True                # with a stem: the per-patch linear skip of x_t (models/patch_stem.py)
    context_slices: int = 0               # 2.5-D: k adjacent condition slices on each side as extra channels

    @property
    def condition_channels(self) -> int:
        """Channels of the network's condition: each of `cond_channels` at the slice and its 2k neighbours."""
        return self.cond_channels * (1 + 2 * self.context_slices)


@dataclass(frozen=True)
class ProcessConfig:
    """Forward processes: DDPM (Ho 2020) and VE-SDE (Song 2021)."""

    num_steps: int = 1000                 # DDPM T
    beta_start: float = 1e-4
    beta_end: float = 0.02
    sigma: float = 25.0                   # VE-SDE sigma (g(t) = sigma**t)
    eps_train: float = 1e-5               # VE-SDE smallest training time
    eps_sample: float = 1e-3              # VE-SDE time where sampling stops
    ddpm_parametrisation: str = "eps"     # "eps" (study eq. 23), "v" (Salimans & Ho 2022: D's error bounded at high
    #                                     sigma) or "edm" (the VE model's preconditioning, sigma law and DSM weight on the
    #                                     DDPM's unscaled state: one recipe for both processes; precond.VPPreconditioned)
    ve_parametrisation: str = "edm"       # "edm" (Karras 2022 preconditioning) or "score-over-std" (Song: F / std(t))
    sigma_data: float = 0.0               # EDM sigma_data; 0 = the std of the training targets, measured at train start


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of all four methods (one loop)."""

    batch_size: int = 16
    lr: float = 1e-4                      # Adam, as in the study
    wgan_lr: float = 0.0                  # the WGAN-GP's generator and critic (0 = lr)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    diffusion_steps: int = 4000           # optimiser steps for ddpm / vesde (step budget)
    baseline_steps: int = 1500            # optimiser steps for cnn / wgan
    epoch_rule: bool = False              # the study's rule: >= min_epochs, stop on < 1 % drop vs 20-epoch mean
    min_epochs: int = 100
    rule_window: int = 20
    rule_min_drop: float = 0.01
    max_epochs: int = 10_000              # safety cap when epoch_rule is on
    ema_decay: float = 0.999              # EMA of the weights used for sampling (diffusion models)
    ddpm_loss_weighting: str = "eps"      # "eps" (study, eq. 23) or "min-snr-5" (Hang et al. 2023)
    dsm_weighting: str = "edm"            # VE DSM lambda: "edm" (unit weight on F) or "std2" (the study's lambda = std^2)
    sigma_distribution: str = "lognormal"  # VE training sigma: "lognormal" (EDM) or "uniform-t" (t ~ U(eps, 1), study)
    sigma_p_mean: float = -1.2            # lognormal: ln sigma ~ N(p_mean, p_std^2) (Karras 2022)
    sigma_p_std: float = 1.2
    bf16_autocast: bool | str | None = None  # bf16 autocast of the networks (losses in fp32): True / False; None: on
    #                                     a CUDA device with native bf16, off on CPU; "auto": where the device has
    #                                     native bf16 and a probe finds it faster (ctmri/precision.py, cached per
    #                                     machine); the environment variable CTMRI_PRECISION=fp32|bf16|auto overrides it
    channels_last: bool | None = None     # channels-last memory format of nets and batches (None: on CUDA, and on CPU
    #                                     in fp32 only, where it is faster; train/loop.py memory_format_channels_last)
    n_critic: int = 5                     # WGAN-GP critic steps per generator step
    gp_lambda: float = 10.0               # WGAN-GP gradient-penalty weight
    wgan_mse_weight: float = 100.0        # WGAN-GP generator MSE fidelity weight
    wgan_adv_ratio: float = 0.1           # adversarial / fidelity gradient ratio at the last layer (0: the fixed
    #                                     weight below; the ratio's weight grows with the fidelity error: ratio 1 ran away)
    wgan_adv_weight: float = 1.0          # fixed adversarial weight when wgan_adv_ratio is 0
    checkpoint_every: int = 500           # steps between checkpoints
    log_every: int = 10                   # steps between loss-log rows
    val_slices: int = 6                   # validation MAE at every checkpoint on this many validation slices (one per
    #                                     validation patient, centred; the method's default sampler, one sample each;
    #                                     train/validation.py): the convergence curve. 0: off
    seed: int = 0


@dataclass(frozen=True)
class SampleConfig:
    """Sampling, Monte-Carlo and the sampler budgets."""

    mc_samples: int = 10                  # MC replicates per test slice (study: 10)
    max_test_slices: int = 0              # slices of the "subset" evaluation set (long samplers); 0 = every test slice
    chunk_size: int = 256                 # samples forwarded together
    trajectory_every: int = 0             # record x_t every k steps for the chosen slices (0: ~10 frames)
    trajectory_slices: tuple[int, ...] = ()  # test-slice indices whose trajectory is kept; () = every evaluated slice
    sampler_steps: dict[str, int] = field(default_factory=dict)  # per-sampler step counts; absent: the
    #                                     sampler's registry default (diffusion/registry.py, e.g. ddpm 1000, em 1000, pc 500)
    pc_corrector_steps: int = 1           # Langevin corrector steps per predictor step (study: 500 + 500)
    snr: float = 0.16                     # Langevin corrector signal-to-noise ratio
    ode_rtol: float = 1e-5                # probability-flow ODE, RK45
    ode_atol: float = 1e-5
    clip_x0: bool = True                  # DDPM family: clip x0_hat to [-1, 1] (Ho et al.'s code: clip_denoised)
    noise_removal: bool = True            # VE EM / PC / ODE end with one Tweedie denoising step at eps (Song 2021 code)
    seed: int = 0                         # base seed of the MC generators


@dataclass(frozen=True)
class DoseConfig:
    """The dose stage (06_dose, lib/ctmri/dose; issue 18): plans on the CT recomputed on the sCTs (pyRadPlan)."""

    grid_mm: float = 5.0                  # isotropic dose grid (3 mm: photon dij 13 s, opt 37 s, forward 17 s per patient)
    photon_beams: int = 5                 # coplanar equidistant photon beams (0°, 72°, …)
    proton_angles: tuple[float, ...] = (90.0, 270.0)  # two lateral proton fields
    bixel_mm: float = 5.0                 # bixel width / spot spacing
    fraction_gy: float = 3.0              # prescription per fraction to the PTV (60 Gy in 20 fractions, CHHiP)
    ptv_margin_mm: float = 7.0            # PTV = prostate (+ peripheral zone) grown by this margin
    z_margin_mm: float = 15.0             # dose computed on the slices of the PTV +- this margin (the z-crop)
    mc_doses: int = 5                     # MC samples of the default sampler dosed one by one (0: MC means only)
    gamma_points: int = 4000              # gamma evaluated on this many random reference points (0: all; pymedphys)


@dataclass(frozen=True)
class Profile:
    """One complete setting of the study."""

    name: str
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    process: ProcessConfig = field(default_factory=ProcessConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    dose: DoseConfig = field(default_factory=DoseConfig)

    def steps_for(self, method: str) -> int:
        """Optimiser-step budget of one method."""
        check_method(method)
        return self.train.diffusion_steps if method in ("ddpm", "vesde") else self.train.baseline_steps

    def to_dict(self) -> dict:
        return asdict(self)


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; expected one of {', '.join(METHODS)}.")
    return method


SMOKE = Profile(
    name="smoke",
    data=DataConfig(image_size=16, n_patients=3, n_test_patients=1, slices_per_patient=0,
                    phantom_shape=(8, 48, 48), phantom_spacing=(10.0, 8.0, 8.0), n_val_patients=1),
    model=ModelConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1),
    train=TrainConfig(batch_size=4, diffusion_steps=20, baseline_steps=10, n_critic=2,
                      checkpoint_every=10, log_every=2, ema_decay=0.9),
    sample=SampleConfig(mc_samples=2, max_test_slices=2, pc_corrector_steps=1, ode_rtol=1e-2, ode_atol=1e-2,
                        sampler_steps={"ddpm": 10, "ddim": 5, "dpm++2m": 5, "em": 10, "pc": 5, "heun": 4}),
)

# The cpu study: 3 mm pixels (128² over 384 mm) and 3 mm slices, whole test volumes, on 2 CPU cores. A 4x
# pixel-unshuffle stem (models/patch_stem.py; the critic too), the 2.5-D condition, lr 1e-3 (WGAN-GP 2e-4), one EDM
# recipe for both diffusion processes, equal budgets of 3000 steps of 16 images, precision "auto", the long samplers
# on a 6-slice subset, 6 validation patients for the calibration. Why each of these, with the measurements:
# docs/RESULTS.md, "Why the cpu profile is set as it is".
CPU = Profile(
    name="cpu",
    data=DataConfig(image_size=128, n_patients=10, n_test_patients=2, slices_per_patient=0,
                    phantom_shape=(40, 128, 128), phantom_spacing=(3.0, 3.0, 3.0), misregistration_mm=2.0,
                    n_val_patients=6),
    model=ModelConfig(base_channels=24, channel_mults=(1, 2, 4), num_res_blocks=1, patch_size=4, context_slices=1),
    process=ProcessConfig(ddpm_parametrisation="edm"),
    # WGAN-GP: a fixed adversarial weight 0.08 (fidelity 100), one critic step per generator step: the weight where
    # the generator shows detail (benchmarks/results/wgan_adversarial.md; 0.04 / 0.06 stay smooth CNNs).
    train=TrainConfig(batch_size=16, lr=1e-3, wgan_lr=2e-4, diffusion_steps=3000, baseline_steps=3000, n_critic=1,
                      wgan_adv_ratio=0.0, wgan_adv_weight=0.08, ddpm_loss_weighting="eps", checkpoint_every=500,
                      log_every=20, bf16_autocast="auto"),
    sample=SampleConfig(mc_samples=10, max_test_slices=6, pc_corrector_steps=1, ode_rtol=1e-4, ode_atol=1e-4,
                        sampler_steps={"ddpm": 250, "ddim": 20, "dpm++2m-sde": 20}),
)

# The previous cpu study, kept as the quick one: 12 mm pixels (32²) on 16 slices per patient spaced through the
# body; the demo's weights come from it. Why each setting: docs/RESULTS.md, "Why the cpu32 profile is set as it is".
CPU32 = Profile(
    name="cpu32",
    data=DataConfig(image_size=32, n_patients=10, n_test_patients=2, slices_per_patient=16,
                    phantom_shape=(24, 96, 96), phantom_spacing=(5.0, 4.0, 4.0)),
    model=ModelConfig(base_channels=24, channel_mults=(1, 2, 4), num_res_blocks=1),
    train=TrainConfig(batch_size=16, lr=2e-4, diffusion_steps=4500, baseline_steps=1000, n_critic=2,
                      ddpm_loss_weighting="min-snr-5", checkpoint_every=500, log_every=20, bf16_autocast=False),
    sample=SampleConfig(mc_samples=10, max_test_slices=12, pc_corrector_steps=1, ode_rtol=1e-4, ode_atol=1e-4,
                        sampler_steps={"ddpm": 250}),
)

# `make demo`: ten minutes from clone to a real reverse diffusion on 2 cores, with no training: the cpu32
# profile's data and networks, and the cpu32 study's DDPM weights committed in weights/demo/ (fp16 EMA,
# `models.checkpoints.export_weights`, provenance inside). 4 test slices x 4 MC replicates, 100 ancestral
# steps, ~21 recorded frames.
DEMO = replace(CPU32, name="demo",
               sample=replace(CPU32.sample, mc_samples=4, max_test_slices=4, trajectory_every=5,
                              sampler_steps={"ddpm": 100, "ddim": 20, "dpm++2m": 10, "em": 100, "pc": 50, "heun": 10}))

GPU = Profile(
    name="gpu",
    data=DataConfig(image_size=256, n_patients=19, n_test_patients=2, slices_per_patient=48,
                    phantom_shape=(48, 256, 256), phantom_spacing=(2.5, 1.75, 1.75)),
    model=ModelConfig(base_channels=64, channel_mults=(1, 1, 2, 2, 4, 4), num_res_blocks=2,
                      attention_resolutions=(16,), dropout=0.1),
    train=TrainConfig(batch_size=8, diffusion_steps=100_000, baseline_steps=20_000, checkpoint_every=5000,
                      log_every=50),
    sample=SampleConfig(mc_samples=10, pc_corrector_steps=1, chunk_size=64),
)

# `make gpu-check`: every stage of the gpu profile at 256² with its networks, at reduced steps, to find what breaks
# on a lent GPU before a real run (4 patients, 8 slices each, 2 MC on 4 test slices; times in stage_seconds.txt, GPU
# memory in gpu_memory.csv).
GPU_CHECK = replace(GPU, name="gpu-check",
                    data=replace(GPU.data, n_patients=4, n_test_patients=1, slices_per_patient=8),
                    train=replace(GPU.train, diffusion_steps=200, baseline_steps=100, checkpoint_every=100, log_every=10),
                    sample=replace(GPU.sample, mc_samples=2, max_test_slices=4,
                                   sampler_steps={"ddpm": 50, "em": 50, "pc": 25, "ddim": 10, "dpm++2m": 10, "heun": 10}))

PAPER = Profile(
    name="paper",
    data=DataConfig(image_size=512, n_patients=19, n_test_patients=2, slices_per_patient=0,
                    phantom_shape=(64, 512, 512), phantom_spacing=(2.5, 0.98, 0.98)),
    model=ModelConfig(base_channels=64, channel_mults=(1, 1, 2, 2, 4, 4), num_res_blocks=2,
                      attention_resolutions=(16,), dropout=0.1),
    train=TrainConfig(batch_size=2, lr=1e-4, epoch_rule=True, min_epochs=100, rule_window=20,
                      rule_min_drop=0.01, diffusion_steps=0, baseline_steps=0, checkpoint_every=5000,
                      log_every=50),
    sample=SampleConfig(mc_samples=10, pc_corrector_steps=1, chunk_size=16),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (SMOKE, DEMO, CPU32, CPU, GPU, GPU_CHECK, PAPER)}


def get_profile(name: str | Profile, **overrides) -> Profile:
    """Look a profile up by name; `overrides` replace whole sections (e.g. train=TrainConfig(...))."""
    if isinstance(name, Profile):
        profile = name
    elif name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}; expected one of {', '.join(PROFILES)}.")
    else:
        profile = PROFILES[name]
    return replace(profile, **overrides) if overrides else profile


# Checkpoints written before the sampler registry kept one steps field per sampler; they map onto `sampler_steps`.
LEGACY_STEP_FIELDS = {"ddpm_steps": ("ddpm",), "ddim_steps": ("ddim",), "dpm_steps": ("dpm++2m",),
                      "em_steps": ("em",), "pc_steps": ("pc",), "heun_steps": ("heun",),
                      "fast_steps": ("dpm++2m-ve", "dpm++2m-sde", "heun-churn")}


def _legacy_sample_section(values: dict) -> dict:
    """A stored SampleConfig dict with its legacy per-sampler steps fields folded into `sampler_steps`."""
    values = dict(values)
    steps = dict(values.get("sampler_steps") or {})
    for old, samplers in LEGACY_STEP_FIELDS.items():
        if old in values:
            value = values.pop(old)
            for name in samplers:
                steps.setdefault(name, int(value))
    values["sampler_steps"] = steps
    return values


def profile_from_dict(d: dict) -> Profile:
    """Rebuild a Profile from `Profile.to_dict()` (lists back to tuples), as stored in a checkpoint."""
    def section(cls, values: dict):
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names})

    return Profile(name=d["name"], data=section(DataConfig, d["data"]), model=section(ModelConfig, d["model"]),
                     process=section(ProcessConfig, d["process"]), train=section(TrainConfig, d["train"]),
                     sample=section(SampleConfig, _legacy_sample_section(d["sample"])))
