"""The ``imagegen`` command line: argument parsing only; every verb calls the Python API."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .errors import ImagegenError

# The names in imagegen.samplers (SAMPLERS, SCHEDULES), spelled out so that parsing
# arguments does not import torch; tests/test_cli.py checks that they agree.
SAMPLER_CHOICES = ("heun", "euler", "dpmpp-2m", "ipndm")
SCHEDULE_CHOICES = ("auto", "karras", "linear-t")

EPILOG_DATA_IMPORT = """examples:
  imagegen data import builtin:mnist5k data/mnist5k
  imagegen data import builtin:sprites data/sprites --size 32 --channels 4
  imagegen data import ~/pictures/products data/products --size 64 --mode pad
  imagegen data import photos.zip data/photos --min-size 128 --max-aspect 2
  imagegen data import train.parquet data/hf --image-column image --label-column label
  imagegen data import urls.csv data/web --size 64     # columns: url[,label]

SRC is a folder (sub-folders = classes), a .zip/.tar/.tar.gz archive, a .parquet
file (Hugging Face layout), a .txt/.csv list of image URLs, or a built-in:
{builtins}
Every input ends up in DEST/report.jsonl as kept, duplicate (of which input) or
rejected (with the reason); `imagegen data info DEST` sums them up. An import that
was interrupted (Ctrl-C, crash, kill) resumes when the same command is run again.
"""
EPILOG_TRAIN = """examples:
  imagegen train data/mnist5k --out runs/mnist --budget 10m
  imagegen train data/mnist5k --out runs/quick --steps 500
  imagegen train data/mnist5k --out runs/mnist --resume --budget 15m   # extend to 15 min in all
  imagegen train data/mnist5k --out runs/gpu --device cuda --budget 10m
  imagegen train data/mnist5k --out runs/mine --config my.toml --lr 1e-3   # the file, then the flags
  imagegen train data/sprites --out runs/sprites --augment 0.15   # a small data set: EDM's augmentation
  torchrun --standalone --nproc_per_node 2 -m imagegen train data/mnist5k --out runs/ddp --steps 2000

--augment P flips, shifts, scales, rotates and stretches each training picture, each
with probability P, and tells the network which (EDM's non-leaking augmentation); samples
are generated as "not augmented", so the transforms do not show in them. Pixel space only.

Under torchrun every process trains its part of each batch (--batch-size is the global
batch) and rank 0 writes; on several machines run torchrun on each with --nnodes N
--node_rank R --rdzv-endpoint HOST:PORT (see the README).
"""
EPILOG_GENERATE = """examples:
  imagegen generate runs/mnist -n 64 --out out/mnist
  imagegen generate runs/mnist -n 16 --class 3 --cfg 2.0 --seed 7 --out out/threes
  imagegen generate runs/mnist -n 64 --sampler euler --steps 40 --out out/euler
  imagegen generate runs/mnist -n 64 --sampler heun --steps 18 --out out/heun      # 35 evaluations
  imagegen generate runs/mnist -n 64 --steps 6 --out out/fast                     # 6 evaluations
  imagegen generate runs/mnist -n 64 --sampler heun --steps 18 --churn 10 --out out/sde
  torchrun --standalone --nproc_per_node 2 -m imagegen generate runs/mnist -n 10000 --out out/big
"""
EPILOG_EVALUATE = """examples:
  imagegen evaluate runs/mnist --data data/mnist5k -n 2000 --json out/report.json
  imagegen evaluate out/mnist --data data/mnist5k       # a folder of generated PNGs
  imagegen evaluate runs/mnist --data data/mnist5k -n 500 --features inception

Reports FID (mean +- std over --seeds, with the numbers of generated and reference
images), KID (+- std over subsets), precision and recall (k=3), the share of samples
memorised from the training set (nearest training image closer than 1/3 of the mean
distance to the next 50), and for class-conditional samples the class accuracy and CAS (a
classifier trained on the samples, tested on real held-out images). --features auto (the
default) uses the data set's evaluator when it has labels and Inception-v3 when it has
none; RGBA images are composited on white for Inception and the memorisation test. Writes the
JSON report and a PNG figure: training curves and samples beside their nearest
training images.
"""
EPILOG_FEATURES = """examples:
  imagegen features train-evaluator data/mnist5k
  imagegen features train-evaluator data/mnist5k --arch cnn
"""


def _progress(total: int, desc: str, unit: str = "img"):
    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)
    return bar


def cmd_data_import(a: argparse.Namespace) -> str:
    from .data import import_images

    from .data.download import DownloadOptions

    t0 = time.perf_counter()
    dl = DownloadOptions.with_megabytes(a.max_download_mb, timeout=a.timeout, retries=a.retries,
                                        workers=a.download_workers)
    m = import_images(a.src, a.dest, size=a.size, channels=a.channels, mode=a.mode, min_size=a.min_size,
                      max_aspect=a.max_aspect, dedupe=not a.no_dedupe, near_bits=a.near_bits,
                      labels=a.labels, image_column=a.image_column, label_column=a.label_column,
                      workers=a.workers, download_options=dl, overwrite=a.overwrite)
    r = m["report"]
    dups, rej = sum(r["duplicates"].values()), len(m.get("rejected", []))
    note = f"; {dups} duplicates and {rej} rejected inputs (see `imagegen data info {a.dest}`)" if dups or rej else ""
    h, w = m["resolution"]
    return (f"imported {m['count']} of {r['inputs']} inputs as {h}x{w}x{m['channels']} images into {a.dest} "
            f"in {time.perf_counter() - t0:.1f}s{note}")


def cmd_data_info(a: argparse.Namespace) -> str:
    from .data import describe, load_dataset

    return describe(load_dataset(a.data, verify=a.verify))


def cmd_data_preview(a: argparse.Namespace) -> str:
    from .data import preview

    return f"wrote {preview(a.data, a.out, a.per_row, a.seed)}"


def cmd_train_evaluator(a: argparse.Namespace) -> str:
    from .features import train_evaluator_for

    t0 = time.perf_counter()
    r = train_evaluator_for(a.data, arch=a.arch, seed=a.seed, epochs=a.epochs)
    return (f"evaluator {a.arch}: held-out accuracy {r['held_out_accuracy']:.4f} on {r['held_out_count']} images; "
            f"saved in {Path(a.data) / 'features'} ({time.perf_counter() - t0:.1f}s)")


def cmd_train_autoencoder(a: argparse.Namespace) -> str:
    from .features.autoencoder_train import read_report, train_autoencoder

    t0 = time.perf_counter()
    path = train_autoencoder(a.data, minutes=a.minutes, steps=a.steps, latent_channels=a.latent_channels,
                             factor=a.factor, seed=a.seed, threads=a.threads)
    r = read_report(path)
    t = r["training"]
    return (f"autoencoder f{a.factor}c{a.latent_channels}: held-out PSNR {r['held_out_psnr']:.2f} dB on "
            f"{t['held_out_count']} images after {t['steps']} steps ({t['train_img_per_s']:.0f} img/s); latents "
            f"{'x'.join(map(str, r['latent_shape']))}, scale "
            f"{r['latent_scale']:.4g}; encode {t['encode_img_per_s']:.0f} img/s, decode {t['decode_img_per_s']:.0f} "
            f"img/s; saved {path} ({time.perf_counter() - t0:.0f}s)")


def cmd_train(a: argparse.Namespace) -> str:
    from .training import train

    overrides = {"budget": a.budget, "steps": a.steps, "batch_size": a.batch_size, "lr": a.lr, "seed": a.seed,
                 "threads": a.threads, "fid_every_seconds": a.fid_every, "preset": a.preset,
                 "conditional": False if a.unconditional else None, "xflip": a.xflip,
                 "augment": a.augment, "space": a.space}
    r = train(a.data, a.out, config=a.config, resume=a.resume, device=a.device, precision=a.precision,
              compile=a.compile, allow_small=a.allow_small, **overrides)
    if r["checkpoint"] is None:  # a torchrun rank other than 0: rank 0 reports
        return ""
    state = "interrupted; continue with --resume" if r["interrupted"] else "done"
    fid = "" if r.get("fid") is None else f"; FID {r['fid']:.2f} (best {r['best_fid']:.2f}, see {a.out}/best.json)"
    procs = f" on {r['processes']} processes" if r["processes"] > 1 else ""
    return (f"{state}: {r['step']} steps, {r['nimg']} images in {r['elapsed']:.0f}s ({r['img_per_s']:.0f} img/s "
            f"on {r['device']}{procs}); checkpoint {r['checkpoint']}; samples {r['grid']}{fid}")


def cmd_generate(a: argparse.Namespace) -> str:
    from .distributed import world
    from .generate import generate_to_folder, images_on_this_rank, load

    model = load(a.run, a.checkpoint, device=a.device, precision=a.precision, compile=a.compile)
    main = world().main
    bar = _progress(images_on_this_rank(a.n), "generating") if main else None
    try:
        r = generate_to_folder(model, a.out, a.n, a.seed, getattr(a, "class"), progress=bar.update if bar else None,
                               sampler=a.sampler, steps=a.steps, schedule=a.schedule, cfg=a.cfg, churn=a.churn)
    finally:
        if bar is not None:
            bar.close()
    if not main:
        return ""
    procs = f" on {r['processes']} processes" if r["processes"] > 1 else ""
    return (f"wrote {r['n']} PNGs and {r['grid']} to {r['out']} in {r['seconds']:.1f}s{procs} "
            f"({r['nfe_per_image']} network evaluations per image)")


def cmd_evaluate(a: argparse.Namespace) -> str:
    from .evaluation import evaluate, format_report, report_paths, write_report

    json_path, figure = report_paths(a.source, a.json, a.figure)
    report = evaluate(a.source, a.data, n=a.n, seed=a.seed, seeds=a.seeds, features=a.features, arch=a.arch,
                      figure=figure, sampler=a.sampler, steps=a.steps, schedule=a.schedule, cfg=a.cfg,
                      churn=a.churn, device=a.device, precision=a.precision)
    if report is None:  # a torchrun rank other than 0: rank 0 scores and reports
        return ""
    print(format_report(report))
    write_report(report, json_path)
    return f"report written to {json_path}, figure to {figure}"


def _device_options(p: argparse.ArgumentParser, compile_option: bool = True) -> None:
    p.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N",
                   help="where the model runs (default auto: CUDA when present, else the CPU)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto (default): bf16 autocast on CUDA, fp32 on the CPU")
    if compile_option:
        p.add_argument("--compile", action="store_true",
                       help="compile the network with torch.compile (pays off on a GPU; 1-2 minutes to start)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="imagegen", description="Collect images, train a generator, generate and evaluate.",
                                epilog="run `imagegen VERB --help` for examples of each verb",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"imagegen {__import__('imagegen').__version__}")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    raw = argparse.RawDescriptionHelpFormatter

    data = verbs.add_parser("data", help="import and inspect data sets").add_subparsers(dest="data_verb", metavar="ACTION", required=True)
    from .data.builtins import builtin_list

    d = data.add_parser("import", help="import images into a prepared data set",
                        epilog=EPILOG_DATA_IMPORT.format(builtins=builtin_list()), formatter_class=raw)
    d.add_argument("src", help="a folder, .zip/.tar/.tar.gz, .parquet, .txt/.csv of URLs, or builtin:NAME")
    d.add_argument("dest", help="folder to write the prepared data set to")
    d.add_argument("--size", type=int, help="resize images to SIZE x SIZE (default: native for builtins, 64 otherwise)")
    d.add_argument("--channels", type=int, choices=(1, 3, 4),
                   help="1 = grayscale, 3 = RGB, 4 = RGBA (keeps alpha); default: 1 if every kept image is gray, else 3")
    d.add_argument("--mode", choices=("center-crop", "pad", "stretch"),
                   help="how non-square images become square (default center-crop)")
    d.add_argument("--min-size", type=int, default=0, metavar="PX", help="reject images whose short side is below PX")
    d.add_argument("--max-aspect", type=float, metavar="R", help="reject images whose long/short side ratio exceeds R")
    d.add_argument("--no-dedupe", action="store_true", help="keep exact and near duplicates")
    d.add_argument("--near-bits", type=int, default=4, metavar="B",
                   help="perceptual-hash Hamming distance for near duplicates (default 4; -1 = exact only)")
    d.add_argument("--labels", metavar="auto|none|FILE.csv",
                   help="class labels: auto = sub-folder names (default), none, or a CSV with path,label columns")
    d.add_argument("--image-column", help="Parquet: the column holding image bytes (default: detected)")
    d.add_argument("--label-column", help="Parquet: the label column (default: 'label' if present)")
    d.add_argument("--workers", type=int, help="decoding processes (default: one per CPU core; 0 = in this process)")
    d.add_argument("--timeout", type=float, default=15.0, metavar="S", help="URL lists: seconds per request (default 15)")
    d.add_argument("--retries", type=int, default=2, help="URL lists: retries after a failed request (default 2)")
    d.add_argument("--max-download-mb", type=float, default=20.0, metavar="MB", help="URL lists: largest body accepted (default 20)")
    d.add_argument("--download-workers", type=int, default=16, metavar="N", help="URL lists: concurrent downloads (default 16)")
    d.add_argument("--overwrite", action="store_true", help="replace an existing data set at DEST")
    d.set_defaults(fn=cmd_data_import)
    d = data.add_parser("info", help="print counts per class and rejected inputs", epilog="example:\n  imagegen data info data/mnist5k", formatter_class=raw)
    d.add_argument("data")
    d.add_argument("--verify", action="store_true", help="re-hash every shard against the manifest")
    d.set_defaults(fn=cmd_data_info)
    d = data.add_parser("preview", help="write a grid PNG of the data set (one row per class)",
                        epilog="examples:\n  imagegen data preview data/mnist5k\n  imagegen data preview data/mnist5k --out docs/mnist.png --per-row 16",
                        formatter_class=raw)
    d.add_argument("data")
    d.add_argument("--out", help="PNG path (default DATA/preview.png)")
    d.add_argument("--per-row", type=int, default=10, help="images per row (default 10)")
    d.add_argument("--seed", type=int, default=0, help="which images are picked (default 0)")
    d.set_defaults(fn=cmd_data_preview)

    feats = verbs.add_parser("features", help="feature networks (the evaluator)").add_subparsers(dest="features_verb", metavar="ACTION", required=True)
    f = feats.add_parser("train-evaluator", help="train the evaluator classifier used for FID", epilog=EPILOG_FEATURES, formatter_class=raw)
    f.add_argument("data")
    f.add_argument("--arch", default="mlp", choices=("mlp", "cnn"), help="mlp: 784-128-10 (default); cnn: a small CNN")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--epochs", type=int, help="training epochs (default: by data set size)")
    f.set_defaults(fn=cmd_train_evaluator)
    f = feats.add_parser(
        "train-autoencoder", formatter_class=raw,
        help="train the data set's autoencoder for latent diffusion (Rombach et al. 2022)",
        epilog="examples:\n  imagegen features train-autoencoder data/emoji64                  # 5 minutes, 64x64 -> 4x16x16\n"
               "  imagegen features train-autoencoder data/emoji64 --minutes 10 --latent-channels 8\n"
               "  imagegen features train-autoencoder data/sprites --steps 2000 --factor 8 --threads 2\n\n"
               "Writes DATA/features/autoencoder-f{F}c{C}.safetensors and a .json beside it (config, held-out\n"
               "PSNR, latent scale, encode/decode speed). Python: imagegen.features.load_autoencoder(DATA),\n"
               "cached_latents(DATA, autoencoder).")
    f.add_argument("data", help="a prepared data set (from `imagegen data import`), at least 64 images")
    budget = f.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="training time (default 5)")
    budget.add_argument("--steps", type=int, help="optimizer steps (of 8 images) instead of a time budget")
    f.add_argument("--latent-channels", type=int, default=4, metavar="C", help="latent channels (default 4)")
    f.add_argument("--factor", type=int, default=4, choices=(2, 4, 8), help="spatial down-sampling: H/F x W/F latents (default 4)")
    f.add_argument("--threads", type=int,
                   help="CPU threads for torch (default: all cores; on a machine busy with other jobs "
                        "--threads 1 can be several times faster)")
    f.add_argument("--seed", type=int, default=0, help="initial weights, batch order and noise (default 0)")
    f.set_defaults(fn=cmd_train_autoencoder)

    t = verbs.add_parser("train", help="train a diffusion model (rectified flow in an EDM-style UNet) on a prepared data set", epilog=EPILOG_TRAIN, formatter_class=raw)
    t.add_argument("data", help="a prepared data set (from `imagegen data import`)")
    t.add_argument("--out", required=True, help="run folder for config, checkpoints, sample grids and metrics")
    t.add_argument("--budget", help="training-time budget, e.g. 90s, 10m, 2h (default 10m); progress grids and FID checks pause its clock")
    t.add_argument("--steps", type=int, help="stop after this many optimizer steps")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    t.add_argument("--batch-size", type=int, help="images per step, over all processes (default 64)")
    t.add_argument("--lr", type=float, help="peak learning rate (default 2e-3)")
    t.add_argument("--seed", type=int, help="seed of the initial weights, data order and noise (default 0)")
    t.add_argument("--threads", type=int, help="CPU threads for torch (default: all cores)")
    t.add_argument("--preset", help="model preset (default: by image size; unet-tiny for smoke tests)")
    t.add_argument("--unconditional", action="store_true", help="ignore labels even if the data set has them")
    t.add_argument("--space", choices=("pixel", "latent"),
                   help="pixel (default) or latent: denoise the latents of the data set's own autoencoder "
                        "(make it first with `imagegen features train-autoencoder DATA`)")
    t.add_argument("--xflip", type=float, help="probability of mirroring a training image left-right "
                   "(default: 0.5 for colour data sets, 0 for gray ones; with --augment the flip is the "
                   "augmentation's, recorded for the network, and gray sets are mirrored with probability P)")
    t.add_argument("--augment", type=float, metavar="P",
                   help="for small data sets: EDM's non-leaking augmentation, each training picture flipped, shifted, "
                        "scaled, rotated and stretched, each with probability P, the network conditioned on it and "
                        "sampling asking for none (EDM: 0.12 on CIFAR-10, 0.15 elsewhere; default 0 = off; pixel "
                        "space only)")
    t.add_argument("--allow-small", action="store_true",
                   help="train on a data set of fewer than 64 images (its samples will mostly copy them)")
    t.add_argument("--fid-every", type=float, metavar="SECONDS",
                   help="FID of the EMA model every SECONDS of training, best checkpoint kept in best.json "
                        "(default: 120 for labeled sets up to 50,000 images; unlabeled sets: Inception-v3 as often "
                        "as fits in 10%% of --budget; 0 = off; not counted in the budget)")
    t.add_argument("--config", help="a config.toml to train with; the options above override its settings")
    _device_options(t)
    t.set_defaults(fn=cmd_train)

    g = verbs.add_parser("generate", help="generate images from a trained run", epilog=EPILOG_GENERATE, formatter_class=raw)
    g.add_argument("run", help="a run folder (latest checkpoint) or a checkpoint file")
    g.add_argument("--out", required=True, help="folder for the PNGs and grid.png")
    g.add_argument("-n", type=int, default=64, help="number of images (default 64)")
    g.add_argument("--seed", type=int, default=0, help="image i uses seed SEED+i (default 0)")
    g.add_argument("--steps", type=int, help="sampler steps (default: the run's, 10)")
    g.add_argument("--sampler", choices=SAMPLER_CHOICES,
                   help="ODE sampler (default: the run's, dpmpp-2m); dpmpp-2m, ipndm and euler spend one network "
                        "evaluation per step, heun two (minus one)")
    g.add_argument("--schedule", choices=SCHEDULE_CHOICES,
                   help="noise levels: karras (EDM's, dense at low noise), linear-t (uniform in flow time); "
                        "auto (default): the model's own, karras for flow and EDM models")
    g.add_argument("--class", type=int, help="generate only this class (default: classes spread evenly)")
    g.add_argument("--cfg", type=float, help="classifier-free guidance weight; 1 = none (default: the run's)")
    g.add_argument("--churn", type=float, help="EDM's stochastic sampling (S_churn) for euler and heun, e.g. 10; "
                                                "0 = deterministic (default)")
    g.add_argument("--checkpoint", help="a specific checkpoint file of the run")
    _device_options(g)
    g.set_defaults(fn=cmd_generate)

    e = verbs.add_parser("evaluate", help="score a run or a folder of PNGs against a data set", epilog=EPILOG_EVALUATE, formatter_class=raw)
    e.add_argument("source", help="a run folder (samples are generated) or a folder of PNGs")
    e.add_argument("--data", required=True, help="the prepared data set to compare against")
    e.add_argument("-n", type=int, default=2000, help="samples to generate from a run (default 2000)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--arch", default="mlp", choices=("mlp", "cnn"), help="evaluator network (default mlp)")
    e.add_argument("--features", default="auto", metavar="auto|evaluator|inception|PATH",
                   help="feature network for FID, KID, precision/recall: auto (default: the data set's evaluator "
                        "when it has labels, else Inception), the data set's evaluator, the standard FID "
                        "Inception-v3 (slow on a CPU: a few images/s per core), or a weights file")
    e.add_argument("--seeds", type=int, default=3,
                   help="FID as mean +- std over this many sample seeds (a run: n images per seed; "
                        "a folder: split into this many groups) (default 3)")
    e.add_argument("--figure", help="where to write the PNG figure (default: the JSON path with .png)")
    e.add_argument("--json", help="where to write the JSON report (default SOURCE/evaluation.json)")
    e.add_argument("--steps", type=int, help="sampler steps when generating from a run")
    e.add_argument("--sampler", choices=SAMPLER_CHOICES)
    e.add_argument("--schedule", choices=SCHEDULE_CHOICES, help="noise levels when generating from a run (as for generate)")
    e.add_argument("--cfg", type=float)
    e.add_argument("--churn", type=float, help="stochastic sampling when generating from a run (as for generate)")
    _device_options(e, compile_option=False)
    e.set_defaults(fn=cmd_evaluate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = args.fn(args)
    except ImagegenError as e:
        rank = os.environ.get("RANK", "0")  # under torchrun every rank says it, marked with its rank
        # one write per line, so the lines of ranks sharing a terminal or pipe do not interleave
        sys.stderr.write(f"{'' if rank == '0' else f'rank {rank}: '}error: {e}\n")
        sys.stderr.flush()
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        dist = sys.modules.get("imagegen.distributed")  # loaded only by verbs that run a model
        if dist is not None:
            dist.shutdown()  # leave the torchrun process group, if one was joined
    if summary:
        try:
            print(summary, flush=True)
        except BrokenPipeError:  # `imagegen data info D | head`: the reader left; not an error
            sys.stdout = open(os.devnull, "w")
    return 0


if __name__ == "__main__":
    sys.exit(main())
