"""Image files and grids: uint8 ``(N, H, W, C)`` arrays to and from PNGs, without torch.

Writing: :func:`make_grid`, :func:`to_pil`, :func:`save_png` (metadata as PNG ``tEXt``
chunks). Reading: :func:`load_image_folder` reads a folder of samples as written by
``imagegen generate`` (one PNG per image, the class in the text chunk ``class``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from .alpha import clear_transparent, over_checkerboard
from .atomic import atomic_path
from .errors import ImagegenError

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # channels -> Pillow mode


def make_grid(images: np.ndarray, cols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile uint8 ``(N, H, W, C)`` images into one ``(rows*H, cols*W, C)`` image; RGBA images
    are shown over a gray checkerboard (the grid is then RGB)."""
    if images.shape[-1] == 4:
        images = over_checkerboard(images)
    n, h, w, c = images.shape
    cols = cols or max(1, int(np.ceil(np.sqrt(n))))
    rows = max(1, -(-n // cols))
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = img
    return grid


def to_pil(image: np.ndarray) -> Image.Image:
    """uint8 ``(H, W, C)`` -> PIL image (mode L for one channel, RGB for three, RGBA for four)."""
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def save_png(path: str | Path, image: np.ndarray, text: dict[str, Any] | None = None) -> None:
    """Write a uint8 image as PNG atomically, with ``text`` as PNG tEXt chunks; RGBA keeps its
    alpha, fully transparent pixels written as (0, 0, 0, 0)."""
    image = clear_transparent(image)
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, str(v))
    with atomic_path(path, suffix=".png") as tmp:
        to_pil(image).save(tmp, format="PNG", pnginfo=info)


def load_image_folder(
    folder: str | Path,
    *,
    channels: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[Path]]:
    """Read the ``*.png`` images of a folder, sorted by name.

    ``grid.png`` and the figure ``imagegen evaluate`` writes (PNG text chunk ``imagegen`` =
    ``evaluation figure``, see :mod:`imagegen.report_figure`) are skipped.

    Returns uint8 images (N, H, W, C), the int64 class labels from each PNG's text chunk
    ``class`` (``None`` unless every image has one) and the paths. ``channels`` (1, 3 or 4)
    converts every image to that many channels; without it the images must already agree.

    Example:
        >>> images, labels, paths = load_image_folder("out/samples", channels=1)  # doctest: +SKIP
        >>> images.shape, labels[:3]  # doctest: +SKIP
        ((64, 28, 28, 1), array([0, 1, 2]))
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImagegenError(f"image folder {folder} does not exist or is not a folder")
    if channels is not None and channels not in _MODES:
        raise ImagegenError(f"channels must be one of {sorted(_MODES)}, got {channels}")
    paths = sorted(p for p in folder.glob("*.png") if p.name != "grid.png")
    if not paths:
        raise ImagegenError(f"no PNG images in {folder} (grid.png is ignored); generate some with "
                            "`imagegen generate RUN --out DIR`")
    arrays: list[np.ndarray] = []
    classes: list[int | None] = []
    kept: list[Path] = []
    for p in paths:
        try:
            with Image.open(p) as im:
                text = dict(getattr(im, "text", None) or {})
                if text.get("imagegen") == "evaluation figure":
                    continue  # the figure `imagegen evaluate` wrote here, not a sample
                im.load()
                if channels is not None:
                    mode = _MODES[channels]
                else:
                    mode = im.mode if im.mode in ("L", "RGB", "RGBA") else (
                        "RGBA" if "transparency" in im.info or im.mode in ("LA", "PA") else "RGB")
                    if im.mode in ("1", "I", "I;16", "F"):
                        mode = "L"
                arr = np.asarray(im.convert(mode) if im.mode != mode else im, dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            raise ImagegenError(f"cannot read image {p}: {exc}") from exc
        if arr.ndim == 2:
            arr = arr[..., None]
        if arrays and arr.shape != arrays[0].shape:
            raise ImagegenError(f"image {p} is {arr.shape[1]}x{arr.shape[0]}x{arr.shape[2]} but "
                                f"{kept[0].name} is {arrays[0].shape[1]}x{arrays[0].shape[0]}x"
                                f"{arrays[0].shape[2]}; all images must share one size and mode")
        arrays.append(arr)
        kept.append(p)
        raw = text.get("class")
        if raw is None:
            classes.append(None)
        else:
            try:
                classes.append(int(str(raw).strip()))
            except ValueError as exc:
                raise ImagegenError(f"image {p} has a non-integer 'class' text chunk: {raw!r}") from exc
    if not arrays:
        raise ImagegenError(f"no sample PNGs in {folder} (only grid.png or evaluation figures)")
    labels = None
    if all(c is not None for c in classes):
        labels = np.asarray(classes, dtype=np.int64)
    return np.stack(arrays), labels, kept
