"""Training the data set's autoencoder (:mod:`imagegen.features.autoencoder`) on the CPU.

Rombach et al. 2022 ("latent diffusion") train their autoencoder once on large photo sets; here
it is trained per data set in minutes: Adam (lr 2e-3, betas 0.9/0.99), batches of 8 images,
50 warm-up steps (at most a tenth of a step budget) and a cosine decay to zero at the end of
the time or step budget, random horizontal flips, the loss of
:func:`~imagegen.features.autoencoder.reconstruction_loss` plus the light KL term. A fixed 5 %
of the data set (16 to 512 images, chosen by a permutation seeded with 0, so independent of
``seed``) is held out; its PSNR is shown in the progress bar (on up to 256 of them, every 30 s)
and measured on all of it at the end.

Small batches, measured on the 3,690 64x64 RGBA emoji at 16,000 training images each (one
torch thread, one seed, held-out PSNR): batch 32 x 500 steps 23.7 dB (lr 2e-3) and 24.8 dB
(4e-3); batch 16 x 1,000 steps 26.1 dB (2e-3) and 28.1 dB (4e-3); batch 8 x 2,000 steps
28.3 dB (2e-3), 28.8 dB (3e-3), and stuck at 18 dB with 5e-3 (also with the gradient norm
clipped to 1); batch 4 x 4,000 steps 29.3 dB (2e-3) but 18 % slower per image than batch 8.
lr 2e-3 leaves a margin below the rate that failed.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..atomic import write_json
from ..errors import ImagegenError
from .autoencoder import (
    BATCH_SIZE, DEFAULT_MINUTES, EVAL_EVERY_S, EVAL_IMAGES, GRAD_WEIGHT, KL_WEIGHT, LR, MIN_IMAGES, SCALE_IMAGES,
    WARMUP_STEPS, Autoencoder, _load_dataset, autoencoder_path, default_arch, kl_divergence, psnr,
    reconstruction_loss, to_tensor, to_uint8,
)
from .evaluator import torch_threads

__all__ = ["fit", "held_out_split", "reconstruct", "train_autoencoder"]


def held_out_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed train / held-out indices: a permutation seeded with 0; 5 % held out, 16 to 512.

    Example:
        >>> tr, ho = held_out_split(3690)
        >>> len(tr), len(ho)
        (3506, 184)
    """
    perm = np.random.default_rng(0).permutation(n)
    n_held = int(min(512, max(16, round(0.05 * n))))
    return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def reconstruct(ae: Autoencoder, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """uint8 (N, H, W, C) -> their uint8 reconstructions through the posterior mean (no noise)."""
    dev = next(ae.parameters()).device
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), batch_size):
            mu, _ = ae.moments(to_tensor(images[s:s + batch_size]).to(dev))
            out.append(to_uint8(ae.decode_raw(mu)))
    return np.concatenate(out)


def _latent_stats(ae: Autoencoder, images: Any, n: int, batch_size: int = 64) -> dict[str, float]:
    """Shift, scale and posterior noise of the latent means of up to SCALE_IMAGES images."""
    idx = np.sort(np.random.default_rng(1).permutation(n)[:SCALE_IMAGES])
    dev = next(ae.parameters()).device
    mus, sigmas = [], []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(idx), batch_size):
            mu, logvar = ae.moments(to_tensor(images[idx[s:s + batch_size]]).to(dev))
            mus.append(mu.double().cpu())
            sigmas.append(logvar.mul(0.5).exp().double().mean().item() * len(mu))
    seconds = time.perf_counter() - t0
    mu = torch.cat(mus)
    std = float(mu.std())
    return {"latent_shift": float(mu.mean()), "latent_scale": 1.0 / max(std, 1e-8),
            "posterior_noise": sum(sigmas) / len(mu) / max(std, 1e-8), "encode_img_per_s": len(mu) / seconds}


def _lr_at(step: int, frac: float, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to 0 at the end of the budget."""
    return lr * min(1.0, (step + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))


def fit(ae: Autoencoder, train_images: Any, held: np.ndarray, *, steps: int | None, seconds: float | None,
        seed: int = 0, batch_size: int = BATCH_SIZE, lr: float = LR, progress: bool = True) -> dict[str, Any]:
    """Train ``ae`` in place on uint8 ``train_images`` (N, H, W, C) for ``steps`` or ``seconds``.

    Adam, random horizontal flips, epoch-wise shuffling; the noise of the posterior sample is
    drawn on the CPU from a generator seeded with ``seed``. Returns a log of the run.
    """
    dev = next(ae.parameters()).device
    n = len(train_images)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(ae.parameters(), lr=lr, betas=(0.9, 0.99))
    total = steps if steps is not None else int(math.ceil(seconds or 0))
    bar = tqdm(total=total, desc="train autoencoder", unit="step" if steps is not None else "s",
               disable=not progress, file=sys.stderr, leave=False, dynamic_ncols=True)
    warmup = WARMUP_STEPS if steps is None else max(1, min(WARMUP_STEPS, steps // 10))
    order, pos, step, loss_avg, held_psnr, last_eval = rng.permutation(n), 0, 0, None, None, 0.0
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    ae.train()
    while True:
        elapsed = time.perf_counter() - t0
        frac = max(step / steps if steps else 0.0, elapsed / seconds if seconds else 0.0)
        if frac >= 1.0:
            break
        if pos + batch_size > n:
            order, pos = rng.permutation(n), 0
        idx = np.sort(order[pos:pos + batch_size])
        pos += batch_size
        x = to_tensor(train_images[idx])
        flip = torch.from_numpy(rng.random(len(x)) < 0.5)
        x[flip] = x[flip].flip(-1)
        eps = torch.randn(x.shape[0], ae.latent_shape[0], x.shape[2] // ae.factor, x.shape[3] // ae.factor,
                          generator=gen)
        x, eps = x.to(dev), eps.to(dev)
        mu, logvar = ae.moments(x)
        x_hat = ae.decode_raw(mu + logvar.mul(0.5).exp() * eps)
        loss = (reconstruction_loss(x, x_hat) + KL_WEIGHT * kl_divergence(mu, logvar)).mean()
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, frac, lr, warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        value = float(loss.detach())
        loss_avg = value if loss_avg is None else 0.95 * loss_avg + 0.05 * value
        elapsed = time.perf_counter() - t0
        if elapsed - last_eval >= EVAL_EVERY_S:
            ae.eval()
            held_psnr = psnr(held[:EVAL_IMAGES], reconstruct(ae, held[:EVAL_IMAGES]))
            ae.train()
            last_eval = elapsed
            history.append({"step": step, "seconds": round(elapsed, 1), "held_out_psnr": round(held_psnr, 3),
                            "loss": round(loss_avg, 5)})
        shown = step if steps is not None else min(total, int(elapsed))
        if shown > bar.n:
            bar.update(shown - bar.n)
        ps = "" if held_psnr is None else f" held-out PSNR {held_psnr:.2f} dB"
        bar.set_postfix_str(f"step {step} loss {loss_avg:.4f}{ps} {step * batch_size / elapsed:.0f} img/s",
                            refresh=False)
    bar.close()
    ae.eval()
    seconds_run = time.perf_counter() - t0
    return {"steps": step, "train_seconds": round(seconds_run, 2), "batch_size": batch_size, "lr": lr,
            "train_img_per_s": round(step * batch_size / max(seconds_run, 1e-9), 1),
            "final_train_loss": loss_avg, "history": history}


def _in_memory(ds: Any, idx: np.ndarray, limit: int = 1 << 30) -> Any:
    """The rows ``idx`` of the data set: loaded when they fit in ``limit`` bytes, else read per batch."""
    row = int(np.prod(ds.images.shape[1:]))
    if len(idx) * row <= limit:
        return ds.images[idx]

    class Rows:  # a data set larger than ``limit``: each batch reads its rows from the shards
        def __len__(self) -> int:
            return len(idx)

        def __getitem__(self, i: np.ndarray) -> np.ndarray:
            return ds.images[idx[i]]

    return Rows()


def train_autoencoder(data: str | Path, *, minutes: float | None = None, steps: int | None = None,
                      latent_channels: int = 4, factor: int = 4, seed: int = 0, progress: bool = True,
                      threads: int | None = None, width: int = 32, device: str = "cpu") -> Path:
    """Train the autoencoder of a prepared data set; write it next to the data set; return its path.

    Trains for ``minutes`` (default 5) or ``steps`` (the first reached when both are given),
    on ``threads`` torch threads (None, the default: torch's setting, all cores). On a quiet
    2-core machine 2 threads train at 167 img/s against 98 with 1 (64x64 RGBA); on one shared
    with other jobs 1 thread can be much faster (99 against 11 img/s), because OpenMP threads
    wait on each other when other processes hold the cores. Writes
    ``DATA/features/autoencoder-f{factor}c{latent_channels}.safetensors`` (weights and config)
    and the ``.json`` beside it (config and report: held-out PSNR, latent shift and scale,
    encode/decode images per second, the training curve), both atomically.

    Example:
        >>> path = train_autoencoder("data/emoji64", minutes=5)  # doctest: +SKIP
        >>> load_autoencoder(path).latent_shape  # doctest: +SKIP
        (4, 16, 16)
    """
    data = Path(data)
    ds = _load_dataset(data)
    n, h, w, c = (int(v) for v in ds.images.shape)
    if n < MIN_IMAGES:
        raise ImagegenError(f"data set {data} has {n} images; an autoencoder needs at least {MIN_IMAGES} "
                            "(import more images into it)")
    arch = default_arch(factor, width)
    if h % factor or w % factor:
        raise ImagegenError(f"data set {data} is {h}x{w}, not divisible by the autoencoder factor {factor}; "
                            "choose another --factor (2, 4 or 8) or re-import with --size a multiple of it")
    if latent_channels < 1:
        raise ImagegenError(f"latent channels must be at least 1, got {latent_channels}")
    if steps is not None and steps < 1:
        raise ImagegenError(f"steps must be at least 1, got {steps}")
    if minutes is not None and minutes <= 0:
        raise ImagegenError(f"minutes must be positive, got {minutes}")
    if minutes is None and steps is None:
        minutes = DEFAULT_MINUTES
    config = {"channels": c, "resolution": [h, w], "factor": factor, "latent_channels": latent_channels,
              "arch": arch, "dataset": str(data), "dataset_checksum": ds.checksum}
    train_idx, held_idx = held_out_split(n)
    held = ds.images[held_idx]
    with torch_threads(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ae = Autoencoder(config).to(device)
        log = fit(ae, _in_memory(ds, train_idx), held, steps=steps,
                  seconds=None if minutes is None else 60.0 * minutes, seed=seed, progress=progress)
        stats = _latent_stats(ae, ds.images, n)
        ae.config.update({"latent_shift": stats["latent_shift"], "latent_scale": stats["latent_scale"]})
        z = ae.encode_images(held)
        t0 = time.perf_counter()
        rec = ae.decode_images(z)
        decode_rate = len(held) / (time.perf_counter() - t0)
        ae.config["held_out_psnr"] = round(psnr(held, rec), 3)
        noise = np.random.default_rng(0).standard_normal(z.shape).astype(np.float32)
        noisy = ae.decode_images(z + 0.1 * noise)
    report = {
        "held_out_count": len(held_idx), "train_count": len(train_idx), "seed": seed, "threads": torch.get_num_threads()
        if threads is None else threads, "device": device, "minutes": minutes, "max_steps": steps,
        "loss": {"grad_weight": GRAD_WEIGHT, "kl_weight": KL_WEIGHT},
        "held_out_psnr_latent_noise_0.1": round(psnr(held, noisy), 3),
        "posterior_noise_over_latent_std": stats["posterior_noise"],
        "encode_img_per_s": round(stats["encode_img_per_s"], 1),
        "decode_img_per_s": round(decode_rate, 1), **log,
    }
    ae.config["training"] = {k: v for k, v in report.items() if k != "history"}
    path = ae.save(autoencoder_path(data, factor, latent_channels))
    write_json(path.with_suffix(".json"), {**ae.config, "image_shape": list(ae.image_shape),
                                           "latent_shape": list(ae.latent_shape), "weights": str(path),
                                           "report": report})
    return path


def read_report(path: str | Path) -> dict[str, Any]:
    """The JSON written beside an autoencoder's weights by :func:`train_autoencoder`."""
    import json

    return json.loads(Path(path).with_suffix(".json").read_text(encoding="utf-8"))
