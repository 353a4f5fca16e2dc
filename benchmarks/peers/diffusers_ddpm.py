"""Peer baseline: diffusers' UNet2DModel + DDPMScheduler, sampled with DDIM (50 steps).

Runs in the peers' own virtual environment (diffusers is not an imagegen dependency), which
``make bench-peers`` (benchmarks/peers/run.py) creates and uses; by hand:

    benchmarks/peers/.venv/bin/python benchmarks/peers/diffusers_ddpm.py data/mnist5k out/peer-diffusers --budget 600 --threads 2
    .venv/bin/imagegen evaluate out/peer-diffusers --data data/mnist5k

The network follows the data set (peer_configs.diffusers_config): on mnist5k (28 px) the
small class-conditional UNet of the first runs (32/64/64 channels, one block per level,
attention at 7x7; ~1 M parameters, the size of imagegen's default), batch 128; on 16-128 px
sets (1, 3 or 4 channels) the layout of diffusers' "Train a diffusion model" tutorial with its
widths divided by 4, batch 64; class-conditional when the data set has labels, unconditional
otherwise. Training as a capable user would for a short CPU budget: AdamW at 1e-3 with a 3%
warm-up and cosine decay over the training length, EMA of the weights (decay 0.995), 1,000
DDPM training timesteps, epsilon prediction, DDIM with 50 steps (eta 0) for sampling. Reads
imagegen's prepared data set (uint8 .npy shards) directly with numpy, writes PNGs (with a
``class`` text chunk when conditional) that ``imagegen evaluate`` scores like imagegen's own.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from common import (image_shape, load_prepared, num_classes, parse_args, sample_to_folder, to_uint8_hwc,
                    train_for_budget, write_summary)
from peer_configs import UnsupportedShape, batch_size, diffusers_config


def main() -> None:
    a = parse_args(__doc__)
    torch.manual_seed(0)

    images, labels = load_prepared(a.data)
    size, channels = image_shape(images)
    classes = num_classes(labels)
    try:
        config = diffusers_config(size, channels, classes)
    except UnsupportedShape as e:
        raise SystemExit(f"error: {a.data}: {e}")
    a.batch = a.batch or batch_size("diffusers", size)
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    y_all = torch.from_numpy(labels).long() if classes else None
    model = UNet2DModel(**config)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    params = sum(q.numel() for q in model.parameters())
    sched = DDPMScheduler(num_train_timesteps=1000)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(0, len(x_all), (a.batch,))
        x0 = x_all[idx]
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (a.batch,))
        pred = model(sched.add_noise(x0, noise, t), t, class_labels=None if y_all is None else y_all[idx]).sample
        return torch.nn.functional.mse_loss(pred, noise)

    step, train_seconds = train_for_budget(a, model, ema, opt, batch_loss, log_every=50)

    ddim = DDIMScheduler.from_config(sched.config)
    ddim.set_timesteps(50)

    def sample_batch(start: int, k: int):
        cls = torch.tensor([(start + i) % classes for i in range(k)]) if classes else None
        x = torch.randn(k, channels, size, size, generator=torch.Generator().manual_seed(start))
        for t in ddim.timesteps:
            x = ddim.step(ema(x, t, class_labels=cls).sample, t, x).prev_sample
        return to_uint8_hwc(x, -1.0), cls

    out = Path(a.out)
    sample_seconds = sample_to_folder(out, a.n, sample_batch)
    write_summary(out, a, "diffusers UNet2DModel + DDPM, DDIM 50", params, step, train_seconds, sample_seconds,
                  sampler="DDIM 50", nfe=50, conditional=bool(classes), size=size, channels=channels,
                  config={k: list(v) if isinstance(v, tuple) else v for k, v in config.items()})


if __name__ == "__main__":
    main()
