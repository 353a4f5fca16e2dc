"""Peer baseline: lucidrains' denoising-diffusion-pytorch (``Unet`` + ``GaussianDiffusion``).

It imports torchvision, whose PyPI wheel does not import beside the local CPU torch 2.13.0,
so it runs in the peers' own virtual environment with the torch 2.14.1 / torchvision 0.29.1
pair that lies on this machine's disk (x86_64); ``make bench-peers`` (benchmarks/peers/run.py)
creates and uses it. By hand:

    benchmarks/peers/.venv/bin/python benchmarks/peers/lucidrains_ddpm.py data/mnist5k out/peer-lucidrains --budget 600 --threads 2
    .venv/bin/imagegen evaluate out/peer-lucidrains --data data/mnist5k

The library's standard unconditional ``Unet``, sized for the data set
(peer_configs.lucidrains_config): on mnist5k (28 px) the small one of the first runs (dim 16,
dim_mults (1, 2, 4): 28 -> 14 -> 7); on 16-128 px sets the README's ``dim=64,
dim_mults=(1, 2, 4, 8)`` with dim divided by 4 (16 px: dim_mults (1, 2, 4)), ``channels`` the
data set's (1, 3, or 4 for RGBA). Its ``GaussianDiffusion`` with 1,000 steps (its defaults:
sigmoid schedule, pred_v objective) and ``sampling_timesteps=50`` (DDIM), Adam at 1e-3 with a
3% warm-up and cosine decay over the training length, batch 64, EMA of the weights (decay
0.995). Labels, if any, are not used. Our own loop instead of its ``Trainer`` (which reads
image files and saves pickled checkpoints), so the training length is ours to set.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from denoising_diffusion_pytorch import GaussianDiffusion, Unet
from common import image_shape, load_prepared, parse_args, sample_to_folder, to_uint8_hwc, train_for_budget, write_summary
from peer_configs import UnsupportedShape, batch_size, lucidrains_config


def main() -> None:
    a = parse_args(__doc__)
    torch.manual_seed(0)

    images = load_prepared(a.data)[0]
    size, channels = image_shape(images)
    try:
        config = lucidrains_config(size, channels)
    except UnsupportedShape as e:
        raise SystemExit(f"error: {a.data}: {e}")
    a.batch = a.batch or batch_size("lucidrains", size)
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0  # it normalises itself
    unet = Unet(**config)
    diffusion = GaussianDiffusion(unet, image_size=size, timesteps=1000, sampling_timesteps=50)
    ema = copy.deepcopy(diffusion).eval().requires_grad_(False)
    params = sum(q.numel() for q in unet.parameters())
    opt = torch.optim.Adam(diffusion.parameters(), lr=a.lr)

    step, train_seconds = train_for_budget(
        a, diffusion, ema, opt, lambda: diffusion(x_all[torch.randint(0, len(x_all), (a.batch,))]), log_every=100)

    def sample_batch(start: int, k: int):
        torch.manual_seed(start)
        return to_uint8_hwc(ema.sample(batch_size=k), 0.0), None

    out = Path(a.out)
    sample_seconds = sample_to_folder(out, a.n, sample_batch)
    write_summary(out, a, "denoising-diffusion-pytorch Unet + GaussianDiffusion, DDIM 50", params, step,
                  train_seconds, sample_seconds, sampler="DDIM 50", nfe=50, conditional=False, size=size,
                  channels=channels, config={k: list(v) if isinstance(v, tuple) else v for k, v in config.items()})


if __name__ == "__main__":
    main()
