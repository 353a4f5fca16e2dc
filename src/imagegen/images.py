"""Image files and grids: uint8 ``(N, H, W, C)`` arrays to PNGs, without torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from .atomic import atomic_path


def make_grid(images: np.ndarray, cols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile uint8 ``(N, H, W, C)`` images into one ``(rows*H, cols*W, C)`` image."""
    n, h, w, c = images.shape
    cols = cols or max(1, int(np.ceil(np.sqrt(n))))
    rows = max(1, -(-n // cols))
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = img
    return grid


def to_pil(image: np.ndarray) -> Image.Image:
    """uint8 ``(H, W, C)`` -> PIL image (mode L for one channel, RGB for three)."""
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def save_png(path: str | Path, image: np.ndarray, text: dict[str, Any] | None = None) -> None:
    """Write a uint8 image as PNG atomically, with ``text`` as PNG tEXt chunks."""
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, str(v))
    with atomic_path(path, suffix=".png") as tmp:
        to_pil(image).save(tmp, format="PNG", pnginfo=info)
