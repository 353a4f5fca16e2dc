"""One training run's state (model, EMA, optimizer, data) and its step (EDM recipe, Karras et al. 2022).

One step: take the global batch (:mod:`.batches`), this process's part of it, each sample's
noise level, noise, label-dropout coin, mirror coin and augmentation draws from the seed rule
(:mod:`imagegen.noise`), mirror or augment the images (with ``augment > 0``, EDM's
non-leaking augmentation, :mod:`imagegen.augment`, whose labels condition the network), an
Adam step on the denoising loss (:mod:`imagegen.losses`), then the EMA of the weights.
Every random draw is a function of the seed, the step and the sample's position in the
global batch, so ``--resume`` continues exactly where an uninterrupted run would be, and
the trajectory does not depend on threads, devices or the number of processes (up to float
rounding).

Parallelism: under torchrun the model is wrapped in DistributedDataParallel and each rank
trains on its part of the global batch. A single CPU process can instead split its batch
into ``batch_shards`` parts whose passes run at once on Python threads with one torch thread
each (gradients summed); that is the CPU path only, never combined with DDP or CUDA. EMA
follows EDM's ``ema_halflife_kimg`` with a ramp-up (half-life <= ``ema_rampup`` x images seen).
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ..augment import AUGMENT_DIM, augment_images, sample_augmentation
from ..checkpoint import Checkpoint, prune_checkpoints, save_checkpoint
from ..config import RunConfig, TrainConfig
from ..device import autocast, autocast_dtype, prepare_network
from ..distributed import World
from ..errors import ImagegenError
from ..generate import make_grid, sample, save_png
from ..losses import DenoisingLoss
from ..models.registry import build_denoiser
from ..noise import training_noise
from .batches import ImageBatches, batch_indices, rank_positions
from .schedule import lr_at


@torch.no_grad()
def ema_step(ema: torch.nn.Module, model: torch.nn.Module, batch: int, halflife_images: float) -> None:
    """Move ``ema``'s weights towards ``model``'s by one step of ``batch`` images, with the
    given half-life in images; buffers are copied."""
    beta = 0.5 ** (batch / max(halflife_images, 1e-8))
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1.0 - beta)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def validate(tc: TrainConfig) -> None:
    """Reject impossible training settings with a message that says what to change."""
    checks = [
        (tc.budget_seconds >= 0, "budget_seconds must be >= 0"),
        (tc.steps >= 0, "steps must be >= 0"),
        (tc.budget_seconds > 0 or tc.steps > 0, "set a time budget (--budget 10m) or a step count (--steps N)"),
        (tc.batch_size >= 1, "batch_size must be >= 1"),
        (tc.lr > 0, "lr must be > 0"),
        (0 <= tc.warmup_fraction < 1, "warmup_fraction must be in [0, 1)"),
        (0 <= tc.label_dropout < 1, "label_dropout must be in [0, 1)"),
        (tc.p_std > 0, "p_std must be > 0"),
        (tc.p_std_low >= 0, "p_std_low must be >= 0 (0: the same as p_std)"),
        (tc.ema_halflife_kimg >= 0, "ema_halflife_kimg must be >= 0"),
        (0 <= tc.batch_shards <= tc.batch_size, "batch_shards must be between 0 (auto) and the batch size"),
        (tc.xflip == -1 or 0 <= tc.xflip <= 1, "xflip must be a probability in [0, 1], or -1 (auto)"),
        (0 <= tc.augment <= 1, f"augment must be a probability in [0, 1] (EDM used 0.12-0.15; 0 = off), "
                               f"got {tc.augment}"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ImagegenError(f"bad training setting: {msg}")


def check_augment(config: RunConfig) -> None:
    """Refuse augmentation where it cannot work: on latents (it transforms pictures), or with
    a network whose augment-label inputs (``model.augment_dim``) do not match the setting."""
    tc, mc = config.train, config.model
    if tc.augment > 0 and mc.space != "pixel":
        raise ImagegenError("augmentation (--augment) transforms pictures and cannot train a latent-space run; "
                            "add --space pixel to augment, or drop --augment")
    want = AUGMENT_DIM if tc.augment > 0 else 0
    if mc.augment_dim != want:
        raise ImagegenError(f"model.augment_dim = {mc.augment_dim} does not match train.augment = {tc.augment}: "
                            f"set augment_dim = {want} (the network's augment-label inputs)")


def xflip_probability(tc: TrainConfig, channels: int, space: str = "pixel") -> float:
    """The probability of mirroring a training image: ``tc.xflip``, or in auto mode (-1)
    0.5 for colour data sets and 0 for gray ones and for latents (a mirrored latent is not
    the latent of the mirrored picture).

    With augmentation (``tc.augment > 0``) the mirror is the augmentation's x-flip, applied
    once and recorded in the augment labels, so it does not leak into samples; auto mode then
    mirrors gray data sets too, with the augmentation's probability.
    """
    if tc.xflip >= 0:
        return tc.xflip
    if space != "pixel":
        return 0.0
    return 0.5 if channels > 1 else tc.augment


def auto_shards(tc: TrainConfig, threads: int) -> int:
    """How many shards one CPU process splits each batch into (see ``TrainConfig.batch_shards``)."""
    if tc.batch_shards:
        return tc.batch_shards
    return threads if 2 <= threads <= 4 and tc.batch_size >= 8 * threads else 1


def _check_world(tc: TrainConfig, w: World, num_images: int, device: torch.device) -> None:
    if not w.distributed:
        return
    if w.size > num_images:
        raise ImagegenError(f"{w.size} processes but the data set holds only {num_images} images; "
                            f"start at most {num_images} processes (torchrun --nproc_per_node)")
    if w.size > tc.batch_size:
        raise ImagegenError(f"the global batch of {tc.batch_size} cannot be split over {w.size} processes; "
                            f"use --batch-size {w.size} or more, or fewer processes")
    if tc.batch_shards > 1:
        raise ImagegenError("batch_shards splits a batch over threads of one CPU process; under torchrun each "
                            "process trains its own part of the batch: set batch_shards = 0 or 1")


class Trainer:
    """Holds the model, EMA, optimizer and data of one run; ``train_step()`` takes one step.

    Example:
        >>> tr = Trainer(config, Path("runs/x"), ds.images, ds.labels)  # doctest: +SKIP
        >>> loss = tr.train_step()  # doctest: +SKIP
    """

    def __init__(self, config: RunConfig, out: Path, images: np.ndarray, labels: np.ndarray | None, *,
                 device: torch.device | None = None, precision: str = "auto", compile: bool = False,
                 world: World | None = None, decoder: Any = None) -> None:
        self.config, self.out = config, out
        tc, mc = config.train, config.model
        validate(tc)
        check_augment(config)
        self.world = world or World()
        self.device = device or torch.device("cpu")
        self.precision = precision
        self.amp = autocast_dtype(precision, self.device)
        _check_world(tc, self.world, len(images), self.device)
        self.x = ImageBatches(images)
        self.xflip = xflip_probability(tc, mc.channels, mc.space)
        self.augment = tc.augment
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)) if (labels is not None and mc.num_classes) else None
        torch.manual_seed(tc.seed)  # parameter initialisation only, on the CPU: the same on every device
        model = build_denoiser(mc)
        self.ema = prepare_network(copy.deepcopy(model).eval().requires_grad_(False), self.device)
        if decoder is not None:  # a latent model's autoencoder: grids and FID checks decode
            self.ema.attach_decoder(decoder.to(self.device).decode)
        self.model = prepare_network(model, self.device, compile=compile)
        self.ddp = None
        if self.world.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=tc.lr, betas=(0.9, 0.99), eps=1e-8,
                                    weight_decay=tc.weight_decay, foreach=True)
        self.loss_fn = DenoisingLoss(self.model.precond, mc.num_classes, tc.p_mean, tc.p_std,
                                     tc.label_dropout if self.labels is not None else 0.0, tc.p_std_low)
        self.step, self.nimg, self.elapsed = 0, 0, 0.0
        cpu_alone = self.device.type == "cpu" and not self.world.distributed
        self.shards = auto_shards(tc, torch.get_num_threads()) if cpu_alone else 1
        self.pool = None
        if self.shards > 1:  # worker threads with one torch thread each; the caller's setting stays
            self.pool = ThreadPoolExecutor(self.shards, thread_name_prefix="imagegen-shard",
                                           initializer=torch.set_num_threads, initargs=(1,))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    # ---------------------------------------------------------------- state
    def restore(self, ck: Checkpoint) -> None:
        """Continue from a checkpoint (written by any device or number of processes)."""
        self.model.load_state_dict(ck.model)
        self.ema.load_state_dict(ck.ema)
        if ck.optim_path.is_file():
            self.opt.load_state_dict(torch.load(ck.optim_path, weights_only=True, map_location="cpu"))
        self.step, self.nimg, self.elapsed = ck.step, ck.nimg, ck.elapsed

    def save(self) -> Path:
        """Write a checkpoint (call on rank 0 only) and prune old ones."""
        pos = {"step": self.step, "nimg": self.nimg, "elapsed": self.elapsed}
        path = save_checkpoint(self.out, self.config, self.model, self.ema, self.opt, pos)
        prune_checkpoints(self.out, self.config.train.keep_checkpoints)
        return path

    # ---------------------------------------------------------------- one step
    def progress(self) -> float:
        tc = self.config.train
        fracs = []
        if tc.steps:
            fracs.append(self.step / tc.steps)
        if tc.budget_seconds:
            fracs.append(self.elapsed / tc.budget_seconds)
        return max(fracs)

    def local_batch(self) -> tuple[torch.Tensor, torch.Tensor | None, Any, torch.Tensor | None]:
        """This process's images, labels, noise and augment labels (None without augmentation)
        for the current step, on its device."""
        tc, w = self.config.train, self.world
        idx = batch_indices(len(self.x), tc.batch_size, self.step, tc.seed)
        positions = rank_positions(len(idx), w.rank, w.size)
        rows = idx[positions]
        x = self.x[rows].to(self.device, non_blocking=True)
        lab = self.labels[rows].to(self.device, non_blocking=True) if self.labels is not None else None
        noise = training_noise(tc.seed, self.step, positions.tolist(), x.shape[1:], augment=self.augment > 0)
        flip, aug_labels = noise.flip < self.xflip, None
        if self.augment > 0:  # the mirror is the augmentation's; transforms chosen on the CPU, as the draws
            aug = sample_augmentation(noise.augment, self.augment, flip, x.shape[-2:])
            x, aug_labels = augment_images(x, aug)
        elif self.xflip > 0:
            x = torch.where(flip.to(self.device)[:, None, None, None], x.flip(-1), x)
        return x, lab, noise._replace(augment=None).to(self.device), aug_labels

    def train_step(self) -> float:
        """One optimizer step on the global batch; returns the mean loss of this process's part."""
        tc = self.config.train
        x, lab, noise, aug_labels = self.local_batch()
        lr = lr_at(tc, self.progress())
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        forward = self.ddp if self.ddp is not None else self.model
        # DDP averages the ranks' gradients, so each rank scales its sum by world / batch:
        # the average is then the gradient of the global batch mean
        scale = self.world.size / tc.batch_size
        shards = torch.arange(len(x)).tensor_split(self.shards)

        def backward(j: int) -> float:
            rows = shards[j]
            extra = {} if aug_labels is None else {"augment_labels": aug_labels[rows]}
            with autocast(self.device, self.amp):
                part = self.loss_fn(forward, x[rows], None if lab is None else lab[rows], noise.take(rows), **extra)
            loss = part.sum() * scale
            loss.backward()
            return float(loss.detach())

        if self.pool is None:
            loss = sum(backward(j) for j in range(self.shards))
        else:  # gradients of the shards accumulate into .grad (a + b: the same in either order)
            loss = sum(self.pool.map(backward, range(self.shards)))
        self.opt.step()
        self.step += 1
        self.nimg += tc.batch_size
        self.update_ema()
        return loss

    def update_ema(self) -> None:
        tc = self.config.train
        halflife = min(tc.ema_halflife_kimg * 1000, self.nimg * tc.ema_rampup)
        ema_step(self.ema, self.model, tc.batch_size, halflife)

    def sample_grid(self, path: Path) -> None:
        """A progress grid of the EMA model: 10 per class, or 64 (rank 0 only)."""
        mc = self.config.model
        per = 10 if mc.num_classes else 64
        labels = [c for c in range(mc.num_classes) for _ in range(per)] if mc.num_classes else None
        n = len(labels) if labels else per
        imgs = sample(self.ema, list(range(n)), labels, self.config.sample, 100, precision=self.precision)
        save_png(path, make_grid(imgs, per if mc.num_classes else 8))

    def done(self) -> bool:
        tc = self.config.train
        return (tc.steps > 0 and self.step >= tc.steps) or (tc.budget_seconds > 0 and self.elapsed >= tc.budget_seconds)

