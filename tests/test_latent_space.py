"""Training and generating in the data set's own autoencoder's latent space (--space latent)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagegen.errors import ImagegenError
from imagegen.features import autoencoder_train as T
from imagegen.generate import load
from imagegen.training import train
from imagegen.training.batches import ImageBatches
from imagegen.training.latent_space import AUTOENCODER_FILE
from imagegen.training.trainer import xflip_probability
from imagegen.config import TrainConfig

from test_autoencoder import make_data, shapes


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("latent")
    data = make_data(root / "data", shapes(80, size=32))
    T.train_autoencoder(data, steps=3, progress=False, threads=1, width=8)
    run = root / "run"
    r = train(data, run, steps=3, space="latent", fid_every_seconds=0, progress=False, preset="unet-tiny")
    return data, run, r


def test_latent_space_needs_the_data_sets_autoencoder(tmp_path):
    data = make_data(tmp_path / "data", shapes(80, size=32))
    with pytest.raises(ImagegenError, match="imagegen features train-autoencoder"):
        train(data, tmp_path / "run", steps=1, space="latent", progress=False)


def test_a_latent_run_trains_on_latents_and_generates_images(latent_run):
    data, run, r = latent_run
    assert r["step"] == 3
    model = load(run)
    mc = model.config.model
    assert (mc.space, mc.latent_channels, mc.latent_factor) == ("latent", 4, 4)
    assert (model.denoiser.channels, model.denoiser.resolution) == (4, 8)  # the network sees 4x8x8 latents
    images = model.generate(n=3, seed=0)
    assert images.shape == (3, 32, 32, 4) and images.dtype == np.uint8  # decoded to the data's pictures
    assert (run / AUTOENCODER_FILE).is_file()
    # the checkpoint holds the denoiser only: the autoencoder is not part of its weights
    assert not any(k.startswith("decoder") for k in model.checkpoint.ema)


def test_a_replaced_autoencoder_copy_is_refused(latent_run, tmp_path):
    data, run, _ = latent_run
    other = make_data(tmp_path / "other", shapes(80, size=32, seed=1))
    path = T.train_autoencoder(other, steps=1, progress=False, threads=1, width=8, seed=3)
    copy = tmp_path / "run"
    import shutil

    shutil.copytree(run, copy)
    shutil.copy(path, copy / AUTOENCODER_FILE)
    with pytest.raises(ImagegenError, match="not the autoencoder this run was trained with"):
        load(copy)


def test_float_latents_pass_through_the_batches_unchanged_and_are_not_mirrored():
    z = np.random.default_rng(0).normal(size=(5, 4, 8, 8)).astype(np.float32)
    batch = ImageBatches(z)[torch.tensor([3, 1])]
    assert torch.equal(batch, torch.from_numpy(z[[3, 1]]))
    assert xflip_probability(TrainConfig(), 4, "latent") == 0.0
    assert xflip_probability(TrainConfig(xflip=0.5), 4, "latent") == 0.5


def test_large_pictures_default_to_latent_space_within_the_budget(tmp_path):
    from imagegen.config import RunConfig
    from imagegen.features.autoencoder import autoencoder_path
    from imagegen.models.presets import LATENT_FROM_SIDE
    from imagegen.training.run import _default_space

    data = make_data(tmp_path / "data", shapes(72, size=LATENT_FROM_SIDE))
    r = train(data, tmp_path / "run", budget="8s", fid_every_seconds=0, progress=False)
    ae_path = autoencoder_path(data)
    assert ae_path.is_file()  # the data set's autoencoder was trained first ...
    stored = RunConfig.load(tmp_path / "run" / "config.toml")
    assert stored.model.space == "latent" and (tmp_path / "run" / AUTOENCODER_FILE).is_file()
    spent = 8.0 - stored.train.budget_seconds  # ... within the run's budget: the denoiser got the rest
    assert 0.4 * 8.0 <= spent < 8.0 and r["elapsed"] <= stored.train.budget_seconds + 5.0
    # the next run reuses it and keeps the whole budget; an explicit --space pixel or preset stays on pixels
    mtime = ae_path.stat().st_mtime_ns
    train(data, tmp_path / "again", steps=1, fid_every_seconds=0, progress=False)
    assert ae_path.stat().st_mtime_ns == mtime
    assert RunConfig.load(tmp_path / "again" / "config.toml").model.space == "latent"
    # an explicit space or preset is the user's choice; smaller pictures stay on pixels with no autoencoder
    small = make_data(tmp_path / "small", shapes(72, size=32))
    for d, side, kw in ((data, LATENT_FROM_SIDE, {"space": "pixel"}), (data, LATENT_FROM_SIDE, {"preset": "unet-64"}),
                        (small, 32, {})):
        assert _default_space(d, side, kw, progress=False) == kw
    assert not autoencoder_path(small).exists()
