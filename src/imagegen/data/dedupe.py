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

from typing import Callable

import numpy as np

DEFAULT_NEAR_BITS = 4
DEFAULT_PIXEL_TOLERANCE = 0.15
_MIN_CONTRAST = 8.0


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes."""
    return (a ^ b).bit_count()


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
        self.hashes: list[int] = []
        bands = (near_bits or 0) + 1
        edges = np.linspace(0, 64, bands + 1).round().astype(int)
        self._bands = [(int(lo), (1 << int(hi - lo)) - 1) for lo, hi in zip(edges[:-1], edges[1:])]
        self._tables: list[dict[int, list[int]]] = [{} for _ in self._bands]

    def __len__(self) -> int:
        return len(self.hashes)

    def check(self, sha: bytes, phash: int, pixels: np.ndarray) -> tuple[str, int, int] | None:
        """``("exact"|"near", kept index, hash distance)`` when a duplicate, else None."""
        if sha in self.exact:
            return "exact", self.exact[sha], 0
        if self.near_bits is None:
            return None
        seen: set[int] = set()
        best: tuple[int, int] | None = None
        for (shift, mask), table in zip(self._bands, self._tables):
            for i in table.get((phash >> shift) & mask, ()):
                if i in seen:
                    continue
                seen.add(i)
                d = hamming(phash, self.hashes[i])
                if d <= self.near_bits and (best is None or (d, i) < best):
                    if pixels_match(self.get_pixels(i), pixels, self.pixel_tolerance):
                        best = (d, i)
        return None if best is None else ("near", best[1], best[0])

    def add(self, sha: bytes, phash: int, index: int) -> None:
        """Record kept image ``index`` (indices must be added in order 0, 1, 2, ...)."""
        if index != len(self.hashes):
            raise ValueError(f"expected kept index {len(self.hashes)}, got {index}")
        self.exact.setdefault(sha, index)
        self.hashes.append(phash)
        if self.near_bits is not None:
            for (shift, mask), table in zip(self._bands, self._tables):
                table.setdefault((phash >> shift) & mask, []).append(index)
