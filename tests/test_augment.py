"""EDM's non-leaking augmentation (imagegen.augment): the transforms against their math, the
augment labels, the seed rule, the network's conditioning, and runs trained with it."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace

import pytest
import torch

from conftest import tiny_config
from imagegen.augment import (AUGMENT_DIM, AUGMENT_NORMALS, AUGMENT_UNIFORMS, MAX_SHIFT, Augmentation,
                              augment_images, augment_labels, augment_matrices, identity_augmentation,
                              sample_augmentation)
from imagegen.config import ModelConfig, RunConfig, TrainConfig
from imagegen.errors import ImagegenError
from imagegen.features.evaluator import torch_threads
from imagegen.noise import TrainingNoise, training_noise, training_seed

from test_autoencoder import make_data, shapes


def _draws(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.rand(n, AUGMENT_UNIFORMS, generator=g), torch.randn(n, AUGMENT_NORMALS, generator=g)], 1)


def _images(n: int = 3, c: int = 4, h: int = 9, w: int = 9, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _only(n: int, **fields) -> Augmentation:
    """``n`` identity transforms with the given fields set (one value for all images)."""
    aug = identity_augmentation(n)
    return aug._replace(**{k: torch.stack([torch.as_tensor(v)] * n).to(getattr(aug, k).dtype) for k, v in fields.items()})


def _no_flip(n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.bool)


# ---------------------------------------------------------------- the transforms
def test_identity_transforms_return_the_images_bit_for_bit():
    x = _images(64, c=3, h=8, w=8)
    y, labels = augment_images(x, sample_augmentation(_draws(64), 0.0, _no_flip(64), (8, 8)))
    assert torch.equal(y, x) and torch.equal(labels, torch.zeros(64, AUGMENT_DIM))
    # in a batch where some images are transformed, the others are not touched at all
    flip = torch.rand(64, generator=torch.Generator().manual_seed(1)) < 0.15
    aug = sample_augmentation(_draws(64), 0.15, flip, (8, 8))
    y, _ = augment_images(x, aug)
    same = ~aug.flip & ~aug.moves()
    assert 0 < int(same.sum()) < 64
    assert torch.equal(y[same], x[same])
    assert all(not torch.allclose(y[i], x[i]) for i in (~same).nonzero().flatten().tolist())


@pytest.mark.parametrize("side", [8, 9])
def test_quarter_and_half_turns_equal_rot90(side):
    x = _images(2, c=3, h=side, w=side)
    for k in (1, 2, -1):  # counter-clockwise quarter turns, as torch.rot90 on (H, W)
        y, labels = augment_images(x, _only(2, angle=k * math.pi / 2))
        torch.testing.assert_close(y, torch.rot90(x, k, dims=(-2, -1)), rtol=0, atol=1e-5)
        torch.testing.assert_close(labels[0, 4:6], torch.tensor([math.cos(k * math.pi / 2) - 1, math.sin(k * math.pi / 2)]),
                                   rtol=0, atol=1e-6)


def test_an_integer_translation_shifts_the_image_and_mirrors_it_at_the_border():
    x = _images(2, c=2, h=9, w=9)
    y, labels = augment_images(x, _only(2, shift=[2, -1]))  # 2 px right, 1 px up
    # output(row i, col j) = input(i + 1, j - 2) where that exists
    torch.testing.assert_close(y[..., :8, 2:], x[..., 1:, :7], rtol=0, atol=1e-5)
    # the 2 columns that came in from the left are the image's own, mirrored (reflection padding)
    torch.testing.assert_close(y[..., :8, :2], x[..., 1:, :2].flip(-1), rtol=0, atol=1e-5)
    assert labels[0, 1:3].tolist() == pytest.approx([2 / (9 * MAX_SHIFT), -1 / (9 * MAX_SHIFT)])


def test_the_x_flip_is_torch_flip_and_comes_before_the_other_transforms():
    x = _images(2, c=4, h=8, w=8)
    y, labels = augment_images(x, _only(2, flip=True))
    assert torch.equal(y, x.flip(-1)) and labels[:, 0].tolist() == [1.0, 1.0] and not labels[:, 1:].any()
    y, _ = augment_images(x, _only(2, flip=True, angle=math.pi / 2))
    torch.testing.assert_close(y, torch.rot90(x.flip(-1), 1, dims=(-2, -1)), rtol=0, atol=1e-5)


def test_transform_matrices_compose_like_the_math():
    eye = torch.eye(3, dtype=torch.float64)
    up, down = augment_matrices(_only(1, log2_scale=1.0))[0], augment_matrices(_only(1, log2_scale=-1.0))[0]
    assert torch.equal(up, torch.diag(torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64)))
    assert torch.equal(down @ up, eye) and torch.equal(up @ down, eye)  # scaling by 2, then by 1/2
    turn = augment_matrices(_only(1, angle=0.7))[0] @ augment_matrices(_only(1, angle=-0.7))[0]
    torch.testing.assert_close(turn, eye, rtol=0, atol=1e-15)
    # a stretch along the x axis; the same stretch described across the other axis is the same map
    # and has the same labels (why the labels use twice the axis angle)
    a = augment_matrices(_only(1, log2_aniso=1.0))[0]
    assert torch.equal(a, torch.diag(torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64)))
    p, q = _only(1, log2_aniso=0.3, aniso_axis=0.4), _only(1, log2_aniso=-0.3, aniso_axis=0.4 + math.pi / 2)
    torch.testing.assert_close(augment_matrices(p), augment_matrices(q), rtol=0, atol=1e-7)
    torch.testing.assert_close(augment_labels(p, (8, 8)), augment_labels(q, (8, 8)), rtol=0, atol=1e-6)
    # the map keeps area except for the isotropic scale: det = (2^l)^2 (a flip makes it negative)
    aug = sample_augmentation(_draws(32), 1.0, torch.arange(32) % 2 == 0, (16, 16))
    det = torch.linalg.det(augment_matrices(aug))
    sign = torch.where(aug.flip, -1.0, 1.0).double()
    torch.testing.assert_close(det, sign * torch.exp2(2 * aug.log2_scale.double()), rtol=1e-6, atol=0)


def test_labels_are_zero_exactly_for_identity_transforms():
    n = 512
    flip = torch.rand(n, generator=torch.Generator().manual_seed(2)) < 0.3
    aug = sample_augmentation(_draws(n, seed=3), 0.3, flip, (16, 16))
    labels = augment_labels(aug, (16, 16))
    identity = ~aug.flip & ~aug.moves()
    assert 0 < int(identity.sum()) < n
    assert torch.equal((labels == 0).all(dim=1), identity)
    # each column is zero exactly where its own transform is the identity
    assert torch.equal(labels[:, 0] != 0, aug.flip)
    assert torch.equal((labels[:, 1:3] != 0).any(1), (aug.shift != 0).any(1))
    assert torch.equal(labels[:, 3] != 0, aug.log2_scale != 0)
    assert torch.equal((labels[:, 4:6] != 0).any(1), aug.angle != 0)
    assert torch.equal((labels[:, 6:8] != 0).any(1), aug.log2_aniso != 0)


def test_transforms_follow_their_distributions():
    n, p = 20000, 0.15
    aug = sample_augmentation(_draws(n, seed=4), p, _no_flip(n), (16, 16))
    # each transform happens with probability p; a translation of round(2 (2u - 1)) px (16 px / 8)
    # is zero in both directions for a quarter of the draws each, so it moves with p (1 - 1/16)
    for happened, share in (((aug.shift != 0).any(1), p * (1 - 0.25**2)), (aug.log2_scale != 0, p),
                            (aug.angle != 0, p), (aug.log2_aniso != 0, p)):
        assert float(happened.float().mean()) == pytest.approx(share, abs=0.01)
    assert int(aug.shift.abs().max()) == 16 * MAX_SHIFT  # up to 1/8 of the side
    assert float(aug.log2_scale[aug.log2_scale != 0].std()) == pytest.approx(0.2, rel=0.06)
    assert float(aug.log2_aniso[aug.log2_aniso != 0].std()) == pytest.approx(0.2, rel=0.06)
    angles = aug.angle[aug.angle != 0]
    assert float(angles.min()) >= -math.pi and float(angles.max()) < math.pi
    assert float(angles.abs().mean()) == pytest.approx(math.pi / 2, rel=0.06)  # uniform on [-pi, pi)
    everything = sample_augmentation(_draws(64), 1.0, _no_flip(64), (16, 16))
    assert bool((everything.log2_scale != 0).all() and (everything.angle != 0).all())


def test_alpha_is_transformed_like_the_colour_channels():
    x = _images(6, c=4, h=8, w=8)
    aug = sample_augmentation(_draws(6), 1.0, torch.tensor([True, False] * 3), (8, 8))
    y, labels = augment_images(x, aug)
    rgb, _ = augment_images(x[:, :3], aug)
    alpha, alpha_labels = augment_images(x[:, 3:], aug)
    torch.testing.assert_close(y[:, :3], rgb, rtol=0, atol=1e-6)
    torch.testing.assert_close(y[:, 3:], alpha, rtol=0, atol=1e-6)
    assert torch.equal(labels, alpha_labels)
    assert float(y.min()) >= -1 and float(y.max()) <= 1  # bilinear with reflection: no new values


# ---------------------------------------------------------------- the seed rule
def test_training_noise_without_augment_is_the_rule_before_it():
    # the draws of a sample, in order: noise level, noise, label-dropout coin, mirror coin, and only
    # with augment the augmentation's uniforms and normals after them
    a = training_noise(3, 7, [0, 1, 2], (1, 4, 4))
    b = training_noise(3, 7, [0, 1, 2], (1, 4, 4), augment=True)
    assert a.augment is None and b.augment.shape == (3, AUGMENT_UNIFORMS + AUGMENT_NORMALS)
    for k in range(3):
        g = torch.Generator().manual_seed(training_seed(3, 7, k))
        normal, noise, uniform, flip = (torch.randn(1, generator=g), torch.randn(1, 4, 4, generator=g),
                                        torch.rand(1, generator=g), torch.rand(1, generator=g))
        for draws in (a, b):
            assert draws.normal[k] == normal and torch.equal(draws.noise[k], noise)
            assert draws.uniform[k] == uniform and draws.flip[k] == flip
        rest = torch.cat([torch.rand(AUGMENT_UNIFORMS, generator=g), torch.randn(AUGMENT_NORMALS, generator=g)])
        assert torch.equal(b.augment[k], rest)


def test_the_augmentation_of_a_sample_does_not_depend_on_its_batch():
    # a rank or shard that holds positions 5..15 of the global batch augments them as the whole batch does
    x = _images(16, c=3, h=16, w=16)
    whole = training_noise(0, 3, range(16), x.shape[1:], augment=True)
    part = training_noise(0, 3, range(5, 16), x.shape[1:], augment=True)
    y, labels = augment_images(x, sample_augmentation(whole.augment, 0.5, whole.flip < 0.5, (16, 16)))
    yp, labels_p = augment_images(x[5:], sample_augmentation(part.augment, 0.5, part.flip < 0.5, (16, 16)))
    torch.testing.assert_close(yp, y[5:], rtol=0, atol=1e-6)
    assert torch.equal(labels_p, labels[5:])


def _old_training_noise(seed: int, step: int, indices, shape) -> TrainingNoise:
    """imagegen.noise.training_noise as it was before augmentation existed: four draws per sample."""
    draws: list[list[torch.Tensor]] = [[], [], [], []]
    for k in indices:
        g = torch.Generator().manual_seed(training_seed(seed, step, int(k)))
        for out, t in zip(draws, (torch.randn(1, generator=g), torch.randn(tuple(shape), generator=g),
                                  torch.rand(1, generator=g), torch.rand(1, generator=g))):
            out.append(t)
    return TrainingNoise(torch.cat(draws[0]), torch.stack(draws[1]), torch.cat(draws[2]), torch.cat(draws[3]))


def _old_local_batch(self):
    """Trainer.local_batch as it was before augmentation existed (the plain mirror)."""
    from imagegen.training.batches import batch_indices, rank_positions

    tc = self.config.train
    idx = batch_indices(len(self.x), tc.batch_size, self.step, tc.seed)
    positions = rank_positions(len(idx), 0, 1)
    x = self.x[idx[positions]]
    lab = self.labels[idx[positions]] if self.labels is not None else None
    noise = _old_training_noise(tc.seed, self.step, positions.tolist(), x.shape[1:])
    if self.xflip > 0:
        x = torch.where((noise.flip < self.xflip)[:, None, None, None], x.flip(-1), x)
    return x, lab, noise, None


@pytest.fixture(scope="module")
def rgba_data(tmp_path_factory):
    """80 RGBA pictures of 8x8 (mirrored half of the time by default)."""
    return make_data(tmp_path_factory.mktemp("rgba") / "data", shapes(80, size=8))


def _trainer(data, out, channels: int, num_classes: int = 0, **train):
    from imagegen.data import load_dataset
    from imagegen.training import Trainer

    cfg = tiny_config(data, steps=3, batch_shards=1, **train)
    cfg = replace(cfg, model=replace(cfg.model, channels=channels, num_classes=num_classes,
                                     augment_dim=AUGMENT_DIM if cfg.train.augment else 0))
    ds = load_dataset(data)
    return Trainer(cfg, out, ds.images, ds.labels)


def test_runs_without_augmentation_take_the_steps_they_took_before_it(rgba_data, tmp_path, monkeypatch):
    from imagegen.training import Trainer

    weights = []
    for old in (False, True):
        with monkeypatch.context() as m:
            if old:
                m.setattr(Trainer, "local_batch", _old_local_batch)
            tr = _trainer(rgba_data, tmp_path / str(old), channels=4)
            assert tr.xflip == 0.5 and tr.augment == 0
            with torch_threads(1):
                for _ in range(3):
                    tr.train_step()
            weights.append(tr.model.state_dict())
    assert weights[0].keys() == weights[1].keys() and not any("augment" in k for k in weights[0])
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k


def test_a_run_with_augmentation_mirrors_with_the_plain_flips_probability_once(rgba_data, digits_data, tmp_path):
    from imagegen.training.batches import batch_indices
    from imagegen.training.trainer import xflip_probability

    # colour: the flip stays at 0.5 (now the augmentation's, in the labels); gray: it is the augmentation's p
    assert xflip_probability(TrainConfig(augment=0.15), 4) == 0.5
    assert xflip_probability(TrainConfig(augment=0.15), 1) == 0.15
    assert xflip_probability(TrainConfig(augment=0.15, xflip=0.0), 1) == 0.0
    assert xflip_probability(TrainConfig(augment=0.15), 4, "latent") == 0.0
    tr = _trainer(rgba_data, tmp_path / "r", channels=4, augment=0.15)
    x, _, noise, labels = tr.local_batch()
    plain = tr.x[batch_indices(80, 16, 0, 0)]
    flipped = noise.flip < 0.5
    assert torch.equal(labels[:, 0] == 1, flipped.cpu())
    untouched = ~flipped & (labels[:, 1:] == 0).all(1)
    assert torch.equal(x[untouched], plain[untouched])  # mirrored once or not at all, never twice
    only_flipped = flipped & (labels[:, 1:] == 0).all(1)
    assert torch.equal(x[only_flipped], plain[only_flipped].flip(-1))
    assert noise.augment is None  # the loss does not see the augmentation's draws


# ---------------------------------------------------------------- the network's conditioning
@pytest.mark.parametrize("arch", ["unet", "mp-unet"])
def test_the_network_adds_a_linear_map_of_the_augment_labels(arch):
    from imagegen.models.registry import build_denoiser

    mc = ModelConfig(preset="unet-tiny", resolution=8, num_classes=10, arch=arch)
    torch.manual_seed(0)
    plain = build_denoiser(mc)
    torch.manual_seed(0)
    aug = build_denoiser(replace(mc, augment_dim=AUGMENT_DIM))
    extra = set(aug.state_dict()) - set(plain.state_dict())
    assert extra and all("augment" in k for k in extra) and aug.augment_dim == AUGMENT_DIM
    for k, v in plain.state_dict().items():  # the other layers start as without augmentation
        assert torch.equal(v, aug.state_dict()[k]), k
    with torch.no_grad():  # as after training: every weight nonzero
        for p in aug.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    plain.load_state_dict({k: v for k, v in aug.state_dict().items() if k not in extra})
    aug.eval(), plain.eval()
    x, sigma, lab = torch.randn(4, 1, 8, 8), torch.full((4,), 1.5), torch.tensor([0, 3, 9, 10])
    zeros, labels = torch.zeros(4, AUGMENT_DIM), torch.randn(4, AUGMENT_DIM)
    with torch.no_grad():
        out = aug(x, sigma, lab)
        assert torch.equal(out, aug(x, sigma, lab, augment_labels=zeros))  # None means "no transform"
        assert torch.equal(out, plain(x, sigma, lab))  # and adds nothing to the network without it
        moved = aug(x, sigma, lab, augment_labels=labels)
        assert not torch.allclose(out, moved, atol=1e-4)
        # each image's own labels: the others' do not change it (up to the float rounding of batching)
        torch.testing.assert_close(aug(x[1:], sigma[1:], lab[1:], augment_labels=labels[1:]), moved[1:],
                                   rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="augment_dim = 0"):
        plain(x, sigma, lab, augment_labels=zeros)


# ---------------------------------------------------------------- runs
def test_a_tiny_run_trains_with_augment_and_generates(digits_data, tmp_path):
    import numpy as np

    from imagegen.checkpoint import latest_checkpoint, load_checkpoint
    from imagegen.cli import main
    from imagegen.generate import load

    run = tmp_path / "run"
    # 5 steps: zero-initialised output layers pass no gradient to the embeddings until the third
    assert main(["train", str(digits_data), "--out", str(run), "--steps", "5", "--preset", "unet-tiny",
                 "--batch-size", "16", "--augment", "0.15", "--fid-every", "0"]) == 0
    cfg = RunConfig.load(run / "config.toml")
    assert cfg.train.augment == 0.15 and cfg.model.augment_dim == AUGMENT_DIM
    ck = load_checkpoint(latest_checkpoint(run))
    assert float(ck.model["net.augment_emb.weight"].abs().sum()) > 0  # the conditioning was trained
    model = load(run)
    images = model.generate(n=4, seed=0)
    assert images.shape == (4, 8, 8, 1) and images.dtype == np.uint8
    assert main(["generate", str(run), "-n", "4", "--out", str(tmp_path / "gen")]) == 0
    assert len(list((tmp_path / "gen").glob("*.png"))) >= 4


def test_bad_augment_settings_are_one_line_errors(digits_data, tiny_run, tmp_path, capsys):
    from imagegen.cli import main
    from imagegen.features.autoencoder import autoencoder_path
    from imagegen.models.presets import LATENT_FROM_SIDE
    from imagegen.training import train
    from imagegen.training.trainer import check_augment

    cfg = tiny_config(digits_data, steps=1)
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ImagegenError, match=r"augment must be a probability in \[0, 1\]") as e:
            train(digits_data, tmp_path / "r", config=cfg, augment=bad, progress=False)
        assert "\n" not in str(e.value)
    assert not (tmp_path / "r").exists()
    assert main(["train", str(digits_data), "--out", str(tmp_path / "c"), "--steps", "1", "--preset", "unet-tiny",
                 "--augment", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "augment" in err
    # latent space: refused, naming the fix, before any autoencoder is trained
    big = make_data(tmp_path / "big", shapes(72, size=LATENT_FROM_SIDE))
    with pytest.raises(ImagegenError, match="--space pixel") as e:
        train(big, tmp_path / "b", steps=1, augment=0.15, progress=False)
    assert "\n" not in str(e.value) and not autoencoder_path(big).exists()
    latent = RunConfig(model=ModelConfig(space="latent", augment_dim=AUGMENT_DIM), train=TrainConfig(augment=0.15))
    with pytest.raises(ImagegenError, match="latent-space run; add --space pixel"):
        check_augment(latent)
    # a network without the augment-label inputs cannot train with augmentation
    with pytest.raises(ImagegenError, match="set augment_dim = 8"):
        check_augment(replace(cfg, train=replace(cfg.train, augment=0.15)))
    # nor can a run trained without augmentation be resumed with it
    with pytest.raises(ImagegenError, match="train.augment = 0.15 conflicts with the resumed run") as e:
        train(digits_data, tiny_run, resume=True, augment=0.15, steps=40, progress=False)
    assert "\n" not in str(e.value)


def test_runs_and_checkpoints_from_before_augmentation_load_unchanged(tiny_run, tmp_path):
    # a config or checkpoint written before augmentation has no augment keys: they mean "off"
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from imagegen.checkpoint import latest_checkpoint
    from imagegen.generate import load

    cfg = RunConfig.load(tiny_run / "config.toml")
    old = cfg.to_dict()
    del old["model"]["augment_dim"], old["train"]["augment"]
    assert RunConfig.from_dict(old) == cfg and cfg.train.augment == 0 and cfg.model.augment_dim == 0
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    path = latest_checkpoint(copy)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    meta["config"] = RunConfig.from_dict(old).to_toml().replace("augment_dim = 0\n", "").replace("augment = 0.0\n", "")
    assert "augment" not in meta["config"]
    save_file(load_file(str(path)), str(path), metadata=meta)
    a, b = load(tiny_run), load(copy)
    assert a.config == b.config and not any("augment" in k for k in b.checkpoint.ema)
    x, sigma, lab = torch.randn(4, 1, 8, 8), torch.full((4,), 1.5), torch.tensor([0, 1, 2, 10])
    assert torch.equal(a.denoiser(x, sigma, lab), b.denoiser(x, sigma, lab))
    assert (a.generate(n=3, seed=5) == b.generate(n=3, seed=5)).all()
