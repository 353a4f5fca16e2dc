"""Devices and numerics: device names, autocast, compiled networks keep their checkpoint names,
and a seed's image does not depend on where or how it is computed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagegen.config import ModelConfig, SampleConfig
from imagegen.device import autocast_dtype, module_device, prepare_network, resolve_device
from imagegen.errors import ImagegenError
from imagegen.generate import load, sample
from imagegen.models.registry import build_denoiser


def test_device_names(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("CPU ") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ImagegenError, match="sees no CUDA GPU.*--device cpu"):
        resolve_device("cuda:0")
    with pytest.raises(ImagegenError, match="not a device; choose one of: auto, cpu, cuda, cuda:N"):
        resolve_device("gpu")
    # with (pretend) GPUs: auto picks CUDA, under torchrun the local rank's GPU, indices are checked
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ImagegenError, match="GPU 2 does not exist.*cuda:0..cuda:1"):
        resolve_device("cuda:2")
    with pytest.raises(ImagegenError, match="cuda:N with N a number"):
        resolve_device("cuda:x")


def test_precision_choices():
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("auto", gpu) == torch.bfloat16
    assert autocast_dtype("fp32", gpu) is None and autocast_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ImagegenError, match="choose one of: auto, fp32, bf16"):
        autocast_dtype("fp16", cpu)


def test_compiling_keeps_the_checkpoint_names_and_the_outputs():
    torch.manual_seed(0)
    mc = ModelConfig(preset="unet-tiny", resolution=8, num_classes=10)
    plain = build_denoiser(mc)
    names = list(plain.state_dict())
    compiled = prepare_network(build_denoiser(mc), torch.device("cpu"), compile=True)
    assert list(compiled.state_dict()) == names  # checkpoints do not depend on --compile
    compiled.load_state_dict(plain.state_dict())
    assert module_device(compiled) == torch.device("cpu") and module_device(lambda x: x) == torch.device("cpu")


def test_bf16_autocast_sampling_stays_close_to_fp32(tiny_run):
    # the CUDA default (bf16 autocast of the network, fp32 scalings and sampler) run on the
    # CPU: the same seeds give nearly the same images
    model = load(tiny_run, device="cpu")
    sc = model.sample_config(steps=4, cfg=1.0)
    fp32 = sample(model.denoiser, list(range(8)), list(range(8)), sc, precision="fp32")
    bf16 = sample(model.denoiser, list(range(8)), list(range(8)), sc, precision="bf16")
    diff = np.abs(fp32.astype(int) - bf16.astype(int))
    assert diff.mean() < 3.0 and not np.array_equal(fp32, bf16)  # close, and bf16 really ran


def test_a_seed_gives_the_same_image_whatever_its_batch_with_stochastic_sampling(tiny_run):
    model = load(tiny_run)
    sc = SampleConfig(sampler="euler", steps=5, churn=20.0, cfg=1.0)
    batch = sample(model.denoiser, [3, 4, 5, 6], [0, 1, 2, 3], sc, batch_size=4)
    split = sample(model.denoiser, [3, 4, 5, 6], [0, 1, 2, 3], sc, batch_size=3)
    assert np.array_equal(batch, split)
    with pytest.raises(ImagegenError, match="churn.*euler, heun.*'dpmpp-2m' is deterministic"):
        sample(model.denoiser, [0], [0], SampleConfig(churn=1.0))
