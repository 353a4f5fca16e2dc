"""Shared fixtures: tiny prepared data sets and tiny trained runs, made once per session."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def digits_data(tmp_path_factory):
    """sklearn's 8x8 digits as a prepared data set (1,797 images, 10 classes)."""
    from imagegen.data import import_images

    path = tmp_path_factory.mktemp("data") / "digits"
    import_images("builtin:digits", path, progress=False)
    return path


def tiny_config(data, steps: int = 6, **train):
    """A RunConfig for the tiny UNet on the 8x8 digits, trained for a few steps."""
    from dataclasses import replace

    from imagegen.config import ModelConfig, RunConfig, TrainConfig

    tc = replace(TrainConfig(), budget_seconds=0.0, steps=steps, batch_size=16, sample_every_seconds=1e9,
                 checkpoint_every_seconds=1e9, **{"fid_every_seconds": 0.0, **train})
    mc = ModelConfig(preset="unet-tiny", resolution=8, channels=1, num_classes=10)
    return RunConfig(data=str(data), model=mc, train=tc)


@pytest.fixture(scope="session")
def tiny_run(digits_data, tmp_path_factory):
    """A run folder holding a tiny model trained for 30 steps on 8x8 digits."""
    from imagegen.training import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(digits_data, out, config=tiny_config(digits_data, steps=30), progress=False)
    return out
