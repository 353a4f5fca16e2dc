"""Training: checkpoints round-trip, resume equals an uninterrupted run, config checks."""

from dataclasses import replace

import pytest
import torch

from conftest import tiny_config
from imagegen.augment import AUGMENT_DIM
from imagegen.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from imagegen.config import ModelConfig, RunConfig, TrainConfig
from imagegen.errors import ImagegenError
from imagegen.generate import load
from imagegen.training import lr_at, parse_duration, train


def test_checkpoint_save_load_gives_identical_outputs(tiny_run):
    ck = load_checkpoint(latest_checkpoint(tiny_run))
    assert ck.step == 30 and ck.nimg == 30 * 16
    a = load(tiny_run)
    b = load(tiny_run)
    x = torch.randn(4, 1, 8, 8)
    sigma = torch.full((4,), 1.5)
    labels = torch.tensor([0, 1, 2, 10])
    torch.testing.assert_close(a.denoiser(x, sigma, labels), b.denoiser(x, sigma, labels), rtol=0, atol=0)
    # and the weights are the EMA weights that were saved
    for k, v in a.denoiser.state_dict().items():
        assert torch.equal(v, ck.ema[k])
    assert ck.config.model.preset == "unet-tiny"


def test_resume_equals_uninterrupted_run(digits_data, tmp_path):
    cfg = tiny_config(digits_data, steps=8)
    losses_a: list[float] = []
    train(digits_data, tmp_path / "a", config=cfg, progress=False, on_step=lambda s, l: losses_a.append(l))

    losses_b: list[float] = []

    def stop_at_4(step, loss):
        losses_b.append(loss)
        if step == 4:
            raise KeyboardInterrupt  # like Ctrl-C: the trainer saves a checkpoint and stops

    r = train(digits_data, tmp_path / "b", config=cfg, progress=False, on_step=stop_at_4)
    assert r["interrupted"] and r["step"] == 4
    r = train(digits_data, tmp_path / "b", resume=True, progress=False, on_step=lambda s, l: losses_b.append(l))
    assert r["step"] == 8 and not r["interrupted"]

    assert losses_a == losses_b  # the next loss after resuming, and every one after, equal
    ca = load_checkpoint(latest_checkpoint(tmp_path / "a"))
    cb = load_checkpoint(latest_checkpoint(tmp_path / "b"))
    assert (ca.step, ca.nimg) == (cb.step, cb.nimg)
    for k in ca.model:
        assert torch.equal(ca.model[k], cb.model[k]), k
        assert torch.equal(ca.ema[k], cb.ema[k]), k
    oa = torch.load(ca.optim_path, weights_only=True)
    ob = torch.load(cb.optim_path, weights_only=True)
    for k, st in oa["state"].items():
        for name, t in st.items():
            assert torch.equal(t, ob["state"][k][name]), (k, name)


def test_training_reduces_loss_and_writes_run_files(tiny_run):
    import json

    assert (tiny_run / "config.toml").is_file()
    cfg = RunConfig.load(tiny_run / "config.toml")
    assert cfg.train.steps == 30
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 30
    assert list((tiny_run / "samples").glob("grid-*.png"))
    assert len(list_checkpoints(tiny_run)) <= cfg.train.keep_checkpoints
    assert not list((tiny_run / "checkpoints").glob(".*"))  # no temp files left behind


def test_refuses_to_overwrite_a_run_and_resume_without_checkpoint(digits_data, tiny_run, tmp_path):
    with pytest.raises(ImagegenError, match="--resume"):
        train(digits_data, tiny_run, config=tiny_config(digits_data), progress=False)
    with pytest.raises(ImagegenError, match="no checkpoint"):
        train(digits_data, tmp_path / "empty", resume=True, progress=False)


def test_bad_settings_are_rejected_with_the_fix(digits_data, tmp_path):
    cfg = tiny_config(digits_data)
    bad = replace(cfg, train=replace(cfg.train, batch_size=0))
    with pytest.raises(ImagegenError, match="batch_size"):
        train(digits_data, tmp_path / "r", config=bad, progress=False)
    neither = replace(cfg, train=replace(cfg.train, steps=0, budget_seconds=0))
    with pytest.raises(ImagegenError, match="--budget"):
        train(digits_data, tmp_path / "r2", config=neither, progress=False)


def test_a_data_set_too_small_is_refused_unless_allowed(tmp_path, capsys):
    import numpy as np

    from imagegen.cli import main
    from imagegen.training.run import MIN_TRAIN_IMAGES
    from test_autoencoder import make_data

    images = np.random.default_rng(0).integers(0, 256, (MIN_TRAIN_IMAGES - 1, 8, 8, 1), dtype=np.uint8)
    small = make_data(tmp_path / "small", images)
    cfg = replace(tiny_config(small, steps=2), model=ModelConfig(preset="unet-tiny", resolution=8, channels=1))
    with pytest.raises(ImagegenError, match=f"has {MIN_TRAIN_IMAGES - 1} images of 8x8.*--allow-small") as e:
        train(small, tmp_path / "r", config=cfg, progress=False)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "r").exists()  # refused before any run folder is made
    before = torch.get_num_threads()
    train(small, tmp_path / "r", config=cfg, progress=False, allow_small=True, threads=1)
    assert latest_checkpoint(tmp_path / "r") is not None
    assert torch.get_num_threads() == before  # the caller's thread setting is restored
    # the CLI says the same in one line and accepts the flag
    assert main(["train", str(small), "--out", str(tmp_path / "c"), "--steps", "1", "--preset", "unet-tiny"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allow-small" in err and str(small) in err
    assert main(["train", str(small), "--out", str(tmp_path / "c"), "--steps", "1", "--preset", "unet-tiny",
                 "--allow-small", "--fid-every", "0"]) == 0
    enough = make_data(tmp_path / "enough", np.concatenate([images, images[:1]]))
    train(enough, tmp_path / "e", config=replace(cfg, data=str(enough)), progress=False)


def test_config_toml_round_trip_and_unknown_keys():
    cfg = RunConfig(data="x")
    assert RunConfig.from_toml(cfg.to_toml()) == cfg
    with pytest.raises(ImagegenError, match="unknown key.*batchsize.*known keys"):
        RunConfig.from_toml('[train]\nbatchsize = 3\n')
    with pytest.raises(ImagegenError, match="expected int"):
        RunConfig.from_toml('[train]\nbatch_size = "big"\n')
    with pytest.raises(ImagegenError, match="not valid TOML"):
        RunConfig.from_toml('[train\n')


def test_configs_written_before_rectified_flow_stay_edm():
    for precond in ("edm", "flow"):
        cfg = RunConfig(data="x", model=ModelConfig(precond=precond))
        assert RunConfig.from_toml(cfg.to_toml()).model.precond == precond
    old = RunConfig(data="x").to_dict()
    del old["model"]["precond"]
    assert RunConfig.from_dict(old).model.precond == "edm"


def test_configs_written_before_the_two_piece_normal_keep_the_plain_one():
    assert TrainConfig().p_std_low == 2.2  # new runs
    assert RunConfig.from_toml(RunConfig(data="x").to_toml()).train.p_std_low == 2.2
    old = RunConfig(data="x").to_dict()
    del old["train"]["p_std_low"]
    assert RunConfig.from_dict(old).train.p_std_low == 0.0  # a run trained before resumes as it was


def test_lr_schedule_and_durations():
    tc = TrainConfig(lr=1.0, warmup_fraction=0.1, final_lr_fraction=0.1)
    assert lr_at(tc, 0.0) == 0.0
    assert lr_at(tc, 0.05) == pytest.approx(0.5)
    assert lr_at(tc, 0.1) == pytest.approx(1.0)
    assert lr_at(tc, 1.0) == pytest.approx(0.1)
    assert lr_at(tc, 0.55) == pytest.approx(0.55)  # cosine midpoint between 1.0 and 0.1
    assert parse_duration("10m") == 600 and parse_duration("90s") == 90 and parse_duration("1.5h") == 5400
    with pytest.raises(ImagegenError, match="10m"):
        parse_duration("ten minutes")


def test_fid_during_training_keeps_the_best_checkpoint(digits_data, tmp_path):
    import json

    from imagegen.checkpoint import best_checkpoint

    cfg = tiny_config(digits_data, steps=5, fid_every_seconds=1e-9, fid_samples=40, fid_steps=4,
                      keep_checkpoints=1)
    out = tmp_path / "run"
    result = train(digits_data, out, config=cfg, progress=False)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    fids = {r["step"]: r["fid"] for r in records if "fid" in r}
    assert len(fids) >= 4 and all(f > 0 for f in fids.values())  # every step, and at the end
    best = best_checkpoint(out)
    assert best["fid"] == pytest.approx(min(fids.values()), abs=1e-4)
    assert best["step"] == min(fids, key=fids.get) and result["best_fid"] == pytest.approx(best["fid"])
    names = {p.name for p in list_checkpoints(out)}
    assert best["checkpoint"] in names  # pruning (keep 1) spared it
    assert load_checkpoint(out / "checkpoints" / best["checkpoint"]).step == best["step"]


def test_fid_monitor_sets_are_the_seed_groups_of_imagegen_evaluate(tiny_run, digits_data):
    # score_sets(k) must score exactly the k sample sets that `imagegen evaluate RUN -n n --seeds k`
    # generates (seeds k*n .. (k+1)*n - 1, classes i mod C in each set), and score() the first one
    from dataclasses import replace

    from imagegen.evaluation import evaluate
    from imagegen.generate import load
    from imagegen.training.run import fid_monitor_for

    model = load(tiny_run)
    config = model.config
    config = replace(config, data=str(digits_data),
                     train=replace(config.train, fid_samples=25, fid_steps=config.sample.steps))
    mon = fid_monitor_for(config, tiny_run, progress=False, precision="auto")
    sets = mon.score_sets(model.denoiser, 2)
    report = evaluate(tiny_run, digits_data, n=25, seeds=2, cfg=1.0, progress=False)
    assert sets == pytest.approx(report["fid_seeds"], rel=1e-3)
    assert sets[0] != pytest.approx(sets[1], rel=1e-3)  # two different sets
    assert mon.score(model.denoiser) == pytest.approx(sets[0], rel=1e-6)


def test_progress_grids_do_not_count_against_the_budget(digits_data, tmp_path, monkeypatch):
    # A slow grid (0.4 s) every 0.1 s of training: if grid time counted, training would get
    # about a fifth of the 2 s budget; it must get (nearly) all of it.
    import time

    from imagegen import training

    calls, step_time = [], [0.0]
    real_step = training.Trainer.train_step

    def timed_step(self):
        t = time.perf_counter()
        loss = real_step(self)
        step_time[0] += time.perf_counter() - t
        return loss

    monkeypatch.setattr(training.Trainer, "train_step", timed_step)
    monkeypatch.setattr(training.Trainer, "sample_grid", lambda self, path: (calls.append(path), time.sleep(0.4)))
    cfg = tiny_config(digits_data, steps=0)
    cfg = replace(cfg, train=replace(cfg.train, budget_seconds=2.0, sample_every_seconds=0.1))
    r = train(digits_data, tmp_path / "run", config=cfg, progress=False)
    assert len(calls) >= 5  # grids were drawn all along (the last one after training ends)
    assert 1.95 <= r["elapsed"] < 2.5
    assert step_time[0] >= 0.7 * 2.0


def _trainer(digits_data, tmp_path, **train):
    from imagegen.data import load_dataset
    from imagegen.training import Trainer

    cfg = tiny_config(digits_data, steps=3, **train)
    if cfg.train.augment:  # the network takes the augment labels (train() sets this)
        cfg = replace(cfg, model=replace(cfg.model, augment_dim=AUGMENT_DIM))
    ds = load_dataset(digits_data)
    return Trainer(cfg, tmp_path, ds.images, ds.labels)


def test_sharded_batch_gives_the_gradient_of_the_whole_batch(digits_data, tmp_path):
    # a deterministic loss (fixed noise level): the shards' gradients must add up to the
    # gradient of the one-pass batch mean
    def fixed_loss(model, x, labels, noise):
        sigma = torch.full((x.shape[0],), 0.7)
        return ((model(x + 0.3, sigma, labels) - x) ** 2).flatten(1).mean(dim=1)

    grads, losses = {}, {}
    for shards in (1, 3):
        tr = _trainer(digits_data, tmp_path / str(shards), batch_shards=shards)
        assert tr.shards == shards and (tr.pool is None) == (shards == 1)
        tr.loss_fn = fixed_loss
        tr.opt.step = lambda: None  # keep the weights: compare the gradients of step 0
        losses[shards] = tr.train_step()
        grads[shards] = [p.grad.clone() for p in tr.model.parameters()]
        tr.close()
    assert losses[3] == pytest.approx(losses[1], rel=1e-5)
    for g1, g3 in zip(grads[1], grads[3]):
        torch.testing.assert_close(g3, g1, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("augment", [0.0, 0.5])
def test_a_step_does_not_depend_on_the_shard_count(digits_data, tmp_path, augment):
    # each sample's noise (and augmentation) comes from its own seed (imagegen.noise), so splitting
    # the batch over 1, 2 or 4 shards gives the same step up to float rounding of the gradient sums
    from imagegen.features.evaluator import torch_threads

    params = {}
    for shards in (1, 2, 4):
        tr = _trainer(digits_data, tmp_path / str(shards), batch_shards=shards, augment=augment)
        with torch_threads(1):
            for _ in range(2):
                tr.train_step()
        params[shards] = [p.detach().clone() for p in tr.model.parameters()]
        tr.close()
    for shards in (2, 4):
        for a, b in zip(params[1], params[shards]):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_sharded_steps_on_threads_equal_the_same_shards_in_turn(digits_data, tmp_path):
    # the worker threads change nothing: same draws, and gradient sums are order-free
    # (compared at one torch thread each, as convolution sums depend on the thread count)
    from imagegen.features.evaluator import torch_threads
    from imagegen.training import auto_shards

    runs = []
    for threaded in (True, False):
        tr = _trainer(digits_data, tmp_path / str(threaded), batch_shards=2)
        if not threaded:
            tr.close()
        with torch_threads(None if threaded else 1):
            for _ in range(3):
                tr.train_step()
        runs.append([p.detach().clone() for p in tr.model.parameters()])
        tr.close()
    for a, b in zip(*runs):
        assert torch.equal(a, b)
    assert torch.get_num_threads() == min(2, __import__("os").cpu_count() or 1)  # caller's setting kept
    tc = TrainConfig(batch_size=64)
    assert auto_shards(tc, 2) == 2 and auto_shards(tc, 1) == 1 and auto_shards(tc, 16) == 1
    assert auto_shards(replace(tc, batch_size=8), 2) == 1 and auto_shards(replace(tc, batch_shards=3), 16) == 3


def test_bad_shard_count_is_rejected(digits_data, tmp_path):
    with pytest.raises(ImagegenError, match="batch_shards"):
        _trainer(digits_data, tmp_path, batch_shards=17)  # batch is 16
