"""Import speed and memory of `imagegen data import` on this machine, against the targets.

Measures (medians over repeats, interleaved so a noisy shared machine hits them alike):
  1. png:  a folder of N 28x28 grayscale PNGs (random anti-aliased strokes, 10 class
     sub-folders) imported with size=28; target >= 2,000 img/s on 2 cores;
  2. jpeg: a folder of N 256x256 RGB JPEGs (quality 90; smooth random gradients, shapes
     and noise, so they compress like photos) imported with size=64 (center-crop);
     target >= 150 img/s;
  3. rss:  a folder of N 28x28 grayscale PNGs (10 classes, sub-folders of 1,000) imported
     with size=28 in a subprocess, whose process tree (the importer and its workers) is
     polled in /proc every 0.2 s; target: peak RSS < 1 GB for 200,000 images.

Each import goes to a fresh DEST through `imagegen.data.import_images(..., progress=False)`
(the same code path as `imagegen data import`, plus the workers argument). Generating the
images is not timed. Image content is seeded and distinct per image; every import must
keep all N inputs (no duplicates, no rejections), or the script stops with an error.

Usage:
    python benchmarks/import_speed.py                      # png 20,000, jpeg 3,000, rss 200,000
    python benchmarks/import_speed.py --workers 1          # compare with the default (all cores)
    python benchmarks/import_speed.py --only png,jpeg --repeats 5
    python benchmarks/import_speed.py --keep-dir /tmp/imp  # keep (and reuse) the generated images
    python benchmarks/import_speed.py --n-png 2000 --n-jpeg 300 --n-rss 5000 --repeats 1  # smoke
Prints Markdown tables to paste into benchmarks/RESULTS.md (progress goes to stderr).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageDraw, features

GEN_VERSION = 1  # bump when the generators change, so --keep-dir data is regenerated
CHUNK = 1000  # images per generation task (and per sub-folder of the rss set)
CLASSES = 10
TARGETS = {"png": 2000.0, "jpeg": 150.0}  # img/s
RSS_TARGET = 2**30  # bytes
POLL = 0.2  # seconds between /proc polls


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# --------------------------------------------------------------------------- image generation


def stroke_image(rng: np.random.Generator) -> Image.Image:
    """An MNIST-like 28x28 grayscale image: 1-2 random thick polylines/arcs, anti-aliased."""
    big = Image.new("L", (56, 56), 0)
    d = ImageDraw.Draw(big)
    width = int(rng.integers(4, 8))
    pts = rng.uniform(8, 48, size=(int(rng.integers(3, 7)), 2))
    d.line([(float(x), float(y)) for x, y in pts], fill=int(rng.integers(180, 256)),
           width=width, joint="curve")
    if rng.random() < 0.5:
        x0, y0 = rng.uniform(6, 26, 2)
        x1, y1 = x0 + rng.uniform(12, 24), y0 + rng.uniform(12, 24)
        start = float(rng.uniform(0, 360))
        d.arc((float(x0), float(y0), float(x1), float(y1)), start,
              start + float(rng.uniform(90, 330)), fill=255, width=width)
    return big.reduce(2)


def photo_image(rng: np.random.Generator, size: int = 256) -> Image.Image:
    """A photo-like RGB image: smooth random gradients, a few shapes, blur and sensor noise."""
    field = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    im = Image.fromarray(field, "RGB").resize((size, size), Image.Resampling.BICUBIC)
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = rng.uniform(-size / 4, size, 2)
        w, h = rng.uniform(size / 10, size / 2, 2)
        box = (float(x0), float(y0), float(x0 + w), float(y0 + h))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        if kind == 0:
            d.ellipse(box, fill=colour)
        elif kind == 1:
            d.rectangle(box, fill=colour)
        else:
            d.polygon([(float(x), float(y)) for x, y in rng.uniform(0, size, (3, 2))], fill=colour)
    im = im.resize((size // 2, size // 2), Image.Resampling.BILINEAR).resize(
        (size, size), Image.Resampling.BICUBIC)  # soften the edges like a lens would
    arr = np.asarray(im, np.float32) + rng.standard_normal((size, size, 3), np.float32) * 5.0
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _relpath(kind: str, i: int) -> str:
    if kind == "rss":  # 10 classes, sub-folders of CHUNK images
        chunk = i // CHUNK
        return f"c{chunk % CLASSES}/part{chunk:04d}/{i:07d}.png"
    ext = "jpg" if kind == "jpeg" else "png"
    return f"c{i % CLASSES}/{i:07d}.{ext}"


def _generate_chunk(kind: str, root: str, start: int, stop: int, seed: int) -> int:
    """Write images start..stop-1 of set ``kind`` under ``root`` (a generation worker)."""
    stream = {"png": 1, "jpeg": 2, "rss": 3}[kind]
    made = set()
    for i in range(start, stop):
        rng = np.random.default_rng([seed, stream, i])  # per image: independent of chunking
        path = Path(root) / _relpath(kind, i)
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        buf = io.BytesIO()
        if kind == "jpeg":
            photo_image(rng).save(buf, "JPEG", quality=90)
        else:
            stroke_image(rng).save(buf, "PNG")
        path.write_bytes(buf.getvalue())
    return stop - start


def dataset(kind: str, n: int, seed: int, base: Path, workers: int) -> tuple[Path, float | None]:
    """The folder of set ``kind`` with ``n`` images, generated unless already complete.

    Returns the folder and the generation time in seconds (None when reused).
    """
    name = f"{kind}-n{n}-seed{seed}-v{GEN_VERSION}"
    root, marker = base / name, base / f"{name}.json"  # the marker sits outside the folder
    want = {"kind": kind, "n": n, "seed": seed, "version": GEN_VERSION}
    if root.is_dir() and marker.is_file():
        try:
            if json.loads(marker.read_text()) == want:
                log(f"reusing {n:,} generated {kind} images in {root}")
                return root, None
        except ValueError:
            pass
    shutil.rmtree(root, ignore_errors=True)
    marker.unlink(missing_ok=True)
    root.mkdir(parents=True)
    t = time.perf_counter()
    tasks = [(kind, str(root), s, min(s + CHUNK, n), seed) for s in range(0, n, CHUNK)]
    if workers <= 1 or len(tasks) == 1:
        for task in tasks:
            _generate_chunk(*task)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            done = 0
            for k in pool.map(_generate_chunk, *zip(*tasks)):
                done += k
                if done % 20_000 < CHUNK:
                    log(f"  generated {done:,} / {n:,} {kind} images")
    seconds = time.perf_counter() - t
    marker.write_text(json.dumps(want))
    mb = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 1e6
    log(f"generated {n:,} {kind} images ({mb:.1f} MB) in {seconds:.1f} s "
        f"({seconds / n * 10_000:.1f} s per 10,000) with {workers} processes")
    return root, seconds


# --------------------------------------------------------------------------- checks


def check_manifest(m: dict, n: int, what: str) -> None:
    """Stop loudly unless the import kept every one of the n generated inputs."""
    report = m.get("report", {})
    if m["count"] == n and report.get("inputs") == n and report.get("kept") == n:
        return
    rejected = m.get("rejected", [])[:3]
    raise SystemExit(f"error: {what}: the import kept {m['count']} of {n} generated images "
                     f"(inputs {report.get('inputs')}, duplicates {report.get('duplicates')}, "
                     f"rejected {report.get('rejected')}; e.g. {rejected}); the generated "
                     "images must all be distinct and valid -- the numbers are not comparable")


# --------------------------------------------------------------------------- speed


def time_import(src: Path, scratch: Path, size: int, workers: int | None) -> tuple[float, dict]:
    from imagegen.data import import_images

    dest = Path(tempfile.mkdtemp(prefix="dest-", dir=scratch)) / "ds"
    try:
        t = time.perf_counter()
        m = import_images(str(src), dest, size=size, workers=workers, progress=False)
        return time.perf_counter() - t, m
    finally:
        shutil.rmtree(dest.parent, ignore_errors=True)


def effective_workers(workers: int | None, n: int) -> str:
    from imagegen.data.importer import PARALLEL_MIN_INPUTS
    from imagegen.data.workers import default_workers

    w = default_workers() if workers is None else max(0, workers)
    if n < PARALLEL_MIN_INPUTS or w <= 1:
        return "1 (in-process)"
    return str(w)


# --------------------------------------------------------------------------- memory


def _read_status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def _read_pss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (via /proc/PID/task/*/children, else a /proc scan)."""
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    try:
        for tid in tasks:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(x) for x in f.read().split())
        return kids
    except FileNotFoundError:  # kernel without CONFIG_PROC_CHILDREN: scan for the ppid
        pass
    except OSError:
        return kids
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    kids.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return kids


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


CHILD_CODE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from imagegen.data import import_images
src, dest, size, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
t1 = time.perf_counter()
m = import_images(src, dest, size=size, workers=None if workers == "default" else int(workers),
                  progress=False)
t2 = time.perf_counter()
print(json.dumps({"count": m["count"], "report": m["report"], "rejected": m["rejected"][:3],
                  "import_s": t2 - t1, "startup_s": t1 - t0,
                  "self_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "children_maxrss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""


def measure_rss(src: Path, scratch: Path, size: int, workers: int | None, n: int) -> dict:
    """Run the import in a subprocess; poll the memory of its process tree."""
    dest = Path(tempfile.mkdtemp(prefix="dest-", dir=scratch)) / "ds"
    cmd = [sys.executable, "-c", CHILD_CODE, str(src), str(dest), str(size),
           "default" if workers is None else str(workers)]
    peak = {"tree_rss": 0, "tree_pss": 0, "procs": 0}
    hwm: dict[int, int] = {}  # pid -> its latest VmHWM (its own peak RSS so far)
    have_pss = True
    t = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        while proc.poll() is None:
            pids = _tree(proc.pid)
            rss = pss = 0
            for p in pids:
                st = _read_status(p)
                rss += st.get("VmRSS", 0)
                if "VmHWM" in st:
                    hwm[p] = st["VmHWM"]
                if have_pss:
                    value = _read_pss(p)
                    have_pss = value is not None or not st
                    pss += value or 0
            peak["tree_rss"] = max(peak["tree_rss"], rss)
            peak["tree_pss"] = max(peak["tree_pss"], pss)
            peak["procs"] = max(peak["procs"], len(pids))
            time.sleep(POLL)
        out, _ = proc.communicate()
        wall = time.perf_counter() - t
    finally:
        shutil.rmtree(dest.parent, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: the rss import subprocess failed (exit {proc.returncode})")
    res = json.loads(out.strip().splitlines()[-1])
    check_manifest({"count": res["count"], "report": res["report"], "rejected": res["rejected"]},
                   n, "rss")
    # An upper bound on the tree's peak: the main process's kernel peak, plus every other
    # process at the larger of its last polled peak (VmHWM) and the largest reaped worker's
    # kernel peak (polling can miss a worker's last moments, never the kernel).
    others = [v for pid, v in hwm.items() if pid != proc.pid]
    bound = res["self_maxrss"] + sum(max(v, res["children_maxrss"]) for v in others)
    return {**peak, "tree_pss": peak["tree_pss"] if have_pss else None,
            "hwm_sum": bound, "wall": wall, **res}


# --------------------------------------------------------------------------- report


def mb(x: float | None) -> str:
    return "n/a" if x is None else f"{x / 2**20:,.0f} MiB"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-png", type=int, default=20_000, help="28x28 PNGs for the png benchmark")
    p.add_argument("--n-jpeg", type=int, default=3_000, help="256x256 JPEGs for the jpeg benchmark")
    p.add_argument("--n-rss", type=int, default=200_000, help="28x28 PNGs for the memory benchmark")
    p.add_argument("--repeats", type=int, default=3, help="timed imports per speed benchmark")
    p.add_argument("--workers", type=int, default=None,
                   help="importer worker processes (default: the importer's, all cores)")
    p.add_argument("--only", default="png,jpeg,rss", help="comma list of png, jpeg, rss")
    p.add_argument("--keep-dir", type=Path, default=None,
                   help="keep generated images here, and reuse them when already there")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gen-workers", type=int, default=cpu_count(),
                   help="processes generating the images (default: all cores)")
    a = p.parse_args()
    only = [s.strip() for s in a.only.split(",") if s.strip()]
    if not only or set(only) - {"png", "jpeg", "rss"}:
        p.error(f"--only takes a comma list of png, jpeg, rss; got {a.only!r}")
    if a.repeats < 1:
        p.error("--repeats must be >= 1")
    for kind in only:
        if getattr(a, f"n_{kind}") < 1:
            p.error(f"--n-{kind} must be >= 1")

    from imagegen.data.workers import default_workers

    if a.keep_dir is not None:
        a.keep_dir.mkdir(parents=True, exist_ok=True)
        base = a.keep_dir.resolve()
        scratch = Path(tempfile.mkdtemp(prefix="import-speed-", dir=base))
    else:
        base = scratch = Path(tempfile.mkdtemp(prefix="import-speed-"))
    log(f"working in {base}")
    gen: dict[str, float | None] = {}
    speed: dict[str, list[float]] = {}
    rss = None
    try:
        specs = {"png": (a.n_png, 28), "jpeg": (a.n_jpeg, 64)}
        folders = {}
        for kind in only:
            n = a.n_rss if kind == "rss" else specs[kind][0]
            folders[kind], gen[kind] = dataset(kind, n, a.seed, base, a.gen_workers)

        # speed: interleave the repeats so machine noise hits both benchmarks alike
        for r in range(a.repeats):
            for kind in (k for k in ("png", "jpeg") if k in only):
                n, size = specs[kind]
                seconds, m = time_import(folders[kind], scratch, size, a.workers)
                check_manifest(m, n, kind)
                speed.setdefault(kind, []).append(n / seconds)
                log(f"{kind} repeat {r + 1}/{a.repeats}: {n:,} images in {seconds:.2f} s = "
                    f"{n / seconds:,.0f} img/s")
        if "rss" in only:
            log(f"rss: importing {a.n_rss:,} images in a subprocess, polling /proc every {POLL} s")
            rss = measure_rss(folders["rss"], scratch, 28, a.workers, a.n_rss)
            log(f"rss: done in {rss['wall']:.1f} s, tree peak {mb(rss['tree_rss'])}")
    finally:
        if a.keep_dir is None:
            shutil.rmtree(base, ignore_errors=True)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    # ------------------------------------------------------------------ print
    w_desc = (f"{a.workers} (--workers)" if a.workers is not None
              else f"{default_workers()} (importer default)")
    jpeg_lib = features.version("libjpeg_turbo")
    print(f"## Import speed, {date.today().isoformat()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs ({cpu_count()} usable), Python {platform.python_version()}, "
          f"Pillow {PIL.__version__} (libjpeg-turbo {jpeg_lib or 'no'}, "
          f"zlib {features.version('zlib')}), numpy {np.__version__}, workers {w_desc}\n")
    print(f"Configuration: `import_images(folder, dest, size=S, workers={a.workers}, "
          f"progress=False)`, fresh DEST each time, inputs in the page cache; "
          f"{a.repeats} interleaved repeats, seed {a.seed}.")
    descs = {
        "png": f"{a.n_png:,} 28x28 gray PNGs (strokes, 10 class folders) -> 28x28",
        "jpeg": f"{a.n_jpeg:,} 256x256 RGB JPEGs (q90, gradients + shapes + noise) -> 64x64 center-crop",
        "rss": f"{a.n_rss:,} 28x28 gray PNGs (10 classes, sub-folders of {CHUNK:,}) -> 28x28",
    }
    for kind in only:
        g = gen.get(kind)
        n = a.n_rss if kind == "rss" else specs[kind][0]
        how = ("reused from --keep-dir" if g is None else
               f"generated in {g:.1f} s, {g / n * 10_000:.1f} s per 10,000, not timed")
        print(f"- {kind}: {descs[kind]} ({how})")
    print()
    if speed:
        print("| benchmark | images | workers | median img/s | min | max | median s | target | pass |")
        print("|---|---:|---|---:|---:|---:|---:|---|---|")
        for kind, rates in speed.items():
            n, size = specs[kind]
            med = statistics.median(rates)
            name = {"png": "28x28 PNG folder -> 28x28", "jpeg": "256x256 JPEG -> 64x64"}[kind]
            print(f"| {name} | {n:,} | {effective_workers(a.workers, n)} | {med:,.0f} | "
                  f"{min(rates):,.0f} | {max(rates):,.0f} | {n / med:.2f} | "
                  f">= {TARGETS[kind]:,.0f} img/s | {'yes' if med >= TARGETS[kind] else 'NO'} |")
        print()
    if rss is not None:
        ok = rss["tree_rss"] < RSS_TARGET and rss["hwm_sum"] < RSS_TARGET
        print("| memory benchmark | images | workers | import s | img/s | peak RSS, tree (polled) "
              "| peak RSS, main | largest worker | sum of per-process peaks | peak PSS, tree "
              "| target | pass |")
        print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
        print(f"| 28x28 PNG folder -> 28x28, subprocess | {a.n_rss:,} | "
              f"{effective_workers(a.workers, a.n_rss)} | {rss['import_s']:.1f} | "
              f"{a.n_rss / rss['import_s']:,.0f} | {mb(rss['tree_rss'])} | "
              f"{mb(rss['self_maxrss'])} | {mb(rss['children_maxrss']) if rss['procs'] > 1 else '-'} | "
              f"{mb(rss['hwm_sum'])} | "
              f"{mb(rss['tree_pss'])} | < 1 GiB | {'yes' if ok else 'NO'} |")
        print()
        print(f"Tree: the importer process and its descendants (at most {rss['procs']} "
              f"processes), RSS summed from /proc every {POLL} s (shared pages counted in each "
              "process; PSS shares them out), so it can miss short peaks. Main and largest "
              "worker: the kernel's peak (ru_maxrss). Sum of per-process peaks: main's kernel "
              "peak plus each other process at its own peak, an upper bound on the tree's. "
              "Pass: the polled tree peak and the upper bound both below 1 GiB. Import s "
              "excludes the subprocess's Python start-up and imports "
              f"({rss['startup_s']:.1f} s).")


if __name__ == "__main__":
    main()
