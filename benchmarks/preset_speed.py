"""Training and sampling speed of every default preset of the UNet family (issue 16).

For each (side, channels) the family picks a preset for (:func:`imagegen.models.presets.preset_for`),
on random uint8 images of that size: training img/s (the trainer's own step: batch 64, loss,
backward, Adam, EMA; the median of timed steps after a warm-up) and sampling img/s (the
default sampler, DPM-Solver++(2M) with 10 steps, unguided, batch 64), with parameters,
FLOPs per training image and the peak resident memory of the process so far. The sizes are
measured one after another, in rounds, and the table keeps each size's fastest round, which
is the least disturbed by other load on a shared machine.

Usage:
    python benchmarks/preset_speed.py                      # every default preset
    python benchmarks/preset_speed.py --sizes 32:4 64:4 --rounds 3
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from imagegen.config import ModelConfig, RunConfig, SampleConfig, TrainConfig
from imagegen.generate import sample
from imagegen.models.presets import noise_shift_for, preset_for
from imagegen.noise import training_noise
from imagegen.training import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from train_speed import median_time  # noqa: E402

SIZES = ((16, 3), (28, 1), (32, 1), (32, 4), (64, 4), (128, 4))


def measure(side: int, channels: int, steps: int, samples: int) -> dict:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (512, side, side, channels), dtype=np.uint8)
    preset = preset_for(side, channels)
    mc = ModelConfig(preset=preset, resolution=side, channels=channels, noise_shift=noise_shift_for(side))
    tc = replace(TrainConfig(), steps=10**9, fid_every_seconds=0)
    tr = Trainer(RunConfig(data="", model=mc, train=tc), Path(tempfile.mkdtemp()), images, None)
    x = tr.x[torch.arange(tc.batch_size)]
    with FlopCounterMode(display=False) as fc:
        tr.loss_fn(tr.model, x, None, training_noise(0, 0, range(len(x)), x.shape[1:])).mean().backward()
    tr.model.zero_grad(set_to_none=True)
    step_s = median_time(tr.train_step, steps, warmup=3)
    tr.close()
    ema = tr.ema.eval()
    sample(ema, list(range(8)), None, SampleConfig())  # warm-up
    t = time.perf_counter()
    sample(ema, list(range(samples)), None, SampleConfig(), batch_size=64)
    sample_s = time.perf_counter() - t
    return {"side": side, "channels": channels, "preset": preset,
            "params_m": sum(p.numel() for p in tr.model.parameters()) / 1e6,
            "gflop_per_img": fc.get_total_flops() / len(x) / 1e9,
            "train_img_s": tc.batch_size / step_s, "sample_img_s": samples / sample_s,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="*", default=[f"{s}:{c}" for s, c in SIZES], help="SIDE:CHANNELS pairs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10, help="timed training steps per round")
    p.add_argument("--samples", type=int, default=64, help="images sampled per round")
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    sizes = [tuple(int(v) for v in s.split(":")) for s in a.sizes]
    best: dict[tuple[int, int], dict] = {}
    for _ in range(a.rounds):
        for side, ch in sizes:
            r = measure(side, ch, a.steps, a.samples)
            old = best.get((side, ch))
            best[(side, ch)] = r if old is None else {**r, "train_img_s": max(r["train_img_s"], old["train_img_s"]),
                                                       "sample_img_s": max(r["sample_img_s"], old["sample_img_s"])}
    print(f"| size | preset | params | GFLOP/img (train) | train img/s | sample img/s (10 steps) |")
    print("|---|---|---:|---:|---:|---:|")
    for (side, ch), r in best.items():
        print(f"| {side}x{side}x{ch} | {r['preset']} | {r['params_m']:.2f} M | {r['gflop_per_img']:.2f} | "
              f"{r['train_img_s']:.0f} | {r['sample_img_s']:.0f} |")
    print(f"peak RSS of the process: {max(r['peak_rss_gb'] for r in best.values()):.2f} GB")


if __name__ == "__main__":
    main()
