"""Configuration: one frozen dataclass per concern, saved to and loaded from TOML.

Unknown keys are an error that lists the known ones; values are type-checked on load, so a
typo in ``config.toml`` fails loudly instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from .atomic import write_text
from .errors import ImagegenError


@dataclass(frozen=True)
class ModelConfig:
    """The network and its preconditioning: rectified flow (the default) or EDM (Karras et al. 2022)."""

    preset: str = "unet-28"  # a key of imagegen.models.presets.PRESETS
    resolution: int = 28
    channels: int = 1
    num_classes: int = 0  # 0: unconditional
    sigma_data: float = 0.5
    precond: str = "flow"  # "flow" (rectified flow, velocity target) or "edm" (Karras et al. 2022);
    # a config file whose [model] table has no `precond` predates flow and means "edm"
    arch: str = "unet"  # "unet" (GroupNorm residual UNet) or "mp-unet" (EDM2 magnitude-preserving)
    # every training and sampling noise level is multiplied by this; new runs take
    # imagegen.models.presets.noise_shift_for(resolution) (max(1, side / 32))
    noise_shift: float = 1.0
    # "pixel", or "latent": the network denoises the latents of the data set's own autoencoder
    # (imagegen features train-autoencoder; Rombach et al. 2022) and generation decodes them;
    # resolution and channels stay those of the images
    space: str = "pixel"
    latent_channels: int = 0  # latent space: the autoencoder's latent channels
    latent_factor: int = 0  # latent space: its spatial downsampling factor
    autoencoder_sha256: str = ""  # latent space: the autoencoder the run was trained with
    # augment labels the network is conditioned on (EDM's augment_dim): imagegen.augment.AUGMENT_DIM
    # when the run trains with augmentation (train.augment > 0), else 0; set with the config
    augment_dim: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, noise distribution, EMA and the wall-clock budget."""

    budget_seconds: float = 600.0  # 0 means: no time limit (then `steps` must be set)
    steps: int = 0  # 0 means: no step limit (then `budget_seconds` must be set)
    batch_size: int = 64
    lr: float = 2e-3
    warmup_fraction: float = 0.03
    final_lr_fraction: float = 0.05
    weight_decay: float = 0.0
    # ln(sigma) ~ N(p_mean, p_std^2): 0/1 is flow's logit-normal t (SD3); +0.4 shifts training
    # towards high noise, which beat 0 at equal steps for both training seeds tried (RESULTS.md,
    # recipe ablations). EDM's own choice is -1.2/1.2.
    p_mean: float = 0.4
    p_std: float = 1.0
    # > 0: ln(sigma) below p_mean spreads by this instead of p_std (a two-piece normal: more
    # training at low noise, the high-noise side unchanged); 0: the plain normal. 2.2 lowered
    # the digits' Inception FID from 48.1 to 40.2 at equal steps with the evaluator's FID
    # unchanged within its noise (RESULTS.md, issue 16); runs trained before keep 0 in config.toml.
    p_std_low: float = 2.2
    label_dropout: float = 0.1  # for classifier-free guidance
    # probability of mirroring a training image left-right (Karras et al. 2020/2022's x-flip,
    # non-leaking: a mirrored picture is still a picture of the data); -1 auto: 0.5 for colour
    # data sets, 0 for gray ones (digits and glyphs change meaning when mirrored)
    xflip: float = -1.0
    # probability of each geometric transform of EDM's non-leaking augmentation (Karras et al.
    # 2020/2022, imagegen.augment): x-flip, integer translation, isotropic scaling, rotation,
    # anisotropic scaling, with the network conditioned on the transform and sampling with "none".
    # EDM used 0.12 on CIFAR-10 and 0.15 elsewhere; 0 = off; pixel space only. With it the
    # x-flip above becomes the augmentation's (conditioned) flip instead of a plain one
    augment: float = 0.0
    ema_halflife_kimg: float = 10.0
    ema_rampup: float = 0.05  # half-life <= this x images seen (0.05 beat 0.1 and 0.25: RESULTS.md)
    seed: int = 0
    sample_every_seconds: float = 120.0
    checkpoint_every_seconds: float = 60.0
    keep_checkpoints: int = 2
    threads: int = 0  # 0: torch's default
    # Each batch is split into this many shards whose forward/backward passes run at once on
    # their own Python threads with one torch thread each (gradients summed); 1 = one pass
    # using torch's intra-op threads. 0 = auto: one shard per torch thread on machines with
    # 2-4 threads (1.17x faster on 2 cores, benchmarks/RESULTS.md), else 1.
    batch_shards: int = 0
    fid_every_seconds: float = -1.0  # FID during training: -1 auto (120 s for labeled sets of
    # <= 50,000 images; unlabeled sets: Inception within 10% of the budget, training/fid_monitor.py),
    # 0 off; its time does not count against the budget
    fid_samples: int = 0  # samples per training-time FID (the run's sampler, fid_steps steps, cfg 1);
    # 0 = auto: 256 with the evaluator, 128 with Inception
    fid_steps: int = 10


@dataclass(frozen=True)
class SampleConfig:
    """Defaults for generation (noise schedule, sampler, guidance)."""

    sampler: str = "dpmpp-2m"  # DPM-Solver++(2M): one network evaluation per step
    steps: int = 10
    # "karras" (EDM Eq. 5) or "linear-t" (uniform in flow time); "auto": the formulation's
    # default_schedule, karras for flow and EDM (measured: benchmarks/RESULTS.md, issue 16)
    schedule: str = "auto"
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    cfg: float = 1.5  # classifier-free guidance weight; 1 = plain conditional
    cfg_sigma_lo: float = 0.0  # guidance applies only for cfg_sigma_lo < sigma <= cfg_sigma_hi
    cfg_sigma_hi: float = 1000.0  # (Kynkaanniemi et al. 2024, "guidance in a limited interval")
    churn: float = 0.0  # EDM's S_churn (Algorithm 2) for the euler and heun samplers; 0 = deterministic ODE


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; stored as ``RUN/config.toml`` and in every checkpoint."""

    data: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def save(self, path: str | Path) -> None:
        write_text(path, self.to_toml())

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> "RunConfig":
        model = d.get("model") if isinstance(d, dict) else None
        if isinstance(model, dict) and "precond" not in model:
            # a [model] table without `precond` was written before rectified flow: it is EDM
            d = {**d, "model": {**model, "precond": "edm"}}
        train = d.get("train") if isinstance(d, dict) else None
        if isinstance(train, dict) and "p_std_low" not in train:
            # a [train] table without `p_std_low` was written before the two-piece normal
            d = {**d, "train": {**train, "p_std_low": 0.0}}
        return _build(cls, d, where)

    @classmethod
    def from_toml(cls, text: str, where: str = "config") -> "RunConfig":
        try:
            d = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ImagegenError(f"{where}: not valid TOML ({e}); fix the file or delete it") from None
        return cls.from_dict(d, where)

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        path = Path(path)
        if not path.is_file():
            raise ImagegenError(f"{path}: no such config file")
        return cls.from_toml(path.read_text(encoding="utf-8"), str(path))


def _build(cls: type, d: dict[str, Any], where: str) -> Any:
    if not isinstance(d, dict):
        raise ImagegenError(f"{where}: expected a table, got {type(d).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ImagegenError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(known)}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in d.items():
        f = known[name]
        default = getattr(cls(), name) if not dataclasses.is_dataclass(f.type) else None
        sub = {"model": ModelConfig, "train": TrainConfig, "sample": SampleConfig}.get(name)
        if cls is RunConfig and sub is not None:
            kwargs[name] = _build(sub, value, f"{where} [{name}]")
            continue
        kwargs[name] = _coerce(value, type(default), f"{where}: {name}")
    return cls(**kwargs)


def _coerce(value: Any, want: type, where: str) -> Any:
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is bool or isinstance(value, bool):
        if type(value) is not want:
            raise ImagegenError(f"{where}: expected {want.__name__}, got {value!r}")
        return value
    if not isinstance(value, want):
        raise ImagegenError(f"{where}: expected {want.__name__}, got {value!r}")
    return value
