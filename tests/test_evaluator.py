"""Tests for the evaluator classifier (imagegen.features.evaluator) and imagegen.evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from imagegen.errors import ImagegenError
from imagegen.evaluation import (
    evaluate,
    evaluate_folder,
    evaluate_images,
    format_report,
    load_image_folder,
    ref_features_path,
    reference_features,
    write_report,
)
from imagegen.features import (
    Evaluator,
    evaluator_path,
    load_evaluator,
    train_evaluator,
    train_evaluator_for,
)
from imagegen.features.evaluator import fixed_split


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn digits as uint8 (1797, 8, 8, 1) and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.round(d.images * 255 / 16).astype(np.uint8)[..., None], d.target.astype(np.int64)


@pytest.fixture(scope="module")
def trained(digits):
    images, labels = digits
    return train_evaluator(images, labels, 10, progress=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A prepared builtin:digits dataset (8x8) with its evaluator trained."""
    from imagegen.data import import_images

    path = tmp_path_factory.mktemp("data") / "digits"
    import_images("builtin:digits", path, progress=False)
    train_evaluator_for(path, progress=False)
    return path


# --------------------------------------------------------------------------- the classifier


def test_mlp_trains_well_above_chance(trained, digits) -> None:
    evaluator, report = trained
    assert report["arch"] == "mlp"
    assert report["held_out_accuracy"] > 0.85
    assert report["train_count"] + report["held_out_count"] == len(digits[0])
    assert report["held_out_count"] == round(0.2 * len(digits[0]))
    assert report["epochs"] > 0
    assert evaluator.held_out_accuracy == report["held_out_accuracy"]


def test_features_and_probs_shapes(trained, digits) -> None:
    evaluator, _ = trained
    feats = evaluator.features(digits[0][:50], batch_size=16)
    assert feats.shape == (50, 128) and feats.dtype == np.float64
    assert (feats >= 0).all()  # ReLU activations
    probs = evaluator.probs(digits[0][:50])
    assert probs.shape == (50, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # a 3-D grayscale batch is accepted; a wrong shape is a clear error
    assert evaluator.features(digits[0][:3, :, :, 0]).shape == (3, 128)
    with pytest.raises(ImagegenError, match="8, 8, 1"):
        evaluator.features(np.zeros((2, 28, 28, 1), np.uint8))


def test_fixed_split_ignores_training_seed(digits) -> None:
    a_train, a_held = fixed_split(100)
    assert len(a_held) == 20 and len(set(a_train) | set(a_held)) == 100
    np.testing.assert_array_equal(a_held, fixed_split(100)[1])
    images, labels = digits[0][:300], digits[1][:300]
    threads = torch.get_num_threads()
    ev1, r1 = train_evaluator(images, labels, 10, seed=1, epochs=2, progress=False)
    ev1b, _ = train_evaluator(images, labels, 10, seed=1, epochs=2, progress=False)
    ev2, r2 = train_evaluator(images, labels, 10, seed=2, epochs=2, progress=False)
    assert ev1.sha256 == ev1b.sha256  # deterministic for a seed
    assert ev1.sha256 != ev2.sha256
    assert r1["held_out_count"] == r2["held_out_count"] == 60
    assert torch.get_num_threads() == threads  # the single-thread training context is undone


def test_save_load_roundtrip(trained, digits, tmp_path) -> None:
    evaluator, _ = trained
    path = evaluator.save(tmp_path / "ev.safetensors")
    loaded = Evaluator.load(path)
    assert loaded.arch == "mlp" and loaded.input_shape == (8, 8, 1) and loaded.num_classes == 10
    assert loaded.held_out_accuracy == evaluator.held_out_accuracy
    assert loaded.sha256 == evaluator.sha256
    np.testing.assert_array_equal(loaded.features(digits[0][:20]), evaluator.features(digits[0][:20]))
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ImagegenError, match="bad.safetensors"):
        Evaluator.load(tmp_path / "bad.safetensors")


def test_cnn_architecture(digits, tmp_path) -> None:
    images, labels = digits[0][:400], digits[1][:400]
    ev, report = train_evaluator(images, labels, 10, arch="cnn", epochs=2, progress=False)
    assert report["arch"] == "cnn" and report["held_out_accuracy"] > 0.2
    assert ev.features(images[:5]).shape == (5, 128)
    loaded = Evaluator.load(ev.save(tmp_path / "cnn.safetensors"))
    np.testing.assert_allclose(loaded.probs(images[:5]), ev.probs(images[:5]))


def test_bad_training_input(digits) -> None:
    images, labels = digits
    with pytest.raises(ImagegenError, match="architecture"):
        train_evaluator(images, labels, 10, arch="resnet")
    with pytest.raises(ImagegenError, match="labels"):
        train_evaluator(images, labels[:10], 10)
    with pytest.raises(ImagegenError, match="lie in"):
        train_evaluator(images, labels, 5)


# --------------------------------------------------------------------------- next to a data set


def test_train_evaluator_for_writes_weights_and_report(data_dir) -> None:
    weights = data_dir / "features" / "evaluator-mlp.safetensors"
    assert weights == evaluator_path(data_dir, "mlp") and weights.is_file()
    report = json.loads((data_dir / "features" / "evaluator-mlp.json").read_text())
    assert report["held_out_accuracy"] > 0.85 and report["arch"] == "mlp"
    ev = load_evaluator(data_dir)
    assert ev.sha256 == report["sha256"]
    assert load_evaluator(weights).sha256 == ev.sha256  # an explicit weights path


def test_load_evaluator_missing_and_train_if_missing(tmp_path, capsys) -> None:
    from imagegen.data import import_images

    path = tmp_path / "digits"
    import_images("builtin:digits", path, progress=False)
    with pytest.raises(ImagegenError, match="imagegen features train-evaluator"):
        load_evaluator(path)
    with pytest.raises(ImagegenError, match="--arch cnn"):
        load_evaluator(path, "cnn")
    ev = load_evaluator(path, train_if_missing=True, progress=False)
    assert "training it now" in capsys.readouterr().err
    assert evaluator_path(path).is_file() and ev.held_out_accuracy > 0.85
    # an evaluator of another version of the data set counts as missing
    ev.dataset_checksum = "0" * 64
    ev.save(evaluator_path(path))
    with pytest.raises(ImagegenError, match="different version"):
        load_evaluator(path)


def test_reference_features_cache_reused_and_invalidated(data_dir, digits, monkeypatch) -> None:
    from imagegen.data import load_dataset

    ds = load_dataset(data_dir)
    ev = load_evaluator(data_dir)
    cache = ref_features_path(data_dir, "mlp")
    assert cache == data_dir / "features" / "ref-feats-mlp.npz"
    cache.unlink(missing_ok=True)
    calls: list[int] = []
    compute = ev.features

    def counting(images, *args, **kwargs):
        calls.append(len(images))
        return compute(images, *args, **kwargs)

    monkeypatch.setattr(ev, "features", counting)
    ref = reference_features(data_dir, ev, "mlp", progress=False)
    assert sum(calls) == len(ds) and ref.shape == (len(ds), 128) and ref.dtype == np.float32
    np.testing.assert_allclose(ref, compute(np.asarray(ds.images)), rtol=1e-5, atol=1e-5)
    with np.load(cache, allow_pickle=False) as z:
        assert str(z["data_checksum"]) == ds.checksum and str(z["extractor_sha256"]) == ev.sha256
        np.testing.assert_array_equal(z["features"], ref)
    mtime = cache.stat().st_mtime_ns

    # same data set checksum and extractor sha256: the file is reused, the extractor not called
    def boom(*args, **kwargs):
        raise AssertionError("reference features recomputed although the cache is valid")

    monkeypatch.setattr(ev, "features", boom)
    np.testing.assert_array_equal(reference_features(data_dir, ev, "mlp", progress=False), ref)
    assert cache.stat().st_mtime_ns == mtime
    monkeypatch.setattr(ev, "features", counting)

    # another extractor (another sha256) under the same name: recomputed and rewritten
    other, _ = train_evaluator(*digits, 10, seed=7, epochs=3, progress=False)
    assert other.sha256 != ev.sha256
    ref_other = reference_features(data_dir, other, "mlp", progress=False)
    assert ref_other.shape == ref.shape and not np.allclose(ref_other, ref)
    with np.load(cache, allow_pickle=False) as z:
        assert str(z["extractor_sha256"]) == other.sha256

    # back to the data set's own evaluator: recomputed, the same values as the first time
    calls.clear()
    np.testing.assert_array_equal(reference_features(data_dir, ev, "mlp", progress=False), ref)
    assert sum(calls) == len(ds)

    # a cache of another version of the data set (checksum differs) is not used
    with np.load(cache, allow_pickle=False) as z:
        stale = {k: z[k] for k in z.files}
    stale["features"] = np.zeros_like(ref)
    stale["data_checksum"] = np.str_("0" * 64)
    with open(cache, "wb") as f:
        np.savez(f, **stale)
    calls.clear()
    np.testing.assert_array_equal(reference_features(data_dir, ev, "mlp", progress=False), ref)
    assert sum(calls) == len(ds)

    # a corrupt file is recomputed and replaced by a valid one
    cache.write_bytes(b"not an npz file")
    calls.clear()
    np.testing.assert_array_equal(reference_features(data_dir, ev, "mlp", progress=False), ref)
    assert sum(calls) == len(ds)
    with np.load(cache, allow_pickle=False) as z:
        assert str(z["extractor_sha256"]) == ev.sha256
    monkeypatch.setattr(ev, "features", boom)
    np.testing.assert_array_equal(reference_features(data_dir, ev, "mlp", progress=False), ref)


def test_evaluate_real_vs_noise(data_dir) -> None:
    from imagegen.data import load_dataset

    ds = load_dataset(data_dir)
    _, held = fixed_split(len(ds))
    real = np.asarray(ds.images)[held]
    real_report = evaluate_images(real, data_dir, labels=ds.labels[held], progress=False)
    assert real_report["n"] == len(held)
    assert real_report["confident_fraction"] > 0.7
    assert real_report["class_accuracy"] > 0.85
    assert real_report["data_checksum"] == ds.checksum
    assert real_report["evaluator"]["arch"] == "mlp"
    assert real_report["evaluator"]["held_out_confident_fraction"] > 0.7
    noise = np.random.default_rng(0).integers(0, 256, size=real.shape, dtype=np.uint8)
    noise_report = evaluate_images(noise, data_dir, progress=False)
    assert "class_accuracy" not in noise_report
    assert noise_report["fid"] > 10 * real_report["fid"]
    assert noise_report["confident_fraction"] < real_report["confident_fraction"]
    # the real images lie on the data manifold, noise does not; KID orders them the same way
    assert real_report["precision"] > 0.9 and real_report["recall"] > 0.5
    assert noise_report["precision"] < 0.05 and noise_report["kid"] > 10 * real_report["kid"]
    # CAS: a classifier trained on the real held-out images, tested on the held-out split
    assert real_report["cas"] > 0.85


def test_fid_of_two_halves_of_the_data_is_small(data_dir) -> None:
    from imagegen.data import load_dataset

    ds = load_dataset(data_dir)
    images = np.asarray(ds.images)
    perm = np.random.default_rng(1).permutation(len(images))
    a, b = images[perm[: len(images) // 2]], images[perm[len(images) // 2:]]
    r_a = evaluate_images(a, data_dir, seeds=3, progress=False)
    noise = np.random.default_rng(2).integers(0, 256, size=b.shape, dtype=np.uint8)
    r_noise = evaluate_images(noise, data_dir, progress=False)
    assert r_a["fid"] < r_noise["fid"] / 20
    assert len(r_a["fid_seeds"]) == 3 and r_a["fid_std"] > 0
    assert r_a["fid"] == pytest.approx(np.mean(r_a["fid_seeds"]), abs=1e-3)
    # order of the samples does not matter for the pooled scores, up to the float32 rounding
    # of the features (the statistics are float64): the FID here (~0.08) is a small
    # difference of much larger covariance terms, which reversing the samples moved by 9e-8
    # in one CI run
    r_b = evaluate_images(a[::-1].copy(), data_dir, progress=False)
    r_a1 = evaluate_images(a, data_dir, progress=False)
    for key in ("fid", "kid", "precision", "recall", "memorization"):
        assert r_b[key] == pytest.approx(r_a1[key], rel=1e-6, abs=1e-6), key


def test_memorization_of_training_images_and_of_a_fresh_model(data_dir, tmp_path) -> None:
    from conftest import tiny_config
    from imagegen.data import load_dataset
    from imagegen.generate import load
    from imagegen.training import train

    ds = load_dataset(data_dir)
    copies = np.asarray(ds.images[:300])
    details: dict = {}
    report = evaluate_images(copies, data_dir, progress=False, details=details)
    assert report["memorization"] == 1.0 and (details["nearest"] == np.arange(300)).mean() > 0.95
    # a model trained for a few steps cannot have memorised anything
    train(data_dir, tmp_path / "run", config=tiny_config(data_dir, steps=20), progress=False)
    fresh = load(tmp_path / "run").generate(300, 0, steps=4)
    assert evaluate_images(fresh, data_dir, progress=False)["memorization"] < 0.02
    # and the figure of a run evaluation shows curves and neighbours
    figure = tmp_path / "eval.png"
    out = evaluate(tmp_path / "run", data_dir, n=20, steps=2, figure=figure, progress=False)
    assert out["figure"] == str(figure) and Image.open(figure).size[0] > 300


def test_evaluate_rejects_resolution_mismatch(data_dir) -> None:
    with pytest.raises(ImagegenError, match="8x8 images with 1 channel"):
        evaluate_images(np.zeros((10, 28, 28, 1), np.uint8), data_dir)
    with pytest.raises(ImagegenError, match="1 channel"):
        evaluate_images(np.zeros((10, 8, 8, 3), np.uint8), data_dir)
    with pytest.raises(ImagegenError, match="uint8"):
        evaluate_images(np.zeros((10, 8, 8, 1), np.float32), data_dir)


def _write_png(path: Path, array: np.ndarray, cls: int | None) -> None:
    info = PngInfo()
    if cls is not None:
        info.add_text("class", str(cls))
    info.add_text("seed", "123")
    Image.fromarray(array).save(path, pnginfo=info)


def test_load_image_folder_reads_class_chunks(tmp_path, digits) -> None:
    images, labels = digits
    for i in range(5):
        _write_png(tmp_path / f"{i:05d}.png", images[i, :, :, 0], int(labels[i]))
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "grid.png")
    (tmp_path / "notes.txt").write_text("ignored")
    arr, lab, paths = load_image_folder(tmp_path)
    assert arr.shape == (5, 8, 8, 1) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr, images[:5])
    np.testing.assert_array_equal(lab, labels[:5])
    assert [p.name for p in paths] == [f"{i:05d}.png" for i in range(5)]
    assert load_image_folder(tmp_path, channels=3)[0].shape == (5, 8, 8, 3)
    # one image without a class: the folder is unconditional
    _write_png(tmp_path / "00005.png", images[5, :, :, 0], None)
    assert load_image_folder(tmp_path)[1] is None
    (tmp_path / "00006.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ImagegenError, match="00006.png"):
        load_image_folder(tmp_path)


def test_load_image_folder_errors(tmp_path) -> None:
    with pytest.raises(ImagegenError, match="no PNG images"):
        load_image_folder(tmp_path)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(ImagegenError, match="b.png"):
        load_image_folder(tmp_path)


def test_evaluate_folder_and_report(data_dir, digits, tmp_path) -> None:
    images, labels = digits
    folder = tmp_path / "samples"
    folder.mkdir()
    for i in range(40):
        _write_png(folder / f"{i:05d}.png", images[i, :, :, 0], int(labels[i]))
    report = evaluate_folder(folder, data_dir, n=30, progress=False)
    assert report["n"] == 30 and report["source"] == str(folder)
    assert report["class_accuracy"] > 0.8
    text = format_report(report)
    assert "FID (mlp features)" in text and "class accuracy" in text
    out = write_report(report, tmp_path / "eval" / "report.json")
    assert json.loads(out.read_text())["fid"] == pytest.approx(report["fid"])
    # evaluate() on a folder that is not a run reads its PNGs
    assert evaluate(folder, data_dir, n=30, progress=False)["fid"] == pytest.approx(report["fid"])
    with pytest.raises(ImagegenError, match="does not exist"):
        evaluate(tmp_path / "missing", data_dir)


def test_unlabeled_dataset_has_no_evaluator(tmp_path) -> None:
    from imagegen.data import import_images

    src = tmp_path / "flat"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(src / f"{i}.png")
    import_images(str(src), tmp_path / "unlabeled", size=8, progress=False)
    with pytest.raises(ImagegenError, match="labelled"):
        train_evaluator_for(tmp_path / "unlabeled", progress=False)
