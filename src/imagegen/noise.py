"""The seed rule: every random draw belongs to one image and is made on the CPU from its own seed.

- Generation: image ``i`` of a request with seed ``s`` draws all its noise (the starting
  noise, then any noise a stochastic sampler adds) from one generator seeded with ``s + i``.
  An image therefore never changes with ``n``, the batch size, the batch it lands in, the
  device or the number of processes (EDM's ``StackedRandomGenerator`` follows the same idea).
- Training: sample ``k`` of the global batch of step ``t`` draws its noise level, noise,
  label-dropout coin, mirror coin and, when training with augmentation, its augmentation draws
  from a generator seeded by ``(seed, t, k)``, so a step's randomness
  does not depend on how the batch is split over threads, processes or devices.

Draws are made on the CPU (the same numbers on every machine) and moved to the device.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from .augment import AUGMENT_DRAWS, AUGMENT_NORMALS, AUGMENT_UNIFORMS

_MASK = 2**63 - 1


def training_seed(seed: int, step: int, index: int) -> int:
    """The generator seed of sample ``index`` of the global batch of ``step``."""
    return ((seed * 1_000_003 + step) * 1_000_033 + index) & _MASK


class TrainingNoise(NamedTuple):
    """Per-sample randomness of one training batch (CPU tensors).

    ``normal``: (n,) standard normal draws for the noise levels; ``noise``: (n, C, H, W)
    standard normal noise; ``uniform``: (n,) uniform draws for label dropout; ``flip``: (n,)
    uniform draws for the horizontal-flip augmentation (drawn after the others, so they do
    not depend on whether flips are used); ``augment``: (n, AUGMENT_DRAWS) draws of the
    geometric augmentation (:mod:`imagegen.augment`: ``AUGMENT_UNIFORMS`` uniforms, then
    ``AUGMENT_NORMALS`` standard normals), drawn after the flip coin and only when asked
    for, else None, so runs without augmentation draw exactly what they drew before it existed.
    """

    normal: torch.Tensor
    noise: torch.Tensor
    uniform: torch.Tensor
    flip: torch.Tensor
    augment: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> "TrainingNoise":
        return TrainingNoise(*(None if t is None else t.to(device, non_blocking=True) for t in self))

    def take(self, rows: torch.Tensor) -> "TrainingNoise":
        """The draws of the samples at ``rows`` of this batch."""
        return TrainingNoise(*(None if t is None else t[rows] for t in self))


def training_noise(seed: int, step: int, indices: Sequence[int], shape: Sequence[int],
                   augment: bool = False) -> TrainingNoise:
    """The draws of the samples at positions ``indices`` of step ``step``'s global batch
    (with the augmentation's draws when ``augment``).

    Example:
        >>> a = training_noise(0, 5, [0, 1, 2, 3], (1, 8, 8))
        >>> b = training_noise(0, 5, [2, 3], (1, 8, 8))
        >>> bool((a.noise[2:] == b.noise).all())
        True
    """
    normal, noise, uniform, flip, aug = [], [], [], [], []
    for k in indices:
        g = torch.Generator().manual_seed(training_seed(seed, step, int(k)))
        normal.append(torch.randn(1, generator=g))
        noise.append(torch.randn(tuple(shape), generator=g))
        uniform.append(torch.rand(1, generator=g))
        flip.append(torch.rand(1, generator=g))
        if augment:  # after every other draw: runs without augmentation are unchanged
            aug.append(torch.cat([torch.rand(AUGMENT_UNIFORMS, generator=g), torch.randn(AUGMENT_NORMALS, generator=g)]))
    if not normal:
        return TrainingNoise(torch.zeros(0), torch.zeros((0, *shape)), torch.zeros(0), torch.zeros(0),
                             torch.zeros(0, AUGMENT_DRAWS) if augment else None)
    return TrainingNoise(torch.cat(normal), torch.stack(noise), torch.cat(uniform), torch.cat(flip),
                         torch.stack(aug) if augment else None)


class ImageNoise:
    """The generators of a batch of images, one per seed, producing noise on ``device``.

    The first call gives each image's starting noise; later calls continue each image's
    own stream (for stochastic samplers).

    Example:
        >>> x = ImageNoise([7, 8], (1, 4, 4))()
        >>> bool((x[1] == ImageNoise([8], (1, 4, 4))()[0]).all())
        True
    """

    def __init__(self, seeds: Sequence[int], shape: Sequence[int], device: torch.device | str = "cpu") -> None:
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.shape = tuple(shape)
        self.device = torch.device(device)

    def __call__(self, like: torch.Tensor | None = None) -> torch.Tensor:
        """Standard normal noise, one image per seed (``like`` only checks the shape)."""
        if not self.generators:
            return torch.zeros((0, *self.shape), device=self.device)
        x = torch.stack([torch.randn(self.shape, generator=g) for g in self.generators])
        if like is not None and like.shape != x.shape:
            raise ValueError(f"noise for shape {tuple(like.shape)} requested from generators of {tuple(x.shape)}")
        return x.to(self.device)
