"""What the peer scripts share: arguments, reading imagegen's prepared data, the LR schedule,
the EMA and writing samples. Plain numpy/torch, so it runs in each peer's own virtual
environment (the peer scripts import it from their own folder; they do not import imagegen).
How each peer is configured for a data set's size and channels is in peer_configs.py."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, PngImagePlugin


def parse_args(doc: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="a prepared imagegen data set (data/mnist5k)")
    p.add_argument("out", help="folder for the sample PNGs and peer.json")
    p.add_argument("--budget", type=float, default=600.0, help="training seconds (unless --steps is given)")
    p.add_argument("--steps", type=int, default=0,
                   help="train exactly this many steps instead of for --budget seconds (0: the budget decides)")
    p.add_argument("--probe", type=int, default=0,
                   help="only measure speed: time this many steps after 5 warm-up steps, write OUT/probe.json, "
                        "and stop (no samples)")
    p.add_argument("-n", type=int, default=2000, help="samples to write")
    p.add_argument("--batch", type=int, default=0,
                   help="images per step (0, the default: the peer's own, see peer_configs.batch_size)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    a = p.parse_args()
    if a.steps < 0 or a.probe < 0 or a.batch < 0:
        p.error("--steps, --probe and --batch must be >= 0")
    if a.n < 1:
        p.error(f"-n must be at least 1 (got {a.n})")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    return a


def load_prepared(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 images (N, H, W, C) and int labels (or None) of an imagegen data set, no pickle."""
    path = Path(path)
    if not (path / "manifest.json").is_file():
        raise SystemExit(f"error: {path} is not a prepared imagegen data set (no manifest.json); "
                         "make one with `imagegen data import SRC DIR`")
    manifest = json.loads((path / "manifest.json").read_text())
    xs = [np.load(path / s["images"], allow_pickle=False) for s in manifest["shards"]]
    if not all(s.get("labels") for s in manifest["shards"]):
        return np.concatenate(xs), None
    ys = [np.load(path / s["labels"], allow_pickle=False) for s in manifest["shards"]]
    return np.concatenate(xs), np.concatenate(ys)


def image_shape(images: np.ndarray) -> tuple[int, int]:
    """(size, channels) of square uint8 images (N, H, W, C); a clear error for anything else."""
    if images.ndim != 4 or images.shape[1] != images.shape[2] or images.dtype != np.uint8:
        raise SystemExit(f"error: expected square uint8 images (N, H, W, C), got {images.dtype} {images.shape}")
    return images.shape[1], images.shape[3]


def num_classes(labels: np.ndarray | None) -> int:
    """Classes of a labelled data set (labels are 0..C-1), 0 for an unlabelled one."""
    return 0 if labels is None else int(labels.max()) + 1


def to_uint8_hwc(x: torch.Tensor, lo: float) -> np.ndarray:
    """Samples (k, C, H, W) in [lo, 1] as uint8 (k, H, W) for one channel, else (k, H, W, C),
    the arrays PIL writes as grayscale, RGB or RGBA PNGs."""
    x = ((x.clamp(lo, 1) - lo) * (255 / (1 - lo))).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return x[..., 0] if x.shape[-1] == 1 else x


def budget_lr(peak: float, frac: float, warmup: float = 0.03) -> float:
    """Linear warm-up over ``warmup`` of the budget, then cosine decay to 0 at its end."""
    if frac < warmup:
        return peak * frac / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - warmup) / (1 - warmup))))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float = 0.995) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm, 1 - decay)


def train_for_budget(a: argparse.Namespace, model: torch.nn.Module, ema: torch.nn.Module,
                     opt: torch.optim.Optimizer, batch_loss, log_every: int) -> tuple[int, float]:
    """Optimise ``batch_loss()`` (a fresh random batch each call) for ``a.budget`` seconds, or
    for exactly ``a.steps`` steps when that is set, with :func:`budget_lr` over that length and
    :func:`update_ema` each step; returns (steps, seconds).

    With ``a.probe`` set, it only measures speed: 5 warm-up steps, then the median of
    ``a.probe`` timed steps goes to ``OUT/probe.json`` and the process exits."""

    def one_step(frac: float) -> torch.Tensor:
        for g in opt.param_groups:
            g["lr"] = budget_lr(a.lr, frac)
        loss = batch_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        update_ema(ema, model)
        return loss

    if a.probe:
        times = []
        for i in range(5 + a.probe):
            t = time.perf_counter()
            one_step(0.5)
            times.append(time.perf_counter() - t)
        step_s = statistics.median(times[5:])
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "probe.json").write_text(json.dumps({"step_seconds": step_s, "batch": a.batch}))
        print(f"probe: {step_s * 1000:.0f} ms per step of {a.batch} ({a.batch / step_s:.0f} img/s)", flush=True)
        raise SystemExit(0)
    t0 = time.perf_counter()
    step = 0
    while True:
        elapsed = time.perf_counter() - t0
        frac = step / a.steps if a.steps else elapsed / a.budget
        if frac >= 1:
            break
        loss = one_step(frac)
        step += 1
        if step % log_every == 0:
            print(f"step {step} loss {loss.item():.4f} {step * a.batch / elapsed:.0f} img/s", flush=True)
    return step, time.perf_counter() - t0


def sample_to_folder(out: Path, n: int, sample_batch) -> float:
    """Write ``n`` samples as PNGs into ``out``, 100 at a time; return the seconds it took.

    ``sample_batch(start, k)`` returns uint8 images (k, H, W) or (k, H, W, C) (see
    :func:`to_uint8_hwc`) and their class labels (or None); a class is stored in the PNG text
    chunk ``class``, as imagegen does."""
    out.mkdir(parents=True, exist_ok=True)
    t1 = time.perf_counter()
    with torch.no_grad():
        for start in range(0, n, 100):
            imgs, classes = sample_batch(start, min(100, n - start))
            for i, img in enumerate(imgs):
                info = None
                if classes is not None:
                    info = PngImagePlugin.PngInfo()
                    info.add_text("class", str(int(classes[i])))
                Image.fromarray(img).save(out / f"{start + i:06d}.png", pnginfo=info)
    return time.perf_counter() - t1


def write_summary(out: Path, a: argparse.Namespace, peer: str, params: int, steps: int,
                  train_seconds: float, sample_seconds: float, **extra) -> None:
    """Write and print ``out/peer.json``: the peer, its size, training and sampling speed, and
    the torch version and thread count it ran with."""
    summary = {"peer": peer, "params": params, "steps": steps, "batch": a.batch, "budget": a.budget,
               "fixed_steps": a.steps or None,
               "train_seconds": round(train_seconds, 1), "train_img_per_s": round(steps * a.batch / train_seconds, 1),
               "n": a.n, "sample_seconds": round(sample_seconds, 1), "sample_img_per_s": round(a.n / sample_seconds, 2),
               "torch": torch.__version__, "threads": torch.get_num_threads(), **extra}
    (out / "peer.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
