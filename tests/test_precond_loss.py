"""Preconditionings, the Denoiser contract and the loss, checked against their defining equations."""

import math

import pytest
import torch

from imagegen.config import ModelConfig
from imagegen.losses import DenoisingLoss
from imagegen.models import Denoiser, PreconditionedDenoiser, sample_shape
from imagegen.models.precond import EDM, PRECONDITIONINGS, Preconditioning, RectifiedFlow, make_precond
from imagegen.models.registry import build_denoiser
from imagegen.models.unet import PRESETS, UNet
from imagegen.noise import TrainingNoise, training_noise

SIGMA_DATA = 0.5


class RandomNet(torch.nn.Module):
    """A network whose output is large and unrelated to its input."""

    def forward(self, x, c_noise, labels=None):
        return 10.0 * torch.sin(3.0 * x + c_noise.view(-1, 1, 1, 1)) + 5.0


def _wrap(net, precond, num_classes=0):
    return PreconditionedDenoiser(net, precond, channels=1, resolution=8, num_classes=num_classes)


def test_denoiser_returns_input_as_sigma_goes_to_zero():
    for precond in (EDM(SIGMA_DATA), RectifiedFlow()):
        D = _wrap(RandomNet(), precond)
        x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
        errs = [(D(x, torch.full((4,), s, dtype=torch.float64)) - x).abs().max().item() for s in (1e-2, 1e-4, 1e-6)]
        assert errs[0] > errs[1] > errs[2]
        assert errs[2] < 1e-4


def test_the_contract_is_a_protocol_that_built_denoisers_satisfy():
    D = build_denoiser(ModelConfig(preset="unet-tiny", resolution=8, channels=3, num_classes=10))
    assert isinstance(D, Denoiser) and isinstance(D.precond, Preconditioning)
    assert sample_shape(D) == (3, 8, 8) and D.num_classes == 10
    assert D(torch.zeros(2, 3, 8, 8), 1.0).shape == (2, 3, 8, 8)  # labels=None: the "no class" token
    assert not isinstance(object(), Denoiser)
    # one registry names the formulations, and each object round-trips through it
    for name, cls in PRECONDITIONINGS.items():
        assert cls.name == name and isinstance(make_precond(name, 0.5), cls)


def test_scalings_match_table_1():
    sigma = torch.tensor([0.002, 0.1, 0.5, 1.0, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = EDM(SIGMA_DATA).scalings(sigma)
    for i, s in enumerate(sigma.tolist()):
        assert c_skip[i] == pytest.approx(SIGMA_DATA**2 / (s**2 + SIGMA_DATA**2))
        assert c_out[i] == pytest.approx(s * SIGMA_DATA / math.sqrt(s**2 + SIGMA_DATA**2))
        assert c_in[i] == pytest.approx(1 / math.sqrt(s**2 + SIGMA_DATA**2))
        assert c_noise[i] == pytest.approx(math.log(s) / 4)


@pytest.mark.parametrize("sigma", [0.01, 0.2, 0.5, 2.0, 20.0, 80.0])
def test_effective_target_and_input_have_unit_variance(sigma):
    # y ~ data with std sigma_data, n ~ N(0, 1); the network sees c_in (y + sigma n) and is
    # trained towards (y - c_skip (y + sigma n)) / c_out; lambda * c_out^2 == 1.
    g = torch.Generator().manual_seed(0)
    y = torch.randn(400_000, generator=g, dtype=torch.float64) * SIGMA_DATA
    n = torch.randn(400_000, generator=g, dtype=torch.float64)
    s = torch.tensor(sigma, dtype=torch.float64)
    edm = EDM(SIGMA_DATA)
    c_skip, c_out, c_in, _ = edm.scalings(s)
    x = y + s * n
    target = (y - c_skip * x) / c_out
    assert target.var().item() == pytest.approx(1.0, rel=0.01)
    assert (c_in * x).var().item() == pytest.approx(1.0, rel=0.01)
    assert (edm.loss_weight(s) * c_out**2).item() == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("precond", [EDM(SIGMA_DATA), RectifiedFlow()], ids=["edm", "flow"])
def test_loss_equals_weighted_mse_with_the_same_draws(precond):
    torch.manual_seed(0)
    D = build_denoiser(ModelConfig(preset="unet-tiny", resolution=8, precond=precond.name))
    for p in D.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(6, 1, 8, 8).clamp(-1, 1)
    draws = training_noise(3, 7, range(6), (1, 8, 8))
    loss = DenoisingLoss(D.precond, 0, p_mean=-1.2, p_std=1.2)(D, x, None, draws)
    sigma = (draws.normal * 1.2 - 1.2).exp()
    d = D(x + sigma.view(-1, 1, 1, 1) * draws.noise, sigma)
    if precond.name == "edm":
        weight = (sigma**2 + SIGMA_DATA**2) / (sigma * SIGMA_DATA) ** 2
    else:
        weight = ((1 + sigma) / sigma) ** 2
    torch.testing.assert_close(loss, weight * ((d - x) ** 2).mean(dim=(1, 2, 3)))


class SpyDenoiser(torch.nn.Module):
    """An identity denoiser that records the sigmas and labels the loss feeds it."""

    def __init__(self, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        self.calls: list[tuple[torch.Tensor, torch.Tensor | None]] = []

    def forward(self, x, sigma, labels=None):
        self.calls.append((sigma.clone(), None if labels is None else labels.clone()))
        return x


def _draws(n, seed):
    g = torch.Generator().manual_seed(seed)
    return TrainingNoise(torch.randn(n, generator=g), torch.randn(n, 1, 1, 1, generator=g), torch.rand(n, generator=g),
                         torch.rand(n, generator=g))


@pytest.mark.parametrize("precond", [EDM(SIGMA_DATA), RectifiedFlow()], ids=["edm", "flow"])
def test_training_noise_levels_follow_the_formulations_distribution(precond):
    # EDM: ln(sigma) ~ N(P_mean, P_std^2); flow: logit(t) ~ N(P_mean, P_std^2) with t = sigma / (1 + sigma)
    spy = SpyDenoiser()
    DenoisingLoss(precond, 0, p_mean=-1.2, p_std=1.2)(spy, torch.zeros(50_000, 1, 1, 1), None, _draws(50_000, 1))
    sigma = spy.calls[0][0].double()
    stat = sigma.log() if precond.name == "edm" else torch.logit(sigma / (1 + sigma))
    assert stat.mean().item() == pytest.approx(-1.2, abs=0.02)
    assert stat.std().item() == pytest.approx(1.2, rel=0.02)


def test_two_piece_noise_levels_spread_below_the_mean_only():
    # ln(sigma) = p_mean + p_std z for z >= 0 and p_mean + p_std_low z below: a two-piece normal
    # whose median is p_mean, whose upper half is N(p_mean, p_std^2) and lower half N(p_mean, p_std_low^2)
    n, p_mean, hi, lo = 200_000, 0.4, 1.0, 1.8
    draws = _draws(n, 3)
    spy = SpyDenoiser()
    DenoisingLoss(RectifiedFlow(), 0, p_mean=p_mean, p_std=hi, p_std_low=lo)(spy, torch.zeros(n, 1, 1, 1), None, draws)
    ln_sigma = spy.calls[0][0].double().log()
    z = draws.normal.double()
    torch.testing.assert_close(ln_sigma, torch.where(z < 0, p_mean + lo * z, p_mean + hi * z), rtol=0, atol=1e-5)
    below, above = ln_sigma[ln_sigma < p_mean], ln_sigma[ln_sigma >= p_mean]
    assert len(below) / n == pytest.approx(0.5, abs=0.005)
    # a half-normal of scale s has mean s sqrt(2 / pi)
    assert (p_mean - below).mean().item() == pytest.approx(lo * math.sqrt(2 / math.pi), rel=0.01)
    assert (above - p_mean).mean().item() == pytest.approx(hi * math.sqrt(2 / math.pi), rel=0.01)
    # P(sigma < 0.1) = Phi((ln 0.1 - p_mean) / lo)
    expected = 0.5 * math.erfc(-(math.log(0.1) - p_mean) / lo / math.sqrt(2))
    assert (ln_sigma < math.log(0.1)).double().mean().item() == pytest.approx(expected, abs=0.003)
    # p_std_low equal to p_std, or 0, is the plain normal, bit for bit
    for same in (hi, 0.0):
        spy2 = SpyDenoiser()
        DenoisingLoss(RectifiedFlow(), 0, p_mean=p_mean, p_std=hi, p_std_low=same)(spy2, torch.zeros(n, 1, 1, 1), None,
                                                                                   draws)
        plain = SpyDenoiser()
        DenoisingLoss(RectifiedFlow(), 0, p_mean=p_mean, p_std=hi)(plain, torch.zeros(n, 1, 1, 1), None, draws)
        assert torch.equal(spy2.calls[0][0], plain.calls[0][0])


def test_label_dropout_uses_null_class():
    spy = SpyDenoiser(num_classes=10)
    labels = torch.zeros(20_000, dtype=torch.long)
    DenoisingLoss(RectifiedFlow(), 10, p_mean=0.0, p_std=1.0, label_dropout=0.25)(
        spy, torch.zeros(20_000, 1, 1, 1), labels, _draws(20_000, 2))
    seen = spy.calls[0][1]
    assert (seen == 10).float().mean().item() == pytest.approx(0.25, abs=0.015)
    assert set(seen.unique().tolist()) == {0, 10}


def test_training_noise_of_a_sample_depends_only_on_its_seed_step_and_position():
    a = training_noise(0, 5, range(8), (1, 4, 4))
    b = training_noise(0, 5, [6, 7], (1, 4, 4))
    assert torch.equal(a.noise[6:], b.noise) and torch.equal(a.normal[6:], b.normal)
    assert not torch.equal(training_noise(0, 6, [6], (1, 4, 4)).noise[0], a.noise[6])  # another step
    assert not torch.equal(training_noise(1, 5, [6], (1, 4, 4)).noise[0], a.noise[6])  # another seed
    assert not torch.equal(a.noise[0], a.noise[1])


@pytest.mark.parametrize("preset,res", [("unet-28", 28), ("unet-32", 32), ("unet-tiny", 8)])
def test_unet_presets_shapes_and_conditioning(preset, res):
    torch.manual_seed(0)
    net = UNet(3, PRESETS[preset], num_classes=10)
    for p in net.parameters():  # undo the zero-init so labels can matter
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(2, 3, res, res)
    a = net(x, torch.zeros(2), torch.tensor([1, 1]))
    b = net(x, torch.zeros(2), torch.tensor([2, 2]))
    assert a.shape == x.shape
    assert not torch.allclose(a, b)


# ---------------------------------------------------------------- rectified flow behind D
class VelocityOracle(torch.nn.Module):
    """Returns the true velocity ``n - y`` of the straight path, checking what it is fed."""

    def __init__(self, y, n, sigma):
        super().__init__()
        self.y, self.n, self.sigma = y, n, sigma

    def forward(self, x, c_noise, labels=None):
        t = self.sigma / (1 + self.sigma)
        torch.testing.assert_close(x, (1 - t) * self.y + t * self.n)  # the flow path x_t
        torch.testing.assert_close(c_noise, t.flatten())
        return self.n - self.y


@pytest.mark.parametrize("sigma", [0.01, 0.5, 3.0, 80.0])
def test_flow_denoiser_with_exact_velocity_returns_clean_image(sigma):
    g = torch.Generator().manual_seed(1)
    y = torch.randn(3, 1, 6, 6, generator=g, dtype=torch.float64)
    n = torch.randn(3, 1, 6, 6, generator=g, dtype=torch.float64)
    s = torch.full((3, 1, 1, 1), sigma, dtype=torch.float64)
    D = _wrap(VelocityOracle(y, n, s), RectifiedFlow())
    torch.testing.assert_close(D(y + s * n, s.flatten()), y)


@pytest.mark.parametrize("sigma", [0.01, 0.5, 3.0, 80.0])
def test_flow_loss_weight_turns_denoising_error_into_velocity_error(sigma):
    # |D - y|^2 * w == |F - v|^2 for any network output F: w * c_out^2 == 1
    s = torch.tensor(sigma, dtype=torch.float64)
    flow = RectifiedFlow()
    _, c_out, _, _ = flow.scalings(s)
    assert (flow.loss_weight(s) * c_out**2).item() == pytest.approx(1.0, rel=1e-12)


def test_unknown_preconditioning_and_network_are_clear_errors():
    from imagegen.errors import ImagegenError

    with pytest.raises(ImagegenError, match="known: edm, flow"):
        build_denoiser(ModelConfig(preset="unet-tiny", precond="vp"))
    with pytest.raises(ImagegenError, match="known: unet, mp-unet"):
        build_denoiser(ModelConfig(preset="unet-tiny", arch="dit"))


# ---------------------------------------------------------------- channel norm (channels_last)
@pytest.mark.parametrize("channels_last", [False, True])
def test_channel_norm_normalises_each_pixel_over_its_channels(channels_last):
    from imagegen.models.unet import ChannelNorm

    g = torch.Generator().manual_seed(0)
    x = 3.0 * torch.randn(4, 16, 5, 7, generator=g, dtype=torch.float64) + 2.0
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    norm = ChannelNorm(16).double()
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 16))
        norm.bias.copy_(torch.linspace(-1.0, 1.0, 16))
    # the definition: per (image, pixel) mean and biased variance over the 16 channels
    mean = x.mean(dim=1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=1, keepdim=True)
    want = (x - mean) / torch.sqrt(var + norm.eps) * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)
    y = norm(x)
    torch.testing.assert_close(y, want)
    assert y.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_channel_norm_unet_runs_channels_last_and_matches_its_nchw_self():
    from imagegen.models.unet import UNetPreset

    preset = UNetPreset(channels=(8, 16), blocks=1, attn_levels=(1,), emb_dim=32, resolutions=(), norm="channel")
    torch.manual_seed(0)
    net = UNet(1, preset, num_classes=10)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in net.modules())
    seen = []
    net.up[0].res[0].conv2.register_forward_hook(lambda m, i, o: seen.append(o.is_contiguous(memory_format=torch.channels_last)))
    x, c_noise, labels = torch.randn(3, 1, 12, 12), torch.rand(3), torch.tensor([0, 4, 10])
    out = net(x, c_noise, labels)
    assert seen == [True]  # the network runs channels_last ...
    assert out.shape == x.shape and out.is_contiguous()  # ... and returns plain NCHW
    # the same weights computing in NCHW give the same function (memory layout only)
    net.memory_format = torch.contiguous_format
    ref = net(x, c_noise, labels)
    assert seen == [True, False]
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_unknown_normalisation_is_a_clear_error():
    from imagegen.errors import ImagegenError
    from imagegen.models.unet import UNetPreset

    with pytest.raises(ImagegenError, match="known: group, channel"):
        UNet(1, UNetPreset(channels=(8, 16), blocks=1, attn_levels=(), emb_dim=32, resolutions=(), norm="batch"))
