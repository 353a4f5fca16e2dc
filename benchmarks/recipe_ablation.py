"""Recipe ablations at equal wall-clock cost: which architecture and training recipe gives
the lowest FID for a CPU budget (issue 5, part 3).

Each variant overrides the default mnist5k run config. To keep the comparison fair on a
shared, noisy machine, a variant does not train "for B seconds of whatever the machine gives
it": its clean speed is measured first (median of timed steps, alone), and it then trains for
``B x img/s / batch`` steps, the number of steps B seconds buy at that speed. Every variant
keeps several EMAs of its weights at once (EMA length as a fraction of the images seen, as in
EDM2's post-hoc EMA), and each is scored: FID of ``-n`` unguided samples (DPM-Solver++(2M),
10 steps, classes spread evenly) in the data set's evaluator features, against the same
cached reference as ``imagegen evaluate``.

Usage:
    python benchmarks/recipe_ablation.py --budget 120 base flow lr1e-3
    python benchmarks/recipe_ablation.py --steps 1800 -n 2000 base pm+0.4   # equal steps
    python benchmarks/recipe_ablation.py --steps 1800 -n 2000 --draws 3 --seed 1 base   # 3 sample sets
    python benchmarks/recipe_ablation.py --list
Prints one Markdown row per variant and EMA; appends JSON lines to --log.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from imagegen.config import TrainConfig
from imagegen.data import load_dataset
from imagegen.noise import training_noise
from imagegen.training.run import fid_monitor_for
from imagegen.training import Trainer, ema_step, make_config

import presets  # noqa: F401  (registers the experimental presets the variants use)
from train_speed import median_time


# name -> (model overrides, train overrides)
VARIANTS: dict[str, tuple[dict, dict]] = {
    "base": ({}, {}),
    "lr1e-3": ({}, {"lr": 1e-3}),
    "lr4e-3": ({}, {"lr": 4e-3}),
    "b128": ({}, {"batch_size": 128, "lr": 3e-3}),
    "b32": ({}, {"batch_size": 32, "lr": 1.4e-3}),
    "flow": ({"precond": "flow"}, {"p_mean": 0.0, "p_std": 1.0}),
    "flow-p2": ({"precond": "flow", "preset": "unet-28-p2"}, {"p_mean": 0.0, "p_std": 1.0}),
    "flow-lr4e-3": ({"precond": "flow"}, {"p_mean": 0.0, "p_std": 1.0, "lr": 4e-3}),
    "flow-lr1e-3": ({"precond": "flow"}, {"p_mean": 0.0, "p_std": 1.0, "lr": 1e-3}),
    "flow-pm-0.4": ({"precond": "flow"}, {"p_mean": -0.4, "p_std": 1.0}),
    "flow-lr3e-3": ({"precond": "flow"}, {"p_mean": 0.0, "p_std": 1.0, "lr": 3e-3}),
    "mp": ({"arch": "mp-unet"}, {"lr": 1e-2}),
    "wide": ({"preset": "unet-28-w"}, {}),
    "mid": ({"preset": "unet-28-m"}, {}),
    "noupconv": ({"preset": "unet-28-nu"}, {}),
    "chnorm": ({"preset": "unet-28-cn"}, {}),
    "p2": ({"preset": "unet-28-p2"}, {}),
    "p2s": ({"preset": "unet-28-p2s"}, {}),
    "noattn": ({"preset": "unet-28-s"}, {}),
    "pm-0.8": ({}, {"p_mean": -0.8}),
    "pm0": ({}, {"p_mean": 0.0}),  # the default before session 7
    "pm+0.4": ({}, {"p_mean": 0.4}),
    "pm+0.8": ({}, {"p_mean": 0.8}),
}
# EMA half-lives as a fraction of the images seen; the run's own EMA (half-life
# min(10 kimg, ema_rampup x images seen)) is the candidate equal to the default ramp
EMA_FRACTIONS = tuple(f for f in (0.025, 0.05, 0.1, 0.25) if f != TrainConfig().ema_rampup)


def flops_per_image(tr: Trainer) -> float:
    x = tr.x[torch.arange(tr.config.train.batch_size)]
    lab = tr.labels[: len(x)] if tr.labels is not None else None
    with FlopCounterMode(display=False) as fc:
        tr.loss_fn(tr.model, x, lab, training_noise(0, 0, range(len(x)), x.shape[1:])).mean().backward()
    tr.model.zero_grad(set_to_none=True)
    return fc.get_total_flops() / len(x)


def run_variant(name: str, a: argparse.Namespace, ds) -> list[dict]:
    mo, to = VARIANTS[name]
    base = make_config(a.data, steps=1)
    config = replace(base, model=replace(base.model, **mo),
                     train=replace(base.train, **{"seed": a.seed, **to}, fid_every_seconds=0, threads=a.threads))
    # speed alone: warm-up, then the median of timed steps on a throw-away copy
    probe = Trainer(replace(config, train=replace(config.train, steps=10_000)), Path(a.out) / name, ds.images, ds.labels)
    fl = flops_per_image(probe)
    step_s = median_time(probe.train_step, a.timing_steps, warmup=8)
    batch = config.train.batch_size
    steps = a.steps or max(10, round(a.budget / step_s))
    probe.close()
    del probe

    config = replace(config, train=replace(config.train, steps=steps))
    tr = Trainer(config, Path(a.out) / name, ds.images, ds.labels)
    emas = {f: copy.deepcopy(tr.model).eval().requires_grad_(False) for f in EMA_FRACTIONS}
    t0 = time.perf_counter()
    while not tr.done():
        tr.train_step()
        for f, ema in emas.items():
            ema_step(ema, tr.model, batch, f * tr.nimg)
    wall = time.perf_counter() - t0
    tr.close()
    if a.save:
        (Path(a.out) / name).mkdir(parents=True, exist_ok=True)
        config.save(Path(a.out) / name / "config.toml")
        tr.save()
        for f, e in emas.items():
            torch.save(e.state_dict(), Path(a.out) / name / f"ema-r{f}.pt")

    mon = fid_monitor_for(replace(config, train=replace(config.train, fid_samples=a.n)), Path(a.out) / name,
                          progress=False, precision="auto")
    mon.sample_config = replace(mon.sample_config, sampler="dpmpp-2m", steps=10, schedule=a.schedule)
    rows = []
    for label, net in [("default", tr.ema)] + [(f"r={f}", e) for f, e in emas.items()]:
        # the default EMA gets --draws independent sets of -n samples (set k: seeds k*n .. (k+1)*n - 1):
        # one set of 2,000 samples moves FID by about +-0.1 at FID 1 (RESULTS.md, session 7)
        fids = mon.score_sets(net, a.draws if label == "default" else 1)
        fid = sum(fids) / len(fids)
        rows.append({"variant": name, "ema": label, "fid": round(fid, 3), "fid_draws": [round(f, 3) for f in fids],
                     "draw_stride": a.n,  # set k starts at seed k * draw_stride (rows without it: 100,000)
                     "seed": config.train.seed, "p_mean": config.train.p_mean, "steps": steps, "batch": batch,
                     "img_per_s": round(batch / step_s, 1), "gflops": round(fl * batch / step_s / 1e9, 1),
                     "mflop_per_img": round(fl / 1e6, 1), "wall_s": round(wall, 1), "budget_s": None if a.steps else a.budget,
                     "params": sum(q.numel() for q in tr.model.parameters()),
                     "model": mo, "train": to})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variants", nargs="*", default=["base"])
    p.add_argument("--data", default="data/mnist5k")
    p.add_argument("--budget", type=float, default=120.0, help="seconds of clean training each variant gets")
    p.add_argument("-n", type=int, default=1000, help="samples per FID")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--schedule", default="karras", choices=("karras", "linear-t", "auto"),
                   help="noise schedule of the FID samples (default karras, as the recorded table; auto "
                        "picks linear-t for flow models)")
    p.add_argument("--timing-steps", type=int, default=15)
    p.add_argument("--steps", type=int, default=0,
                   help="train every variant exactly this many steps instead of the steps --budget buys at "
                        "its probed speed (for variants that cost the same per step: no probe noise)")
    p.add_argument("--seed", type=int, default=0, help="training seed of every variant (default 0)")
    p.add_argument("--draws", type=int, default=1,
                   help="independent sample sets of -n images for the default EMA's FID (set k: seeds k*n .. "
                        "(k+1)*n - 1, as `imagegen evaluate RUN --seeds`); its row is their mean")
    p.add_argument("--out", default="/tmp/ablation")
    p.add_argument("--log", default="benchmarks/ablation.jsonl")
    p.add_argument("--list", action="store_true")
    p.add_argument("--save", action="store_true", help="save the run (checkpoint + extra EMAs) in --out/VARIANT")
    a = p.parse_args()
    if a.list:
        for k, (m, t) in VARIANTS.items():
            print(f"{k:10s} model {m} train {t}")
        return
    torch.set_num_threads(a.threads)
    ds = load_dataset(a.data)
    print("| variant | seed | EMA | params | MFLOP/img | img/s | GFLOP/s | steps x batch | FID | FID per draw |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for name in a.variants:
        for r in run_variant(name, a, ds):
            print(f"| {r['variant']} | {r['seed']} | {r['ema']} | {r['params'] / 1e6:.2f} M | {r['mflop_per_img']} | {r['img_per_s']} | "
                  f"{r['gflops']} | {r['steps']} x {r['batch']} | {r['fid']} | {' '.join(map(str, r['fid_draws']))} |",
                  flush=True)
            with open(a.log, "a") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
