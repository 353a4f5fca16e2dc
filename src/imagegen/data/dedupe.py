"""Exact and near-duplicate detection for imported images.

- **Exact**: two images whose final pixels are identical (same sha256 of the decoded,
  resized pixels, see :func:`imagegen.data.clean.pixel_sha256`) -- whatever their file
  format, name or metadata.
- **Near**: the 64-bit DCT perceptual hash (``imagehash.phash``) of the final pixels is
  within ``near_bits`` (Hamming distance) of a kept image's hash, *and* the pixels agree:
  the RMS difference is at most ``pixel_tolerance`` times the kept image's contrast
  (its pixel standard deviation, at least 8 gray levels). The pixel check is needed on
  small images: on MNIST, 31 of 2,000 distinct digits share a perceptual hash exactly
  (different "1"s), while a JPEG re-encode at quality 50 changes the RMS by < 0.16 of the
  contrast.

Candidate hashes are found with multi-index hashing (Norouzi et al. 2012): the 64 bits
are split into ``near_bits + 1`` bands; two hashes within ``near_bits`` agree exactly on
at least one band (pigeonhole), so only images sharing a band are compared.

The first image (in input order) is kept; later copies are reported as duplicates of it.
"""

from __future__ import annotations

from array import array
from typing import Callable

import numpy as np

DEFAULT_NEAR_BITS = 4
DEFAULT_PIXEL_TOLERANCE = 0.15
_MIN_CONTRAST = 8.0


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes."""
    return (a ^ b).bit_count()


def popcount64(x: np.ndarray) -> np.ndarray:
    """Set bits per element of a uint64 array."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int64)
    return np.unpackbits(x.view(np.uint8)).reshape(-1, 64).sum(1).astype(np.int64)


def pixels_match(kept: np.ndarray, new: np.ndarray, tolerance: float) -> bool:
    """True when ``new`` is a near copy of ``kept`` (RMS difference vs. kept's contrast)."""
    if kept.shape != new.shape:
        return False
    a = kept.astype(np.float32)
    rms = float(np.sqrt(np.mean((a - new.astype(np.float32)) ** 2)))
    return rms <= tolerance * max(float(a.std()), _MIN_CONTRAST)


class Deduper:
    """Index of kept images; :meth:`check` says whether a new image duplicates one.

    ``get_pixels(i)`` returns kept image ``i`` (needed only to confirm near matches).
    ``near_bits=None`` turns near-duplicate detection off.

    Example:
        >>> d = Deduper(get_pixels=lambda i: kept[i])  # doctest: +SKIP
        >>> d.check(sha, phash, pixels) or d.add(sha, phash, len(kept))  # doctest: +SKIP
    """

    def __init__(
        self,
        get_pixels: Callable[[int], np.ndarray],
        near_bits: int | None = DEFAULT_NEAR_BITS,
        pixel_tolerance: float = DEFAULT_PIXEL_TOLERANCE,
    ) -> None:
        if near_bits is not None and not 0 <= near_bits <= 32:
            raise ValueError(f"near_bits must be 0..32 or None, got {near_bits}")
        self.get_pixels = get_pixels
        self.near_bits = near_bits
        self.pixel_tolerance = pixel_tolerance
        self.exact: dict[bytes, int] = {}
        self._hashes = np.zeros(1024, np.uint64)
        self._count = 0
        bands = (near_bits or 0) + 1
        edges = np.linspace(0, 64, bands + 1).round().astype(int)
        self._bands = [(int(lo), (1 << int(hi - lo)) - 1) for lo, hi in zip(edges[:-1], edges[1:])]
        self._tables: list[dict[int, array]] = [{} for _ in self._bands]

    def __len__(self) -> int:
        return self._count

    def check(self, sha: bytes, phash: int, pixels: np.ndarray) -> tuple[str, int, int] | None:
        """``("exact"|"near", kept index, hash distance)`` when a duplicate, else None.

        Near candidates are tried closest first (ties: earliest kept image).
        """
        if sha in self.exact:
            return "exact", self.exact[sha], 0
        if self.near_bits is None or not self._count:
            return None
        buckets = [b for (shift, mask), table in zip(self._bands, self._tables)
                   if (b := table.get((phash >> shift) & mask)) is not None]
        if not buckets:
            return None
        idx = np.concatenate([np.frombuffer(b, np.int64) for b in buckets])
        dist = popcount64(self._hashes[idx] ^ np.uint64(phash))
        close = dist <= self.near_bits
        idx, dist = idx[close], dist[close]
        for j in np.lexsort((idx, dist)):
            if pixels_match(self.get_pixels(int(idx[j])), pixels, self.pixel_tolerance):
                return "near", int(idx[j]), int(dist[j])
        return None

    def add(self, sha: bytes, phash: int, index: int) -> None:
        """Record kept image ``index`` (indices must be added in order 0, 1, 2, ...)."""
        if index != self._count:
            raise ValueError(f"expected kept index {self._count}, got {index}")
        self.exact.setdefault(sha, index)
        if self._count == len(self._hashes):
            self._hashes = np.concatenate([self._hashes, np.zeros_like(self._hashes)])
        self._hashes[index] = phash
        self._count += 1
        if self.near_bits is not None:
            for (shift, mask), table in zip(self._bands, self._tables):
                key = (phash >> shift) & mask
                bucket = table.get(key)
                if bucket is None:
                    table[key] = bucket = array("q")
                bucket.append(index)
