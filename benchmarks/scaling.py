"""Training throughput by device and process count: one process against torchrun, and the GPU.

CPU section: the default network on data/mnist5k, ``imagegen train --steps N`` as
- one process with 2 threads (the default: the batch split into 2 thread shards),
- one process with 1 thread,
- ``torchrun --standalone --nproc_per_node 2`` with 1 thread each (DDP over gloo),
in alternating rounds so machine noise hits them alike; each figure is the trainer's own
img/s over the run (``metrics.jsonl``, start-up excluded), median over rounds.

GPU section (only when CUDA is present; skipped otherwise): one process on ``cuda`` in fp32,
bf16 autocast, and bf16 + ``--compile``, at batch 64 and 256.

    python benchmarks/scaling.py                 # prints markdown tables
    python benchmarks/scaling.py --steps 200 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def train_rate(cmd: list[str], env: dict[str, str]) -> float:
    """Run one training command; return the img/s of its last metrics record."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        full = [str(c) for c in cmd] + ["--out", str(run)]
        res = subprocess.run(full, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"failed: {' '.join(full)}\n{res.stderr[-2000:]}")
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return float([r for r in rows if "img_per_s" in r][-1]["img_per_s"])


def env_with(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads)}


def cpu_section(a: argparse.Namespace) -> None:
    base = [BIN / "imagegen", "train", a.data, "--steps", str(a.steps), "--fid-every", "0", "--device", "cpu"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "imagegen", "train", a.data, "--steps", str(a.steps), "--fid-every", "0",
                "--device", "cpu", "--threads", "1"]
    setups = {
        "1 process x 2 threads (default, 2 thread shards)": (base + ["--threads", "2"], env_with(2)),
        "1 process x 1 thread": (base + ["--threads", "1"], env_with(1)),
        "torchrun: 2 processes x 1 thread (DDP, gloo)": (torchrun, env_with(1)),
    }
    rates: dict[str, list[float]] = {k: [] for k in setups}
    for r in range(a.rounds):
        for name, (cmd, env) in setups.items():
            rates[name].append(train_rate(cmd, env))
            print(f"round {r + 1}: {name}: {rates[name][-1]:.0f} img/s", file=sys.stderr)
    ref = statistics.median(rates[next(iter(setups))])
    print(f"\n### CPU: training throughput, {os.cpu_count()} cores, {a.steps} steps x batch 64, "
          f"median of {a.rounds} alternating rounds\n")
    print("| setup | img/s (median) | rounds | vs default |")
    print("|---|---:|---|---:|")
    for name, vals in rates.items():
        med = statistics.median(vals)
        print(f"| {name} | {med:.0f} | {', '.join(f'{v:.0f}' for v in vals)} | {med / ref:.2f}x |")


def gpu_section(a: argparse.Namespace) -> None:
    import torch

    if not torch.cuda.is_available():
        print("\n### GPU\n\nskipped: this PyTorch sees no CUDA device.")
        return
    print(f"\n### GPU: {torch.cuda.get_device_name(0)}, {a.gpu_steps} steps, torch {torch.__version__}\n")
    print("| batch | precision | compile | img/s |")
    print("|---:|---|---|---:|")
    for batch in (64, 256):
        for precision, compile_ in (("fp32", False), ("bf16", False), ("bf16", True)):
            cmd = [BIN / "imagegen", "train", a.data, "--steps", str(a.gpu_steps), "--fid-every", "0",
                   "--device", "cuda", "--precision", precision, "--batch-size", str(batch)]
            rate = train_rate(cmd + (["--compile"] if compile_ else []), dict(os.environ))
            print(f"| {batch} | {precision} | {'yes' if compile_ else 'no'} | {rate:.0f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT / "data" / "mnist5k"), help="a prepared data set (default data/mnist5k)")
    p.add_argument("--steps", type=int, default=150, help="steps per CPU run (default 150)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--gpu-steps", type=int, default=600, help="steps per GPU run (default 600)")
    p.add_argument("--skip-cpu", action="store_true", help="only the GPU section")
    a = p.parse_args()
    if not (Path(a.data) / "manifest.json").is_file():
        subprocess.run([BIN / "imagegen", "data", "import", "builtin:mnist5k", a.data], check=True)
    if not a.skip_cpu:
        cpu_section(a)
    gpu_section(a)


if __name__ == "__main__":
    main()
