"""Training on a data set larger than the in-memory limit: memory and speed, side by side.

Writes a synthetic prepared data set (random 32x32 RGB images, 10 classes) of ``--gib``
GiB in shards, then trains the default model on it for ``--steps`` steps twice in one
run: on the full set (over ``IN_MEMORY_BYTES``, so batches are read from the memory-mapped
shards) and on its first shard alone (read into RAM). Reports img/s and the peak
anonymous memory (RssAnon: what the process holds itself, not the page cache) of each,
polled from /proc every 50 ms in a subprocess per case.

Usage:
    python benchmarks/train_streaming.py                  # 3 GiB, 60 steps
    python benchmarks/train_streaming.py --gib 6 --steps 100 --keep-dir /tmp/stream
Prints a Markdown table to paste into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from imagegen.data.dataset import FORMAT, MANIFEST_NAME, VERSION, dataset_checksum, save_npy

SHARD = 10_000
SHAPE = (32, 32, 3)

CHILD = r"""
import json, sys, threading, time
from imagegen import training
from imagegen.data import load_dataset
peak = {"anon": 0}
def poll():
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                peak["anon"] = max(peak["anon"], int(line.split()[1]) * 1024)
        time.sleep(0.05)
threading.Thread(target=poll, daemon=True).start()
data, out, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = training.make_config(data, steps=steps, sample_every_seconds=1e9, checkpoint_every_seconds=1e9)
ds = load_dataset(data)
streaming = training.ImageBatches(ds.images).streaming
t = time.perf_counter()
training.train(data, out, config=cfg, progress=False)
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "img_s": steps * cfg.train.batch_size / dt,
                  "peak_anon": peak["anon"], "streaming": streaming, "images": len(ds)}))
"""


def write_dataset(path: Path, n: int, seed: int = 0) -> None:
    """A prepared data set of ``n`` random images, written shard by shard."""
    if (path / MANIFEST_NAME).exists() and json.loads((path / MANIFEST_NAME).read_text())["count"] == n:
        return
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shards = []
    for k, start in enumerate(range(0, n, SHARD)):
        count = min(SHARD, n - start)
        images = rng.integers(0, 256, (count, *SHAPE), dtype=np.uint8)
        labels = rng.integers(0, 10, count).astype(np.int64)
        shards.append({"images": f"images-{k:05d}.npy", "labels": f"labels-{k:05d}.npy",
                       "count": count,
                       "images_sha256": save_npy(path / f"images-{k:05d}.npy", images),
                       "labels_sha256": save_npy(path / f"labels-{k:05d}.npy", labels)})
    manifest = {"format": FORMAT, "version": VERSION, "source": "synthetic", "count": n,
                "resolution": list(SHAPE[:2]), "channels": SHAPE[2],
                "class_names": [str(i) for i in range(10)], "class_counts": None,
                "shards": shards, "checksum": dataset_checksum(shards), "rejected": []}
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))


def run(data: Path, out: Path, steps: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    res = subprocess.run([sys.executable, "-c", CHILD, str(data), str(out), str(steps)],
                         check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gib", type=float, default=3.0, help="size of the large data set (default 3)")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--keep-dir", type=Path, help="keep (and reuse) the data sets here")
    a = p.parse_args()
    root = a.keep_dir or Path(tempfile.mkdtemp(prefix="imagegen-stream-"))
    n = int(a.gib * 2**30 / np.prod(SHAPE))
    t = time.perf_counter()
    write_dataset(root / "large", n)
    write_dataset(root / "small", SHARD)
    print(f"data sets ready in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    rows = []
    for name in ("small", "large"):
        r = run(root / name, root / f"run-{name}", a.steps)
        rows.append((name, r))
        print(name, r, file=sys.stderr)
    if not a.keep_dir:
        shutil.rmtree(root, ignore_errors=True)
    print(f"## Training from streamed shards, {date.today()}, {a.steps} steps of batch 64, unet-32\n")
    print("| data set | images | size | batches read from | img/s | peak RssAnon |")
    print("|---|---:|---:|---|---:|---:|")
    for name, r in rows:
        size = r["images"] * int(np.prod(SHAPE)) / 2**30
        where = "memory-mapped shards" if r["streaming"] else "RAM (uint8 copy)"
        print(f"| {name} | {r['images']:,} | {size:.2f} GiB | {where} | {r['img_s']:.0f} | "
              f"{r['peak_anon'] / 2**20:.0f} MiB |")


if __name__ == "__main__":
    main()
