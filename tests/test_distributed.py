"""Several processes (DDP over gloo on the CPU): the same training and the same files as one process.

Each multi-process test starts real processes with the environment torchrun gives them
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT on a free port), or torchrun
itself, with a timeout: a hung process group fails the test instead of hanging CI.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import tiny_config
from imagegen.checkpoint import latest_checkpoint, load_checkpoint
from imagegen.data import load_dataset
from imagegen.distributed import World, merge_shares, rank_share
from imagegen.errors import ImagegenError
from imagegen.features.evaluator import torch_threads
from imagegen.training import Trainer, batch_indices, rank_positions, train

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
TIMEOUT = 180  # seconds for one multi-process job


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(PYTHONPATH=os.pathsep.join([str(SRC), str(HERE)]), OMP_NUM_THREADS="1",
               IMAGEGEN_DIST_TIMEOUT="60", **extra)
    return env


def _spawn(args: list[str], world: int) -> None:
    """Run ``python tests/ddp_worker.py ARGS`` as ``world`` ranks of one process group."""
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, str(HERE / "ddp_worker.py"), *args],
                              env=_env(RANK=str(r), WORLD_SIZE=str(world), LOCAL_RANK=str(r),
                                       MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(world)]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=TIMEOUT)[0])
    finally:
        for p in procs:
            p.kill()
    for r, (p, text) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"rank {r} failed:\n{text[-3000:]}"


def _torchrun(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "imagegen", *args]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)


# ---------------------------------------------------------------- the data split (no processes)
def test_rank_parts_are_disjoint_and_cover_the_data_set_each_epoch():
    n, batch = 37, 8
    for world in (1, 2, 3):
        seen: list[int] = []
        for step in range(n // batch):  # one epoch
            idx = batch_indices(n, batch, step, seed=5)
            parts = [idx[rank_positions(batch, r, world)].tolist() for r in range(world)]
            assert sum(parts, []) == idx.tolist()  # the ranks' parts, in order, are the global batch
            seen += sum(parts, [])
        assert len(seen) == len(set(seen)) == (n // batch) * batch  # disjoint within the epoch
    # and every image is drawn over the epochs
    assert set(sum((batch_indices(n, batch, s, 5).tolist() for s in range(40)), [])) == set(range(n))


def test_rank_shares_of_seeds_merge_back_in_order():
    items = list(range(11))
    for size in (1, 2, 3, 4):
        shares = [rank_share(items, World(rank=r, size=size)) for r in range(size)]
        assert sorted(sum(shares, [])) == items
        assert merge_shares(shares) == items


def test_a_world_larger_than_the_data_or_batch_is_refused(digits_data, tmp_path):
    ds = load_dataset(digits_data)
    cfg = tiny_config(digits_data)
    with pytest.raises(ImagegenError, match="batch of 16 cannot be split over 32 processes"):
        Trainer(cfg, tmp_path, ds.images, ds.labels, world=World(rank=0, size=32))
    with pytest.raises(ImagegenError, match="only 10 images.*nproc_per_node"):
        Trainer(cfg, tmp_path, ds.images[:10], ds.labels[:10], world=World(rank=0, size=12))
    with pytest.raises(ImagegenError, match="batch_shards"):
        Trainer(replace(cfg, train=replace(cfg.train, batch_shards=2)), tmp_path, ds.images, ds.labels,
                world=World(rank=0, size=2))


# ---------------------------------------------------------------- two gloo processes
def _one_process_weights(digits_data, tmp_path, steps: int) -> dict[str, torch.Tensor]:
    ds = load_dataset(digits_data)
    cfg = tiny_config(digits_data, steps=max(steps, 1), batch_shards=1, warmup_fraction=0.0)
    tr = Trainer(cfg, tmp_path / "one", ds.images, ds.labels)
    with torch_threads(1):
        for _ in range(steps):
            tr.train_step()
    return {k: v.detach().clone() for k, v in tr.model.state_dict().items()}


def test_two_rank_steps_equal_one_process_steps_on_the_whole_batch(digits_data, tmp_path):
    # each rank trains on half of the global batch of 16 (its own seeds); DDP averages the
    # gradients, so a step on 2 ranks equals the step of one process on the whole batch, and
    # the ranks hold identical weights (no warm-up, so the first step moves the weights).
    # After 3 steps the match is looser: parameters whose gradients are first nonzero and
    # tiny at step 2 get Adam's normalised update g / sqrt(v), which turns the float rounding
    # of the gradient sums into differences of up to ~1e-4 (measured 9e-5)
    initial = _one_process_weights(digits_data, tmp_path / "init", 0)
    for steps in (1, 3):
        job = tmp_path / f"ddp{steps}"
        (job / "out").mkdir(parents=True)
        _spawn(["steps", str(digits_data), str(job / "out"), str(steps)], world=2)
        r0 = load_file(str(job / "weights-rank0.safetensors"))
        r1 = load_file(str(job / "weights-rank1.safetensors"))
        one = _one_process_weights(digits_data, tmp_path / f"one{steps}", steps)
        for k, v in one.items():
            assert torch.equal(r0[k], r1[k]), f"ranks disagree on {k}"
            torch.testing.assert_close(r0[k], v, rtol=0, atol=1e-6 if steps == 1 else 3e-4, msg=k)
        assert sum(float((r0[k] - v).abs().max()) for k, v in initial.items()) > 1e-3  # the steps moved the weights


def test_only_rank_0_writes_and_a_two_rank_run_resumes_on_one_process(digits_data, tmp_path):
    job = tmp_path / "job"
    out = job / "run"
    job.mkdir()
    _spawn(["train", str(digits_data), str(out), "4"], world=2)
    rank1 = json.loads((job / "writes-rank1.json").read_text())
    rank0 = json.loads((job / "writes-rank0.json").read_text())
    assert rank1["writes"] == []  # rank 1 trained (grids every step, checkpoints, logs) and wrote nothing
    assert rank1["summary"]["checkpoint"] is None and rank0["summary"]["step"] == 4
    assert rank0["summary"]["processes"] == 2
    assert load_checkpoint(latest_checkpoint(out)).step == 4
    assert len(list((out / "samples").glob("grid-*.png"))) >= 4
    # resume the 2-process run on 1 process: it continues from step 4
    losses: list[float] = []
    r = train(digits_data, out, resume=True, steps=7, progress=False, on_step=lambda s, l: losses.append(l))
    assert r["step"] == 7 and len(losses) == 3 and all(np.isfinite(losses))
    assert load_checkpoint(latest_checkpoint(out)).nimg == 7 * 16


def test_torchrun_generate_writes_the_files_of_one_process(tiny_run, tmp_path):
    # 150 images = 3 batches of up to 64: rank 0 samples batches 0 and 2, rank 1 batch 1
    from imagegen.cli import main

    res = _torchrun(["generate", str(tiny_run), "-n", "150", "--steps", "3", "--out", str(tmp_path / "two"),
                     "--device", "cpu"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert "wrote 150 PNGs" in res.stdout and "on 2 processes" in res.stdout
    assert res.stdout.count("wrote 150 PNGs") == 1  # rank 0 reports, once
    assert main(["generate", str(tiny_run), "-n", "150", "--steps", "3", "--out", str(tmp_path / "one")]) == 0
    one = sorted(p.name for p in (tmp_path / "one").glob("*.png"))
    assert sorted(p.name for p in (tmp_path / "two").glob("*.png")) == one and len(one) == 151
    for name in one:
        a, b = Image.open(tmp_path / "one" / name), Image.open(tmp_path / "two" / name)
        assert np.array_equal(np.asarray(a), np.asarray(b)), name
        assert a.text == b.text, name


def test_torchrun_evaluate_scores_the_same_samples_on_rank_0(tiny_run, digits_data, tmp_path):
    from imagegen.evaluation import evaluate

    res = _torchrun(["evaluate", str(tiny_run), "--data", str(digits_data), "-n", "40", "--seeds", "2",
                     "--steps", "3", "--json", str(tmp_path / "two.json"), "--device", "cpu"])
    assert res.returncode == 0, res.stderr[-3000:]
    two = json.loads((tmp_path / "two.json").read_text())
    one = evaluate(tiny_run, digits_data, n=40, seeds=2, steps=3, progress=False)
    assert two["fid_seeds"] == pytest.approx(one["fid_seeds"], rel=1e-6)
    assert two["class_accuracy"] == one["class_accuracy"]


def test_torchrun_errors_are_one_line_per_rank(digits_data, tmp_path):
    # torchrun's own launcher prints a ChildFailedError report after its children fail; what
    # imagegen prints is one line per rank and no traceback from inside imagegen
    res = _torchrun(["train", str(digits_data), "--out", str(tmp_path / "r"), "--steps", "1",
                     "--batch-size", "1", "--preset", "unet-tiny", "--fid-every", "0"])
    assert res.returncode != 0
    lines = res.stderr.splitlines()
    assert "error: the global batch of 1 cannot be split over 2 processes; use --batch-size 2 or more, " \
           "or fewer processes" in lines
    assert any(line.startswith("rank 1: error: the global batch of 1") for line in lines)
    assert "imagegen/" not in res.stderr.replace(str(digits_data), "")  # no frame of imagegen's code
    assert not (tmp_path / "r").exists()  # nothing was written
