"""The peer comparison in one command (`make bench-peers`): imagegen against two other
diffusion libraries on the same data set, budget, thread count and evaluator.

Stages, one after another (never two contenders at once), each printed with its time:
  1. the data set (--data, default data/mnist5k): imported with `imagegen data import SRC DIR
     [--size N]` when DIR holds none (SRC: --import, or builtin:mnist5k for the default DIR);
  2. the peers' virtual environment (default benchmarks/peers/.venv), created when missing
     or when its stamp does not match the pinned versions below (skipped when the peers have
     no configuration for the data set's size);
  3. the fp32 matmul GFLOP/s ceiling in both environments, interleaved, same thread count;
  4. speed probes (--timing matched, the default): each contender's clean training speed in
     alternating rounds; each then trains for the steps its budget buys at that speed, so load
     from elsewhere on the shared machine does not change what a contender gets;
  5. contenders: real (n pictures drawn from the data set: the floor of the scores),
     diffusers, lucidrains (peer scripts in the peer venv, configured for the data set's size
     and channels: peer_configs.py), imagegen at --budget and at --short-budget (`imagegen
     train` with its defaults, then `imagegen generate` with the run's default guidance and
     unguided with --cfg 1, or only unguided for an unlabelled set; --draws x n images from
     seed 0 each), and a generation memory check (--gen-rss-n images);
  6. `imagegen evaluate --features F` of every sample folder with the same settings (F from
     --metrics: the data set's evaluator, or Inception-v3 for FID and KID against the whole
     set): FID is the mean over its sets of n samples (`--seeds`: a peer's folder is one set,
     an imagegen mode's is --draws contiguous sets, seeds k*n .. (k+1)*n - 1);
  7. OUT/results.json (all raw numbers) and OUT/results.md (the table, also printed).
A contender that fails is reported and recorded in results.json; the others still run.
Every child runs with OMP_NUM_THREADS=MKL_NUM_THREADS=--threads; its peak resident memory is
read from os.wait4 (the kernel's ru_maxrss of that one child, which includes anything it
waited for).

Why a separate venv with torch 2.14.1: lucidrains' denoising-diffusion-pytorch imports
torchvision, and PyPI's torchvision wheel does not import beside imagegen's local CPU torch
2.13.0 ("operator torchvision::nms does not exist"). The matching torch 2.14.1 + torchvision
0.29.1 pair lies on this machine's disk, and pip on Python 3.11 installs both from there (a
CUDA build, ~5.5 GB, that runs on the CPU). diffusers shares that venv. torch is always
pinned: an unpinned torch would pull another multi-GB build.

Run it with imagegen's venv python (the Makefile does): it imports imagegen, and finds the
`imagegen` command beside sys.executable.

The mnist5k run takes about 1.5 hours with 2 threads (benchmarks/peers/README.md). Examples:
    .venv/bin/python benchmarks/peers/run.py --import builtin:emoji --data data/emoji32 --size 32 --budget 600 --metrics inception
and a smoke test of every stage in about 4 minutes (`imagegen evaluate` needs 2 or more
samples per set):
    .venv/bin/python benchmarks/peers/run.py --budget 5 --short-budget 3 -n 16 --gen-rss-n 32 --threads 1 --out /tmp/peers-smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import time
import tomllib
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

from bench_data import (DEFAULT_DATA, BenchError, ensure_data, peer_shape_error, resolve_defaults,
                        write_real_sample)
from children import (BIN, HERE, PEER_PINS, ROOT, ChildFailed, checked, child_env, ensure_peer_venv, log,
                      peer_venv_ready, run_child)
from results_table import mib, report, sets_text, threads_text

CONTENDERS = ("real", "diffusers", "lucidrains", "imagegen", "imagegen-short")
METRICS = ("auto", "evaluator", "inception")
PEER_SCRIPTS = {"diffusers": "diffusers_ddpm.py", "lucidrains": "lucidrains_ddpm.py"}
# the same few lines measure the ceiling in either environment (2048^2 fp32, as benchmarks/train_speed.py)
MATMUL = """
import statistics, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
for _ in range(2):
    a @ b
ts = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
print(torch.__version__, 2 * 2048**3 / statistics.median(ts) / 1e9)
"""
# imagegen's clean training speed: its own Trainer step with the defaults `imagegen train` uses
IMAGEGEN_PROBE = """
import json, sys, tempfile, torch
from pathlib import Path
sys.path.insert(0, sys.argv[5])
from train_speed import median_time
from imagegen.data import load_dataset
from imagegen.training import Trainer, make_config
data, threads, k, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
torch.set_num_threads(threads)
ds = load_dataset(data)
config = make_config(data, steps=10**6)
with tempfile.TemporaryDirectory() as tmp:
    tr = Trainer(config, Path(tmp), ds.images, ds.labels)
    step_s = median_time(tr.train_step, k, warmup=8)
    tr.close()
out.mkdir(parents=True, exist_ok=True)
(out / "probe.json").write_text(json.dumps({"step_seconds": step_s, "batch": config.train.batch_size}))
"""
GENERATED = re.compile(r"wrote (\d+) PNGs .* in ([\d.]+)s \((\d+) network evaluations per image\)")


def run_real(a: argparse.Namespace, env: dict[str, str], out: Path, logs: Path) -> dict[str, Any]:
    """Real vs real: n random pictures of the data set, scored like the samples."""
    folder = out / "real"
    k = write_real_sample(a.data, folder, a.n)
    log(f"real: {k} pictures drawn at random from {a.data}; evaluating")
    return {"kind": "real", "samples": str(folder), "n": k,
            "evaluation": evaluate(folder, a.data, out / "eval" / "real.json", env, logs, k, a.features)}


def matmul_ceilings(pythons: dict[str, Path], env: dict[str, str], threads: int, rounds: int = 3,
                    repeats: int = 7) -> dict[str, Any]:
    """fp32 matmul GFLOP/s per environment (each round the median of ``repeats`` products);
    the rounds alternate between the environments so that noise on a shared machine hits both
    alike, and the ceiling is the best round (other load only ever slows a round down)."""
    out: dict[str, Any] = {name: {"rounds": []} for name in pythons}
    for _ in range(rounds):
        for name, py in pythons.items():
            c = run_child([py, "-c", MATMUL, str(threads), str(repeats)], env, echo=False)
            if c.rc != 0:
                out[name]["error"] = c.tail.strip().splitlines()[-1:] or [f"exit code {c.rc}"]
                continue
            version, gflops = c.tail.split()[-2:]
            out[name]["torch"] = version
            out[name]["rounds"].append(round(float(gflops), 1))
    for name, r in out.items():
        if r["rounds"]:
            r["gflops"] = max(r["rounds"])
            log(f"matmul ceiling, {name} env (torch {r['torch']}, {threads_text(threads)}): {r['gflops']:.1f} GFLOP/s "
                f"(rounds {r['rounds']})")
    return out


def speed_probes(names: list[str], pythons: dict[str, Path], a: argparse.Namespace, env: dict[str, str],
                 out: Path, rounds: int = 2) -> dict[str, Any]:
    """Each contender's clean training speed: ``a.probe_steps`` timed steps after a warm-up, in
    ``rounds`` alternating rounds (so noise on the shared machine hits all alike), the fastest
    round kept (other load only ever slows a round down). ``--timing matched`` then gives each
    contender the steps that the budget buys at that speed. A contender whose probe fails gets
    an ``error`` (and then trains for the budget in seconds); the others are still probed."""
    res: dict[str, Any] = {n: {"rounds": []} for n in names}
    for _ in range(rounds):
        for name in (n for n in names if "error" not in res[n]):
            folder = out / "probes" / name
            if name in PEER_SCRIPTS:
                cmd = [pythons["peers"], HERE / PEER_SCRIPTS[name], a.data, folder, "--probe", str(a.probe_steps),
                       "--threads", str(a.threads)]
            else:
                cmd = [pythons["imagegen"], "-c", IMAGEGEN_PROBE, a.data, str(a.threads), str(a.probe_steps), folder,
                       ROOT / "benchmarks"]
            try:
                checked(run_child(cmd, env, echo=False), f"{name} speed probe")
            except ChildFailed as e:
                log(f"speed probe {name}: FAILED: {e}")
                res[name]["error"] = str(e)
                continue
            p = json.loads((folder / "probe.json").read_text())
            res[name]["batch"] = p["batch"]
            res[name]["rounds"].append(round(p["step_seconds"], 4))
    for name, r in res.items():
        if "error" in r:
            continue
        r["step_seconds"] = min(r["rounds"])
        r["img_per_s"] = round(r["batch"] / r["step_seconds"], 1)
        log(f"speed probe {name}: {r['step_seconds'] * 1000:.0f} ms per step of {r['batch']} ({r['img_per_s']} img/s; "
            f"rounds {[round(t * 1000) for t in r['rounds']]} ms)")
    return res


def matched_steps(budget: float, probe: dict[str, Any] | None) -> int | None:
    """The steps ``budget`` seconds buy at the probed speed, or None (train for the budget)."""
    if not probe or "step_seconds" not in probe:
        return None
    return max(1, round(budget / probe["step_seconds"]))


def evaluate(folder: Path, data: Path, json_path: Path, env: dict[str, str], logs: Path, n: int,
             features: str, sets: int = 1) -> dict[str, Any]:
    """`imagegen evaluate --features FEATURES` of the ``n`` PNGs of a folder as ``sets``
    contiguous sets of n/sets; the fields the table needs (``fid``: the mean over the sets,
    ``fid_seeds``: each set's; ``kid``, ``kid_std``: over all n)."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    c = checked(run_child([BIN / "imagegen", "evaluate", folder, "--data", data, "--json", json_path,
                           "-n", str(n), "--seeds", str(sets), "--features", features], env,
                          logs / f"evaluate-{json_path.stem}.log", echo=False), f"imagegen evaluate {folder}")
    r = json.loads(json_path.read_text())
    keep = ("n", "seeds", "fid", "fid_std", "fid_seeds", "fid_pooled", "kid", "kid_std", "precision", "recall",
            "confident_fraction", "class_accuracy", "cas")
    ev = {k: r.get(k) for k in keep} | {"json": str(json_path), "seconds": round(c.seconds, 1)}
    log(f"  FID {ev['fid']:.2f} ({sets_text(ev)}), KID x 1000 {ev['kid'] * 1000:.2f}, confident "
        f"{ev['confident_fraction']}, class accuracy {ev['class_accuracy']}")
    return ev


def run_peer(name: str, py: Path, a: argparse.Namespace, env: dict[str, str], out: Path, logs: Path,
             steps: int | None = None) -> dict[str, Any]:
    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    length = f"{steps} steps ({a.budget:g} s at its probed speed)" if steps else f"{a.budget:g} s"
    log(f"{name}: training {length}, then {a.n} samples")
    c = checked(run_child([py, HERE / PEER_SCRIPTS[name], a.data, folder, "--budget", str(a.budget), "-n", str(a.n),
                           "--threads", str(a.threads)] + (["--steps", str(steps)] if steps else []),
                          env, logs / f"{name}.log"), f"{name} peer")
    peer = json.loads((folder / "peer.json").read_text())
    r = {"kind": "peer", "samples": str(folder), "wall_seconds": round(c.seconds, 1),
         "peak_rss_kib": c.peak_rss_kib, **peer}
    log(f"{name}: {peer['steps']} steps x {peer['batch']}, {peer['train_img_per_s']} img/s training, "
        f"{peer['sample_img_per_s']} img/s sampling, peak RSS {mib(c.peak_rss_kib)}; evaluating")
    r["evaluation"] = evaluate(folder, a.data, out / "eval" / f"{name}.json", env, logs, a.n, a.features)
    return r


def imagegen_run_info(run: Path) -> dict[str, Any]:
    """Model size, steps, batch and training speed from a finished run's config.toml and metrics.jsonl."""
    import torch

    from imagegen.generate import load

    cfg = tomllib.loads((run / "config.toml").read_text())
    m, t, s = cfg["model"], cfg["train"], cfg["sample"]
    torch.set_num_threads(1)
    params = sum(q.numel() for q in load(run).denoiser.parameters())
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    last = [r for r in records if "loss" in r][-1]
    fids = [r["fid"] for r in records if "fid" in r]
    return {"torch": torch.__version__, "params": params, "preset": m["preset"], "steps": last["step"],
            "batch": t["batch_size"], "train_seconds": last["elapsed"], "train_img_per_s": last["img_per_s"],
            "sampler": f"{s['sampler']} {s['steps']}", "default_cfg": s["cfg"],
            "num_classes": m.get("num_classes", 0), "training_fids": fids}


def imagegen_generate(run: Path, folder: Path, n: int, env: dict[str, str], log_file: Path,
                      cfg: float | None = None, seed: int = 0) -> dict[str, Any]:
    shutil.rmtree(folder, ignore_errors=True)
    cmd = [BIN / "imagegen", "generate", run, "-n", str(n), "--out", folder, "--seed", str(seed)]
    cmd += [] if cfg is None else ["--cfg", str(cfg)]
    c = checked(run_child(cmd, env, log_file), f"imagegen generate {folder.name}")
    m = GENERATED.search(c.tail)
    seconds = float(m.group(2)) if m else c.seconds
    return {"samples": str(folder), "n": n, "cfg": cfg, "seed": seed, "seconds": round(seconds, 1), "wall_seconds": round(c.seconds, 1),
            "sample_img_per_s": round(n / seconds, 2), "nfe": int(m.group(3)) if m else None,
            "peak_rss_kib": c.peak_rss_kib}


def sampling_modes(num_classes: int) -> tuple[tuple[str, float | None], ...]:
    """imagegen's sampling modes: (name, --cfg or None for the run's default). An unconditional
    model (an unlabelled data set) has nothing to guide: only unguided, cfg 1."""
    return (("guided", None), ("unguided", 1.0)) if num_classes else (("unguided", 1.0),)


def run_imagegen(name: str, budget: float, a: argparse.Namespace, env: dict[str, str], out: Path,
                 logs: Path, steps: int | None = None) -> dict[str, Any]:
    base = out / f"imagegen-{budget:g}"
    run = base / "run"
    shutil.rmtree(base, ignore_errors=True)
    length = ["--steps", str(steps)] if steps else ["--budget", f"{budget:g}s"]
    log(f"{name}: training " + (f"{steps} steps ({budget:g} s at its probed speed)" if steps else f"{budget:g} s"))
    c = checked(run_child([BIN / "imagegen", "train", a.data, "--out", run, *length,
                           "--threads", str(a.threads)], env, logs / f"{name}-train.log"), f"{name} training")
    r: dict[str, Any] = {"kind": "imagegen", "run": str(run), "budget": budget, "wall_seconds": round(c.seconds, 1),
                         "peak_rss_kib": c.peak_rss_kib, **imagegen_run_info(run)}
    log(f"{name}: {r['steps']} steps x {r['batch']}, {r['train_img_per_s']} img/s, peak RSS {mib(c.peak_rss_kib)}")
    r["generate"] = {}
    total = a.n * a.draws
    for mode, cfg in sampling_modes(r["num_classes"]):
        log(f"{name}: generating {total} samples ({a.draws} set(s) of {a.n}), {mode}")
        g: dict[str, Any] = {"cfg": cfg}
        try:
            g = imagegen_generate(run, base / f"samples-{mode}", total, env, logs / f"{name}-generate-{mode}.log", cfg)
            log(f"{name} {mode}: {g['sample_img_per_s']} img/s ({g['nfe']} NFE), peak RSS "
                f"{mib(g['peak_rss_kib'])}; evaluating")
            g["evaluation"] = evaluate(Path(g["samples"]), a.data, out / "eval" / f"{name}-{mode}.json", env, logs,
                                       total, a.features, a.draws)
        except ChildFailed as e:
            log(f"{name} {mode}: FAILED: {e}")
            g["error"] = str(e)
        r["generate"][mode] = g
    return r


def gen_rss_check(run: Path, n: int, env: dict[str, str], out: Path, logs: Path) -> dict[str, Any]:
    """Peak RSS of generating ``n`` images from ``run`` (default settings); the PNGs are deleted."""
    folder = out / "gen-rss"
    log(f"generation memory check: {n} images from {run}")
    try:
        g = imagegen_generate(run, folder, n, env, logs / "gen-rss.log")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    log(f"generation memory check: peak RSS {mib(g['peak_rss_kib'])} for {n} images ({g['sample_img_per_s']} img/s)")
    return {k: v for k, v in g.items() if k != "samples"}


# ---------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="a prepared imagegen data set (default data/mnist5k, imported from builtin:mnist5k when missing)")
    p.add_argument("--import", dest="source", metavar="SRC",
                   help="import SRC (anything `imagegen data import` takes, e.g. builtin:emoji) into --data first, "
                        "when --data holds no data set yet")
    p.add_argument("--size", type=int, help="image size for --import (`imagegen data import --size`); with an "
                                            "existing --data, checked against its images")
    p.add_argument("--budget", type=float, default=600.0, help="training seconds of every contender (default 600)")
    p.add_argument("--short-budget", type=float, default=120.0, help="imagegen's short run in seconds (default 120; 0 skips)")
    p.add_argument("-n", "--n", type=int, help="samples per set: per peer, per imagegen sampling mode and draw, and "
                                                "real pictures (default 2000 for one-channel sets such as mnist5k, "
                                                "1000 for colour)")
    p.add_argument("--metrics", default="auto", choices=METRICS,
                   help="features of FID and KID (`imagegen evaluate --features`): evaluator (the data set's classifier, "
                        "with confident and requested-class scores; labelled sets only), inception (Inception-v3, the "
                        "standard FID and KID), auto (default: evaluator for labelled sets, else inception)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of every child (default 2)")
    p.add_argument("--only", default=",".join(CONTENDERS), help=f"comma list of {','.join(CONTENDERS)} (default all)")
    p.add_argument("--out", type=Path, default=ROOT / "out" / "peers", help="output folder (default out/peers)")
    p.add_argument("--venv", type=Path, default=HERE / ".venv", help="the peers' venv (default benchmarks/peers/.venv)")
    p.add_argument("--gen-rss-n", type=int, default=10000,
                   help="images of the generation memory check from the imagegen run (default 10000; 0 skips)")
    p.add_argument("--timing", default="matched", choices=("matched", "wall"),
                   help="matched (default): probe every contender's clean training speed first (alternating rounds) "
                        "and train each for the steps its budget buys at that speed, so load from elsewhere on a "
                        "shared machine during a run does not change what a contender gets; wall: train each for "
                        "its budget in seconds, whatever the machine gives it")
    p.add_argument("--draws", type=int,
                   help="independent sets of -n samples per imagegen sampling mode (set k: seeds k*n .. (k+1)*n - 1); "
                        "its FID is their mean (default 3 with the evaluator, 1 with Inception)")
    p.add_argument("--probe-steps", type=int, default=15, help="timed steps per speed probe round (default 15)")
    a = p.parse_args(argv)
    a.only = [s.strip() for s in a.only.split(",") if s.strip()]
    if bad := sorted(set(a.only) - set(CONTENDERS)):
        p.error(f"--only: unknown contender(s) {', '.join(bad)}; choose from {', '.join(CONTENDERS)}")
    if a.draws is not None and a.draws < 1:
        p.error(f"--draws must be at least 1 (got {a.draws})")
    if a.n is not None and a.n < 2:
        p.error(f"-n must be at least 2 (`imagegen evaluate` needs 2 samples per set; got {a.n})")
    if a.size is not None and a.size < 1:
        p.error(f"--size must be a positive number of pixels (got {a.size})")
    if a.budget <= 0:
        p.error(f"--budget must be positive seconds (got {a.budget:g})")
    if a.threads < 1:
        p.error(f"--threads must be at least 1 (got {a.threads})")
    if a.short_budget <= 0 and "imagegen-short" in a.only:
        a.only.remove("imagegen-short")
    a.out, a.venv, a.data = a.out.resolve(), a.venv.resolve(), a.data.resolve()
    if a.source and Path(a.source).expanduser().exists():  # a local SRC: children run from the repository root
        a.source = str(Path(a.source).expanduser().resolve())
    return a


def main() -> int:
    a = parse_args()
    env = child_env(a.threads)
    out, logs = a.out, a.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "date": datetime.now().isoformat(timespec="seconds"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "threads": a.threads, "budget": a.budget, "short_budget": a.short_budget, "n": a.n, "data": str(a.data),
        "import": a.source, "only": a.only, "timing": a.timing, "python": sys.executable, "contenders": {}}

    def save() -> None:
        (out / "results.json").write_text(json.dumps(results, indent=2))

    def stage(name: str, fn, *args) -> Any:
        t = time.perf_counter()
        log(f"=== {name}")
        try:
            return fn(*args)
        except Exception as e:  # one stage's failure must not stop the others
            log(f"=== {name}: FAILED: {type(e).__name__}: {e}")
            if not isinstance(e, (ChildFailed, BenchError)):
                traceback.print_exc()
            return {"error": f"{type(e).__name__}: {e}"}
        finally:
            log(f"=== {name}: {time.perf_counter() - t:.0f} s")
            save()

    dataset = stage("data set", ensure_data, a.data, a.source, a.size, env, a.threads)
    if "error" not in dataset:
        try:
            resolve_defaults(a, dataset)
        except BenchError as e:
            dataset = {"error": f"BenchError: {e}"}
            log(f"=== data set: FAILED: {e}")
    if "error" in dataset:
        results["data_error"] = dataset["error"]
        save()
        return 1
    results.update(dataset=dataset, n=a.n, features=a.features, draws=a.draws)
    log(f"data set: {dataset['count']} images, {dataset['resolution']} px, {dataset['channels']} channel(s), "
        f"{dataset['classes'] or 'no'} classes; n = {a.n} per set, {a.features} features, {a.draws} draw(s)")
    peer_py = None
    wanted = [c for c in PEER_SCRIPTS if c in a.only]
    if wanted and (why := peer_shape_error(dataset)):
        log(f"the peers are skipped: {why}")
        for name in wanted:
            results["contenders"][name] = {"kind": "peer", "error": why}
        a.only = [c for c in a.only if c not in PEER_SCRIPTS]
    elif wanted:
        v = stage("peer venv", ensure_peer_venv, a.venv, env, logs)
        if isinstance(v, dict):
            results["peer_venv_error"] = v["error"]
            log(f"the peer venv could not be made; peers are skipped. Remove {a.venv} and run again, or install by "
                f"hand: {a.venv}/bin/pip install {' '.join(PEER_PINS)}")
        else:
            peer_py = v
    if peer_py is None and peer_venv_ready(a.venv):
        peer_py = a.venv / "bin" / "python"  # for the matmul ceiling only
    pythons = {"imagegen": Path(sys.executable)} | ({"peers": peer_py} if peer_py else {})
    results["matmul"] = stage("fp32 matmul ceiling", matmul_ceilings, pythons, env, a.threads)
    probes: dict[str, Any] = {}
    if a.timing == "matched":
        names = [n for n in ("diffusers", "lucidrains") if n in a.only and peer_py is not None]
        names += ["imagegen"] if {"imagegen", "imagegen-short"} & set(a.only) else []
        probes = stage("speed probes", speed_probes, names, pythons, a, env, out)
        results["probes"] = probes

    for name in (c for c in CONTENDERS if c in a.only):
        # both imagegen runs share one probe; the real pictures need none
        probe = None if name == "real" else probes.get(name if name in PEER_SCRIPTS else "imagegen")
        if name == "real":
            r = stage("real vs real", run_real, a, env, out, logs)
        elif name in PEER_SCRIPTS:
            if peer_py is None:
                results["contenders"][name] = {"kind": "peer", "error": "no peer venv"}
                continue
            r = stage(name, run_peer, name, peer_py, a, env, out, logs, matched_steps(a.budget, probe))
        else:
            budget = a.budget if name == "imagegen" else a.short_budget
            r = stage(name, run_imagegen, name, budget, a, env, out, logs, matched_steps(budget, probe))
        if r.get("steps") and probe and "img_per_s" in probe:
            r["probe_img_per_s"] = probe["img_per_s"]
        results["contenders"][name] = r
        if name == "imagegen" and a.gen_rss_n > 0 and "run" in r:
            results["gen_rss"] = stage("generation memory check", gen_rss_check, Path(r["run"]), a.gen_rss_n, env,
                                       out, logs) | {"n": a.gen_rss_n}
    save()
    md = report(results)
    (out / "results.md").write_text(md)
    print("\n" + md, flush=True)
    log(f"wrote {out / 'results.json'} and {out / 'results.md'}; logs in {logs}")
    failed = [n for n, r in results["contenders"].items() if r.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
