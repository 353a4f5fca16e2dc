"""Channel conversions for feature networks and pixel metrics: gray, RGB and RGBA as RGB.

Inception-v3 (:mod:`imagegen.features.inception`) needs 3 channels, and the pixel-space
memorisation test (:func:`imagegen.metrics.memorization_ratios`, Carlini et al. 2023) needs a
defined meaning for transparent pixels. Both go through the helpers here, so the conversion
is the same everywhere:

- RGBA (straight, i.e. not premultiplied, alpha: what Pillow and ``imagegen data import
  --channels 4`` store) is composited over the opaque background ``ALPHA_BACKGROUND`` =
  white, the colour the importer composites transparency on when it writes gray or RGB
  (:data:`imagegen.data.clean.BACKGROUND`): ``out = round((c * a + b * (255 - a)) / 255)``
  per channel, with ``c`` the colour, ``a`` the alpha and ``b`` the background, all 0..255.
  It is computed exactly in integers (the numerator is at most 255 * 255, and never ends in
  an exact half, so rounding is unambiguous), and equals Pillow's ``Image.alpha_composite``
  over white, which the importer uses, for every colour and alpha (all 256 x 256 pairs
  tested);
- gray is repeated to 3 channels (as Pillow's ``convert("RGB")`` in every FID tool), by
  :func:`to_rgb` only: the pixel memorisation test keeps one channel, since repeating a
  channel scales every L2 distance by sqrt(3) and leaves its distance ratio unchanged.

Example:
    >>> px = np.array([[[[200, 100, 0, 128]]]], dtype=np.uint8)  # (1, 1, 1, 4), half transparent
    >>> composite_alpha(px)[0, 0, 0].tolist()  # 200*128/255 + 255*127/255 = 227.39 -> 227
    [227, 177, 127]
"""

from __future__ import annotations

import numpy as np

__all__ = ["ALPHA_BACKGROUND", "composite_alpha", "to_rgb"]

ALPHA_BACKGROUND = (255, 255, 255)  # white: the importer's background for transparency
_CHUNK = 4096  # images per step, so memory-mapped data sets are converted piece by piece


def _check(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4) or x.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, C) with C = 1, 3 or 4, got {x.dtype} {x.shape}")
    return x


def composite_alpha(images: np.ndarray, background: tuple[int, int, int] = ALPHA_BACKGROUND) -> np.ndarray:
    """uint8 (N, H, W, 4) straight-alpha RGBA -> uint8 (N, H, W, 3), composited over the opaque
    ``background``; images with 1 or 3 channels are returned unchanged (not copied).

    Example:
        >>> rgba = np.zeros((1, 1, 2, 4), np.uint8); rgba[0, 0, 1] = [10, 20, 30, 255]
        >>> composite_alpha(rgba)[0, 0].tolist()  # transparent -> white, opaque -> itself
        [[255, 255, 255], [10, 20, 30]]
    """
    x = _check(images)
    if x.shape[-1] != 4:
        return x
    bg = np.asarray(background, dtype=np.uint16)
    if bg.shape != (3,) or bg.max() > 255:
        raise ValueError(f"background must be three values in 0..255, got {background}")
    out = np.empty(x.shape[:-1] + (3,), dtype=np.uint8)
    for s in range(0, len(x), _CHUNK):
        part = np.asarray(x[s:s + _CHUNK], dtype=np.uint16)
        a = part[..., 3:]
        num = part[..., :3] * a + bg * (255 - a) + 127  # <= 255 * 255 + 127: fits uint16
        out[s:s + _CHUNK] = num // 255
    return out


def to_rgb(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C), C in 1, 3, 4 -> uint8 (N, H, W, 3): gray repeated, RGBA composited on
    white (:func:`composite_alpha`), RGB unchanged (not copied).

    Example:
        >>> to_rgb(np.full((1, 1, 1, 1), 7, np.uint8)).tolist()
        [[[[7, 7, 7]]]]
    """
    x = _check(images)
    if x.shape[-1] == 1:
        return np.repeat(x, 3, axis=-1)
    return composite_alpha(x)
