"""Training batches: one shared shuffled order, split disjointly over processes.

Step ``t`` takes a consecutive slice of ``batch_size`` indices from a per-epoch permutation
seeded by ``(seed, epoch)``: the global batch, the same on every process. Under torchrun,
rank ``r`` of ``W`` takes the ``r``-th of ``W`` consecutive parts of it
(:func:`rank_positions`), so the ranks' parts are disjoint, together they are the global
batch, and the data order does not depend on the world size (``--resume`` may change it).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from ..alpha import bleed_colour

IN_MEMORY_BYTES = 2 * 2**30  # uint8 training sets up to 2 GiB are read into RAM


@functools.lru_cache(maxsize=2)
def _epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def batch_indices(n: int, batch: int, step: int, seed: int) -> torch.Tensor:
    """Data-set indices of ``step``'s global batch: consecutive slices of per-epoch seeded permutations."""
    per_epoch = max(1, n // batch)
    epoch, k = divmod(step, per_epoch)
    perm = _epoch_permutation(n, seed, epoch)
    return perm[k * batch : (k + 1) * batch] if n >= batch else perm[torch.arange(batch) % n]


def rank_positions(batch: int, rank: int, world_size: int) -> torch.Tensor:
    """Positions in the global batch that rank ``rank`` of ``world_size`` trains on.

    Example:
        >>> rank_positions(5, 1, 2)
        tensor([3, 4])
    """
    return torch.arange(batch).tensor_split(world_size)[rank]


class ImageBatches:
    """Training batches from uint8 images (N, H, W, C): float (B, C, H, W) in [-1, 1]; the
    colour under fully transparent RGBA pixels is filled (:func:`imagegen.alpha.bleed_colour`).
    Float arrays are latents (N, C, h, w) and are returned as float tensors unchanged.

    Data sets up to ``in_memory_bytes`` are read into RAM once (as uint8, a quarter of
    float32); larger ones stay memory-mapped (:class:`imagegen.data.dataset.ShardedImages`)
    and each batch reads only its own rows, so a data set larger than RAM trains.
    """

    def __init__(self, images: Any, in_memory_bytes: int | None = None) -> None:
        limit = IN_MEMORY_BYTES if in_memory_bytes is None else in_memory_bytes
        nbytes = int(np.prod(images.shape)) * np.dtype(images.dtype).itemsize
        self.streaming = nbytes > limit
        self.images = images if self.streaming else np.ascontiguousarray(np.asarray(images))
        self.shape = tuple(images.shape)
        self.latent = np.issubdtype(np.dtype(images.dtype), np.floating)

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        rows = np.ascontiguousarray(self.images[np.asarray(idx)])
        if self.latent:  # float (N, C, h, w) latents of an autoencoder, used as they are
            return torch.from_numpy(rows).float()
        x = torch.from_numpy(rows).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).contiguous()
        return bleed_colour(x) if x.shape[1] == 4 else x
