"""A small convolutional autoencoder trained on the data set itself, for latent diffusion.

Latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion
Models") runs the diffusion model on the latents ``z = E(x)`` of an autoencoder instead of on
pixels; ``D(E(x)) ~ x``. Theirs is pretrained on large photo collections; none ships offline
here, so this one is trained per data set, on the CPU, in minutes:

- **Network.** Encoder: pixel-unshuffle by 2 (a 2x2 patch becomes one position with 4C values,
  so no layer runs at full resolution), a 3x3 conv, then per level residual blocks (SiLU,
  conv3x3, SiLU, conv3x3) and a stride-2 conv down, and a 3x3 conv to the mean and log-variance
  of ``Cz`` latent channels at ``H/F x W/F``. The decoder mirrors it (nearest-neighbour 2x up +
  conv3x3) and pixel-shuffles back to full resolution. No normalisation layers; the last conv
  of each residual block starts at zero. Factor 4: widths 32 (H/2) and 64 (H/4), one and two
  residual blocks, 0.39 M parameters; per 64x64 image 67 M multiply-adds to encode, 81 M to decode.
- **Shortcut.** A fixed, parameter-free path around both halves, after the residual
  autoencoding of Chen et al. 2024 ("Deep Compression Autoencoder"): the latent mean adds the
  F x F average of the image (mapped to the latent channels), the decoder adds the latent
  repeated over F x F pixels (mapped back), and the last convs of both halves start at zero,
  so training starts from the 17.8 dB of that average-and-repeat pair on the emoji set instead
  of from noise (8.0 dB). After 500 steps of 32 images: 23.7 dB with it, 23.3 dB without (one
  seed each; the run without also started with a larger posterior noise).
- **Alpha.** RGBA is straight alpha. The encoder sees the colour composited over black
  (``rgb * alpha``), so the colour under fully transparent pixels (arbitrary in imported data)
  never reaches the latent; the colour loss is weighted by the target alpha.
- **Loss.** Per element: ``|x - x_hat|`` (colour weighted by alpha) + ``GRAD_WEIGHT`` x the L1
  difference of horizontal and vertical pixel differences (edges) + ``KL_WEIGHT`` x the KL
  divergence of the latent posterior from N(0, 1), the light "KL-reg" of Rombach et al. that
  keeps the latent smooth for diffusion. No adversarial term (see the README for what was
  measured).
- **Latent scale.** After training, the means of the latents of (up to 4,096) data-set images
  give ``latent_shift`` (their mean) and ``latent_scale`` (1 / their std): ``encode`` returns
  ``(mu - shift) * scale``, zero mean and unit variance over the data set.
- **PSNR** (:func:`psnr`): on uint8 images in [0, 255] terms, pooled over all values of the
  held-out images; RGBA is compared premultiplied (colour x alpha/255, and alpha).

Files (next to the data set, see :func:`autoencoder_path`): ``DATA/features/autoencoder-f{F}c{Cz}
.safetensors`` (weights and the JSON config in the safetensors metadata) and a ``.json`` beside it
(the config and the training report). Never pickled.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save as safetensors_bytes
from torch import nn

from ..atomic import atomic_path
from ..checkpoint import read_tagged_weights, weights_sha256
from ..errors import ImagegenError

__all__ = [
    "Autoencoder", "DEFAULT_MINUTES", "MIN_IMAGES", "autoencoder_path", "default_arch",
    "load_autoencoder", "psnr",
]

FORMAT = "imagegen-autoencoder-v1"
DEFAULT_MINUTES = 5.0
MIN_IMAGES = 64
FACTORS = (2, 4, 8)
GRAD_WEIGHT = 0.5
KL_WEIGHT = 1e-5
BATCH_SIZE = 8
LR = 2e-3
WARMUP_STEPS = 50
SCALE_IMAGES = 4096  # images encoded to measure the latent shift and scale
EVAL_EVERY_S = 30.0  # held-out PSNR in the progress bar, on up to EVAL_IMAGES images
EVAL_IMAGES = 256


def default_arch(factor: int = 4, width: int = 32) -> dict[str, Any]:
    """The architecture for a spatial factor: a 2x2 patch, then one level per further 2x.

    Example:
        >>> default_arch(4)
        {'patch': 2, 'widths': [32, 64], 'blocks': [1, 2], 'shortcut': True}
    """
    if factor not in FACTORS:
        raise ImagegenError(f"autoencoder factor must be one of {FACTORS}, got {factor}")
    levels = int(math.log2(factor))  # patch 2 counts as the first halving
    widths = [min(width * 2 ** i, 2 * width) for i in range(levels)]
    blocks = [1] * (levels - 1) + [2]
    return {"patch": 2, "widths": widths, "blocks": blocks, "shortcut": True}


class ResBlock(nn.Module):
    """x + conv3x3(SiLU(conv3x3(SiLU(x)))), the second conv starting at zero."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class Up(nn.Module):
    """Nearest-neighbour 2x upsampling, then a 3x3 conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _encoder(channels: int, latent_channels: int, arch: dict[str, Any]) -> nn.Sequential:
    p, widths, blocks = int(arch["patch"]), list(arch["widths"]), list(arch["blocks"])
    layers: list[nn.Module] = [nn.PixelUnshuffle(p), nn.Conv2d(channels * p * p, widths[0], 3, padding=1)]
    for i, w in enumerate(widths):
        layers += [ResBlock(w) for _ in range(blocks[i])]
        if i + 1 < len(widths):
            layers.append(nn.Conv2d(w, widths[i + 1], 3, stride=2, padding=1))
    layers += [nn.SiLU(), nn.Conv2d(widths[-1], 2 * latent_channels, 3, padding=1)]
    return nn.Sequential(*layers)


def _decoder(channels: int, latent_channels: int, arch: dict[str, Any]) -> nn.Sequential:
    p, widths, blocks = int(arch["patch"]), list(arch["widths"]), list(arch["blocks"])
    layers: list[nn.Module] = [nn.Conv2d(latent_channels, widths[-1], 3, padding=1)]
    for i in reversed(range(len(widths))):
        layers += [ResBlock(widths[i]) for _ in range(blocks[i])]
        if i > 0:
            layers.append(Up(widths[i], widths[i - 1]))
    layers += [nn.SiLU(), nn.Conv2d(widths[0], channels * p * p, 3, padding=1), nn.PixelShuffle(p)]
    return nn.Sequential(*layers)


def _shortcut_matrices(channels: int, latent_channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed channel maps of the non-parametric shortcut: image -> latent (Cz, C), latent -> image (C, Cz).

    With Cz >= C latent channel k carries image channel k*C//Cz; with Cz < C, latent channel k
    is the mean of the image channels c with c*Cz//C == k. The way back averages the latent
    channels linked to each image channel.
    """
    link = torch.zeros(latent_channels, channels)
    if latent_channels >= channels:
        link[torch.arange(latent_channels), torch.arange(latent_channels) * channels // latent_channels] = 1.0
    else:
        link[torch.arange(channels) * latent_channels // channels, torch.arange(channels)] = 1.0
    down = link / link.sum(dim=1, keepdim=True)
    up = link.t() / link.t().sum(dim=1, keepdim=True)
    return down, up


def _premultiply(x: torch.Tensor) -> torch.Tensor:
    """Straight RGBA in [-1, 1] -> colour composited over black (alpha kept); others unchanged."""
    if x.shape[1] != 4:
        return x
    a = (x[:, 3:] + 1) * 0.5
    return torch.cat([(x[:, :3] + 1) * a - 1, x[:, 3:]], dim=1)


class Autoencoder(nn.Module):
    """The trained autoencoder: ``encode(x) -> z`` (unit variance), ``decode(z) -> x``.

    ``x`` is float (B, C, H, W) in [-1, 1] (C = 1, 3 or straight RGBA 4); ``z`` is
    (B, Cz, H/F, W/F). Both work on any device the module is moved to (``.to(device)``).
    Loaded autoencoders are frozen (``requires_grad`` off) and in eval mode; gradients still
    flow to the inputs.

    Example:
        >>> ae = load_autoencoder("data/emoji64")  # doctest: +SKIP
        >>> z = ae.encode(x)  # x: (8, 4, 64, 64) in [-1, 1]  # doctest: +SKIP
        >>> z.shape, ae.latent_shape  # doctest: +SKIP
        (torch.Size([8, 4, 16, 16]), (4, 16, 16))
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        c, cz = int(config["channels"]), int(config["latent_channels"])
        self.encoder = _encoder(c, cz, config["arch"])
        self.decoder = _decoder(c, cz, config["arch"])
        self.shortcut = bool(config["arch"].get("shortcut", False))
        down, up = _shortcut_matrices(c, cz)
        self.register_buffer("_down", down, persistent=False)
        self.register_buffer("_up", up, persistent=False)
        with torch.no_grad():  # start with a small posterior noise (std e^-4) and, with the
            last = self.encoder[-1]  # shortcut, as exactly the mean-pool / repeat pair
            last.weight[cz:].zero_()
            last.bias[cz:].fill_(-8.0)
            if self.shortcut:
                for conv in (last, self.decoder[-2]):
                    conv.weight.zero_()
                    conv.bias[:cz if conv is last else None].zero_()
        self._sha256: str | None = None

    # -- shapes ------------------------------------------------------------------------------
    @property
    def factor(self) -> int:
        return int(self.config["factor"])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images it was trained on."""
        h, w = self.config["resolution"]
        return (int(self.config["channels"]), int(h), int(w))

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(Cz, H/F, W/F) of one latent."""
        _, h, w = self.image_shape
        return (int(self.config["latent_channels"]), h // self.factor, w // self.factor)

    @property
    def dataset_checksum(self) -> str | None:
        return self.config.get("dataset_checksum")

    # -- the maps ----------------------------------------------------------------------------
    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unscaled posterior mean and log-variance of the latents of ``x``."""
        c = self.image_shape[0]
        if x.ndim != 4 or x.shape[1] != c or x.shape[2] % self.factor or x.shape[3] % self.factor:
            raise ImagegenError(f"the autoencoder expects (B, {c}, H, W) with H and W multiples of "
                                f"{self.factor}, got {tuple(x.shape)}")
        x = _premultiply(x)
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        if self.shortcut:  # the F x F mean of the image, mapped to the latent channels
            mu = mu + torch.einsum("kc,bchw->bkhw", self._down.to(x.dtype), F.avg_pool2d(x, self.factor))
        return mu, logvar.clamp(-30.0, 20.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (B, C, H, W) -> latents (B, Cz, H/F, W/F) with unit variance.

        The posterior mean, shifted and scaled by the data set's ``latent_shift`` and
        ``latent_scale``; deterministic.
        """
        mu, _ = self.moments(x)
        return (mu - float(self.config.get("latent_shift", 0.0))) * float(self.config.get("latent_scale", 1.0))

    def decode_raw(self, mu: torch.Tensor) -> torch.Tensor:
        """Unscaled latents -> images, not clamped (the training output)."""
        out = self.decoder(mu)
        if self.shortcut:  # the latent mapped back to image channels, repeated over F x F pixels
            back = torch.einsum("ck,bkhw->bchw", self._up.to(mu.dtype), mu)
            out = out + F.interpolate(back, scale_factor=float(self.factor), mode="nearest")
        return out

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents from :meth:`encode` (B, Cz, h, w) -> images in [-1, 1] (B, C, h*F, w*F)."""
        if z.ndim != 4 or z.shape[1] != self.latent_shape[0]:
            raise ImagegenError(f"the autoencoder decodes (B, {self.latent_shape[0]}, h, w), got {tuple(z.shape)}")
        mu = z / float(self.config.get("latent_scale", 1.0)) + float(self.config.get("latent_shift", 0.0))
        return self.decode_raw(mu).clamp(-1.0, 1.0)

    def encode_images(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """uint8 (N, H, W, C) -> float32 latents (N, Cz, h, w) (:meth:`encode`, batched, no grad)."""
        dev = next(self.parameters()).device
        out = []
        with torch.inference_mode():
            for s in range(0, len(images), batch_size):
                out.append(self.encode(to_tensor(images[s:s + batch_size]).to(dev)).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, *self.latent_shape), np.float32)

    def decode_images(self, z: np.ndarray | torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """Latents (N, Cz, h, w) -> uint8 images (N, H, W, C) (:meth:`decode`, batched, no grad)."""
        dev = next(self.parameters()).device
        out = []
        with torch.inference_mode():
            for s in range(0, len(z), batch_size):
                part = z[s:s + batch_size]
                zb = (part.float() if isinstance(part, torch.Tensor)
                      else torch.from_numpy(np.array(part, dtype=np.float32))).to(dev)
                out.append(to_uint8(self.decode(zb)))
        return np.concatenate(out) if out else np.zeros((0, *self.image_shape[1:], self.image_shape[0]), np.uint8)

    # -- identity and storage ----------------------------------------------------------------
    @property
    def sha256(self) -> str:
        """sha256 of the architecture, latent shift/scale and weights: the key of latent caches.

        Independent of the file (metadata such as the training report is not part of it), so
        the same autoencoder has the same key in memory and after a save/load round trip.
        """
        if self._sha256 is None:
            ident = {k: self.config.get(k) for k in
                     ("channels", "resolution", "factor", "latent_channels", "arch", "latent_shift", "latent_scale")}
            self._sha256 = weights_sha256(json.dumps(ident, sort_keys=True).encode(), self.state_dict())
        return self._sha256

    def save(self, path: str | Path) -> Path:
        """Atomically write weights + config (safetensors metadata); returns the path."""
        path = Path(path)
        self._sha256 = None
        config = {**self.config, "format": FORMAT, "sha256": self.sha256}
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        blob = safetensors_bytes(tensors, metadata={"imagegen": json.dumps(config, sort_keys=True)})
        with atomic_path(path, suffix=".safetensors") as tmp:  # bytes: save_file would make it 0600
            tmp.write_bytes(blob)
        self.config = config
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Autoencoder":
        """Read a file written by :meth:`save`; the stored sha256 is verified."""
        path = Path(path)
        tensors, raw = read_tagged_weights(path, "autoencoder", "; retrain it")
        config = json.loads(raw) if raw else {}
        if config.get("format") != FORMAT:
            raise ImagegenError(f"{path} is not an imagegen autoencoder (no {FORMAT} metadata)")
        ae = cls(config)
        try:
            ae.load_state_dict(tensors)
        except RuntimeError as exc:
            raise ImagegenError(f"autoencoder weights {path} do not match their config: {exc}") from exc
        if ae.sha256 != config.get("sha256"):
            raise ImagegenError(f"autoencoder {path} does not match its stored sha256 (modified or corrupted); retrain it")
        return ae.eval().requires_grad_(False)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float()  # a copy: memmaps are read-only
    return x.div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C), rounded."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of uint8 images (N, H, W, C) in [0, 255] terms: 10 log10(255^2 / MSE).

    The MSE is pooled over every value of every image. RGBA (C = 4, straight alpha) is
    compared premultiplied: colour x alpha / 255, and alpha, so colour under transparent pixels
    does not count and colour under partly transparent pixels counts in proportion.

    Example:
        >>> a = np.zeros((1, 4, 4, 3), np.uint8)
        >>> round(psnr(a, a + 2), 4)  # a constant error of 2: 20 log10(255 / 2)
        42.1102
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"psnr of different shapes {a.shape} and {b.shape}")
    if a.shape[-1] == 4:
        a = np.concatenate([a[..., :3] * a[..., 3:] / 255.0, a[..., 3:]], axis=-1)
        b = np.concatenate([b[..., :3] * b[..., 3:] / 255.0, b[..., 3:]], axis=-1)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Per-sample L1 (colour weighted by the target alpha) + GRAD_WEIGHT x L1 of pixel differences."""
    err = x_hat - x
    if x.shape[1] == 4:
        err = torch.cat([err[:, :3] * (x[:, 3:] + 1) * 0.5, err[:, 3:]], dim=1)
    l1 = err.abs().mean(dim=(1, 2, 3))
    # edges: differences of the (weighted) error along x and y are the differences of the gradients
    gx = (err[..., :, 1:] - err[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    gy = (err[..., 1:, :] - err[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    return l1 + GRAD_WEIGHT * 0.5 * (gx + gy)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample mean over latent elements of KL(N(mu, exp(logvar)) || N(0, 1))."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean(dim=(1, 2, 3))


# ------------------------------------------------------------------------------ files next to a data set


def autoencoder_path(data: str | Path, factor: int = 4, latent_channels: int = 4) -> Path:
    """``DATA/features/autoencoder-f{factor}c{latent_channels}.safetensors``."""
    return Path(data) / "features" / f"autoencoder-f{factor}c{latent_channels}.safetensors"


def _load_dataset(data: str | Path) -> Any:
    from ..data import load_dataset  # lazy: the data package is not needed to load weights

    return load_dataset(data)


def load_autoencoder(data_or_path: str | Path, *, factor: int | None = None,
                     latent_channels: int | None = None) -> Autoencoder:
    """Load the autoencoder of a data set, or from an explicit ``.safetensors`` path.

    For a data set folder: ``DATA/features/autoencoder-f*c*.safetensors``, narrowed by
    ``factor`` and ``latent_channels`` when given; with several left, the default f4c4 if it
    is one of them, else an error listing them. The autoencoder must have been trained on this
    version of the data set (the checksum in its config equals the manifest's); a missing or
    mismatched one is an :class:`ImagegenError` naming the command that trains it.

    Example:
        >>> ae = load_autoencoder("data/emoji64")  # doctest: +SKIP
        >>> ae = load_autoencoder("data/emoji64/features/autoencoder-f4c8.safetensors")  # doctest: +SKIP
    """
    data = Path(data_or_path)
    if data.suffix == ".safetensors" or data.is_file():
        return Autoencoder.load(data)
    ds = _load_dataset(data)
    found = sorted((data / "features").glob("autoencoder-f*c*.safetensors"))
    if factor is not None:
        found = [p for p in found if p.name.startswith(f"autoencoder-f{factor}c")]
    if latent_channels is not None:
        found = [p for p in found if p.name.endswith(f"c{latent_channels}.safetensors")]
    command = f"imagegen features train-autoencoder {data}" + (f" --factor {factor}" if factor else "") + (
        f" --latent-channels {latent_channels}" if latent_channels else "")
    if not found:
        raise ImagegenError(f"no autoencoder for {data}; run `{command}` first")
    if len(found) > 1:
        default = autoencoder_path(data)
        if default not in found:
            names = ", ".join(p.name for p in found)
            raise ImagegenError(f"{data} has several autoencoders ({names}); pass factor and latent_channels "
                                "(--factor/--latent-channels) or the .safetensors path")
        found = [default]
    ae = Autoencoder.load(found[0])
    check_trained_for(ae, data, ds.checksum, f"the autoencoder {found[0]}", f"retrain it with `{command}`")
    return ae


def check_trained_for(ae: Autoencoder, data: str | Path, checksum: str, name: str, fix: str) -> None:
    """Raise an :class:`ImagegenError` unless ``ae`` was trained on the data set ``data`` whose
    checksum is ``checksum``; the message names ``name`` (the autoencoder) and ``fix``."""
    if ae.dataset_checksum != checksum:
        trained_for = ae.config.get("dataset") or "another data set"
        raise ImagegenError(f"{name} was trained for {trained_for} (checksum {str(ae.dataset_checksum)[:12]}), "
                            f"not for {data} (checksum {checksum[:12]}); {fix}")


def __getattr__(name: str) -> Any:
    """:func:`train_autoencoder` lives in :mod:`.autoencoder_train` (the training loop)."""
    if name in ("train_autoencoder", "fit", "held_out_split"):
        from . import autoencoder_train

        return getattr(autoencoder_train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
