"""The peer benchmark's own logic (benchmarks/peers): the shared training loop of the peer
scripts (fixed steps, speed probe, learning-rate schedule), the peers' configurations for a
data set's size and channels, run.py's arguments, data set handling, step matching and
report. The peers themselves need their own venv and are not run here (child processes are
replaced by fakes)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

PEERS = Path(__file__).resolve().parents[1] / "benchmarks" / "peers"
sys.path.insert(0, str(PEERS))

import bench_data  # noqa: E402
import common  # noqa: E402
import peer_configs  # noqa: E402
import run  # noqa: E402
from children import Child  # noqa: E402


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
    assert "| lucidrains | 2.14.1 | 0.70 M | 600 | 500 x 64 | 55 | 50 | DDIM 50 (50) | 2.5 | 4.00 | - | 1 |" in md
    assert "timing: wall clock" in run.report(_results("wall"))


def test_ratio_uses_the_mean_over_imagegen_sets_of_n_and_reports_the_first_alone():
    res = _results("matched")
    md = run.report(res)
    # the mean over the sets of n (0.2), not FID of all 300 samples (0.12) nor the first set (0.25)
    assert "4.00 / 0.20 = 20.0x (mean of 3 sets of 100: 0.250, 0.100, 0.250; the first set alone: 16.0x)" in md
    assert "| 0.20 +- 0.10 | - | 3 |" in md
    # one set: the ratio uses that set and says so
    ev = res["contenders"]["imagegen"]["generate"]["unguided"]["evaluation"]
    ev.update(n=100, seeds=1, fid=0.25, fid_std=None, fid_seeds=[0.25])
    md = run.report(res)
    assert "4.00 / 0.25 = 16.0x (one set of 100)" in md and "first set alone" not in md
    # with both modes, unguided (the headline) comes first
    res["contenders"]["imagegen"]["generate"] = {"guided": {"cfg": None, "evaluation": dict(ev, fid=0.4)},
                                                 "unguided": {"cfg": 1.0, "evaluation": ev}}
    md = run.report(res)
    assert md.index("imagegen unguided FID") < md.index("imagegen guided FID")


def test_a_failed_imagegen_mode_is_reported_not_ranked():
    res = _results("matched")
    res["contenders"]["imagegen"]["generate"]["unguided"] = {"cfg": 1.0, "error": "imagegen generate failed (rc 1)"}
    md = run.report(res)
    assert "FAILED imagegen unguided: imagegen generate failed (rc 1)" in md
    assert "best peer FID / imagegen unguided" not in md


# ---------------------------------------------------------------------------- colour data sets
def _colour_results() -> dict:
    """An unlabelled 32 px RGB set scored with Inception: a real row, a peer, unguided imagegen."""
    def ev(fid, kid, n=1000):
        return {"n": n, "seeds": 1, "fid": fid, "fid_std": None, "fid_seeds": [fid], "kid": kid, "kid_std": 0.0005,
                "confident_fraction": None, "class_accuracy": None}
    peer = {"kind": "peer", "torch": "2.14.1", "params": 1_790_000, "budget": 600, "steps": 90, "batch": 64,
            "train_img_per_s": 9.6, "probe_img_per_s": 10.0, "peak_rss_kib": 2 << 20, "sampler": "DDIM 50",
            "nfe": 50, "sample_img_per_s": 1.5, "evaluation": ev(250.0, 0.3)}
    ours = {"kind": "imagegen", "torch": "2.13.0", "params": 800_000, "budget": 600, "steps": 900, "batch": 64,
            "train_img_per_s": 96.0, "probe_img_per_s": 100.0, "peak_rss_kib": 1 << 20, "sampler": "dpmpp-2m 10",
            "default_cfg": 1.5, "num_classes": 0,
            "generate": {"unguided": {"cfg": 1.0, "nfe": 10, "sample_img_per_s": 40.0, "peak_rss_kib": 300 << 10,
                                      "evaluation": ev(50.0, 0.04)}}}
    real = {"kind": "real", "n": 1000, "evaluation": ev(1.234, 0.0001)}
    return {"date": "2026-12-01", "machine": "x86_64, 2 cores", "threads": 2, "n": 1000, "timing": "matched",
            "features": "inception", "dataset": {"name": "emoji32", "count": 3616, "resolution": 32, "channels": 3,
                                                 "classes": 0},
            "contenders": {"real": real, "diffusers": peer, "imagegen": ours}}


def test_colour_report_has_inception_fid_kid_and_the_real_floor():
    md = run.report(_colour_results())
    assert "data emoji32 (3616 images, 32 px, 3 channels, unlabelled), n = 1000 samples per set, Inception features" in md
    assert "| FID of n (mean +- std over sets) | KID x 1000 | sets of n |" in md
    # the real pictures: scores only; KID x 1000 with its std
    assert "| real vs real | - | - | - | - | - | - | - | - | 1.23 | 0.10 +- 0.50 | 1 | - | - | - | - |" in md
    assert "| diffusers | 2.14.1 | 1.79 M | 600 | 90 x 64 | 10 | 10 | DDIM 50 (50) | 1.5 | 250.00 | 300.00 +- 0.50 | 1 |" in md
    assert "| imagegen unguided (cfg 1) | 2.13.0 | 0.80 M | 600 | 900 x 64 | 100 | 96 | dpmpp-2m 10 (10) | 40.0 | 50.00 | 40.00 +- 0.50 |" in md
    assert "- real vs real: 1000 pictures drawn at random from the data set" in md and "FID 1.23" in md
    assert "best peer FID / imagegen unguided FID: 250.00 / 50.00 = 5.0x (one set of 1000)" in md
    assert "`imagegen evaluate --features inception`" in md and "requested class (class accuracy) by" not in md


def test_report_of_a_failed_real_row_and_missing_peer():
    res = _colour_results()
    res["contenders"]["real"] = {"kind": "real", "error": "ChildFailed: imagegen evaluate exited with code 1"}
    res["contenders"]["lucidrains"] = {"kind": "peer", "error": "the peers take 1, 3 or 4 channels, not 2"}
    md = run.report(res)
    assert "| real | FAILED (below) |" in md and "| lucidrains | FAILED (below) |" in md
    assert "FAILED lucidrains: the peers take 1, 3 or 4 channels, not 2" in md
    assert "- real vs real:" not in md


def test_run_arguments_default_to_mnist5k_and_take_a_colour_set(tmp_path, monkeypatch):
    a = run.parse_args([])
    assert a.data == bench_data.DEFAULT_DATA.resolve() and a.source is None and a.size is None
    assert a.n is None and a.metrics == "auto" and a.draws is None and a.budget == 600
    a = run.parse_args(["--import", "builtin:emoji", "--data", "data/emoji32", "--size", "32", "--budget", "300",
                        "--metrics", "inception", "--n", "500"])
    assert a.source == "builtin:emoji" and a.data == Path("data/emoji32").resolve() and a.size == 32
    assert a.budget == 300 and a.metrics == "inception" and a.n == 500
    assert run.parse_args(["-n", "64"]).n == 64
    # a local SRC is made absolute (the children run from the repository root); builtin:NAME is kept
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pictures").mkdir()
    assert run.parse_args(["--import", "pictures", "--data", "d"]).source == str(tmp_path / "pictures")
    assert run.parse_args(["--import", "builtin:emoji", "--data", "d"]).data == tmp_path / "d"
    assert "real" in run.parse_args([]).only
    for bad in (["-n", "1"], ["--size", "0"], ["--metrics", "fid"], ["--only", "real,bogus"], ["--budget", "0"],
                ["--draws", "0"]):
        with pytest.raises(SystemExit) as e:
            run.parse_args(bad)
        assert e.value.code == 2


def _ns(**kw) -> argparse.Namespace:
    return argparse.Namespace(**({"n": None, "metrics": "auto", "draws": None} | kw))


def test_defaults_follow_the_data_set():
    mnist = {"path": "data/mnist5k", "channels": 1, "classes": 10}
    emoji = {"path": "data/emoji32", "channels": 3, "classes": 0}
    a = _ns()
    bench_data.resolve_defaults(a, mnist)
    assert (a.n, a.features, a.draws) == (2000, "evaluator", 3)  # as every mnist5k run so far
    a = _ns()
    bench_data.resolve_defaults(a, emoji)
    assert (a.n, a.features, a.draws) == (1000, "inception", 1)
    a = _ns(n=300, metrics="inception", draws=2)
    bench_data.resolve_defaults(a, mnist)
    assert (a.n, a.features, a.draws) == (300, "inception", 2)
    with pytest.raises(bench_data.BenchError, match="no labels.*--metrics inception"):
        bench_data.resolve_defaults(_ns(metrics="evaluator"), emoji)


def _manifest(folder: Path, size: int = 32, channels: int = 3, classes: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    m = {"source": "x", "count": 12, "resolution": [size, size], "channels": channels,
         "class_names": [str(i) for i in range(classes)] or None}
    (folder / "manifest.json").write_text(json.dumps(m))


def test_data_is_imported_with_size_only_when_missing(tmp_path, monkeypatch):
    calls = []

    def fake_run_child(cmd, env, *args, **kw):
        calls.append([str(c) for c in cmd])
        _manifest(Path(cmd[4]), size=32)
        return Child(0, 0.1, 1000, "")

    monkeypatch.setattr(bench_data, "run_child", fake_run_child)
    data = tmp_path / "emoji32"
    d = bench_data.ensure_data(data, "builtin:emoji", 32, {}, 2)
    assert calls[0][1:] == ["data", "import", "builtin:emoji", str(data), "--workers", "2", "--size", "32"]
    assert calls[0][0].endswith("imagegen")
    assert d == {"path": str(data), "name": "emoji32", "source": "x", "count": 12, "resolution": 32, "channels": 3,
                 "classes": 0}
    bench_data.ensure_data(data, "builtin:emoji", 32, {}, 2)  # there: not imported again
    assert len(calls) == 1
    with pytest.raises(bench_data.BenchError, match="holds 32x32 images, not --size 64"):
        bench_data.ensure_data(data, "builtin:emoji", 64, {}, 2)
    # a missing folder without --import: a clear error, except the default mnist5k folder
    with pytest.raises(bench_data.BenchError, match="not a prepared imagegen data set.*--import SRC"):
        bench_data.ensure_data(tmp_path / "nothing", None, None, {}, 2)
    assert bench_data.import_source(bench_data.DEFAULT_DATA.resolve(), None) == "builtin:mnist5k"


def _import_tiny(tmp_path: Path, channels: int, labelled: bool) -> Path:
    from imagegen.data import import_images

    src = tmp_path / f"src{channels}{labelled}"
    rng = np.random.default_rng(channels)
    for i in range(12):
        folder = src / (f"c{i % 2}" if labelled else "")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)[..., :channels].squeeze()).save(
            folder / f"{i}.png")
    dest = tmp_path / f"data{channels}{labelled}"
    import_images(str(src), dest, size=16, channels=channels, labels="auto" if labelled else "none", progress=False)
    return dest


@pytest.mark.parametrize("channels,labelled", [(3, False), (4, False), (1, True)])
def test_peers_read_the_data_set_and_real_pictures_round_trip(tmp_path, channels, labelled):
    from imagegen.images import load_image_folder

    data = _import_tiny(tmp_path, channels, labelled)
    images, labels = common.load_prepared(data)
    assert images.dtype == np.uint8 and common.image_shape(images) == (16, channels)
    assert common.num_classes(labels) == (2 if labelled else 0)
    d = bench_data.describe_data(data)
    assert (d["resolution"], d["channels"], d["classes"]) == (16, channels, 2 if labelled else 0)
    assert bench_data.peer_shape_error(d) is None
    # real vs real: n distinct pictures of the set, as PNGs imagegen evaluate reads back
    k = bench_data.write_real_sample(data, tmp_path / "real", 5)
    back, classes, _ = load_image_folder(tmp_path / "real", channels=channels)
    assert k == 5 and back.shape == (5, 16, 16, channels)
    assert all(any(np.array_equal(b, x) for x in images) for b in back)
    assert (classes is not None) == labelled
    assert bench_data.write_real_sample(data, tmp_path / "real", 1000) == len(images)  # all of a small set


def test_sample_arrays_become_png_shapes():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 1, 2, 2)
    assert common.to_uint8_hwc(x, -1.0).tolist() == [[[0, 128], [255, 255]]]  # one channel: (k, H, W)
    rgba = common.to_uint8_hwc(torch.ones(2, 4, 3, 3), 0.0)
    assert rgba.shape == (2, 3, 3, 4) and rgba.dtype == np.uint8 and (rgba == 255).all()
    with pytest.raises(SystemExit, match="square uint8"):
        common.image_shape(np.zeros((2, 8, 6, 3), np.uint8))


@pytest.mark.parametrize("size", peer_configs.DOC_SIZES)
@pytest.mark.parametrize("channels", peer_configs.CHANNELS)
def test_diffusers_follows_its_tutorial_layout_scaled_to_the_cpu(size, channels):
    c = peer_configs.diffusers_config(size, channels)
    n = len(c["block_out_channels"])
    assert size >> (n - 1) == 4  # down to 4x4, as the tutorial's 128 px in six levels
    assert c["block_out_channels"] == (32, 32, 64, 64, 128, 128)[:n] and c["layers_per_block"] == 2
    assert c["norm_num_groups"] == 8 and all(w % 8 == 0 for w in c["block_out_channels"])
    attn = c["down_block_types"].index("AttnDownBlock2D")
    assert size >> attn == 8 and c["down_block_types"].count("AttnDownBlock2D") == 1
    assert c["up_block_types"][::-1] == tuple(t.replace("Down", "Up") for t in c["down_block_types"])
    assert c["in_channels"] == c["out_channels"] == channels and "num_class_embeds" not in c
    assert peer_configs.diffusers_config(size, channels, 4)["num_class_embeds"] == 4
    if size == 128:  # the tutorial's own resolution: its layout, widths / 4
        assert c["block_out_channels"] == tuple(w // 4 for w in (128, 128, 256, 256, 512, 512))
        assert c["down_block_types"][4] == "AttnDownBlock2D" and c["up_block_types"][1] == "AttnUpBlock2D"


@pytest.mark.parametrize("size", peer_configs.DOC_SIZES)
def test_lucidrains_follows_its_readme_scaled_to_the_cpu(size):
    c = peer_configs.lucidrains_config(size, 4)
    assert c["dim"] == 16 and c["channels"] == 4
    assert c["dim_mults"] == ((1, 2, 4) if size == 16 else (1, 2, 4, 8))
    assert peer_configs.batch_size("lucidrains", size) == peer_configs.batch_size("diffusers", size) == 64


def test_mnist5k_keeps_the_original_peer_configurations():
    c = peer_configs.diffusers_config(28, 1, 10)
    assert c["block_out_channels"] == (32, 64, 64) and c["layers_per_block"] == 1 and c["num_class_embeds"] == 10
    assert c["down_block_types"] == ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D")
    assert peer_configs.lucidrains_config(28, 1) == {"dim": 16, "dim_mults": (1, 2, 4), "channels": 1}
    assert peer_configs.batch_size("diffusers", 28) == 128 and peer_configs.batch_size("lucidrains", 28) == 64


def test_unsupported_shapes_are_clear_errors():
    with pytest.raises(peer_configs.UnsupportedShape, match="not 48 px.*--size 16, 32, 64 or 128"):
        peer_configs.diffusers_config(48, 3)
    with pytest.raises(peer_configs.UnsupportedShape, match="1, 3 or 4 channels, not 2"):
        peer_configs.lucidrains_config(32, 2)
    assert "not 256 px" in bench_data.peer_shape_error({"resolution": 256, "channels": 3})


def test_unconditional_runs_sample_once_unguided():
    assert run.sampling_modes(10) == (("guided", None), ("unguided", 1.0))
    assert run.sampling_modes(0) == (("unguided", 1.0),)


def test_a_failed_probe_leaves_the_others_and_falls_back_to_the_budget(tmp_path, monkeypatch):
    def fake_run_child(cmd, env, *args, **kw):
        cmd = [str(c) for c in cmd]
        if cmd[1] == "-c":  # imagegen's probe
            return Child(1, 0.1, 1000, "imagegen: error: no UNet preset for 64x64 images\n")
        folder = Path(cmd[3])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "probe.json").write_text(json.dumps({"step_seconds": 2.0, "batch": 64}))
        return Child(0, 0.1, 1000, "")

    monkeypatch.setattr(run, "run_child", fake_run_child)
    a = argparse.Namespace(data=tmp_path, probe_steps=3, threads=2)
    res = run.speed_probes(["diffusers", "imagegen"], {"imagegen": Path("py"), "peers": Path("py")}, a, {}, tmp_path)
    assert res["diffusers"]["step_seconds"] == 2.0 and res["diffusers"]["img_per_s"] == 32.0
    assert "no UNet preset" in res["imagegen"]["error"] and res["imagegen"]["rounds"] == []
    assert run.matched_steps(600, res["diffusers"]) == 300 and run.matched_steps(600, res["imagegen"]) is None
