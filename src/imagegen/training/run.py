"""``imagegen.train``: settle a run's config, set up device and processes, and train.

A run's config comes from one of three places, and overrides apply on top of it:

- a new run without a config: the defaults (:mod:`imagegen.config`) for the data set's size,
  channels and classes;
- a new run with a config (a ``RunConfig`` or a TOML file): that config;
- ``resume=True``: the config stored in the run's latest checkpoint.

Overrides are ``budget``/``steps`` (giving either replaces both limits; an unset one means
"no limit"), ``preset``, ``conditional`` and any :class:`~imagegen.config.TrainConfig` field.
On a resumed run only the limits and the settings that do not change the trained model
(``RESUMABLE``) may differ from the stored config; anything else is refused, naming the
fix, because it would silently turn the run into another one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

from ..augment import AUGMENT_DIM
from ..checkpoint import latest_checkpoint, load_checkpoint
from ..config import ModelConfig, RunConfig, TrainConfig
from ..data import load_dataset
from ..device import autocast_dtype, resolve_device
from ..distributed import barrier, init
from ..errors import ImagegenError
from ..features.latents import cached_latents
from ..models.presets import check_preset, noise_shift_for, preset_for, space_for
from .latent_space import default_autoencoder, save_run_autoencoder, to_space, training_autoencoder
from .fid_monitor import FidMonitor, fid_interval
from .loop import run_loop
from .schedule import parse_duration
from .trainer import Trainer, check_augment, validate

# TrainConfig fields a resumed run may change: limits, bookkeeping and machine settings.
RESUMABLE = frozenset({"budget_seconds", "steps", "sample_every_seconds", "checkpoint_every_seconds",
                       "keep_checkpoints", "threads", "batch_shards", "fid_every_seconds", "fid_samples",
                       "fid_steps"})
_MODEL_OVERRIDES = ("preset", "conditional", "space")
_TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
# Fewer training images than this are refused unless ``allow_small``: a generator trained on a
# handful of pictures reproduces them (every sample a near-copy), so it is almost never what
# the user meant; 64 is also one default batch of distinct images.
MIN_TRAIN_IMAGES = 64


def check_dataset_size(data: str | Path, n: int, side: int, allow_small: bool) -> None:
    """Refuse a data set of fewer than :data:`MIN_TRAIN_IMAGES` images, naming both fixes."""
    if n < 1:
        raise ImagegenError(f"data set {data} holds no images; import some with `imagegen data import`")
    if n < MIN_TRAIN_IMAGES and not allow_small:
        raise ImagegenError(
            f"data set {data} has {n} images of {side}x{side}, too few to learn a generator from (it would only "
            f"copy them); import at least {MIN_TRAIN_IMAGES}, or pass --allow-small to train on these anyway")


def with_limits(tc: TrainConfig, budget: str | float | None, steps: int | None) -> TrainConfig:
    """``tc`` with a new time budget and step count; an unset one becomes "no limit" (0)."""
    return replace(tc, budget_seconds=parse_duration(budget) if budget is not None else 0.0, steps=int(steps or 0))


def _check_override_names(overrides: dict[str, Any]) -> None:
    known = ("budget", "steps", *_MODEL_OVERRIDES, *_TRAIN_FIELDS)
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ImagegenError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(known)}")


def apply_overrides(config: RunConfig, data: str | Path, num_classes: int,
                    **overrides: Any) -> RunConfig:
    """``config`` with ``overrides`` (None values ignored) applied; see the module docstring.

    Example:
        >>> cfg = apply_overrides(RunConfig(data="d"), "d", 10, budget="1m", lr=1e-3)
        >>> cfg.train.budget_seconds, cfg.train.lr
        (60.0, 0.001)
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    _check_override_names(overrides)
    tc = config.train
    budget, steps = overrides.pop("budget", None), overrides.pop("steps", None)
    if budget is not None or steps is not None:
        tc = with_limits(tc, budget, steps)
    mc = config.model
    if "space" in overrides:
        space = overrides.pop("space")
        if space != mc.space:
            mc = to_space(mc, data, space)
    if "preset" in overrides:
        check_preset(overrides["preset"])
        mc = replace(mc, preset=overrides.pop("preset"))
    if "conditional" in overrides:
        mc = replace(mc, num_classes=num_classes if overrides.pop("conditional") else 0)
    tc = replace(tc, **overrides)
    # the network takes augment labels exactly when the run trains with augmentation
    mc = replace(mc, augment_dim=AUGMENT_DIM if tc.augment > 0 else 0)
    return replace(config, data=str(data), model=mc, train=tc)


def make_config(data: str | Path, **overrides: Any) -> RunConfig:
    """The default RunConfig for a prepared data set, with ``overrides`` applied.

    Example:
        >>> cfg = make_config("data/mnist5k", budget="10m", batch_size=64)
    """
    _check_override_names({k: v for k, v in overrides.items() if v is not None})
    ds = load_dataset(data)
    preset = overrides.get("preset") or preset_for(ds.resolution, ds.channels)
    check_preset(preset)
    mc = ModelConfig(preset=preset, resolution=ds.resolution, channels=ds.channels, num_classes=ds.num_classes,
                     noise_shift=noise_shift_for(ds.resolution))
    return apply_overrides(RunConfig(data=str(data), model=mc), data, ds.num_classes, **overrides)


def _default_space(data: str | Path, side: int, overrides: dict[str, Any], progress: bool) -> dict[str, Any]:
    """``overrides`` for a new run without a config: latent space when it is the default for
    ``side`` and neither ``space`` nor ``preset`` was chosen, its autoencoder trained first
    when missing, within the time budget (the budget left for the denoiser shrinks by the time
    spent; a run limited by steps alone trains the autoencoder for its default minutes)."""
    if overrides.get("space") is not None or overrides.get("preset") is not None or space_for(side) != "latent":
        return overrides
    if (overrides.get("augment") or 0) > 0:  # refused before any autoencoder is trained
        raise ImagegenError(f"augmentation (--augment) transforms pictures, and {side} px pictures train in latent "
                            "space by default; add --space pixel to augment, or drop --augment")
    budget, steps = overrides.get("budget"), overrides.get("steps")
    seconds = parse_duration(budget) if budget is not None else (0.0 if steps else TrainConfig().budget_seconds)
    threads = overrides.get("threads")
    spent = default_autoencoder(data, seconds, threads=threads if threads else None, progress=progress)
    out = {**overrides, "space": "latent"}
    if seconds > 0:
        if seconds - spent < 1.0:
            raise ImagegenError(f"the autoencoder took {spent:.0f}s of the {seconds:.0f}s budget and left none for "
                                "the denoiser; give a larger --budget (it is kept for the next run)")
        out["budget"] = seconds - spent
    return out


def _check_resume(stored: RunConfig, wanted: RunConfig, out: Path) -> None:
    """Refuse a resumed config that differs from the stored one in anything but RESUMABLE settings."""
    changes = []
    for section in ("model", "sample"):
        a, b = dataclasses.asdict(getattr(stored, section)), dataclasses.asdict(getattr(wanted, section))
        changes += [(f"{section}.{k}", a[k], b[k]) for k in a if a[k] != b[k]]
    a, b = dataclasses.asdict(stored.train), dataclasses.asdict(wanted.train)
    changes += [(f"train.{k}", a[k], b[k]) for k in a if a[k] != b[k] and k not in RESUMABLE]
    changes.sort(key=lambda c: c[0] == "model.augment_dim")  # follows train.augment: name that first
    if changes:
        name, was, now = changes[0]
        raise ImagegenError(f"{name} = {now!r} conflicts with the resumed run in {out}, which was trained with "
                            f"{name} = {was!r}; drop that setting to continue the run, or start a new run "
                            "with another --out")


def fid_monitor_for(config: RunConfig, out: Path, *, progress: bool, precision: str) -> FidMonitor:
    """The training-time check of a run, in the features of ``imagegen evaluate --features auto``:
    the data set's evaluator (trained first if the data set has none) for a labelled data set,
    Inception-v3 for an unlabeled one, with the reference features ``imagegen evaluate``
    caches; data sets of fewer than ``NEAR_COPY_MAX_IMAGES`` images also get the near-copy
    share (:mod:`imagegen.training.fid_monitor`)."""
    from ..evaluation import reference_features
    from ..evaluation.pipeline import resolve_features
    from ..features import load_evaluator
    from ..metrics import gaussian_stats
    from .fid_monitor import NEAR_COPY_MAX_IMAGES, fid_sample_count

    ds = load_dataset(config.data)
    if resolve_features("auto", ds.labels is not None) == "evaluator":
        extractor: Any = load_evaluator(config.data, train_if_missing=True, progress=progress)
        name = extractor.arch
    else:
        from ..features.inception import InceptionFeatures

        extractor, name = InceptionFeatures.load(), "inception"
    mu, sigma = gaussian_stats(reference_features(config.data, extractor, name, progress=progress))
    sc = replace(config.sample, cfg=1.0, steps=config.train.fid_steps)
    return FidMonitor(extractor, mu, sigma, samples=fid_sample_count(config, name), sample_config=sc, run=out,
                      precision=precision, features=name,
                      train_images=ds.images if len(ds) < NEAR_COPY_MAX_IMAGES else None)


def train(
    data: str | Path,
    out: str | Path,
    *,
    config: RunConfig | str | Path | None = None,
    resume: bool = False,
    device: str = "auto",
    precision: str = "auto",
    compile: bool = False,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    allow_small: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Train a model on a prepared data set into the run folder ``out``.

    Stops at the time budget or step count, whichever comes first; Ctrl-C saves a
    checkpoint first. ``config`` is a RunConfig or a TOML file; ``overrides`` (``budget``,
    ``steps``, ``preset``, ``conditional``, ``batch_size``, ``lr``, ``seed``, ...) apply on top
    of it. Data sets of fewer than :data:`MIN_TRAIN_IMAGES` images are refused unless
    ``allow_small``. ``resume=True`` continues from the latest checkpoint in ``out`` (a new
    ``budget``/``steps`` extends it). ``device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    Under torchrun every process calls this; rank 0 writes. Returns a summary dict.

    Example:
        >>> imagegen.train("data/mnist5k", "runs/mnist", budget="10m")
        >>> imagegen.train("data/mnist5k", "runs/fast", config="my.toml", lr=1e-3, device="cuda")
    """
    dev = resolve_device(device)  # bad device settings fail before any work
    autocast_dtype(precision, dev)
    out = Path(out)
    latest = latest_checkpoint(out)
    if resume and latest is None:
        raise ImagegenError(f"--resume: no checkpoint in {out / 'checkpoints'}; start without --resume")
    if not resume and latest is not None:
        raise ImagegenError(f"{out} already holds a trained run; pass --resume to continue it or choose another --out")
    ds = load_dataset(data)
    check_dataset_size(data, len(ds), ds.resolution, allow_small)
    if isinstance(config, (str, Path)):
        config = RunConfig.load(config)
    resumed = load_checkpoint(latest) if resume and latest is not None else None
    if config is None and resumed is None:
        config = make_config(data, **_default_space(data, ds.resolution, overrides, progress))
    else:
        base = config if config is not None else resumed.config  # type: ignore[union-attr]
        config = apply_overrides(base, data, ds.num_classes, **overrides)
        if resumed is not None:
            _check_resume(resumed.config, config, out)
    mc = config.model
    validate(config.train)  # before any latents are computed
    check_augment(config)
    if (ds.resolution, ds.channels) != (mc.resolution, mc.channels):
        raise ImagegenError(
            f"{data} holds {ds.resolution}x{ds.resolution}x{ds.channels} images but the run expects "
            f"{mc.resolution}x{mc.resolution}x{mc.channels}; use the data set the run was trained on"
        )
    threads_before = torch.get_num_threads()  # restored when training ends: callers keep their setting
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    images, ae = ds.images, None
    if mc.space == "latent":
        ae = training_autoencoder(mc, data)
        images = cached_latents(data, ae, progress=progress)
    w = init(dev)
    trainer = Trainer(config, out, images, ds.labels, device=dev, precision=precision, compile=compile, world=w,
                      decoder=ae)
    try:
        if resumed is not None:
            trainer.restore(resumed)
        monitor = None
        every = fid_interval(config, len(ds), ds.labels is not None and mc.num_classes > 0)
        if w.main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "samples").mkdir(exist_ok=True)
            config.save(out / "config.toml")
            if ae is not None:
                save_run_autoencoder(ae, out)
            if every > 0:
                monitor = fid_monitor_for(config, out, progress=progress, precision=precision)
        barrier()  # the other ranks wait while rank 0 prepares the run folder and the FID reference
        return run_loop(trainer, progress, on_step, monitor, every)
    finally:
        trainer.close()
        torch.set_num_threads(threads_before)
