"""Training and sampling speed on this machine, next to the fp32 matmul ceiling.

Measures, side by side in one run (medians over repeats, so a noisy shared machine shows):
  - fp32 matmul GFLOP/s (2048 x 2048), the ceiling;
  - training img/s and achieved GFLOP/s of the default model (FLOPs of one forward+backward
    counted with torch.utils.flop_counter), and its ratio to the ceiling;
  - sampling img/s with the default sampler (DPM-Solver++(2M), 10 steps: 10 network evaluations per image).

Usage:
    python benchmarks/train_speed.py                 # defaults: unet-28, batch 64
    python benchmarks/train_speed.py --preset unet-32 --batch 64 --repeats 5
    python benchmarks/train_speed.py --layers         # per-convolution time of one shard, 1 thread
Prints a Markdown table to paste into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from imagegen.config import ModelConfig, RunConfig, SampleConfig, TrainConfig
from imagegen.generate import resolve_schedule, sample, sampling_sigmas
from imagegen.models.unet import PRESETS
from imagegen.noise import training_noise
from imagegen.samplers import evaluation_sigmas
from imagegen.training import Trainer

import presets  # noqa: F401  (registers the experimental presets of the variants)


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_gflops(repeats: int) -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    t = median_time(lambda: a @ b, repeats * 3, warmup=2)
    return 2 * 2048**3 / t / 1e9


# label -> (preset, batch, channels_last, optimizer implementation, batch shards); measured interleaved
VARIANTS = {
    "one pass, intra-op threads": ("unet-28", 64, False, "foreach", 1),
    "2 shards on 2 threads (default)": ("unet-28", 64, False, "foreach", 2),
    "channels_last": ("unet-28", 64, True, "foreach", 1),
    "fused Adam": ("unet-28", 64, False, "fused", 1),
    "for-loop Adam": ("unet-28", 64, False, "loop", 1),
    "batch 128": ("unet-28", 128, False, "foreach", 1),
    "batch 128, 2 shards": ("unet-28", 128, False, "foreach", 2),
    "wider network, 32-48-64 channels": ("unet-28-m", 64, False, "foreach", 2),
    "wider network, 32-64-128 channels": ("unet-28-w", 64, False, "foreach", 2),
    "channel norm, whole network channels_last": ("unet-28-cn", 64, False, "foreach", 2),
}


def make_step(preset: str, batch: int, channels_last: bool, optim: str, resolution: int, shards: int = 0):
    """The trainer's own step (``Trainer.train_step``: batch, loss, backward, Adam, EMA) on
    random images, and its FLOPs per step. ``shards`` 0 is the trainer's automatic choice."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4096, resolution, resolution, 1), dtype=np.uint8)
    labels = rng.integers(0, 10, 4096)
    mc = ModelConfig(preset=preset, resolution=resolution, channels=1, num_classes=10)
    tc = replace(TrainConfig(), steps=10**9, batch_size=batch, batch_shards=shards)
    tr = Trainer(RunConfig(data="", model=mc, train=tc), Path(tempfile.mkdtemp()), images, labels)
    if channels_last:
        tr.model.to(memory_format=torch.channels_last)
    if optim != "foreach":  # the trainer's Adam (foreach) with the same settings, another implementation
        kind = {"fused": {"fused": True}, "loop": {"foreach": False}}[optim]
        settings = {k: tr.opt.defaults[k] for k in ("lr", "betas", "eps", "weight_decay")}
        tr.opt = torch.optim.Adam(tr.model.parameters(), **settings, **kind)
    x = torch.rand(batch, 1, resolution, resolution) * 2 - 1
    with FlopCounterMode(display=False) as fc:
        tr.loss_fn(tr.model, x, torch.from_numpy(labels[:batch]), training_noise(0, 0, range(batch), x.shape[1:])).mean().backward()
    return tr.train_step, fc.get_total_flops(), tr


def layer_table(preset: str, resolution: int, batch: int, repeats: int) -> None:
    """Where one shard's time goes (1 thread, the shard's batch): every convolution of the
    network timed alone (forward + backward), grouped by shape, next to one whole training step
    of the same batch and a 2048^2 matmul on the same thread; then the best this network could
    reach if each convolution ran at the fastest rate any of them reaches, with the rest of the
    step (normalisation, activations, attention, optimizer, EMA) unchanged."""
    torch.set_num_threads(1)
    step, flops, tr = make_step(preset, batch, False, "foreach", resolution, 1)
    net = tr.model.net
    seen: list[tuple[torch.nn.Conv2d, tuple[int, ...]]] = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, tuple(i[0].shape))))
             for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        net(torch.randn(batch, 1, resolution, resolution), torch.zeros(batch), torch.zeros(batch, dtype=torch.long))
    for h in hooks:
        h.remove()
    groups: dict[str, list[float]] = {}  # shape -> [count, flops, seconds]
    for m, shape in seen:
        x = torch.randn(shape, requires_grad=True)
        out_hw = (shape[2] // m.stride[0]) * (shape[3] // m.stride[1])
        fl = 3 * 2 * m.weight.numel() * shape[0] * out_hw  # forward + input grad + weight grad

        def fb(m=m, x=x):
            y = m(x)
            y.backward(torch.ones_like(y))

        t = median_time(fb, repeats)
        key = f"{m.kernel_size[0]}x{m.kernel_size[1]}{' /2' if m.stride[0] > 1 else ''}, {m.in_channels}->{m.out_channels} ch, {shape[2]}x{shape[3]}"
        g = groups.setdefault(key, [0, 0.0, 0.0])
        g[0] += 1
        g[1] += fl
        g[2] += t
    t_step = median_time(step, repeats)
    core = matmul_gflops(repeats)
    conv_t = sum(g[2] for g in groups.values())
    conv_fl = sum(g[1] for g in groups.values())
    best = max(g[1] / g[2] for g in groups.values())
    print(f"## Where one shard's step goes: {preset}, batch {batch}, 1 thread\n")
    print("| convolution | count | MFLOP per image (fwd+bwd) | ms (fwd+bwd) | GFLOP/s | % of one core's matmul |")
    print("|---|---:|---:|---:|---:|---:|")
    for k, (n, fl, t) in sorted(groups.items(), key=lambda kv: -kv[1][2]):
        print(f"| {k} | {n} | {fl / batch / 1e6:.1f} | {t * 1000:.1f} | {fl / t / 1e9:.0f} | {100 * fl / t / 1e9 / core:.0f}% |")
    rest = t_step - conv_t
    bound = flops / (conv_fl / best + max(rest, 0.0)) / 1e9
    print(f"\n- matmul 2048^2 on one thread: {core:.1f} GFLOP/s")
    print(f"- whole training step: {t_step * 1000:.0f} ms, {flops / t_step / 1e9:.1f} GFLOP/s = {100 * flops / t_step / 1e9 / core:.0f}% of matmul")
    print(f"- convolutions alone: {conv_t * 1000:.0f} ms ({100 * conv_t / t_step:.0f}% of the step), "
          f"{conv_fl / conv_t / 1e9:.1f} GFLOP/s; everything else: {rest * 1000:.0f} ms")
    print(f"- if every convolution ran at the fastest rate measured here ({best / 1e9:.0f} GFLOP/s) and the rest stayed: "
          f"{bound:.1f} GFLOP/s = {100 * bound / core:.0f}% of matmul")
    print(f"- with the rest at zero as well: {best / 1e9:.0f} GFLOP/s = {100 * best / 1e9 / core:.0f}% of matmul")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="unet-28", choices=list(PRESETS))
    p.add_argument("--resolution", type=int, default=28)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--sample-batch", type=int, default=100)
    p.add_argument("--variants", action="store_true", help="also time the throughput variants (table of changes)")
    p.add_argument("--layers", action="store_true",
                   help="instead: where one shard's time goes (every convolution alone, 1 thread, batch --batch / 2)")
    a = p.parse_args()
    if a.layers:
        layer_table(a.preset, a.resolution, a.batch // 2, a.repeats)
        return

    step, flops, trainer = make_step(a.preset, a.batch, False, "foreach", a.resolution)
    D = trainer.model
    params = sum(q.numel() for q in D.parameters())
    others = {k: make_step(pr, b, cl, o, a.resolution, sh)[:2] for k, (pr, b, cl, o, sh) in VARIANTS.items()} if a.variants else {}

    # interleave the measurements so machine noise hits them alike
    mm, tr, sm = [], [], []
    vt: dict[str, list[float]] = {k: [] for k in others}
    sc = SampleConfig(cfg=1.0)  # the default sampler, unguided
    for r in range(3):
        mm.append(matmul_gflops(max(1, a.repeats // 3)))
        D.train()
        tr.append(median_time(step, max(2, a.repeats // 3)))
        for k, (fn, _) in others.items():
            vt[k].append(median_time(fn, max(2, a.repeats // 3)))
        D.eval()
        sm.append(median_time(lambda: sample(D, list(range(a.sample_batch)), [i % 10 for i in range(a.sample_batch)], sc, a.sample_batch), 1, warmup=0 if r else 1))
    ceiling = statistics.median(mm)
    t_step = statistics.median(tr)
    t_sample = statistics.median(sm)
    achieved = flops / t_step / 1e9

    print(f"## Speed, {date.today().isoformat()}, {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}\n")
    print("| quantity | value |")
    print("|---|---|")
    print(f"| model | {a.preset}, {params / 1e6:.2f} M parameters, {a.resolution}x{a.resolution}x1, 10 classes |")
    print(f"| fp32 matmul 2048^2 (ceiling) | {ceiling:.1f} GFLOP/s |")
    print(f"| training step, batch {a.batch}, {trainer.shards} shard(s) | {t_step * 1000:.0f} ms |")
    print(f"| training throughput | {a.batch / t_step:.0f} img/s |")
    print(f"| FLOPs per training image (fwd+bwd) | {flops / a.batch / 1e9:.3f} GFLOP |")
    print(f"| training achieved | {achieved:.1f} GFLOP/s = {100 * achieved / ceiling:.0f}% of matmul |")
    print(f"| sampling, {sc.sampler} {sc.steps} steps ({len(evaluation_sigmas(sc.sampler, sampling_sigmas(resolve_schedule(sc, D.precond)).tolist()))} NFE), batch {a.sample_batch} | {a.sample_batch / t_sample:.1f} img/s |")
    if others:
        print("\n| change | model | batch | step ms | img/s | GFLOP/s | % of matmul |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for k, (fn, fl) in others.items():
            t = statistics.median(vt[k])
            pr, b = VARIANTS[k][0], VARIANTS[k][1]
            print(f"| {k} | {pr} | {b} | {t * 1000:.0f} | {b / t:.0f} | {fl / t / 1e9:.1f} | {100 * fl / t / 1e9 / ceiling:.0f}% |")


if __name__ == "__main__":
    main()
