"""A magnitude-preserving UNet, after EDM2 (config G).

Karras, Aittala, Lehtinen, Hellsten, Aila, Laine, "Analyzing and Improving the Training
Dynamics of Diffusion Models" (CVPR 2024). Every layer is built so that unit-variance inputs
give unit-variance outputs at init and during training, so activations and weights cannot
drift in magnitude. Pieces (each in one line):

* ``normalize(x, dim)``: rescale each vector along ``dim`` to RMS 1 (norm ``sqrt(n)``).
* ``mp_silu``: ``silu(x) / 0.596``, the SiLU rescaled to unit second moment for N(0, 1) inputs.
* ``mp_sum(a, b, t)``: ``lerp(a, b, t) / sqrt((1-t)^2 + t^2)``, a blend of unit-magnitude tensors.
* ``mp_cat(a, b, t)``: concatenation whose parts are weighted ``1-t : t`` and whose total
  magnitude stays 1 whatever the channel counts.
* ``MPConv``: conv / linear without bias and with forced weight normalisation: in training
  the stored weight is re-normalised in place to RMS 1 per output unit before each use, and
  the weight applied is ``gain * normalize(w) / sqrt(fan_in)`` (unit norm per output unit).
* ``MPFourier``: ``sqrt(2) cos(2 pi (f c + p))`` with fixed random ``f ~ N(0, 1)``, ``p ~ U(0, 1)``.
* Class embedding: ``MPConv`` on ``sqrt(num_classes + 1) * one_hot(label)`` (unit magnitude).
* Blocks: pixel norm on encoder inputs, ``x * (gain * emb + 1)`` modulation (gain starts at
  0), residual joined with ``mp_sum(t=0.3)``, cosine self-attention (pixel-normalised q, k, v).
* No biases, no GroupNorm; the output conv has a learned gain initialised to 0.
* Augment labels (a run trained with augmentation, :mod:`imagegen.augment`): ``MPConv`` on
  the labels with a learned gain initialised to 0, added to the embedding (zeros add nothing).

The level/skip topology is that of :class:`imagegen.models.unet.UNet`, so FLOPs compare.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..labels import null_labels
from .unet import UNetPreset


def normalize(x: torch.Tensor, dim: int | tuple[int, ...] | None = None, eps: float = 1e-4) -> torch.Tensor:
    """Scale each slice along ``dim`` (default: all but dim 0) to RMS 1."""
    if dim is None:
        dim = tuple(range(1, x.ndim))
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=torch.float32)
    norm = torch.add(eps, norm, alpha=math.sqrt(norm.numel() / x.numel()))
    return x / norm.to(x.dtype)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU with unit second moment for standard-normal input."""
    return F.silu(x) / 0.596


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float = 0.5) -> torch.Tensor:
    """``(1-t) a + t b``, rescaled so independent unit-variance inputs give unit variance."""
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t**2)


def mp_cat(a: torch.Tensor, b: torch.Tensor, dim: int = 1, t: float = 0.5) -> torch.Tensor:
    """Concatenate ``a`` and ``b`` along ``dim`` with contributions ``1-t : t`` and RMS 1."""
    na, nb = a.shape[dim], b.shape[dim]
    c = math.sqrt((na + nb) / ((1 - t) ** 2 + t**2))
    return torch.cat([a * (c / math.sqrt(na) * (1 - t)), b * (c / math.sqrt(nb) * t)], dim=dim)


class MPConv(nn.Module):
    """Bias-free conv (``kernel > 0``) or linear (``kernel == 0``) with forced weight normalisation."""

    def __init__(self, cin: int, cout: int, kernel: int = 0, stride: int = 1):
        super().__init__()
        self.stride = stride
        shape = (cout, cin, kernel, kernel) if kernel else (cout, cin)
        self.weight = nn.Parameter(torch.randn(shape))

    def forward(self, x: torch.Tensor, gain: float | torch.Tensor = 1.0) -> torch.Tensor:
        w = self.weight.float()
        if self.training:
            with torch.no_grad():
                self.weight.copy_(normalize(w))
        w = normalize(w) * (gain / math.sqrt(w[0].numel()))
        w = w.to(x.dtype)
        if w.ndim == 2:
            return x @ w.t()
        return F.conv2d(x, w, stride=self.stride, padding=w.shape[-1] // 2)


class MPFourier(nn.Module):
    """Fourier features of ``c_noise`` with fixed random frequencies and phases, RMS 1."""

    def __init__(self, n: int):
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.randn(n))
        self.register_buffer("phases", 2 * math.pi * torch.rand(n))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        y = c.float()[:, None] * self.freqs[None] + self.phases[None]
        return (y.cos() * math.sqrt(2)).to(c.dtype)


class MPBlock(nn.Module):
    """EDM2 residual block ("enc": 1x1 skip conv then pixel norm first; "dec": skip conv last)."""

    def __init__(self, cin: int, cout: int, emb_dim: int, flavor: str, attn: bool,
                 res_balance: float = 0.3, attn_balance: float = 0.3, ch_per_head: int = 64, clip: float = 256.0):
        super().__init__()
        self.flavor, self.res_balance, self.attn_balance, self.clip = flavor, res_balance, attn_balance, clip
        self.conv_skip = MPConv(cin, cout, 1) if cin != cout else None
        self.conv0 = MPConv(cout if flavor == "enc" else cin, cout, 3)
        self.emb_linear = MPConv(emb_dim, cout)
        self.emb_gain = nn.Parameter(torch.zeros([]))
        self.conv1 = MPConv(cout, cout, 3)
        self.heads = max(1, cout // ch_per_head) if attn else 0
        if attn:
            self.qkv = MPConv(cout, 3 * cout, 1)
            self.proj = MPConv(cout, cout, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.flavor == "enc":
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = normalize(x, dim=1)  # pixel norm
        y = self.conv0(mp_silu(x))
        c = self.emb_linear(emb, gain=self.emb_gain) + 1
        y = self.conv1(mp_silu(y * c[:, :, None, None].to(y.dtype)))
        if self.flavor == "dec" and self.conv_skip is not None:
            x = self.conv_skip(x)
        x = mp_sum(x, y, self.res_balance)
        if self.heads:
            b, ch, h, w = x.shape
            qkv = normalize(self.qkv(x).reshape(b, self.heads, -1, 3, h * w), dim=2)  # per-head pixel norm
            q, k, v = (t.transpose(-1, -2) for t in qkv.unbind(3))  # (b, heads, hw, c)
            a = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(c): cosine attention
            x = mp_sum(x, self.proj(a.transpose(-1, -2).reshape(b, ch, h, w)), self.attn_balance)
        return x.clamp(-self.clip, self.clip)


class MPUNet(nn.Module):
    """Magnitude-preserving ``F(x, c_noise, labels)``; a drop-in for :class:`UNet`.

    Example:
        >>> from imagegen.models.unet import PRESETS
        >>> net = MPUNet(in_ch=1, preset=PRESETS["unet-28"], num_classes=10)
        >>> net(torch.randn(4, 1, 28, 28), torch.zeros(4), torch.tensor([0, 1, 2, 10])).shape
        torch.Size([4, 1, 28, 28])
    """

    def __init__(self, in_ch: int, preset: UNetPreset, num_classes: int = 0,
                 label_balance: float = 0.5, concat_balance: float = 0.5, augment_dim: int = 0):
        super().__init__()
        ch, nb, ed = preset.channels, preset.blocks, preset.emb_dim
        self.num_classes, self.label_balance, self.concat_balance = num_classes, label_balance, concat_balance
        self.fourier = MPFourier(ed)
        self.emb_noise = MPConv(ed, ed)
        # index num_classes is the "no class" token for classifier-free guidance
        self.emb_label = MPConv(num_classes + 1, ed) if num_classes else None
        self.conv_in = MPConv(in_ch + 1, ch[0], 3)  # +1: constant-ones channel stands in for a bias

        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, cur = [ch[0]], ch[0]
        for i, c in enumerate(ch):
            level = nn.ModuleList()
            for _ in range(nb):
                level.append(MPBlock(cur, c, ed, "enc", i in preset.attn_levels))
                cur = c
                skips.append(c)
            self.down.append(level)
            if i < len(ch) - 1:
                self.downsample.append(MPConv(cur, cur, 3, stride=2))
                skips.append(cur)
        self.mid = nn.ModuleList(MPBlock(cur, cur, ed, "dec", True) for _ in range(2))

        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, c in reversed(list(enumerate(ch))):
            level = nn.ModuleList()
            for _ in range(nb + 1):
                level.append(MPBlock(cur + skips.pop(), c, ed, "dec", i in preset.attn_levels))
                cur = c
            self.up.append(level)
            if i > 0:
                self.upsample.append(MPConv(cur, cur, 3))
        self.conv_out = MPConv(cur, in_ch, 3)
        self.out_gain = nn.Parameter(torch.zeros([]))
        # made last, so the other layers start as in a network without it
        self.emb_augment = MPConv(augment_dim, ed) if augment_dim else None
        self.augment_gain = nn.Parameter(torch.zeros([])) if augment_dim else None

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None = None,
                augment_labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.emb_noise(self.fourier(c_noise))
        if self.emb_label is not None:
            if labels is None:
                labels = null_labels(x.shape[0], self.num_classes, x.device)
            n = self.num_classes + 1
            onehot = F.one_hot(labels, n).to(emb.dtype) * math.sqrt(n)
            emb = mp_sum(emb, self.emb_label(onehot), self.label_balance)
        if augment_labels is not None:  # None: no transform (zeros), which adds nothing
            if self.emb_augment is None:
                raise ValueError("augment labels given to a network built without them (augment_dim = 0)")
            emb = emb + self.emb_augment(augment_labels.to(emb.dtype), gain=self.augment_gain)
        emb = mp_silu(emb)

        h = self.conv_in(torch.cat([x, torch.ones_like(x[:, :1])], dim=1))
        hs = [h]
        for i, level in enumerate(self.down):
            for block in level:
                h = block(h, emb)
                hs.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                hs.append(h)
        for block in self.mid:
            h = block(h, emb)
        for i, level in enumerate(self.up):
            for block in level:
                h = block(mp_cat(h, hs.pop(), t=self.concat_balance), emb)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, size=hs[-1].shape[-2:], mode="nearest"))
        return self.conv_out(h, gain=self.out_gain)
