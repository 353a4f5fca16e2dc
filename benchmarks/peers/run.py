"""The peer comparison in one command (`make bench-peers`): imagegen against two other
diffusion libraries on the same data set, budget, thread count and evaluator.

Stages, one after another (never two contenders at once), each printed with its time:
  1. the peers' virtual environment (default benchmarks/peers/.venv), created when missing
     or when its stamp does not match the pinned versions below;
  2. the data set (data/mnist5k, imported with `imagegen data import builtin:mnist5k`);
  3. the fp32 matmul GFLOP/s ceiling in both environments, interleaved, same thread count;
  4. speed probes (--timing matched, the default): each contender's clean training speed in
     alternating rounds; each then trains for the steps its budget buys at that speed, so load
     from elsewhere on the shared machine does not change what a contender gets;
  5. contenders: diffusers, lucidrains (peer scripts in the peer venv), imagegen at --budget
     and at --short-budget (`imagegen train`, then `imagegen generate` with the run's default
     guidance and unguided with --cfg 1, --draws x n images from seed 0 each), and a
     generation memory check (--gen-rss-n images);
  6. `imagegen evaluate` of every sample folder with the same settings: FID is the mean over
     its sets of n samples (`--seeds`: a peer's folder is one set, an imagegen mode's is
     --draws contiguous sets, seeds k*n .. (k+1)*n - 1, as `imagegen evaluate RUN --seeds`);
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

The full run takes about 1.5 hours with 2 threads (benchmarks/peers/README.md).
Example, a smoke test of every stage in about 4 minutes (`imagegen evaluate` needs 2 or more
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
import subprocess
import sys
import time
import tomllib
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent
PEER_PINS = ["torch==2.14.1", "torchvision==0.29.1", "diffusers==0.42.1", "denoising-diffusion-pytorch==2.3.4",
             "numpy", "pillow"]
STAMP = ".bench-peers-stamp"
CONTENDERS = ("diffusers", "lucidrains", "imagegen", "imagegen-short")
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


class Log:
    """Progress lines stamped with the time since the start."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        s = int(time.perf_counter() - self.t0)
        print(f"[{s // 60:3d}:{s % 60:02d}] {msg}", flush=True)


log = Log()


@dataclass
class Child:
    """A finished child process: exit code, wall seconds, peak RSS (KiB) and its output's tail."""

    rc: int
    seconds: float
    peak_rss_kib: int
    tail: str


class ChildFailed(RuntimeError):
    pass


def run_child(cmd: list[str], env: dict[str, str], log_file: Path | None = None, echo: bool = True) -> Child:
    """Run ``cmd`` alone, stream its output (and copy it to ``log_file``), and measure it.

    os.wait4 returns the rusage of exactly this child, so ``ru_maxrss`` is its peak RSS."""
    t = time.perf_counter()
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    tail = b""
    sink = open(log_file, "ab") if log_file else None
    try:
        assert p.stdout is not None
        while chunk := p.stdout.read1(65536):
            if echo:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            if sink:
                sink.write(chunk)
            tail = (tail + chunk)[-65536:]
    finally:
        if sink:
            sink.close()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    return Child(p.returncode, time.perf_counter() - t, usage.ru_maxrss, tail.decode(errors="replace"))


def checked(child: Child, what: str) -> Child:
    if child.rc != 0:
        last = [ln for ln in child.tail.replace("\r", "\n").splitlines() if ln.strip()][-3:]
        raise ChildFailed(f"{what} exited with code {child.rc}: " + " | ".join(last))
    return child


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    return env


# ---------------------------------------------------------------------------- peer venv
def ensure_peer_venv(venv: Path, env: dict[str, str], logs: Path) -> Path:
    """The peers' python, after creating or refreshing ``venv`` when its stamp is stale."""
    py = venv / "bin" / "python"
    want = " ".join(PEER_PINS)
    if peer_venv_ready(venv):
        log(f"peer venv {venv} is up to date ({want})")
        return py
    if sys.version_info[:2] != (3, 11):
        log(f"warning: python {platform.python_version()}; the torch 2.14.1 / torchvision 0.29.1 wheels on this "
            "machine's disk are for Python 3.11, so pip may have to download them (or fail)")
    if not py.exists():
        log(f"creating the peer venv {venv}")
        checked(run_child([sys.executable, "-m", "venv", venv], env), "python -m venv")
    pip_log = logs / "peer-venv-pip.log"
    log(f"installing {want} into {venv} (~5.5 GB, mostly the CUDA build of torch from this machine's disk; "
        f"a minute or more; pip's output in {pip_log})")
    checked(run_child([py, "-m", "pip", "install", "--progress-bar", "off", *PEER_PINS], env, pip_log, echo=False),
            f"pip install (see {pip_log})")
    check = (f"import sys; sys.path.insert(0, {str(HERE)!r})\n"
             "import torch, torchvision, diffusers, denoising_diffusion_pytorch, diffusers_ddpm, lucidrains_ddpm\n"
             "print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'diffusers', diffusers.__version__)\n"
             f"assert torch.__version__.split('+')[0] == {PEER_PINS[0].split('==')[1]!r}, torch.__version__")
    checked(run_child([py, "-c", check], env), "importing the peer scripts in the peer venv")
    (venv / STAMP).write_text(want + "\n")
    return py


def peer_venv_ready(venv: Path) -> bool:
    """Whether ``venv`` exists and its stamp names the pinned versions."""
    stamp = venv / STAMP
    return (venv / "bin" / "python").exists() and stamp.exists() and stamp.read_text().strip() == " ".join(PEER_PINS)


# ---------------------------------------------------------------------------- stages
def ensure_data(data: Path, env: dict[str, str], threads: int) -> None:
    if (data / "manifest.json").exists():
        log(f"data set {data} is there")
        return
    log(f"importing builtin:mnist5k into {data}")
    checked(run_child([BIN / "imagegen", "data", "import", "builtin:mnist5k", data, "--workers", str(threads)], env),
            "imagegen data import")


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
    contender the steps that the budget buys at that speed."""
    res: dict[str, Any] = {n: {"rounds": []} for n in names}
    for _ in range(rounds):
        for name in names:
            folder = out / "probes" / name
            if name in PEER_SCRIPTS:
                cmd = [pythons["peers"], HERE / PEER_SCRIPTS[name], a.data, folder, "--probe", str(a.probe_steps),
                       "--threads", str(a.threads)]
            else:
                cmd = [pythons["imagegen"], "-c", IMAGEGEN_PROBE, a.data, str(a.threads), str(a.probe_steps), folder,
                       ROOT / "benchmarks"]
            checked(run_child(cmd, env, echo=False), f"{name} speed probe")
            p = json.loads((folder / "probe.json").read_text())
            res[name]["batch"] = p["batch"]
            res[name]["rounds"].append(round(p["step_seconds"], 4))
    for name, r in res.items():
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
             sets: int = 1) -> dict[str, Any]:
    """`imagegen evaluate` of the ``n`` PNGs of a folder as ``sets`` contiguous sets of n/sets;
    the fields the table needs (``fid``: the mean over the sets, ``fid_seeds``: each set's)."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    c = checked(run_child([BIN / "imagegen", "evaluate", folder, "--data", data, "--json", json_path,
                           "-n", str(n), "--seeds", str(sets)], env,
                          logs / f"evaluate-{json_path.stem}.log", echo=False), f"imagegen evaluate {folder}")
    r = json.loads(json_path.read_text())
    keep = ("n", "seeds", "fid", "fid_std", "fid_seeds", "fid_pooled", "kid", "precision", "recall",
            "confident_fraction", "class_accuracy", "cas")
    ev = {k: r.get(k) for k in keep} | {"json": str(json_path), "seconds": round(c.seconds, 1)}
    log(f"  FID {ev['fid']:.2f} ({sets_text(ev)}), confident {ev['confident_fraction']}, "
        f"class accuracy {ev['class_accuracy']}")
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
    r["evaluation"] = evaluate(folder, a.data, out / "eval" / f"{name}.json", env, logs, a.n)
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
            "training_fids": fids}


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
    for mode, cfg in (("guided", None), ("unguided", 1.0)):
        log(f"{name}: generating {total} samples ({a.draws} set(s) of {a.n}), {mode}")
        g: dict[str, Any] = {"cfg": cfg}
        try:
            g = imagegen_generate(run, base / f"samples-{mode}", total, env, logs / f"{name}-generate-{mode}.log", cfg)
            log(f"{name} {mode}: {g['sample_img_per_s']} img/s ({g['nfe']} NFE), peak RSS "
                f"{mib(g['peak_rss_kib'])}; evaluating")
            g["evaluation"] = evaluate(Path(g["samples"]), a.data, out / "eval" / f"{name}-{mode}.json", env, logs,
                                       total, a.draws)
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


# ---------------------------------------------------------------------------- report
def threads_text(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f} MiB"


def fmt(v: Any, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def table_rows(contenders: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per sample folder: a peer, or an imagegen run with one sampling mode."""
    rows = []
    for name, r in contenders.items():
        if r.get("error") and "steps" not in r:
            rows.append({"contender": name, "error": r["error"]})
            continue
        train = {"kind": r["kind"], "torch": r.get("torch"), "params": r.get("params"), "budget": r.get("budget"), "steps": r.get("steps"),
                 "batch": r.get("batch"), "train_img_per_s": r.get("train_img_per_s"), "rss_train": r.get("peak_rss_kib"),
                 "probe_img_per_s": r.get("probe_img_per_s")}
        if r["kind"] == "peer":
            rows.append({"contender": name, **train, "sampler": r.get("sampler"), "nfe": r.get("nfe"),
                         "sample_img_per_s": r.get("sample_img_per_s"), "rss_generate": None,
                         **(r.get("evaluation") or {})})
            continue
        for mode, g in r.get("generate", {}).items():
            cfg = r["default_cfg"] if g["cfg"] is None else g["cfg"]
            rows.append({"contender": f"{name} {mode} (cfg {cfg:g})", **train, "sampler": r["sampler"],
                         "nfe": g.get("nfe"), "sample_img_per_s": g.get("sample_img_per_s"),
                         "rss_generate": g.get("peak_rss_kib"), "error": g.get("error"),
                         **(g.get("evaluation") or {})})
    return rows


def evaluation_of(contenders: dict[str, Any], name: str, mode: str | None = None) -> dict[str, Any]:
    """The evaluation of a peer's samples, or of one sampling mode of an imagegen run ({} if none)."""
    r = contenders.get(name) or {}
    if mode is not None:
        r = r.get("generate", {}).get(mode) or {}
    return r.get("evaluation") or {}


def sets_text(ev: dict[str, Any]) -> str:
    """'one set of n' or 'mean of k sets of n/k: a, b, c' for an evaluation."""
    fids = ev.get("fid_seeds") or []
    if len(fids) < 2:
        return f"one set of {ev.get('n')}"
    return f"mean of {len(fids)} sets of {ev['n'] // len(fids)}: " + ", ".join(f"{f:.3f}" for f in fids)


def report(results: dict[str, Any]) -> str:
    cols = ["contender", "torch", "params", "budget s", "steps x batch", "probe img/s", "train img/s", "sampler (NFE)",
            "sampling img/s", "FID of n (mean +- std over sets)", "sets of n", "confident", "requested class", "peak RSS train", "peak RSS generate"]
    lines = [f"## Peer comparison, {results['date']}, {results['machine']}, {threads_text(results['threads'])}, "
             f"n = {results['n']} samples per set", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table_rows(results["contenders"]):
        if "steps" not in row:
            lines.append(f"| {row['contender']} | FAILED (below) |" + " |" * (len(cols) - 2))
            continue
        cells = [row["contender"], fmt(row["torch"]), f"{row['params'] / 1e6:.2f} M" if row["params"] else "-",
                 fmt(row["budget"], "g"), f"{row['steps']} x {row['batch']}", fmt(row["probe_img_per_s"], ".0f"),
                 fmt(row["train_img_per_s"], ".0f"),
                 f"{row['sampler']} ({fmt(row['nfe'])})", fmt(row["sample_img_per_s"], ".1f"),
                 "FAILED" if row.get("error") else fmt(row.get("fid"), ".2f") + (
                     f" +- {row['fid_std']:.2f}" if row.get("fid_std") is not None else ""),
                 fmt(row.get("seeds")),
                 fmt(row.get("confident_fraction"), ".3f"), fmt(row.get("class_accuracy"), ".3f"),
                 mib(row["rss_train"]), "(in train)" if row["kind"] == "peer" else mib(row["rss_generate"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if results.get("timing") == "matched":
        lines.append("- timing: matched. Every contender's clean training speed was probed first (probe img/s, the "
                     "fastest of alternating rounds); each then trained for the steps its budget buys at that speed. "
                     "train img/s is the speed it actually got.")
    else:
        lines.append("- timing: wall clock. Each contender trained for its budget in seconds.")
    mm = results.get("matmul", {})
    ceil = [f"{name} env (torch {m['torch']}) {m['gflops']:.1f} GFLOP/s" for name, m in mm.items() if "gflops" in m]
    if ceil:
        lines.append(f"- fp32 matmul 2048^2 ceiling, {threads_text(results['threads'])}: " + "; ".join(ceil))
    c = results["contenders"]
    peers = [f for f in (evaluation_of(c, "diffusers").get("fid"), evaluation_of(c, "lucidrains").get("fid")) if f is not None]
    if peers:
        best = min(peers)
        for label, name, mode in (("imagegen unguided", "imagegen", "unguided"), ("imagegen guided", "imagegen", "guided"),
                                  ("imagegen-short unguided", "imagegen-short", "unguided"),
                                  ("imagegen-short guided", "imagegen-short", "guided")):
            ev = evaluation_of(c, name, mode)
            if f := ev.get("fid"):
                fids = ev.get("fid_seeds") or []
                first = f"; the first set alone: {best / fids[0]:.1f}x" if len(fids) > 1 else ""
                lines.append(f"- best peer FID / {label} FID: {best:.2f} / {f:.2f} = {best / f:.1f}x ({sets_text(ev)}{first})")
    if g := results.get("gen_rss"):
        lines.append(f"- generation memory: {g['n']} images (default guidance) peak RSS {mib(g.get('peak_rss_kib'))}"
                     + (f" ({g['sample_img_per_s']} img/s)" if "sample_img_per_s" in g else "")
                     + (f"; FAILED: {g['error']}" if g.get("error") else ""))
    errors = [f"{n}: {r['error']}" for n, r in c.items() if r.get("error")]
    errors += [f"{n} {mode}: {g['error']}" for n, r in c.items() for mode, g in r.get("generate", {}).items()
               if g.get("error")]
    lines += [f"- FAILED {e}" for e in errors]
    lines.append("- peers train and sample in one process: their peak RSS is under 'train'. "
                 "FID, confident (>0.9) and requested class (class accuracy) by `imagegen evaluate` "
                 "(data set evaluator). Every FID is of sets of n samples (FID is biased upwards at small n, so "
                 "only sets of one size are compared): a peer samples one set; imagegen samples --draws sets per "
                 "mode (seeds k*n .. (k+1)*n - 1) and its FID is their mean +- std, because one set of 2,000 moves "
                 "its FID by about +-0.1 at FID 1. The peers' DDIM 50 runs at 2-5 img/s, and at their FID one set's "
                 "relative spread is a few percent. Confident and requested class are over all of a row's samples. "
                 "lucidrains' model is unconditional.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=float, default=600.0, help="training seconds of every contender (default 600)")
    p.add_argument("--short-budget", type=float, default=120.0, help="imagegen's short run in seconds (default 120; 0 skips)")
    p.add_argument("-n", type=int, default=2000, help="samples per contender and sampling mode (default 2000)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of every child (default 2)")
    p.add_argument("--only", default=",".join(CONTENDERS), help=f"comma list of {','.join(CONTENDERS)} (default all)")
    p.add_argument("--out", type=Path, default=ROOT / "out" / "peers", help="output folder (default out/peers)")
    p.add_argument("--venv", type=Path, default=HERE / ".venv", help="the peers' venv (default benchmarks/peers/.venv)")
    p.add_argument("--gen-rss-n", type=int, default=10000,
                   help="images of the generation memory check from the imagegen run (default 10000; 0 skips)")
    p.add_argument("--data", type=Path, default=ROOT / "data" / "mnist5k", help="data set (default data/mnist5k)")
    p.add_argument("--timing", default="matched", choices=("matched", "wall"),
                   help="matched (default): probe every contender's clean training speed first (alternating rounds) "
                        "and train each for the steps its budget buys at that speed, so load from elsewhere on a "
                        "shared machine during a run does not change what a contender gets; wall: train each for "
                        "its budget in seconds, whatever the machine gives it")
    p.add_argument("--draws", type=int, default=3,
                   help="independent sets of -n samples per imagegen sampling mode (set k: seeds k*n .. (k+1)*n - 1; "
                        "default 3); its FID is their mean")
    p.add_argument("--probe-steps", type=int, default=15, help="timed steps per speed probe round (default 15)")
    a = p.parse_args()
    a.only = [s.strip() for s in a.only.split(",") if s.strip()]
    if bad := sorted(set(a.only) - set(CONTENDERS)):
        p.error(f"--only: unknown contender(s) {', '.join(bad)}; choose from {', '.join(CONTENDERS)}")
    if a.draws < 1:
        p.error(f"--draws must be at least 1 (got {a.draws})")
    if a.short_budget <= 0 and "imagegen-short" in a.only:
        a.only.remove("imagegen-short")
    a.out, a.venv, a.data = a.out.resolve(), a.venv.resolve(), a.data.resolve()
    return a


def main() -> int:
    a = parse_args()
    env = child_env(a.threads)
    out, logs = a.out, a.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "date": datetime.now().isoformat(timespec="seconds"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "threads": a.threads, "budget": a.budget, "short_budget": a.short_budget, "n": a.n, "data": str(a.data),
        "only": a.only, "timing": a.timing, "python": sys.executable, "contenders": {}}

    def save() -> None:
        (out / "results.json").write_text(json.dumps(results, indent=2))

    def stage(name: str, fn, *args) -> Any:
        t = time.perf_counter()
        log(f"=== {name}")
        try:
            return fn(*args)
        except Exception as e:  # one stage's failure must not stop the others
            log(f"=== {name}: FAILED: {type(e).__name__}: {e}")
            if not isinstance(e, ChildFailed):
                traceback.print_exc()
            return {"error": f"{type(e).__name__}: {e}"}
        finally:
            log(f"=== {name}: {time.perf_counter() - t:.0f} s")
            save()

    peer_py = None
    if any(c in a.only for c in PEER_SCRIPTS):
        v = stage("peer venv", ensure_peer_venv, a.venv, env, logs)
        if isinstance(v, dict):
            results["peer_venv_error"] = v["error"]
            log(f"the peer venv could not be made; peers are skipped. Remove {a.venv} and run again, or install by "
                f"hand: {a.venv}/bin/pip install {' '.join(PEER_PINS)}")
        else:
            peer_py = v
    data = stage("data set", ensure_data, a.data, env, a.threads)
    if isinstance(data, dict):
        results["data_error"] = data["error"]
        save()
        return 1
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
        probe = probes.get(name if name in PEER_SCRIPTS else "imagegen")  # both imagegen runs share one probe
        if name in PEER_SCRIPTS:
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
