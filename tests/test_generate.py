"""Generation: seeds are per image, PNGs carry their parameters, guidance and classes."""

import numpy as np
import pytest
import torch
from PIL import Image

from imagegen.config import SampleConfig
from imagegen.errors import ImagegenError
from imagegen.generate import generate_to_folder, guided, load, make_grid


def test_batch_of_8_equals_8_single_runs(tiny_run):
    model = load(tiny_run)
    batch = model.generate(8, seed=100, batch_size=8, steps=6)
    singles = np.concatenate([model.generate(1, seed=100 + i, class_=i % 10, steps=6) for i in range(8)])
    assert batch.dtype == np.uint8 and batch.shape == (8, 8, 8, 1)
    assert batch.tobytes() == singles.tobytes()
    # and an image does not change with n or the batch size
    other = model.generate(13, seed=100, batch_size=5, steps=6)
    assert other[:8].tobytes() == batch.tobytes()


def test_different_seeds_and_classes_differ(tiny_run):
    model = load(tiny_run)
    a = model.generate(4, seed=0, steps=4)
    b = model.generate(4, seed=4, steps=4)
    assert not np.array_equal(a, b)
    c3 = model.generate(2, seed=0, class_=3, steps=4)
    c5 = model.generate(2, seed=0, class_=5, steps=4)
    assert not np.array_equal(c3, c5)


def test_cfg_weight_one_is_conditional_and_zero_is_unconditional():
    class Lin(torch.nn.Module):
        num_classes = 3

        def forward(self, x, sigma, labels):
            return x * 0 + labels.view(-1, 1).float()

    D = Lin()
    x = torch.zeros(2, 1)
    s = torch.ones(2)
    lab = torch.tensor([0, 2])
    torch.testing.assert_close(guided(D, lab, 1.0)(x, s), torch.tensor([[0.0], [2.0]]))
    torch.testing.assert_close(guided(D, lab, 0.0)(x, s), torch.tensor([[3.0], [3.0]]))
    # w = 2: uncond + 2 (cond - uncond) = 2 cond - uncond
    torch.testing.assert_close(guided(D, lab, 2.0)(x, s), torch.tensor([[-3.0], [1.0]]))


def test_generate_to_folder_writes_pngs_with_parameters(tiny_run, tmp_path):
    model = load(tiny_run)
    r = generate_to_folder(model, tmp_path / "out", n=5, seed=3, class_=7, sampler="heun", steps=4, cfg=2.0)
    files = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert files == ["000003.png", "000004.png", "000005.png", "000006.png", "000007.png", "grid.png"]
    im = Image.open(tmp_path / "out" / "000004.png")
    assert im.text["seed"] == "4" and im.text["class"] == "7"
    assert im.text["sampler"] == "heun" and im.text["steps"] == "4" and float(im.text["cfg"]) == 2.0
    assert im.text["checkpoint_sha256"] == model.checkpoint_sha256 and len(model.checkpoint_sha256) == 64
    assert r["nfe_per_image"] == 2 * (2 * 4 - 1)  # heun, doubled by guidance
    # the PNG holds exactly the image generate() returns
    again = model.generate(1, seed=4, class_=7, sampler="heun", steps=4, cfg=2.0)
    assert np.array_equal(np.asarray(im)[..., None], again[0])


def test_bad_generation_requests(tiny_run):
    model = load(tiny_run)
    with pytest.raises(ImagegenError, match="out of range"):
        model.generate(1, class_=10)
    with pytest.raises(ImagegenError, match="unknown sampler"):
        model.generate(1, sampler="magic")
    with pytest.raises(ImagegenError, match="no such run"):
        load(tiny_run.parent / "missing")


def test_make_grid_layout():
    imgs = np.arange(5 * 2 * 2, dtype=np.uint8).reshape(5, 2, 2, 1)
    g = make_grid(imgs, cols=3, pad=1)
    assert g.shape == (2 * 3 + 1, 3 * 3 + 1, 1)
    assert np.array_equal(g[1:3, 4:6], imgs[1])
    assert np.array_equal(g[4:6, 1:3], imgs[3])


def test_guidance_interval_switches_between_guided_and_plain():
    class Lin(torch.nn.Module):
        num_classes = 3

        def forward(self, x, sigma, labels):
            return x * 0 + labels.view(-1, 1).float()

    lab = torch.tensor([0, 2])
    d = guided(Lin(), lab, 2.0, (0.5, 5.0))
    x = torch.zeros(2, 1)
    torch.testing.assert_close(d(x, torch.full((2,), 1.0)), torch.tensor([[-3.0], [1.0]]))  # inside
    torch.testing.assert_close(d(x, torch.full((2,), 10.0)), torch.tensor([[0.0], [2.0]]))  # above
    torch.testing.assert_close(d(x, torch.full((2,), 0.5)), torch.tensor([[0.0], [2.0]]))  # at lo: outside


def test_network_evaluation_count_matches_calls(tiny_run):
    from imagegen.config import SampleConfig
    from imagegen.generate import network_evaluations, resolve_schedule, sample

    model = load(tiny_run)
    calls = []
    real_forward = model.denoiser.forward

    def counting(x, sigma, labels=None):
        calls.append(x.shape[0])
        return real_forward(x, sigma, labels)

    model.denoiser.forward = counting
    for sc in (SampleConfig(steps=5), SampleConfig(steps=5, cfg=2.0), SampleConfig(steps=5, cfg=2.0, cfg_sigma_lo=0.3, cfg_sigma_hi=5.0),
               SampleConfig(sampler="euler", steps=7, cfg=3.0),
               SampleConfig(sampler="dpmpp-2m", schedule="linear-t", steps=6, cfg=2.0, cfg_sigma_lo=0.5, cfg_sigma_hi=3.0)):
        calls.clear()
        sample(model.denoiser, [0], [1], sc)
        sc = resolve_schedule(sc, model.denoiser.precond)
        assert sum(calls) == network_evaluations(sc, conditional=True), sc


def test_auto_schedule_is_karras_and_bad_names_are_rejected(tiny_run):
    from imagegen.config import SampleConfig
    from imagegen.generate import network_evaluations, resolve_schedule

    from imagegen.models.precond import EDM, RectifiedFlow

    flow, edm = RectifiedFlow(), EDM(0.5)
    assert resolve_schedule(SampleConfig(), flow).schedule == "karras"
    assert resolve_schedule(SampleConfig(sampler="ipndm"), flow).schedule == "karras"
    assert resolve_schedule(SampleConfig(sampler="heun"), flow).schedule == "karras"
    assert resolve_schedule(SampleConfig(schedule="linear-t"), flow).schedule == "linear-t"
    assert resolve_schedule(SampleConfig(), edm).schedule == "karras"
    assert resolve_schedule(SampleConfig(schedule="karras"), flow).schedule == "karras"
    with pytest.raises(ImagegenError, match="linear-t"):
        resolve_schedule(SampleConfig(schedule="cosine"), flow)
    with pytest.raises(ValueError, match="resolve"):
        network_evaluations(SampleConfig(), conditional=False)
    model = load(tiny_run)
    assert model.config.model.precond == "flow" and model.sample_config().schedule == "karras"
    assert model.sample_config(schedule="linear-t").schedule == "linear-t"
