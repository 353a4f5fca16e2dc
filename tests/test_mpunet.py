"""Invariants of the magnitude-preserving UNet (EDM2): unit magnitudes, forced weight norm, contract."""

from __future__ import annotations

import math

import pytest
import torch

from imagegen.models.mpunet import MPConv, MPUNet, mp_cat, mp_silu, mp_sum, normalize
from imagegen.models.unet import PRESETS


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("t", [0.0, 0.3, 0.5, 0.8])
def test_mp_sum_and_cat_keep_unit_variance(t):
    g = _gen(1)
    a, b = torch.randn(200_000, generator=g), torch.randn(200_000, generator=g)
    assert mp_sum(a, b, t).var().item() == pytest.approx(1.0, rel=0.03)
    # plain lerp would not: it shrinks the variance for 0 < t < 1
    if 0 < t < 1:
        assert a.lerp(b, t).var().item() < 0.9
    a4, b4 = torch.randn(64, 48, 8, 8, generator=g), torch.randn(64, 16, 8, 8, generator=g)
    c = mp_cat(a4, b4, dim=1, t=t)
    assert c.shape == (64, 64, 8, 8)
    assert c.pow(2).mean().item() == pytest.approx(1.0, rel=0.03)
    # the two parts carry energy in the ratio (1-t)^2 : t^2
    ea, eb = c[:, :48].pow(2).sum().item(), c[:, 48:].pow(2).sum().item()
    assert eb / (ea + eb) == pytest.approx(t**2 / ((1 - t) ** 2 + t**2), abs=0.01)


def test_mp_silu_unit_second_moment():
    x = torch.randn(400_000, generator=_gen(2))
    assert mp_silu(x).pow(2).mean().item() == pytest.approx(1.0, rel=0.03)
    assert torch.nn.functional.silu(x).pow(2).mean().item() < 0.5  # the raw SiLU is far off


def test_normalize_rms_one():
    w = 3.0 * torch.randn(5, 7, 3, 3, generator=_gen(3))
    n = normalize(w)
    rms = n.flatten(1).pow(2).mean(1).sqrt()
    torch.testing.assert_close(rms, torch.ones(5), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel,shape", [(3, (16, 32, 16, 16)), (0, (4096, 64))])
def test_mpconv_preserves_magnitude(kernel, shape):
    torch.manual_seed(4)
    cin = shape[1]
    layer = MPConv(cin, 48, kernel)
    x = torch.randn(shape, generator=_gen(5))
    y = layer(x)
    assert y.shape[1] == 48 if kernel else y.shape[-1] == 48
    # interior pixels only for the conv (zero padding shrinks the border)
    y = y[:, :, 1:-1, 1:-1] if kernel else y
    assert y.var().item() == pytest.approx(1.0, rel=0.15)
    # gain scales the output linearly
    torch.testing.assert_close(layer(x, gain=2.0), 2.0 * layer(x))


def test_forced_weight_normalisation():
    torch.manual_seed(6)
    layer = MPConv(8, 4, 3)
    with torch.no_grad():
        layer.weight.mul_(torch.tensor([0.5, 1.0, 5.0, 20.0])[:, None, None, None])
    x = torch.randn(2, 8, 6, 6)
    layer.eval()
    before = layer.weight.detach().clone()
    y_eval = layer(x)
    torch.testing.assert_close(layer.weight.detach(), before, rtol=0, atol=0)  # eval: untouched
    layer.train()
    y_train = layer(x)
    w = layer.weight.detach()
    # stored weight: RMS 1 per output unit (norm sqrt(fan_in)), as in EDM2
    torch.testing.assert_close(w.flatten(1).norm(dim=1), torch.full((4,), math.sqrt(8 * 9)), rtol=1e-3, atol=1e-3)
    # applied weight: unit norm per output unit
    applied = normalize(w) / math.sqrt(8 * 9)
    torch.testing.assert_close(applied.flatten(1).norm(dim=1), torch.ones(4), rtol=1e-3, atol=1e-3)
    # the function itself does not depend on the stored weight's scale
    torch.testing.assert_close(y_train, y_eval, rtol=1e-3, atol=1e-3)


def _set_gains(net: MPUNet, value: float) -> None:
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("gain"):
                p.fill_(value)


CASES = [("unet-28", 1, 28), ("unet-32", 3, 32), ("unet-tiny", 1, 8), ("unet-tiny", 3, 14)]


@pytest.mark.parametrize("preset,ch,res", CASES)
@pytest.mark.parametrize("num_classes", [0, 10])
def test_contract_shapes_zero_init_and_gradients(preset, ch, res, num_classes):
    torch.manual_seed(7)
    net = MPUNet(ch, PRESETS[preset], num_classes)
    x = torch.randn(2, ch, res, res)
    c = torch.tensor([-1.0, 0.5])
    labels = torch.tensor([3, num_classes]) if num_classes else None
    out = net(x, c, labels)
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0  # out_gain starts at 0
    assert all("bias" not in n for n, _ in net.named_parameters())
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in net.modules())

    _set_gains(net, 1.0)
    out = net(x, c, labels)
    assert out.abs().mean() > 0
    assert torch.isfinite(out).all()
    out.pow(2).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_output_magnitude_at_unit_gain():
    """With all gains at 1, unit-variance input gives O(1) output (no drift through depth)."""
    torch.manual_seed(8)
    net = MPUNet(1, PRESETS["unet-28"], 10).eval()
    _set_gains(net, 1.0)
    out = net(torch.randn(8, 1, 28, 28), torch.zeros(8), torch.arange(8))
    assert 0.3 < out.std().item() < 3.0


def test_labels_change_output_and_null_label():
    torch.manual_seed(9)
    net = MPUNet(1, PRESETS["unet-tiny"], num_classes=10).eval()
    x, c = torch.randn(1, 1, 8, 8).expand(3, -1, -1, -1), torch.zeros(3)
    lab = torch.tensor([0, 1, 10])
    with torch.no_grad():
        net.out_gain.fill_(1.0)
        # EDM2: the embedding enters only through x * (emb_gain * emb + 1) with emb_gain = 0 at init,
        # so with only the output gain set, conditioning has no effect yet
        out = net(x, c, lab)
        torch.testing.assert_close(out[0], out[1])
        _set_gains(net, 1.0)
        out = net(x, c, lab)
        assert (out[0] - out[1]).abs().mean() > 1e-3  # the class changes the output
        assert (out[0] - out[2]).abs().mean() > 1e-3  # so does the "no class" token
        assert torch.isfinite(out).all()
        # labels=None means the "no class" token
        torch.testing.assert_close(net(x[:1], c[:1], None), out[2:], rtol=1e-5, atol=1e-5)
        # the noise level changes the output too
        assert (net(x[:1], torch.ones(1), lab[:1]) - out[:1]).abs().mean() > 1e-3
    with pytest.raises(Exception):
        net(x, c, torch.tensor([0, 1, 11]))  # out of range


def test_unconditional_ignores_labels_argument_none():
    torch.manual_seed(10)
    net = MPUNet(3, PRESETS["unet-tiny"], num_classes=0)
    assert net.emb_label is None
    assert net(torch.randn(2, 3, 8, 8), torch.zeros(2)).shape == (2, 3, 8, 8)


def test_presets_with_options_mp_unet_lacks_are_refused():
    # MPUNet has its own norm and no patch or upsampling-conv options: such a preset must not
    # silently build a different network than it names
    import sys
    from pathlib import Path

    from imagegen.config import ModelConfig
    from imagegen.errors import ImagegenError
    from imagegen.models.registry import build_denoiser

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import presets  # noqa: F401  (registers the experimental presets)

    for name, what in (("unet-28-cn", "norm='channel'"), ("unet-28-p2", "patch=2"), ("unet-28-nu", "up_conv=False")):
        assert name in PRESETS
        with pytest.raises(ImagegenError, match=f"{what}.*mp-unet"):
            build_denoiser(ModelConfig(preset=name, num_classes=10, arch="mp-unet"))
    build_denoiser(ModelConfig(preset="unet-28", num_classes=10, arch="mp-unet"))  # the default preset still builds
