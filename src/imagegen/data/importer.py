"""Import images into a prepared dataset (see :mod:`imagegen.data.dataset` for the format).

Sources: ``builtin:NAME`` (see :data:`imagegen.data.builtin.BUILTINS`) or a folder of
image files. Folder import follows the torchvision ``ImageFolder`` convention for labels
and Pillow's conventions for decoding:

- The folder is scanned recursively (sorted, symlinked folders are not followed). Every
  file is tried, whatever its name or extension; each one that cannot be used is listed
  in ``manifest["rejected"]`` as ``{"path": ..., "reason": ...}``, so
  ``count + len(rejected)`` equals the number of files (and unreadable folders) seen.
- Labels: when every image lies in a sub-folder and there are at least two such
  sub-folders, the class name is the first path component under SRC and the class index
  its position in the sorted class names. Otherwise the dataset is unlabeled.
- Decoding: images over ``MAX_PIXELS`` are refused before decoding; ``.load()`` runs inside
  ``try`` so truncated files are caught; multi-frame files use their first frame; EXIF
  orientation is applied; palette images are expanded; transparency is composited on a
  white background; 16-bit grayscale is scaled to 8 bits.
- Size: center-crop to a square, then Lanczos resize to ``size`` (default
  ``DEFAULT_FOLDER_SIZE`` for folders; built-ins keep their native size unless ``size``).
- Channels: 1 or 3. Default for folders: 1 when every image that passes the header check
  is stored as grayscale (modes 1, L, LA, I, I;16, F, or a gray palette), else 3 (RGB).
  Built-ins are grayscale; ``channels=3`` replicates the gray plane.

New sources (archives, URLs) plug into :func:`import_images` by producing the same
``(relative path, opener)`` records; dedupe fits between decode and :class:`DatasetWriter`.
"""

from __future__ import annotations

import contextlib

import numbers
import os
import stat
import sys
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from imagegen.data.builtin import PREFIX, load_builtin, resolve_builtin
from imagegen.data.dataset import SHARD_SIZE, DatasetWriter, check_destination
from imagegen.errors import ImagegenError

DEFAULT_FOLDER_SIZE = 64
MAX_PIXELS = 64 * 1024 * 1024  # ~67 megapixels: larger files are refused before decoding
MAX_SIZE = 4096
BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}

T = TypeVar("T")


class Rejected(Exception):
    """An input file that cannot be used; ``str(e)`` is the short reason for the report."""


def _bar(items: Iterable[T], total: int, desc: str, progress: bool) -> Iterable[T]:
    """A tqdm bar on stderr that only shows up when the work lasts over a second."""
    return tqdm(items, total=total, desc=desc, unit="img", file=sys.stderr,
                disable=not progress, delay=1.0, leave=False, dynamic_ncols=True)


def _note(message: str, progress: bool) -> None:
    if progress:
        tqdm.write(f"imagegen: {message}", file=sys.stderr)


# --------------------------------------------------------------------------- decoding


def _is_gray(im: Image.Image) -> bool:
    if im.mode in _GRAY_MODES:
        return True
    if im.mode in ("P", "PA"):
        pal = im.getpalette() or []
        return all(pal[i] == pal[i + 1] == pal[i + 2] for i in range(0, len(pal) - 2, 3))
    return False


@contextlib.contextmanager
def _pillow_errors(other: str) -> Iterator[None]:
    """Turn Pillow's many exception types into a :class:`Rejected` with a reason.

    ``other`` formats any unexpected error (``{e}``, ``{type}``); Pillow raises many types
    on bad headers and data.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except Rejected:
        raise
    except Image.DecompressionBombError as e:
        raise Rejected(f"image too large ({e})") from e
    except UnidentifiedImageError as e:
        raise Rejected("not an image (cannot identify image file)") from e
    except PermissionError as e:
        raise Rejected(f"cannot read file ({e.strerror or e})") from e
    except Exception as e:
        raise Rejected(other.format(e=e, type=type(e).__name__)) from e


def probe_image(path: Path) -> bool:
    """Check a file's header without decoding pixels; return True when it is grayscale.

    Raises :class:`Rejected` with a short reason when the file cannot be an image.

    Example:
        >>> probe_image(Path("photos/cat/1.png"))  # doctest: +SKIP
        False
    """
    try:
        st = path.stat()
    except FileNotFoundError as e:
        raise Rejected("broken symbolic link" if path.is_symlink() else "file vanished") from e
    except OSError as e:
        raise Rejected(f"cannot read file ({e.strerror or e})") from e
    if not stat.S_ISREG(st.st_mode):
        raise Rejected("not a regular file")
    if st.st_size == 0:
        raise Rejected("empty file (0 bytes)")
    with _pillow_errors("corrupt image header: {e}"):
        with Image.open(path) as im:
            width, height = im.size
            gray = _is_gray(im)
    if width * height > MAX_PIXELS:
        raise Rejected(f"image too large ({width}x{height} = {width * height} pixels "
                       f"> limit {MAX_PIXELS})")
    if width == 0 or height == 0:
        raise Rejected(f"image has no pixels ({width}x{height})")
    return gray


def _to_mode(im: Image.Image, mode: str) -> Image.Image:
    """Convert any Pillow mode to ``mode`` ("L" or "RGB"), compositing alpha on white."""
    if im.mode.startswith("I") or im.mode == "F":
        arr = np.asarray(im).astype(np.float64)
        if im.mode == "F":
            arr = arr * 255.0 if arr.size and arr.max() <= 1.0 else arr
        else:  # 16-bit grayscale (PNG, TIFF): 0..65535 -> 0..255
            arr = arr / 257.0
        im = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    if im.mode in ("P", "PA", "1"):
        im = im.convert("RGBA" if im.mode != "1" else "L")
    if im.mode in ("LA", "La", "RGBA", "RGBa", "PA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        im = Image.alpha_composite(background, rgba)
    return im.convert(mode)


def fit_square(im: Image.Image, size: int) -> Image.Image:
    """Center-crop ``im`` to a square and resize it to ``size`` x ``size`` (Lanczos)."""
    if im.size == (size, size):
        return im
    return ImageOps.fit(im, (size, size), method=Image.Resampling.LANCZOS)


def decode_image(path: Path, size: int, channels: int) -> np.ndarray:
    """Decode one file to uint8 (size, size, channels); raise :class:`Rejected` on failure.

    Example:
        >>> decode_image(Path("photos/cat/1.jpg"), 64, 3).shape  # doctest: +SKIP
        (64, 64, 3)
    """
    with _pillow_errors("cannot decode image: {type}: {e}"):
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise Rejected(f"image too large ({im.width * im.height} pixels "
                               f"> limit {MAX_PIXELS})")
            if im.format == "JPEG":
                im.draft(im.mode, (size, size))  # cheap DCT downscale, still >= size
            try:
                im.load()
            except Exception as e:
                raise Rejected(f"truncated or corrupt image: {e}") from e
            im = ImageOps.exif_transpose(im) or im
            im = fit_square(_to_mode(im, "L" if channels == 1 else "RGB"), size)
            arr = np.asarray(im, dtype=np.uint8)
    return arr[..., None] if channels == 1 else arr


# --------------------------------------------------------------------------- sources


def _scan_folder(root: Path) -> tuple[list[Path], list[dict[str, str]]]:
    """All files under ``root`` (sorted) and report entries for folders that were skipped."""
    files: list[Path] = []
    skipped: list[dict[str, str]] = []

    def on_error(e: OSError) -> None:
        rel = Path(e.filename).relative_to(root).as_posix() if e.filename else "?"
        skipped.append({"path": rel, "reason": f"cannot read folder ({e.strerror or e})"})

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=False):
        here = Path(dirpath)
        for d in list(dirnames):
            if (here / d).is_symlink():
                dirnames.remove(d)
                skipped.append({"path": (here / d).relative_to(root).as_posix(),
                                "reason": "symbolic link to a folder (not followed)"})
        dirnames.sort()
        files.extend(here / f for f in sorted(filenames))
    return files, skipped


def _check_args(size: int | None, channels: int | None) -> None:
    if size is not None and (isinstance(size, bool) or not isinstance(size, numbers.Integral)
                             or not 1 <= size <= MAX_SIZE):
        raise ImagegenError(f"size must be an integer from 1 to {MAX_SIZE}, got {size!r}")
    if channels not in (None, 1, 3):
        raise ImagegenError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")


def _import_builtin(src: str, dest: Path, size: int | None, channels: int | None,
                    progress: bool, shard_size: int) -> dict[str, Any]:
    data = load_builtin(src)
    images = data.images
    native = images.shape[1]
    if size is not None and images.shape[1:3] != (size, size):
        out = np.empty((len(images), size, size), np.uint8)
        for i in _bar(range(len(images)), len(images), "resize", progress):
            out[i] = np.asarray(fit_square(Image.fromarray(images[i, :, :, 0], "L"), size))
        images = out[..., None]
    if channels == 3 and images.shape[3] == 1:
        images = np.repeat(images, 3, axis=3)
    writer = DatasetWriter(dest, resolution=images.shape[1:3], channels=images.shape[3],
                           labeled=data.labels is not None, shard_size=shard_size)
    writer.add_batch(images, data.labels)
    extra = {"preprocessing": {"size": images.shape[1], "native_size": native,
                               "resize": "lanczos" if images.shape[1] != native else None}}
    return writer.finish(source=src, class_names=data.class_names,
                         rejected=[], extra=extra)


def _import_folder(src: str, dest: Path, size: int | None, channels: int | None,
                   progress: bool, shard_size: int) -> dict[str, Any]:
    root = Path(src).expanduser()
    if not root.exists():
        raise ImagegenError(f"input folder '{src}' does not exist; pass a folder of images or "
                            f"a built-in data set (builtin:mnist5k, builtin:digits)")
    if not root.is_dir():
        raise ImagegenError(f"input '{src}' is a file; pass a folder of images or a built-in "
                            "data set (builtin:mnist5k, builtin:digits)")
    root = root.resolve()
    dest_abs = dest.expanduser().resolve()
    if dest_abs == root or root in dest_abs.parents:
        raise ImagegenError(f"DEST {dest} is inside the input folder {src}; choose a DEST "
                            "outside it")
    files, rejected = _scan_folder(root)
    if not files:
        raise ImagegenError(f"input folder '{src}' holds no files; put images (PNG, JPEG, ...) "
                            "in it, optionally in one sub-folder per class")

    candidates: list[tuple[Path, str]] = []  # (path, relative path) that pass the header check
    all_gray = True
    for path in _bar(files, len(files), "scan", progress):
        rel = path.relative_to(root).as_posix()
        try:
            all_gray &= probe_image(path)
            candidates.append((path, rel))
        except Rejected as e:
            rejected.append({"path": rel, "reason": str(e)})

    parts = [rel.split("/") for _, rel in candidates]
    class_names: list[str] | None = None
    if parts and all(len(p) >= 2 for p in parts):
        names = sorted({p[0] for p in parts})
        class_names = names if len(names) >= 2 else None
    index = {name: i for i, name in enumerate(class_names or [])}

    if size is None:
        size = DEFAULT_FOLDER_SIZE
        _note(f"no size given; images are center-cropped and resized to {size}x{size} "
              "(pass --size N to choose)", progress)
    if channels is None:
        channels = 1 if all_gray else 3

    writer = DatasetWriter(dest, resolution=(size, size), channels=channels,
                           labeled=class_names is not None, shard_size=shard_size)
    for path, rel in _bar(candidates, len(candidates), "decode", progress):
        try:
            image = decode_image(path, size, channels)
        except Rejected as e:
            rejected.append({"path": rel, "reason": str(e)})
            continue
        writer.add(image, index[rel.split("/")[0]] if class_names else None)

    rejected.sort(key=lambda r: r["path"])
    if len(writer) == 0:
        examples = "; ".join(f"{r['path']}: {r['reason']}" for r in rejected[:3])
        raise ImagegenError(f"no usable images in '{src}': all {len(rejected)} files were "
                            f"rejected ({examples}); put PNG/JPEG/... images in it")
    extra = {"preprocessing": {"size": size, "resize": "center-crop, lanczos",
                               "alpha": "composited on white", "exif_orientation": True}}
    return writer.finish(source=str(root), class_names=class_names, rejected=rejected,
                         extra=extra)


def import_images(
    src: str,
    dest: str | Path,
    *,
    size: int | None = None,
    channels: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    shard_size: int = SHARD_SIZE,
) -> dict[str, Any]:
    """Import ``src`` (``builtin:NAME`` or a folder of images) as a prepared dataset in DEST.

    Returns the manifest (also written to ``DEST/manifest.json``, last). Unusable input
    files are not fatal: they are listed in ``manifest["rejected"]`` with a reason.

    Example:
        >>> m = import_images("builtin:digits", "data/digits", size=28)  # doctest: +SKIP
        >>> m["count"], m["resolution"], m["class_counts"]["0"]
        (1797, [28, 28], 178)
    """
    _check_args(size, channels)
    src = str(src)
    if src.startswith(PREFIX):
        resolve_builtin(src)  # fail on an unknown name before touching DEST
    dest = check_destination(dest, overwrite)
    if src.startswith(PREFIX):
        return _import_builtin(src, dest, None if size is None else int(size), channels, progress, shard_size)
    return _import_folder(src, dest, None if size is None else int(size), channels, progress, shard_size)
