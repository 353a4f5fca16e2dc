"""Transparency handling (imagegen.alpha), the UNet family by image size and the noise shift."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from imagegen.alpha import bleed_colour, checkerboard, clear_transparent, over_checkerboard
from imagegen.config import ModelConfig, TrainConfig
from imagegen.errors import ImagegenError
from imagegen.generate import sampling_sigmas
from imagegen.images import make_grid
from imagegen.models.precond import make_precond
from imagegen.models.presets import FAMILY, PRESETS, noise_shift_for, preset_for
from imagegen.models.registry import build_denoiser
from imagegen.noise import training_noise
from imagegen.config import SampleConfig
from imagegen.training.trainer import xflip_probability


def _sprite(garbage: float, seed: int = 0) -> torch.Tensor:
    """A 1x4x16x16 image: an opaque disc with a soft edge, ``garbage`` colour elsewhere."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    r = ((yy - 7.5) ** 2 + (xx - 7.5) ** 2).sqrt()
    a01 = (5.5 - r).clamp(0, 1)  # 1 inside, a one-pixel soft edge, 0 outside
    rgb = torch.rand(3, 16, 16, generator=g) * 2 - 1
    rgb = torch.where(a01 > 0, rgb, torch.full_like(rgb, garbage))
    return torch.cat([rgb, a01[None] * 2 - 1])[None]


def test_bleed_keeps_visible_pixels_and_ignores_the_colour_under_transparency():
    a, b = _sprite(-1.0), _sprite(0.7)
    fa, fb = bleed_colour(a), bleed_colour(b)
    visible = (a[:, 3:] > -1).expand(-1, 3, -1, -1)
    assert torch.equal(fa[:, :3][visible], a[:, :3][visible])  # visible colour untouched
    assert torch.equal(fa[:, 3], a[:, 3])  # alpha untouched
    assert torch.allclose(fa, fb)  # what was stored under alpha 0 no longer matters


def test_bleed_of_one_colour_is_that_colour_everywhere():
    x = _sprite(0.3)
    x[:, :3] = torch.where(x[:, 3:] > -1, torch.tensor([0.2, -0.4, 0.9])[None, :, None, None], x[:, :3])
    out = bleed_colour(x)
    assert torch.allclose(out[0, :3], torch.tensor([0.2, -0.4, 0.9])[:, None, None].expand(3, 16, 16), atol=1e-6)


def test_bleed_fill_is_a_weighted_mean_of_visible_colours_and_empty_images_are_gray():
    x = -torch.ones(2, 4, 8, 8)
    x[0, :3, 0, 0], x[0, 3, 0, 0] = torch.tensor([1.0, 1.0, 1.0]), 1.0  # opaque white, top left
    x[0, :3, 7, 7], x[0, 3, 7, 7] = torch.tensor([-1.0, -1.0, -1.0]), 1.0  # opaque black, bottom right
    out = bleed_colour(x)
    fill = out[0, 0]
    assert fill[0, 0] == 1 and fill[7, 7] == -1
    assert -1 <= float(fill.min()) and float(fill.max()) <= 1  # a convex combination of the colours
    assert fill[1, 1] > fill[6, 6]  # nearer the white pixel is lighter
    assert torch.equal(out[1, :3], torch.zeros(3, 8, 8))  # nothing visible: mid-gray


def test_clear_transparent_and_checkerboard_composite():
    img = np.array([[[10, 20, 30, 0], [200, 100, 50, 255]], [[0, 0, 0, 128], [255, 255, 255, 0]]], np.uint8)
    cleared = clear_transparent(img)
    assert cleared[0, 0].tolist() == [0, 0, 0, 0] and cleared[1, 1].tolist() == [0, 0, 0, 0]
    assert cleared[0, 1].tolist() == [200, 100, 50, 255]
    rgb = over_checkerboard(img)
    bg = checkerboard(2, 2)
    assert rgb.shape == (2, 2, 3)
    assert rgb[0, 1].tolist() == [200, 100, 50]  # opaque: its colour
    assert rgb[0, 0].tolist() == [bg[0, 0]] * 3  # transparent: the checkerboard
    assert rgb[1, 0].tolist() == [round(bg[1, 0] * (1 - 128 / 255))] * 3  # black at alpha 128/255
    assert set(np.unique(checkerboard(16, 16)).tolist()) == {204, 255}
    grid = make_grid(np.stack([img, img]))
    assert grid.shape[-1] == 3  # RGBA grids are drawn over the checkerboard


@pytest.mark.parametrize("side", [16, 17, 20, 24, 28, 29, 32, 40, 45, 46, 48, 64, 65, 90, 96, 128])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_every_size_has_a_preset_with_attention_only_at_16px_or_less(side, channels):
    name = preset_for(side, channels)
    p = PRESETS[name]
    sides = p.level_sides(side)
    assert all(sides[i] <= 16 for i in p.attn_levels), (name, sides, p.attn_levels)
    assert sides[-1] <= 12  # the lowest level sees the whole picture (about 8x8)
    if channels == 1 and side in (28, 32):
        assert name in ("unet-28", "unet-32")  # gray digits keep their network


def test_larger_pictures_get_more_downsampling_and_a_larger_shift():
    totals = [PRESETS[preset_for(s, 3)].patch * 2 ** (len(PRESETS[preset_for(s, 3)].channels) - 1)
              for s in (16, 32, 64, 128)]
    assert totals == sorted(totals) and totals[0] < totals[-1]
    assert [noise_shift_for(s) for s in (16, 28, 32, 64, 128)] == [1.0, 1.0, 1.0, 2.0, 4.0]
    assert FAMILY[-1][0] == 128


@pytest.mark.parametrize("side", [10, 129, 256])
def test_sizes_outside_the_family_are_a_clear_error(side):
    with pytest.raises(ImagegenError, match="--size"):
        preset_for(side, 3)


@pytest.mark.parametrize("side,channels", [(16, 3), (32, 4), (64, 4), (128, 3), (48, 1)])
def test_family_presets_build_and_keep_the_shape(side, channels):
    mc = ModelConfig(preset=preset_for(side, channels), resolution=side, channels=channels, num_classes=3,
                     noise_shift=noise_shift_for(side))
    D = build_denoiser(mc)
    x = torch.randn(2, channels, side, side)
    with torch.no_grad():
        out = D(x, torch.tensor([0.5, 5.0]), torch.tensor([0, 3]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert D.precond.shift == noise_shift_for(side)


@pytest.mark.parametrize("name", ["flow", "edm"])
def test_noise_shift_multiplies_training_and_sampling_sigmas(name):
    base, shifted = make_precond(name, 0.5), make_precond(name, 0.5, 2.0)
    z = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(shifted.training_sigma(z, 0.4, 1.0), 2.0 * base.training_sigma(z, 0.4, 1.0))
    # the median of the shifted log-normal is shift * exp(p_mean)
    assert math.isclose(float(shifted.training_sigma(z, 0.4, 1.0).median()), 2 * math.exp(0.4), rel_tol=0.1)
    sc = SampleConfig(schedule="linear-t")
    s1, s2 = sampling_sigmas(sc), sampling_sigmas(sc, 2.0)
    assert torch.allclose(s2, 2 * s1) and s2[-1] == 0
    # for flow, sigma * 2 is SD3's time shift t' = 2t / (1 + t)
    t, t2 = s1[:-1] / (1 + s1[:-1]), s2[:-1] / (1 + s2[:-1])
    assert torch.allclose(t2, 2 * t / (1 + t), atol=1e-5)
    with pytest.raises(ImagegenError):
        make_precond(name, 0.5, 0.0)


def test_xflip_auto_mirrors_colour_sets_only_and_coins_do_not_change_other_draws():
    assert xflip_probability(TrainConfig(), 1) == 0.0
    assert xflip_probability(TrainConfig(), 4) == 0.5
    assert xflip_probability(TrainConfig(xflip=0.0), 3) == 0.0
    a = training_noise(3, 7, [0, 1, 2], (1, 4, 4))
    g = torch.Generator().manual_seed(__import__("imagegen.noise", fromlist=["x"]).training_seed(3, 7, 1))
    normal, noise, uniform, flip = torch.randn(1, generator=g), torch.randn(1, 4, 4, generator=g), \
        torch.rand(1, generator=g), torch.rand(1, generator=g)
    assert a.normal[1] == normal and torch.equal(a.noise[1], noise) and a.uniform[1] == uniform and a.flip[1] == flip
