"""Training for a wall-clock budget or a number of steps (EDM recipe, Karras et al. 2022).

One step: draw a batch (a per-epoch permutation seeded by ``(seed, epoch)``), draw noise
levels and noise from a generator seeded by ``(seed, step)``, take an Adam step on the EDM
loss, update the EMA of the weights. Every random draw is a function of the seed and the
step number, so ``--resume`` continues exactly where an uninterrupted run would be.

The learning rate warms up linearly, then follows a cosine down to ``final_lr_fraction``;
its clock is the fraction of the budget used (time for ``--budget``, steps for ``--steps``),
so a 2-minute run and a 10-minute run both end annealed. EMA follows EDM's
``ema_halflife_kimg`` with a ramp-up (half-life <= ``ema_rampup`` x images seen).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import sys
import time
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import Checkpoint, latest_checkpoint, load_checkpoint, prune_checkpoints, save_checkpoint
from .config import ModelConfig, RunConfig, TrainConfig
from .data import load_dataset
from .errors import ImagegenError
from .generate import make_grid, sample, save_png
from .fid_monitor import FidMonitor, fid_interval
from .losses import EDMLoss
from .models.unet import check_preset, denoiser_for, preset_for_resolution

IN_MEMORY_BYTES = 2 * 2**30  # uint8 training sets up to 2 GiB are read into RAM


def parse_duration(text: str | float | int) -> float:
    """``"10m"`` -> 600.0; accepts s, m, h suffixes or a plain number of seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    t = str(text).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if t and t[-1] in units:
            return float(t[:-1]) * units[t[-1]]
        return float(t)
    except ValueError:
        raise ImagegenError(f"cannot read duration {text!r}; write it like 90s, 10m or 1.5h") from None


def lr_at(tc: TrainConfig, frac: float) -> float:
    """Learning rate at training progress ``frac`` in [0, 1]: linear warm-up, then cosine."""
    frac = min(max(frac, 0.0), 1.0)
    if tc.warmup_fraction > 0 and frac < tc.warmup_fraction:
        return tc.lr * frac / tc.warmup_fraction
    t = (frac - tc.warmup_fraction) / max(1e-12, 1.0 - tc.warmup_fraction)
    lo = tc.lr * tc.final_lr_fraction
    return lo + (tc.lr - lo) * 0.5 * (1.0 + math.cos(math.pi * t))


@functools.lru_cache(maxsize=2)
def _epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def batch_indices(n: int, batch: int, step: int, seed: int) -> torch.Tensor:
    """Indices of ``step``'s batch: consecutive slices of per-epoch seeded permutations."""
    per_epoch = max(1, n // batch)
    epoch, k = divmod(step, per_epoch)
    perm = _epoch_permutation(n, seed, epoch)
    return perm[k * batch : (k + 1) * batch] if n >= batch else perm[torch.arange(batch) % n]


class ImageBatches:
    """Training batches from uint8 images (N, H, W, C): float (B, C, H, W) in [-1, 1].

    Data sets up to ``in_memory_bytes`` are read into RAM once (as uint8, a quarter of
    float32); larger ones stay memory-mapped (:class:`imagegen.data.dataset.ShardedImages`)
    and each batch reads only its own rows, so a data set larger than RAM trains.
    """

    def __init__(self, images: Any, in_memory_bytes: int = IN_MEMORY_BYTES) -> None:
        nbytes = int(np.prod(images.shape)) * np.dtype(images.dtype).itemsize
        self.streaming = nbytes > in_memory_bytes
        self.images = images if self.streaming else np.ascontiguousarray(np.asarray(images))
        self.shape = tuple(images.shape)

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        rows = np.ascontiguousarray(self.images[np.asarray(idx)])
        return torch.from_numpy(rows).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).contiguous()


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
        (tc.ema_halflife_kimg >= 0, "ema_halflife_kimg must be >= 0"),
        (0 <= tc.batch_shards <= tc.batch_size, "batch_shards must be between 0 (auto) and the batch size"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ImagegenError(f"bad training setting: {msg}")


def auto_shards(tc: TrainConfig, threads: int) -> int:
    """How many shards each batch is split into (see ``TrainConfig.batch_shards``)."""
    if tc.batch_shards:
        return tc.batch_shards
    return threads if 2 <= threads <= 4 and tc.batch_size >= 8 * threads else 1


class Trainer:
    """Holds the model, EMA, optimizer and data of one run; ``run()`` trains it."""

    def __init__(self, config: RunConfig, out: Path, images: np.ndarray, labels: np.ndarray | None):
        self.config, self.out = config, out
        tc, mc = config.train, config.model
        validate(tc)
        self.x = ImageBatches(images, IN_MEMORY_BYTES)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)) if (labels is not None and mc.num_classes) else None
        torch.manual_seed(tc.seed)  # parameter initialisation only
        self.model = denoiser_for(mc)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=tc.lr, betas=(0.9, 0.99), eps=1e-8, weight_decay=tc.weight_decay, foreach=True)
        self.loss_fn = EDMLoss(tc.p_mean, tc.p_std, tc.label_dropout if self.labels is not None else 0.0)
        self.step, self.nimg, self.elapsed = 0, 0, 0.0
        self.shards = auto_shards(tc, torch.get_num_threads())
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
        self.model.load_state_dict(ck.model)
        self.ema.load_state_dict(ck.ema)
        if ck.optim_path.is_file():
            self.opt.load_state_dict(torch.load(ck.optim_path, weights_only=True))
        self.step, self.nimg, self.elapsed = ck.step, ck.nimg, ck.elapsed

    def save(self) -> Path:
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

    def train_step(self) -> float:
        tc = self.config.train
        idx = batch_indices(len(self.x), tc.batch_size, self.step, tc.seed)
        x = self.x[idx]
        lab = self.labels[idx] if self.labels is not None else None
        lr = lr_at(tc, self.progress())
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        seed = tc.seed * 1_000_003 + 7919 * self.step + 1
        shards = torch.arange(len(x)).tensor_split(self.shards)

        def backward(j: int) -> float:
            # shard j's share of the batch-mean loss; noise and levels seeded by (seed, step, shard)
            rows = shards[j]
            gen = torch.Generator().manual_seed(seed + 104_729 * j)
            part = self.loss_fn(self.model, x[rows], None if lab is None else lab[rows], generator=gen)
            loss = part.sum() / len(x)
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
        mc = self.config.model
        per = 10 if mc.num_classes else 64
        labels = [c for c in range(mc.num_classes) for _ in range(per)] if mc.num_classes else None
        n = len(labels) if labels else per
        imgs = sample(self.ema, list(range(n)), labels, self.config.sample, (mc.channels, mc.resolution, mc.resolution), 100)
        save_png(path, make_grid(imgs, per if mc.num_classes else 8))

    def done(self) -> bool:
        tc = self.config.train
        return (tc.steps > 0 and self.step >= tc.steps) or (tc.budget_seconds > 0 and self.elapsed >= tc.budget_seconds)


def with_limits(tc: TrainConfig, budget: str | float | None, steps: int | None) -> TrainConfig:
    """``tc`` with a new time budget and step count; an unset one becomes "no limit" (0)."""
    return replace(tc, budget_seconds=parse_duration(budget) if budget is not None else 0.0, steps=int(steps or 0))


def make_config(data: str | Path, budget: str | float | None = None, steps: int | None = None, conditional: bool = True,
                preset: str | None = None, **train_overrides: Any) -> RunConfig:
    """The default RunConfig for a prepared data set, with a budget or step count.

    Example:
        >>> cfg = make_config("data/mnist5k", budget="10m", batch_size=64)
    """
    ds = load_dataset(data)
    num_classes = ds.num_classes if conditional else 0
    if preset is not None:
        check_preset(preset)
    mc = ModelConfig(preset=preset or preset_for_resolution(ds.resolution), resolution=ds.resolution, channels=ds.channels, num_classes=num_classes)
    tc = TrainConfig()
    if budget is not None or steps is not None:
        tc = with_limits(tc, budget, steps)
    try:
        tc = replace(tc, **train_overrides)
    except TypeError as e:
        raise ImagegenError(f"unknown training setting: {e}") from None
    return RunConfig(data=str(data), model=mc, train=tc)


def train(
    data: str | Path,
    out: str | Path,
    *,
    budget: str | float | None = None,
    steps: int | None = None,
    config: RunConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train a model on a prepared data set into the run folder ``out``.

    Stops at the time budget or step count, whichever comes first; Ctrl-C saves a
    checkpoint first. ``resume=True`` continues from the latest checkpoint in ``out`` (a new
    ``budget``/``steps`` extends it). Returns a summary dict.

    Example:
        >>> imagegen.train("data/mnist5k", "runs/mnist", budget="10m")
    """
    out = Path(out)
    latest = latest_checkpoint(out) if resume else None
    if resume and latest is None:
        raise ImagegenError(f"--resume: no checkpoint in {out / 'checkpoints'}; start without --resume")
    resumed = load_checkpoint(latest) if latest is not None else None
    if not resume and latest_checkpoint(out) is not None:
        raise ImagegenError(f"{out} already holds a trained run; pass --resume to continue it or choose another --out")
    if config is None:
        if resumed is not None:
            config = resumed.config
            if budget is not None or steps is not None:
                config = replace(config, train=with_limits(config.train, budget, steps))
        else:
            config = make_config(data, budget, steps)
    ds = load_dataset(data)
    mc = config.model
    if (ds.resolution, ds.channels) != (mc.resolution, mc.channels):
        raise ImagegenError(
            f"{data} holds {ds.resolution}x{ds.resolution}x{ds.channels} images but the run expects "
            f"{mc.resolution}x{mc.resolution}x{mc.channels}; use the data set the run was trained on"
        )
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    trainer = Trainer(config, out, ds.images, ds.labels)
    if resumed is not None:
        trainer.restore(resumed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples").mkdir(exist_ok=True)
    config.save(out / "config.toml")
    every = fid_interval(config, len(ds), ds.labels is not None and mc.num_classes > 0)
    monitor = FidMonitor(config, out, progress=progress) if every > 0 else None
    try:
        return _loop(trainer, progress, on_step, monitor, every)
    finally:
        trainer.close()


def _check_fid(tr: Trainer, monitor: FidMonitor, log: Any, checkpoint: Path | None = None) -> float:
    """Score the EMA model, log it, and keep the checkpoint when it is the best so far."""
    fid = monitor.score(tr.ema)
    log.write(json.dumps({"step": tr.step, "nimg": tr.nimg, "elapsed": round(tr.elapsed, 2),
                          "fid": round(fid, 4)}) + "\n")
    log.flush()
    if monitor.is_best(fid):
        monitor.mark_best(checkpoint or tr.save(), tr.step, fid)
    return fid


def _loop(tr: Trainer, show: bool, on_step: Callable[[int, float], None] | None,
          monitor: FidMonitor | None = None, fid_every: float = 0.0) -> dict[str, Any]:
    tc = tr.config.train
    log = open(tr.out / "metrics.jsonl", "a", encoding="utf-8")
    total = tc.steps if tc.steps and not tc.budget_seconds else None
    bar = tqdm(total=total or int(tc.budget_seconds), initial=tr.step if total else int(tr.elapsed), disable=not show,
               unit="step" if total else "s", file=sys.stderr, dynamic_ncols=True, leave=True,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
    start_step, start_elapsed = tr.step, tr.elapsed
    t_start = time.perf_counter() - tr.elapsed
    last_ckpt = last_sample = last_log = last_fid = tr.elapsed
    fid_text = ""
    losses: list[float] = []
    interrupted = False
    try:
        while not tr.done():
            loss = tr.train_step()
            losses.append(loss)
            tr.elapsed = time.perf_counter() - t_start
            if on_step is not None:
                on_step(tr.step, loss)
            if tr.elapsed - last_log >= 5 or tr.done():
                rate = (tr.step - start_step) * tc.batch_size / max(tr.elapsed - start_elapsed, 1e-9)
                rec = {"step": tr.step, "nimg": tr.nimg, "elapsed": round(tr.elapsed, 2), "loss": float(np.mean(losses)),
                       "lr": lr_at(tc, tr.progress()), "img_per_s": round(rate, 1)}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                bar.set_postfix_str(f"step {tr.step} loss {rec['loss']:.4f} {rate:.0f} img/s{fid_text}", refresh=False)
                losses.clear()
                last_log = tr.elapsed
            shown = tr.step if total else min(int(tr.elapsed), int(tc.budget_seconds))
            if shown > bar.n:
                bar.update(shown - bar.n)
            if tr.elapsed - last_sample >= tc.sample_every_seconds and not tr.done():
                t0 = time.perf_counter()
                tr.sample_grid(tr.out / "samples" / f"grid-{tr.step:08d}.png")
                t_start += time.perf_counter() - t0  # nor does sampling the progress grid
                last_sample = tr.elapsed
            if monitor is not None and tr.elapsed - last_fid >= fid_every and not tr.done():
                t0 = time.perf_counter()
                fid_text = f" FID {_check_fid(tr, monitor, log):.2f}"
                t_start += time.perf_counter() - t0  # FID time does not count against the budget
                last_fid = tr.elapsed
            if tr.elapsed - last_ckpt >= tc.checkpoint_every_seconds and not tr.done():
                tr.save()
                last_ckpt = tr.elapsed = time.perf_counter() - t_start
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    path = tr.save()
    fid = None
    try:
        if monitor is not None and not interrupted:
            fid = _check_fid(tr, monitor, log, checkpoint=path)
    finally:
        log.close()
    grid = tr.out / "samples" / f"grid-{tr.step:08d}.png"
    tr.sample_grid(grid)
    rate = (tr.step - start_step) * tc.batch_size / max(tr.elapsed - start_elapsed, 1e-9)
    return {"run": str(tr.out), "checkpoint": str(path), "grid": str(grid), "step": tr.step, "nimg": tr.nimg,
            "elapsed": tr.elapsed, "img_per_s": rate, "interrupted": interrupted, "fid": fid,
            "best_fid": None if monitor is None else monitor.best}
