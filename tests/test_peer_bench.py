"""The peer benchmark's own logic (benchmarks/peers): the shared training loop of the peer
scripts (fixed steps, speed probe, learning-rate schedule) and run.py's step matching and
report. The peers themselves need their own venv and are not run here."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pytest
import torch

PEERS = Path(__file__).resolve().parents[1] / "benchmarks" / "peers"
sys.path.insert(0, str(PEERS))

import common  # noqa: E402
import run  # noqa: E402


def _loop_args(tmp_path: Path, **kw) -> argparse.Namespace:
    base = {"budget": 1e6, "steps": 0, "probe": 0, "lr": 1e-2, "batch": 4, "out": str(tmp_path)}
    return argparse.Namespace(**(base | kw))


def _tiny():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    ema = torch.nn.Linear(3, 1).requires_grad_(False)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    return model, ema, opt, lambda: ((model(x) - y) ** 2).mean()


def test_fixed_steps_train_exactly_that_many_with_the_schedule_over_them(tmp_path):
    model, ema, opt, loss = _tiny()
    lrs = []
    orig = opt.step

    def step(*a, **k):
        lrs.append(opt.param_groups[0]["lr"])
        return orig(*a, **k)

    opt.step = step
    steps, seconds = common.train_for_budget(_loop_args(tmp_path, steps=40), model, ema, opt, loss, log_every=1000)
    assert steps == 40 and len(lrs) == 40
    # warm-up then cosine over the 40 steps: lr(step) = budget_lr(peak, step / 40)
    assert lrs == pytest.approx([common.budget_lr(1e-2, i / 40) for i in range(40)])
    assert lrs[0] == 0 and max(lrs) <= 1e-2 and lrs[-1] < 0.01 * 1e-2
    # the EMA moved towards the trained weights
    assert not torch.equal(ema.weight, model.weight)
    assert seconds >= 0


def test_budget_lr_is_warmup_then_cosine():
    assert common.budget_lr(1.0, 0.0) == 0.0
    assert common.budget_lr(1.0, 0.015) == pytest.approx(0.5)
    assert common.budget_lr(1.0, 0.03) == pytest.approx(1.0)
    mid = 0.03 + 0.97 / 2
    assert common.budget_lr(1.0, mid) == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))
    assert common.budget_lr(1.0, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert common.budget_lr(1.0, 2.0) == pytest.approx(0.0, abs=1e-12)


def test_probe_writes_the_median_step_time_and_stops(tmp_path):
    model, ema, opt, loss = _tiny()
    calls = []

    def counted():
        calls.append(1)
        return loss()

    with pytest.raises(SystemExit) as e:
        common.train_for_budget(_loop_args(tmp_path, probe=6), model, ema, opt, counted, log_every=1000)
    assert e.value.code == 0
    assert len(calls) == 5 + 6  # warm-up, then the timed steps
    p = json.loads((tmp_path / "probe.json").read_text())
    assert p["batch"] == 4 and 0 < p["step_seconds"] < 5


def test_matched_steps_are_what_the_budget_buys_at_the_probed_speed():
    assert run.matched_steps(600, {"step_seconds": 0.3}) == 2000
    assert run.matched_steps(120, {"step_seconds": 0.25}) == 480
    assert run.matched_steps(1, {"step_seconds": 10.0}) == 1  # at least one step
    assert run.matched_steps(600, None) is None  # no probe: train for the budget
    assert run.matched_steps(600, {"error": "probe failed"}) is None


def _results(timing: str) -> dict:
    peer_ev = {"n": 100, "seeds": 1, "fid": 4.0, "fid_std": None, "fid_seeds": [4.0], "fid_pooled": 4.0,
               "confident_fraction": 0.9, "class_accuracy": None}
    # imagegen: 3 sets of 100; the first set differs from the mean, FID of all 300 differs from both
    ours_ev = {"n": 300, "seeds": 3, "fid": 0.2, "fid_std": 0.1, "fid_seeds": [0.25, 0.1, 0.25], "fid_pooled": 0.12,
               "confident_fraction": 0.95, "class_accuracy": 0.98}
    peer = {"kind": "peer", "torch": "2.14.1", "params": 700_000, "budget": 600, "steps": 500, "batch": 64,
            "train_img_per_s": 50.0, "probe_img_per_s": 55.0, "peak_rss_kib": 2 << 20, "sampler": "DDIM 50",
            "nfe": 50, "sample_img_per_s": 2.5, "evaluation": peer_ev}
    ours = {"kind": "imagegen", "torch": "2.13.0", "params": 800_000, "budget": 600, "steps": 2000, "batch": 64,
            "train_img_per_s": 200.0, "probe_img_per_s": 210.0, "peak_rss_kib": 1 << 20, "sampler": "dpmpp-2m 10",
            "default_cfg": 1.5,
            "generate": {"unguided": {"cfg": 1.0, "nfe": 10, "sample_img_per_s": 60.0, "peak_rss_kib": 300 << 10,
                                      "evaluation": ours_ev}}}
    return {"date": "2026-11-24", "machine": "x86_64, 2 cores", "threads": 2, "n": 100, "timing": timing,
            "contenders": {"lucidrains": peer, "imagegen": ours}}


def test_report_states_the_timing_and_ratio():
    md = run.report(_results("matched"))
    assert "timing: matched" in md
    assert "| lucidrains | 2.14.1 | 0.70 M | 600 | 500 x 64 | 55 | 50 | DDIM 50 (50) | 2.5 | 4.00 | 1 |" in md
    assert "timing: wall clock" in run.report(_results("wall"))


def test_ratio_uses_the_mean_over_imagegen_sets_of_n_and_reports_the_first_alone():
    res = _results("matched")
    md = run.report(res)
    # the mean over the sets of n (0.2), not FID of all 300 samples (0.12) nor the first set (0.25)
    assert "4.00 / 0.20 = 20.0x (mean of 3 sets of 100: 0.250, 0.100, 0.250; the first set alone: 16.0x)" in md
    assert "| 0.20 +- 0.10 | 3 |" in md
    # one set: the ratio uses that set and says so
    ev = res["contenders"]["imagegen"]["generate"]["unguided"]["evaluation"]
    ev.update(n=100, seeds=1, fid=0.25, fid_std=None, fid_seeds=[0.25])
    md = run.report(res)
    assert "4.00 / 0.25 = 16.0x (one set of 100)" in md and "first set alone" not in md


def test_a_failed_imagegen_mode_is_reported_not_ranked():
    res = _results("matched")
    res["contenders"]["imagegen"]["generate"]["unguided"] = {"cfg": 1.0, "error": "imagegen generate failed (rc 1)"}
    md = run.report(res)
    assert "FAILED imagegen unguided: imagegen generate failed (rc 1)" in md
    assert "best peer FID / imagegen unguided" not in md
