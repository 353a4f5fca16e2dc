"""Decode and clean one input image: the per-image work of ``imagegen data import``.

Pillow's conventions, made explicit so every input is either converted correctly or
rejected with a reason (a :class:`Rejected` carries a stable ``code`` for counting and a
human-readable message for the report):

- Size checks come first: the header's width x height over ``MAX_PIXELS`` is refused
  before any pixel is decoded (decompression bombs), as are zero-sized images.
- ``.load()`` runs inside ``try``, so truncated and corrupt files are caught; an
  animated file (GIF, APNG, WebP) keeps its first frame and says so in a note.
- EXIF orientation is applied (``ImageOps.exif_transpose``).
- Colour: palette images are expanded, CMYK and YCbCr are converted to RGB, 16-bit
  grayscale is scaled to 8 bits (``v / 257``), float images are clipped to 0..255 (values
  in 0..1 are scaled first). Transparency is composited on white, except with
  ``channels=4``, which keeps straight alpha (RGBA).
- Geometry (``mode``): ``center-crop`` (crop the central square, then resize),
  ``pad`` (resize the long side, pad to a square with white or, for RGBA, transparent)
  or ``stretch`` (resize to a square, ignoring the aspect ratio). Lanczos resampling;
  masks use nearest-neighbour.
- Filters: ``min_size`` (the short side before resizing) and ``max_aspect`` (long side
  over short side).

Each kept image also gets the keys used for deduplication (:mod:`imagegen.data.dedupe`):
the sha256 of its final pixels and its perceptual hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 64 * 1024 * 1024  # ~67 megapixels: larger images are refused before decoding
MAX_FILE_BYTES = 256 * 2**20   # larger input files are refused before reading
MAX_SIZE = 4096
MODES = ("center-crop", "pad", "stretch")
# Raster formats Pillow decodes itself. Others (EPS/PS run Ghostscript, PDF, exotic
# scientific formats) are refused: importing untrusted files must not run interpreters.
FORMATS = ("PNG", "JPEG", "MPO", "GIF", "BMP", "DIB", "TIFF", "WEBP", "PPM", "TGA", "ICO",
           "PCX", "QOI", "AVIF", "HEIF")
# File signatures, to tell a damaged image from a non-image and an unsupported format.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG", True), (b"\xff\xd8\xff", "JPEG", True),
    (b"GIF87a", "GIF", True), (b"GIF89a", "GIF", True), (b"BM", "BMP", True),
    (b"II*\x00", "TIFF", True), (b"MM\x00*", "TIFF", True), (b"RIFF", "WEBP", True),
    (b"%!PS", "PostScript/EPS", False), (b"\xc5\xd0\xd3\xc6", "EPS", False),
    (b"%PDF", "PDF", False), (b"8BPS", "Photoshop PSD", False),
)
BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


class Rejected(Exception):
    """An input that cannot be used: ``code`` for counting, ``str(e)`` for the report."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across worker processes
        return (Rejected, (self.code, str(self)))


@dataclass(frozen=True)
class CleanOptions:
    """How inputs become training images (see the module docstring).

    ``channels``: 1 (gray), 3 (RGB), 4 (RGBA) or ``None`` for auto: decode to RGB and let
    the importer store one channel when every kept image turns out gray.
    """

    size: int
    channels: int | None = None
    mode: str = "center-crop"
    min_size: int = 0
    max_aspect: float | None = None

    @property
    def decode_channels(self) -> int:
        return 3 if self.channels is None else self.channels


@dataclass
class Cleaned:
    """One kept image: uint8 pixels (size, size, C), dedupe keys, an optional note/mask."""

    pixels: np.ndarray
    sha256: bytes
    phash: int
    gray: bool
    note: str | None = None
    mask: np.ndarray | None = None


@contextlib.contextmanager
def pillow_errors(code: str, template: str) -> Iterator[None]:
    """Turn Pillow's many exception types into a :class:`Rejected` with a reason.

    ``template`` formats any unexpected error (``{e}``, ``{type}``) under ``code``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except Rejected:
        raise
    except Image.DecompressionBombError as e:
        raise Rejected("too-large", f"image too large ({e})") from e
    except UnidentifiedImageError as e:
        raise Rejected("not-an-image", "not an image (cannot identify image file)") from e
    except PermissionError as e:
        raise Rejected("unreadable", f"cannot read file ({e.strerror or e})") from e
    except MemoryError as e:
        raise Rejected("too-large", "image too large to decode (out of memory)") from e
    except Exception as e:
        raise Rejected(code, template.format(e=e, type=type(e).__name__)) from e


def is_gray_mode(im: Image.Image) -> bool:
    """True when Pillow stores ``im`` as grayscale (or as a palette of grays)."""
    if im.mode in _GRAY_MODES:
        return True
    if im.mode in ("P", "PA"):
        pal = im.getpalette() or []
        return all(pal[i] == pal[i + 1] == pal[i + 2] for i in range(0, len(pal) - 2, 3))
    return False


def to_mode(im: Image.Image, channels: int) -> Image.Image:
    """Convert any Pillow mode to L (1), RGB (3) or RGBA (4); alpha on white unless 4."""
    if im.mode.startswith("I") or im.mode == "F":
        arr = np.asarray(im).astype(np.float64)
        if im.mode == "F":
            arr = arr * 255.0 if arr.size and np.nanmax(arr) <= 1.0 else arr
        elif im.mode.startswith("I;16") or (arr.size and arr.max() > 255):
            arr = arr / 257.0  # 16-bit grayscale (PNG, TIFF): 0..65535 -> 0..255
        im = Image.fromarray(np.clip(np.rint(np.nan_to_num(arr)), 0, 255).astype(np.uint8), "L")
    if im.mode == "1":
        im = im.convert("L")
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")
    has_alpha = im.mode in ("LA", "La", "RGBA", "RGBa", "PA") or "transparency" in im.info
    if channels == 4:
        return im.convert("RGBA")
    if has_alpha:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        im = Image.alpha_composite(background, rgba)
    return im.convert("L" if channels == 1 else "RGB")


def resize(im: Image.Image, size: int, mode: str, nearest: bool = False) -> Image.Image:
    """Make ``im`` size x size by ``mode`` (center-crop, pad or stretch)."""
    method = Image.Resampling.NEAREST if nearest else Image.Resampling.LANCZOS
    if im.size == (size, size):
        return im
    if mode == "center-crop":
        return ImageOps.fit(im, (size, size), method=method)
    if mode == "stretch":
        return im.resize((size, size), method)
    if mode == "pad":
        if im.mode == "RGBA":
            fill: Any = (255, 255, 255, 0)
        elif im.mode == "L":
            fill = 0 if nearest else 255
        else:
            fill = BACKGROUND
        return ImageOps.pad(im, (size, size), method=method, color=fill)
    raise ValueError(f"unknown resize mode {mode!r}; choose one of {', '.join(MODES)}")


def _check_geometry(width: int, height: int, opts: CleanOptions) -> None:
    if width * height > MAX_PIXELS:
        raise Rejected("too-large", f"image too large ({width}x{height} = {width * height} "
                       f"pixels > limit {MAX_PIXELS})")
    if width == 0 or height == 0:
        raise Rejected("no-pixels", f"image has no pixels ({width}x{height})")
    if min(width, height) < opts.min_size:
        raise Rejected("too-small", f"too small ({width}x{height}; --min-size {opts.min_size})")
    aspect = max(width, height) / min(width, height)
    if opts.max_aspect is not None and aspect > opts.max_aspect:
        raise Rejected("aspect", f"aspect ratio {aspect:.2f} > --max-aspect {opts.max_aspect:g} "
                       f"({width}x{height})")


def perceptual_hash(pixels: np.ndarray) -> int:
    """The 64-bit DCT perceptual hash (``imagehash.phash``) of uint8 (H, W, C) pixels."""
    import imagehash

    arr = pixels[..., 0] if pixels.shape[2] == 1 else pixels[..., :3]
    bits = imagehash.phash(Image.fromarray(np.ascontiguousarray(arr))).hash.reshape(-1)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def pixel_sha256(pixels: np.ndarray) -> bytes:
    """sha256 over the shape and the bytes of decoded pixels (the exact-duplicate key)."""
    h = hashlib.sha256(repr(pixels.shape).encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.digest()


def finish(pixels: np.ndarray, note: str | None = None,
           mask: np.ndarray | None = None) -> Cleaned:
    """Wrap final pixels with their dedupe keys."""
    gray = pixels.shape[2] == 1 or (pixels.shape[2] == 3 and bool(
        (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()))
    return Cleaned(pixels, pixel_sha256(pixels), perceptual_hash(pixels), gray, note, mask)


def clean_image(im: Image.Image, opts: CleanOptions) -> tuple[np.ndarray, str | None]:
    """Decode an opened Pillow image to uint8 (size, size, C); raise :class:`Rejected`."""
    _check_geometry(im.width, im.height, opts)
    note = None
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        note = f"animated: kept the first of {frames} frames"
    if im.format == "JPEG" and opts.mode == "center-crop":
        im.draft(im.mode, (opts.size, opts.size))  # cheap DCT downscale, still >= size
    try:
        im.load()
    except Exception as e:
        raise Rejected("truncated", f"truncated or corrupt image: {e}") from e
    try:
        im = ImageOps.exif_transpose(im) or im
    except Exception:
        note = "unreadable EXIF orientation ignored"
    try:
        im = to_mode(im, opts.decode_channels)
    except ValueError as e:
        raise Rejected("colour-mode", f"unsupported colour mode {im.mode} ({e})") from e
    im = resize(im, opts.size, opts.mode)
    arr = np.asarray(im, dtype=np.uint8)
    return (arr[..., None] if arr.ndim == 2 else arr), note


def clean_file(path: Path) -> bytes:
    """Read a local file for decoding, refusing special, empty and huge files."""
    try:
        st = path.stat()
    except FileNotFoundError as e:
        raise Rejected("missing", "broken symbolic link" if path.is_symlink()
                       else "file vanished") from e
    except OSError as e:
        raise Rejected("unreadable", f"cannot read file ({e.strerror or e})") from e
    if not stat.S_ISREG(st.st_mode):
        raise Rejected("not-a-file", "not a regular file")
    if st.st_size > MAX_FILE_BYTES:
        raise Rejected("too-large", f"file too large ({st.st_size} bytes > {MAX_FILE_BYTES})")
    try:
        return path.read_bytes()
    except OSError as e:
        raise Rejected("unreadable", f"cannot read file ({e.strerror or e})") from e


def _formats() -> list[str]:
    """The formats of :data:`FORMATS` that this Pillow build can open."""
    Image.init()
    return [f for f in FORMATS if f in Image.OPEN]


def _unidentified(data: bytes) -> Rejected:
    """Why Pillow could not open ``data``: damaged image, other format, or not an image."""
    head = data[:16]
    for magic, name, supported in _SIGNATURES:
        if head.startswith(magic) and (name != "WEBP" or data[8:12] == b"WEBP"):
            if supported:
                return Rejected("corrupt", f"corrupt or truncated {name} file (its header "
                                "cannot be read)")
            return Rejected("unsupported-format", f"unsupported format {name} (not decoded; "
                            "convert it to PNG or JPEG)")
    text = data[:512].lstrip().lower()
    if text.startswith((b"<svg", b"<?xml")) and b"<svg" in data[:4096].lower():
        return Rejected("unsupported-format", "unsupported format SVG (vector; render it to "
                        "PNG first)")
    return Rejected("not-an-image", "not an image (cannot identify image file)")


def clean_bytes(data: bytes, opts: CleanOptions) -> Cleaned:
    """Decode and clean one encoded image (PNG, JPEG, GIF, WebP, TIFF, BMP, ...)."""
    if len(data) == 0:
        raise Rejected("empty", "empty file (0 bytes)")
    try:
        with pillow_errors("corrupt", "cannot decode image: {type}: {e}"):
            with Image.open(io.BytesIO(data), formats=_formats()) as im:
                pixels, note = clean_image(im, opts)
    except Rejected as e:
        if e.code == "not-an-image":
            raise _unidentified(data) from None
        raise
    return finish(pixels, note)


def clean_array(arr: np.ndarray, opts: CleanOptions, mask: np.ndarray | None = None) -> Cleaned:
    """Clean an already decoded uint8 (H, W, C) array (C = 1, 3 or 4), e.g. a built-in."""
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    im = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr, mode)
    pixels, note = clean_image(im, opts)
    if mask is not None:
        mask = np.asarray(resize(Image.fromarray(mask, "L"), opts.size, opts.mode,
                                 nearest=True), np.uint8)
    return finish(pixels, note, mask)


def clean_item(kind: str, payload: Any, mask: np.ndarray | None,
               opts: CleanOptions) -> Cleaned | Rejected:
    """The worker entry point: clean one input, returning (not raising) a rejection."""
    try:
        if kind == "error":
            code, message = payload
            return Rejected(code, message)
        if kind == "path":
            return clean_bytes(clean_file(Path(payload)), opts)
        if kind == "bytes":
            return clean_bytes(payload, opts)
        if kind == "array":
            with pillow_errors("corrupt", "cannot convert image: {type}: {e}"):
                return clean_array(payload, opts, mask)
        raise ValueError(f"unknown item kind {kind!r}")
    except Rejected as e:
        return e
    except Exception as e:  # never let one input stop an import; the report shows it
        return Rejected("error", f"unexpected error: {type(e).__name__}: {e}")
