"""The data set's autoencoder (latent diffusion, Rombach et al. 2022) and its latent cache."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from imagegen.atomic import write_json
from imagegen.data.dataset import FORMAT, MANIFEST_NAME, VERSION, dataset_checksum, save_npy
from imagegen.errors import ImagegenError
from imagegen.features import autoencoder as A
from imagegen.features import autoencoder_train as T
from imagegen.features import latents as L


def shapes(n: int, size: int = 16, channels: int = 4, seed: int = 0) -> np.ndarray:
    """uint8 (n, size, size, channels): coloured discs and squares on a transparent background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((n, size, size, channels), np.uint8)
    for i in range(n):
        cy, cx, r = rng.uniform(3, size - 3, 2).tolist() + [rng.uniform(2, size / 3)]
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r if i % 2 else (abs(yy - cy) < r) & (abs(xx - cx) < r)
        colour = rng.integers(0, 256, channels)
        out[i] = rng.integers(0, 256, channels)  # arbitrary colour under the transparent background
        out[i][disc] = colour
        if channels == 4:
            out[i, ..., 3] = np.where(disc, 255, 0)
    return out


def make_data(path, images: np.ndarray):
    """A prepared data set (one shard, no labels) holding ``images``."""
    path.mkdir(parents=True, exist_ok=True)
    shard = {"images": "images-00000.npy", "images_sha256": save_npy(path / "images-00000.npy", images),
             "count": len(images)}
    n, h, w, c = images.shape
    write_json(path / MANIFEST_NAME, {"format": FORMAT, "version": VERSION, "count": n, "resolution": [h, w],
                                      "channels": c, "class_names": None, "shards": [shard],
                                      "checksum": dataset_checksum([shard])})
    return path


def tiny(channels: int = 4, size: int = 16, factor: int = 4, cz: int = 4) -> A.Autoencoder:
    torch.manual_seed(0)
    return A.Autoencoder({"channels": channels, "resolution": [size, size], "factor": factor,
                          "latent_channels": cz, "arch": A.default_arch(factor, width=8)})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A data set of 80 RGBA 16x16 images and an autoencoder trained on it for a few steps."""
    data = make_data(tmp_path_factory.mktemp("ae") / "shapes", shapes(80))
    path = T.train_autoencoder(data, steps=4, progress=False, threads=1, width=8)
    return data, path


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("factor,cz", [(4, 4), (2, 8), (8, 3)])
def test_shapes(channels, factor, cz):
    ae = tiny(channels, 16, factor, cz)
    x = torch.rand(2, channels, 16, 16) * 2 - 1
    with torch.no_grad():
        z = ae.encode(x)
        y = ae.decode(z)
    assert tuple(z.shape) == (2, *ae.latent_shape) == (2, cz, 16 // factor, 16 // factor)
    assert y.shape == x.shape and ae.image_shape == (channels, 16, 16)
    assert float(y.min()) >= -1 and float(y.max()) <= 1
    img = shapes(3, 16, channels)
    assert ae.decode_images(ae.encode_images(img)).shape == img.shape
    with pytest.raises(ImagegenError):
        ae.encode(torch.zeros(1, channels, 15, 16))


def test_encoder_ignores_colour_under_transparent_pixels():
    ae = tiny(4)
    a = shapes(4, 16, 4)
    b = a.copy()
    clear = b[..., 3] == 0
    b[..., :3][clear] = 255 - b[..., :3][clear]
    assert np.array_equal(ae.encode_images(a), ae.encode_images(b))


def test_psnr_matches_the_formula():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 200, (3, 8, 8, 3)).astype(np.uint8)
    for k in (1, 4, 17):
        assert A.psnr(a, a + k) == pytest.approx(20 * math.log10(255 / k), abs=1e-9)
    assert A.psnr(a, a) == math.inf
    # RGBA is compared premultiplied: colour errors under transparent pixels do not count
    rgba = np.concatenate([a, np.full((3, 8, 8, 1), 255, np.uint8)], axis=-1)
    rgba[:, :4, :, 3] = 0  # the top half transparent
    off = rgba.copy()
    off[..., :3] += 5
    mse = 3 * 5 ** 2 / 8  # three of four channels off by 5 in the opaque half
    assert A.psnr(rgba, off) == pytest.approx(10 * math.log10(255 ** 2 / mse), abs=1e-9)
    assert A.psnr(rgba[:, :4], off[:, :4]) == math.inf


def test_a_few_training_steps_lower_the_reconstruction_loss():
    images = shapes(96)
    ae = tiny(4)
    x = A.to_tensor(images[:32])

    def loss() -> float:
        with torch.no_grad():
            return float(A.reconstruction_loss(x, ae.decode_raw(ae.moments(x)[0])).mean())

    before = loss()
    from imagegen.features.evaluator import torch_threads

    with torch_threads(1):  # restores the session's setting: other tests compare against it
        log = T.fit(ae, images, images[:16], steps=100, seconds=None, progress=False)
    assert log["steps"] == 100 and loss() < 0.9 * before


def test_train_writes_weights_and_config(trained):
    data, path = trained
    assert path == data / "features" / "autoencoder-f4c4.safetensors" and path.is_file()
    report = json.loads(path.with_suffix(".json").read_text())
    ae = A.load_autoencoder(data)
    assert report["sha256"] == ae.sha256 == ae.config["sha256"]
    assert report["dataset_checksum"] == json.loads((data / MANIFEST_NAME).read_text())["checksum"]
    assert report["arch"] == ae.config["arch"] and report["latent_scale"] > 0
    assert 0 < report["held_out_psnr"] < 100 and report["training"]["steps"] == 4
    assert not list((data / "features").glob(".*"))  # no temporary files left


def test_save_load_round_trip_is_identical(trained, tmp_path):
    _, path = trained
    ae = A.load_autoencoder(path)
    x = torch.rand(3, 4, 16, 16) * 2 - 1
    again = A.Autoencoder.load(ae.save(tmp_path / "copy.safetensors"))
    assert again.sha256 == ae.sha256
    assert torch.equal(again.encode(x), ae.encode(x))
    z = torch.randn(3, *ae.latent_shape)
    assert torch.equal(again.decode(z), ae.decode(z))


def test_latent_scale_gives_unit_std(trained):
    data, path = trained
    z = L.cached_latents(data, A.load_autoencoder(data), progress=False)
    assert z.dtype == np.float32 and z.shape == (80, 4, 4, 4)
    assert float(z.std()) == pytest.approx(1.0, abs=0.01) and abs(float(z.mean())) < 0.01


def test_latent_cache_is_reused_only_for_the_same_data_and_autoencoder(trained, tmp_path, monkeypatch):
    data, _ = trained
    ae = A.load_autoencoder(data)
    first = np.array(L.cached_latents(data, ae, progress=False))
    cache = L.latents_path(data, json.loads((data / MANIFEST_NAME).read_text())["checksum"], ae.sha256)
    assert cache.is_file() and cache.with_suffix(".json").is_file()

    calls = []
    encode = L._encode_to
    monkeypatch.setattr(L, "_encode_to", lambda *a: (calls.append(1), encode(*a)))
    assert np.array_equal(L.cached_latents(data, ae, progress=False), first) and not calls  # reused

    other = A.load_autoencoder(data)  # another autoencoder of the same data set: its own cache
    with torch.no_grad():
        other.decoder[0].bias.add_(1.0)
    other._sha256 = None
    L.cached_latents(data, other, progress=False)
    assert calls == [1] and L.latents_path(data, other.config["dataset_checksum"], other.sha256) != cache

    meta = json.loads(cache.with_suffix(".json").read_text())  # a cache that names another sha256
    write_json(cache.with_suffix(".json"), {**meta, "autoencoder_sha256": "0" * 64})
    assert np.array_equal(L.cached_latents(data, ae, progress=False), first) and calls == [1, 1]

    np.save(cache, np.zeros_like(first))  # modified content: its sha256 no longer matches
    assert np.array_equal(L.cached_latents(data, ae, progress=False), first) and calls == [1, 1, 1]

    changed = make_data(tmp_path / "changed", shapes(80, seed=1))  # another data set: refused
    with pytest.raises(ImagegenError, match="trained for .*shapes.*train-autoencoder .*changed"):
        L.cached_latents(changed, ae, progress=False)
    assert not (changed / "features").exists()


def test_errors_name_the_fix(trained, tmp_path):
    data, path = trained
    fresh = make_data(tmp_path / "fresh", shapes(70, seed=2))
    with pytest.raises(ImagegenError, match=r"no autoencoder for .*fresh; run `imagegen features train-autoencoder"):
        A.load_autoencoder(fresh)
    (fresh / "features").mkdir()
    (fresh / "features" / path.name).write_bytes(path.read_bytes())  # trained on another data set
    with pytest.raises(ImagegenError, match=r"trained for .*shapes \(checksum [0-9a-f]{12}\), not for .*fresh"):
        A.load_autoencoder(fresh)
    small = make_data(tmp_path / "small", shapes(63))
    with pytest.raises(ImagegenError, match="63 images; an autoencoder needs at least 64"):
        T.train_autoencoder(small, steps=1, progress=False)
    odd = make_data(tmp_path / "odd", shapes(64, size=18))
    with pytest.raises(ImagegenError, match="not divisible by the autoencoder factor 4"):
        T.train_autoencoder(odd, steps=1, progress=False)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(ImagegenError, match="cannot read autoencoder weights"):
        A.load_autoencoder(bad)


def test_cli_trains_and_summarises(tmp_path, capsys):
    from imagegen.cli import main

    data = make_data(tmp_path / "d", shapes(64, size=8, channels=3))
    assert main(["features", "train-autoencoder", str(data), "--steps", "2", "--factor", "2",
                 "--latent-channels", "3", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "held-out PSNR" in out and "autoencoder-f2c3.safetensors" in out
    assert A.load_autoencoder(data).latent_shape == (3, 4, 4)
    with pytest.raises(SystemExit):
        main(["features", "train-autoencoder", str(data), "--steps", "2", "--minutes", "1"])


def test_data_sets_larger_than_memory_are_read_per_batch(trained):
    from imagegen.data import load_dataset

    ds = load_dataset(trained[0])
    idx = np.array([3, 5, 40, 79])
    rows = T._in_memory(ds, idx, limit=0)
    assert len(rows) == 4 and np.array_equal(rows[np.array([1, 3])], np.asarray(ds.images)[[5, 79]])
    assert np.array_equal(T._in_memory(ds, idx), np.asarray(ds.images)[idx])
