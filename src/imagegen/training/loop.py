"""The training loop: steps until the budget or step count, with logs, grids, FIDs and checkpoints.

Only rank 0 writes (``metrics.jsonl``, progress grids, checkpoints, ``best.json``) and shows
the progress bar. The clock is rank 0's: after every step it broadcasts the elapsed training
time, so the learning-rate schedule and the stop at the budget are the same on every rank
and all ranks stop together. Progress grids and FID checks pause the clock (they do not
count against the budget); the other ranks wait for rank 0 at the next gradient exchange.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np
from tqdm import tqdm

from ..distributed import broadcast_floats
from .fid_monitor import FidMonitor
from .schedule import lr_at
from .trainer import Trainer

LOG_EVERY_SECONDS = 5.0


def _check_fid(tr: Trainer, monitor: FidMonitor, log: IO[str], checkpoint: Path | None = None) -> dict[str, Any]:
    """Check the EMA model (FID, near-copies), log it, and keep the checkpoint when it is the best so far."""
    result = monitor.check(tr.ema)
    log.write(json.dumps({"step": tr.step, "nimg": tr.nimg, "elapsed": round(tr.elapsed, 2), **result}) + "\n")
    log.flush()
    if monitor.is_best(result["fid"]):
        monitor.mark_best(checkpoint or tr.save(), tr.step, result["fid"])
    return result


def run_loop(tr: Trainer, show: bool, on_step: Callable[[int, float], None] | None,
             monitor: FidMonitor | None = None, fid_every: float = 0.0) -> dict[str, Any]:
    """Train ``tr`` to its limit; returns the run summary (paths are rank 0's)."""
    tc, main = tr.config.train, tr.world.main
    monitor = monitor if main else None
    log = open(tr.out / "metrics.jsonl", "a", encoding="utf-8") if main else None
    total = tc.steps if tc.steps and not tc.budget_seconds else None
    bar = tqdm(total=total or int(tc.budget_seconds), initial=tr.step if total else int(tr.elapsed),
               disable=not (show and main), unit="step" if total else "s", file=sys.stderr, dynamic_ncols=True,
               leave=True, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
    start_step, start_elapsed = tr.step, tr.elapsed
    t_start = time.perf_counter() - tr.elapsed
    last_ckpt = last_sample = last_log = last_fid = tr.elapsed
    fid_text = ""
    losses: list[float] = []
    interrupted = False
    try:
        while not tr.done():
            loss = tr.train_step()
            losses.append(loss)
            tr.elapsed = broadcast_floats([time.perf_counter() - t_start], tr.device)[0]
            if on_step is not None:
                on_step(tr.step, loss)
            if log is None:
                continue
            if tr.elapsed - last_log >= LOG_EVERY_SECONDS or tr.done():
                rate = (tr.step - start_step) * tc.batch_size / max(tr.elapsed - start_elapsed, 1e-9)
                rec = {"step": tr.step, "nimg": tr.nimg, "elapsed": round(tr.elapsed, 2), "loss": float(np.mean(losses)),
                       "lr": lr_at(tc, tr.progress()), "img_per_s": round(rate, 1)}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                bar.set_postfix_str(f"step {tr.step} loss {rec['loss']:.4f} {rate:.0f} img/s{fid_text}", refresh=False)
                losses.clear()
                last_log = tr.elapsed
            shown = tr.step if total else min(int(tr.elapsed), int(tc.budget_seconds))
            if shown > bar.n:
                bar.update(shown - bar.n)
            if tr.elapsed - last_sample >= tc.sample_every_seconds and not tr.done():
                t0 = time.perf_counter()
                tr.sample_grid(tr.out / "samples" / f"grid-{tr.step:08d}.png")
                t_start += time.perf_counter() - t0  # nor does sampling the progress grid
                last_sample = tr.elapsed
            if monitor is not None and tr.elapsed - last_fid >= fid_every and not tr.done():
                t0 = time.perf_counter()
                fid_text = " " + monitor.text(_check_fid(tr, monitor, log))
                t_start += time.perf_counter() - t0  # FID time does not count against the budget
                last_fid = tr.elapsed
            if tr.elapsed - last_ckpt >= tc.checkpoint_every_seconds and not tr.done():
                tr.save()
                last_ckpt = tr.elapsed = time.perf_counter() - t_start
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    rate = (tr.step - start_step) * tc.batch_size / max(tr.elapsed - start_elapsed, 1e-9)
    summary: dict[str, Any] = {"run": str(tr.out), "step": tr.step, "nimg": tr.nimg, "elapsed": tr.elapsed,
                               "img_per_s": rate, "interrupted": interrupted, "processes": tr.world.size,
                               "device": str(tr.device), "checkpoint": None, "grid": None, "fid": None,
                               "best_fid": None}
    if log is None:
        return summary
    path = tr.save()
    try:
        if monitor is not None and not interrupted:
            summary["fid"] = _check_fid(tr, monitor, log, checkpoint=path)["fid"]
    finally:
        log.close()
    grid = tr.out / "samples" / f"grid-{tr.step:08d}.png"
    tr.sample_grid(grid)
    summary.update(checkpoint=str(path), grid=str(grid), best_fid=None if monitor is None else monitor.best)
    return summary
