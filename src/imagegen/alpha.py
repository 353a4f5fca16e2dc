"""Transparency: straight-alpha RGBA images for training, writing and viewing.

Images with four channels hold straight (unassociated) alpha: the colour of a pixel is its
colour as if opaque, and alpha says how much of it covers the background. Under a fully
transparent pixel that colour is never seen, so image files hold anything there (black,
white, leftovers of an editor). A denoiser trained on it would spend capacity on noise that
nobody sees, and the hard jump between the visible colour and the arbitrary one would show
as a dark or light fringe wherever generated alpha is partial.

- Training (:func:`bleed_colour`): the colour under fully transparent pixels is replaced by
  a smooth extension of the visible colours ("push-pull" fill: alpha-weighted averages over
  an image pyramid, coarse levels filling the holes of fine ones; Gortler et al. 1996, "The
  Lumigraph", Sec. 3.2). The stored value no longer matters, and the colour at an edge
  continues past it, so partial alpha blends with the right colour: no fringes.
- Writing (:func:`clear_transparent`): fully transparent pixels are written as (0, 0, 0, 0).
- Viewing (:func:`over_checkerboard`): grids show RGBA images over a gray checkerboard.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CHECKER_SIZE = 8  # pixels per checkerboard square
CHECKER_LEVELS = (255, 204)  # the two grays of the checkerboard


def bleed_colour(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, 4, H, W) in [-1, 1], straight alpha last, with the colour under fully
    transparent pixels replaced by the push-pull fill of the visible colours.

    Visible pixels (alpha > 0) keep their colour exactly; an image with no visible pixel
    gets colour 0 (mid-gray) everywhere.

    Example:
        >>> x = -torch.ones(1, 4, 2, 2); x[0, :, 0, 0] = torch.tensor([1.0, 0.0, -0.5, 1.0])
        >>> bleed_colour(x)[0, :3, 1, 1].tolist()  # the one visible colour fills the rest
        [1.0, 0.0, -0.5]
    """
    rgb, a = x[:, :3], (x[:, 3:] + 1) / 2  # alpha in [0, 1]
    visible = a > 0
    weights = [a]
    sums = [rgb * a]
    while weights[-1].shape[-1] > 1 or weights[-1].shape[-2] > 1:
        weights.append(F.avg_pool2d(weights[-1], 2, ceil_mode=True))
        sums.append(F.avg_pool2d(sums[-1], 2, ceil_mode=True))
    fill = torch.zeros_like(sums[-1])
    for w, s in zip(reversed(weights), reversed(sums)):
        if fill.shape[-2:] != w.shape[-2:]:
            fill = F.interpolate(fill, size=w.shape[-2:], mode="bilinear", align_corners=False)
        fill = torch.where(w > 0, s / w.clamp_min(1e-12), fill)
    return torch.cat([torch.where(visible, rgb, fill), x[:, 3:]], dim=1)


def clear_transparent(images: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, 4) images with every fully transparent pixel set to (0, 0, 0, 0);
    images with other channel counts are returned unchanged."""
    if images.shape[-1] != 4:
        return images
    return np.where(images[..., 3:] == 0, np.uint8(0), images)


def checkerboard(h: int, w: int, size: int = CHECKER_SIZE) -> np.ndarray:
    """A uint8 (h, w) gray checkerboard of ``size``-pixel squares (255 and 204)."""
    yy, xx = np.meshgrid(np.arange(h) // size, np.arange(w) // size, indexing="ij")
    light, dark = CHECKER_LEVELS
    return np.where((yy + xx) % 2 == 0, light, dark).astype(np.uint8)


def over_checkerboard(images: np.ndarray) -> np.ndarray:
    """uint8 RGBA images (..., H, W, 4) composited over a gray checkerboard: uint8 RGB."""
    h, w = images.shape[-3:-1]
    bg = checkerboard(h, w).astype(np.float32)[..., None]
    a = images[..., 3:].astype(np.float32) / 255.0
    out = images[..., :3].astype(np.float32) * a + bg * (1 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
