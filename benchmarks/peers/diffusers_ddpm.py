"""Peer baseline: diffusers' UNet2DModel + DDPMScheduler, sampled with DDIM (50 steps).

Runs in the peers' own virtual environment (diffusers is not an imagegen dependency), which
``make bench-peers`` (benchmarks/peers/run.py) creates and uses; by hand:

    benchmarks/peers/.venv/bin/python benchmarks/peers/diffusers_ddpm.py data/mnist5k out/peer-diffusers --budget 600 --threads 2
    .venv/bin/imagegen evaluate out/peer-diffusers --data data/mnist5k

Configured as a capable user would for a short CPU budget: a small class-conditional UNet
(32/64/64 channels, one block per level, attention at 7x7; ~1 M parameters, the size of
imagegen's default), AdamW at 1e-3 with a 3% warm-up and cosine decay over the wall-clock
budget, batch 128, EMA of the weights (decay 0.995), 1,000 DDPM training timesteps,
epsilon prediction, DDIM with 50 steps (eta 0) for sampling. Reads imagegen's prepared data
set (uint8 .npy shards) directly with numpy, writes PNGs with a ``class`` text chunk so
``imagegen evaluate`` scores them with the same evaluator as imagegen's own samples.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from common import load_prepared, parse_args, sample_to_folder, train_for_budget, write_summary


def main() -> None:
    a = parse_args(__doc__, batch=128)
    torch.manual_seed(0)

    images, labels = load_prepared(a.data)
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    y_all = torch.from_numpy(labels).long()
    model = UNet2DModel(
        sample_size=28, in_channels=1, out_channels=1, layers_per_block=1,
        block_out_channels=(32, 64, 64), norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        num_class_embeds=10,
    )
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    params = sum(q.numel() for q in model.parameters())
    sched = DDPMScheduler(num_train_timesteps=1000)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(0, len(x_all), (a.batch,))
        x0, y = x_all[idx], y_all[idx]
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (a.batch,))
        pred = model(sched.add_noise(x0, noise, t), t, class_labels=y).sample
        return torch.nn.functional.mse_loss(pred, noise)

    step, train_seconds = train_for_budget(a, model, ema, opt, batch_loss, log_every=50)

    ddim = DDIMScheduler.from_config(sched.config)
    ddim.set_timesteps(50)

    def sample_batch(start: int, k: int):
        cls = torch.tensor([(start + i) % 10 for i in range(k)])
        x = torch.randn(k, 1, 28, 28, generator=torch.Generator().manual_seed(start))
        for t in ddim.timesteps:
            x = ddim.step(ema(x, t, class_labels=cls).sample, t, x).prev_sample
        return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy(), cls

    out = Path(a.out)
    sample_seconds = sample_to_folder(out, a.n, sample_batch)
    write_summary(out, a, "diffusers UNet2DModel + DDPM, DDIM 50", params, step, train_seconds, sample_seconds,
                  sampler="DDIM 50", nfe=50)


if __name__ == "__main__":
    main()
