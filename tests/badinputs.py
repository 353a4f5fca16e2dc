"""A corpus of broken, hostile and awkward image inputs, generated at test time.

Nothing binary is committed: every input is built by a ``make(path)`` function (Pillow,
or hand-written PNG/GIF/JPEG bytes where Pillow refuses to write something broken).
Each :class:`Case` says what ``import_images`` must do with it at :data:`SIZE` px and
``channels=3`` (``check``) or ``channels=1`` (``check_gray``), without filters:

- ``expect``: ``"kept"``, ``"duplicate"`` (of ``of``, by ``match``) or ``"rejected"``
  (with ``code``; ``words`` must appear in the reason);
- ``check(pixels)``: asserts on the kept (SIZE, SIZE, 3) uint8 pixels.

Corpora:

- :data:`CORPUS`: one flat folder (one sub-folder at most, so it is unlabeled).
- :data:`FILTER_CORPUS`: imported with ``min_size=FILTER_MIN_SIZE`` and
  ``max_aspect=FILTER_MAX_ASPECT``.
- :data:`CLASS_CORPUS`: a class-folder layout (two sub-folders and a file at the root).
- :data:`FORMER_BUG_CASES`: inputs the importer once got wrong (``bug`` says how); the
  test file runs them as strict xfails, and they stay out of the corpora above so that
  a crash on one of them cannot hide the others.

:func:`write_corpus` writes a corpus into a folder and returns ``{report key: Case}``.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, features

SIZE = 32  # the import size the expectations are written for
FILTER_MIN_SIZE = 16
FILTER_MAX_ASPECT = 4.0

Check = Callable[[np.ndarray], None]


@dataclass(frozen=True)
class Case:
    """One input and its expected fate (see the module docstring)."""

    name: str  # the report key: path relative to the corpus folder (a folder ends in "/")
    make: Callable[[Path], None]  # writes the input at corpus_folder / name
    expect: str  # "kept" | "duplicate" | "rejected"
    code: str | None = None  # rejection code
    check: Check | None = None  # kept pixels, channels=3: (SIZE, SIZE, 3) uint8
    check_gray: Check | None = None  # kept pixels, channels=1: (SIZE, SIZE, 1) uint8
    words: tuple[str, ...] = ()  # the reason must say these (case-insensitive)
    of: str | None = None  # a duplicate's kept original
    match: str | None = None  # "exact" | "near"
    note: str | None = None  # a kept line's note must contain this
    regular: bool = True  # a plain file (also packed into archives); False for FIFOs, links
    needs: str | None = None  # "non-root" | "webp" | "posix" | "byte-names": see available()
    bug: str | None = None  # what the importer once got wrong (see FORMER_BUG_CASES)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.expect in ("kept", "duplicate", "rejected"), self.expect
        assert (self.code is not None) == (self.expect == "rejected"), self.name
        assert (self.of is not None) == (self.expect == "duplicate"), self.name


def available(case: Case) -> bool:
    """False when the case cannot be built here (root reads anything; no WebP codec)."""
    if case.needs == "non-root":
        return hasattr(os, "geteuid") and os.geteuid() != 0
    if case.needs == "webp":
        return bool(features.check("webp"))
    if case.needs == "posix":  # FIFOs and symbolic links
        return os.name == "posix"
    if case.needs == "byte-names":  # file names that are not UTF-8 (not on macOS/Windows)
        return sys.platform.startswith("linux")
    return True


def write_corpus(folder: Path, cases: Sequence[Case] | None = None) -> dict[str, Case]:
    """Write ``cases`` (default :data:`CORPUS`) into ``folder``; return them by report key."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Case] = {}
    for case in CORPUS if cases is None else cases:
        if not available(case):
            continue
        assert case.name not in out, f"duplicate case name {case.name!r}"
        path = folder / case.name
        path.parent.mkdir(parents=True, exist_ok=True)
        case.make(path)
        out[case.name] = case
    return out


# --------------------------------------------------------------------------- builders


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def saver(im_fn: Callable[[], Image.Image], fmt: str, **kw) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(encode(im_fn(), fmt, **kw))


def raw(data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(data() if callable(data) else data)


def chunk(tag: bytes, data: bytes, crc: int | None = None) -> bytes:
    """One PNG chunk (with a correct CRC unless ``crc`` is given)."""
    crc = zlib.crc32(tag + data) if crc is None else crc
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc & 0xFFFFFFFF)


PNG_SIG = b"\x89PNG\r\n\x1a\n"


def ihdr(width: int, height: int, depth: int = 8, colour: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))


def png(width: int, height: int, depth: int, colour: int, rows: Sequence[bytes],
        extra: Sequence[bytes] = ()) -> bytes:
    """A PNG from raw scanlines (filter byte 0 added); ``extra`` chunks go before IDAT."""
    data = zlib.compress(b"".join(b"\x00" + r for r in rows))
    return (PNG_SIG + ihdr(width, height, depth, colour) + b"".join(extra)
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit black PNG of width x height: a few hundred KB, decompresses to GBs."""
    row = bytes(1 + (width + 7) // 8)
    per = max(1, 4_000_000 // len(row))
    comp = zlib.compressobj(1)
    parts = []
    for start in range(0, height, per):
        parts.append(comp.compress(row * min(per, height - start)))
    parts.append(comp.flush())
    return (PNG_SIG + ihdr(width, height, 1, 0) + chunk(b"IDAT", b"".join(parts))
            + chunk(b"IEND", b""))


def png_chunks(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """(offset, tag, body) of each chunk of a PNG."""
    out, pos = [], 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        out.append((pos, data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]))
        pos += 12 + n
    return out


def noise(seed: int, h: int = SIZE, w: int = SIZE) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def scene(seed: int, h: int = 64, w: int = 64) -> Image.Image:
    """A smooth picture with shapes: survives JPEG almost unchanged (a near duplicate)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    arr = np.stack([200 * x + 20, 180 * y + 30, 120 + 60 * np.sin(6 * x + 3 * y)], -1)
    for _ in range(3):
        cy, cx, r = rng.integers(8, 56), rng.integers(8, 56), rng.integers(5, 12)
        disk = (np.mgrid[0:h, 0:w][0] - cy) ** 2 + (np.mgrid[0:h, 0:w][1] - cx) ** 2 < r * r
        arr[disk] = rng.integers(0, 256, 3)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def solid(mode: str, colour, size: tuple[int, int] = (SIZE, SIZE)) -> Callable[[], Image.Image]:
    return lambda: Image.new(mode, size, colour)


def halves(left, right, mode: str = "RGB", size: tuple[int, int] = (SIZE, SIZE)) -> Image.Image:
    """Left half ``left``, right half ``right`` (split at width // 2)."""
    im = Image.new(mode, size, left)
    im.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return im


# --------------------------------------------------------------------------- checks


def near(px: np.ndarray, expected, tol: int = 0, where: str = "") -> None:
    px = np.asarray(px, int)
    exp = np.broadcast_to(np.asarray(expected, int), px.shape)
    diff = int(np.abs(px - exp).max()) if px.size else 0
    assert diff <= tol, f"{where} pixels {px.reshape(-1, px.shape[-1])[:4].tolist()} != " \
                        f"{list(np.ravel(expected))} (max diff {diff} > {tol})"


def uniform(expected, tol: int = 0) -> Check:
    return lambda px: near(px, expected, tol, "uniform:")


def left_right(left, right, tol: int = 0, margin: int = 3) -> Check:
    """Left and right halves (away from the seam by ``margin`` for resampling ringing)."""
    def check(px: np.ndarray) -> None:
        near(px[:, : SIZE // 2 - margin], left, tol, "left half:")
        near(px[:, SIZE // 2 + margin:], right, tol, "right half:")
    return check


def equals(im_fn: Callable[[], Image.Image], tol: int = 0) -> Check:
    return lambda px: near(px, np.asarray(im_fn().convert("RGB")), tol, "image:")


def resembles(im_fn: Callable[[], Image.Image], mean_tol: float) -> Check:
    """Close on average to the image scaled down to SIZE with a box filter (a reference
    independent of the importer's Lanczos resampling)."""
    def check(px: np.ndarray) -> None:
        ref = np.asarray(im_fn().convert("RGB").resize((SIZE, SIZE), Image.Resampling.BOX), int)
        diff = float(np.abs(px.astype(int) - ref).mean())
        assert diff <= mean_tol, f"mean difference {diff:.1f} > {mean_tol}"
    return check


def luma(r: float, g: float, b: float) -> int:
    """Pillow's RGB -> L (ITU-R 601-2, rounded)."""
    return int((r * 299 + g * 587 + b * 114) / 1000 + 0.5)


# --------------------------------------------------------------------------- inputs


def _gray16() -> Image.Image:
    arr = np.zeros((SIZE, SIZE), np.uint16)
    arr[:, :10], arr[:, 10:21] = 65535, 32896  # -> 255 and 128 (v / 257); the rest 0
    return Image.fromarray(arr)


def _gray16_check(px: np.ndarray) -> None:
    near(px[:, :10], 255, 0, "65535:")
    near(px[:, 10:21], 128, 0, "32896:")
    near(px[:, 21:], 0, 0, "0:")


def _gray16_dark() -> Image.Image:
    """A dark 16-bit image: no value above 255, i.e. at most 255/65535 of full scale."""
    arr = np.zeros((SIZE, SIZE), np.uint16)
    arr[:, SIZE // 2:] = 255
    return Image.fromarray(arr)


def _rgb16(path: Path) -> None:
    px = struct.pack(">HHH", 65535, 32896, 0)  # 16-bit RGB: Pillow keeps the high bytes
    path.write_bytes(png(SIZE, SIZE, 16, 2, [px * SIZE] * SIZE))


def _palette_trns() -> Image.Image:
    im = Image.new("P", (SIZE, SIZE), 0)
    im.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)  # index 0 black (transparent), 1 blue
    im.paste(1, (SIZE // 2, 0, SIZE, SIZE))
    im.info["transparency"] = 0
    return im


def _rgba_half() -> Image.Image:
    return Image.new("RGBA", (SIZE, SIZE), (255, 0, 0, 128))


# red at alpha 128 over white: 255 * (1 - 128/255) + 0 * 128/255 = 127 for G and B
_RGBA_ON_WHITE = (255, 127, 127)


def _animated_gif(path: Path) -> None:
    frames = [halves((0, 255, 0), (0, 0, 0)), Image.new("RGB", (SIZE, SIZE), (0, 0, 255)),
              Image.new("RGB", (SIZE, SIZE), (255, 0, 255))]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=50,
                   loop=0)


def _apng(path: Path) -> None:
    frames = [halves((255, 255, 0), (0, 0, 128)), Image.new("RGB", (SIZE, SIZE), (9, 9, 9))]
    frames[0].save(path, format="PNG", save_all=True, append_images=frames[1:], duration=50)


def _multipage_tiff(path: Path) -> None:
    frames = [halves((0, 128, 128), (128, 0, 0)), Image.new("RGB", (SIZE, SIZE), (1, 2, 3))]
    frames[0].save(path, format="TIFF", save_all=True, append_images=frames[1:])


def _rotated_jpeg(path: Path) -> None:
    """Stored 60 wide x 30 high, red top-left quadrant, EXIF orientation 6 (90 deg CW).

    Displayed it is 30 wide x 60 high with the red block at the top right; the central
    square crop keeps it in its top-right quadrant. Ignoring the orientation would put
    red at the top left of the crop instead.
    """
    im = Image.new("RGB", (60, 30), (255, 255, 255))
    im.paste((255, 0, 0), (0, 0, 30, 15))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(path, format="JPEG", quality=95, exif=exif.tobytes())


def _rotated_check(px: np.ndarray) -> None:
    q = SIZE // 2
    near(px[2:q - 3, q + 3:-2], (255, 0, 0), 40, "top right (red):")
    near(px[2:q - 3, 2:q - 3], (255, 255, 255), 40, "top left (white):")
    near(px[q + 3:-2, :], (255, 255, 255), 40, "bottom (white):")


def _bad_exif_jpeg(path: Path) -> None:
    data = encode(halves((90, 40, 10), (10, 40, 90)), "JPEG", quality=95)
    junk = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08" + b"\xff" * 40  # IFD of garbage
    app1 = b"\xff\xe1" + struct.pack(">H", len(junk) + 2) + junk
    path.write_bytes(data[:2] + app1 + data[2:])


def _one_bit() -> Image.Image:
    arr = (np.indices((SIZE, SIZE)) // 8).sum(0) % 2 == 0  # 8-px checkerboard
    return Image.fromarray(arr)


def _one_bit_check(px: np.ndarray) -> None:
    expected = np.where((np.indices((SIZE, SIZE)) // 8).sum(0) % 2 == 0, 255, 0)
    near(px, np.repeat(expected[..., None], px.shape[-1], -1), 0, "checkerboard:")


def _float01() -> Image.Image:
    arr = np.zeros((SIZE, SIZE), np.float32)
    arr[:, SIZE // 2:] = 0.5  # floats in 0..1 are scaled by 255: 127.5 -> 128
    arr[:, -4:] = 1.0  # -> 255
    return Image.fromarray(arr, "F")


def _float01_check(px: np.ndarray) -> None:
    near(px[:, :SIZE // 2], 0, 0, "0.0:")
    near(px[:, SIZE // 2:-4], 128, 0, "0.5:")
    near(px[:, -4:], 255, 0, "1.0:")


def _float255() -> Image.Image:
    arr = np.full((SIZE, SIZE), 200.0, np.float32)  # already 0..255 (clipped, not scaled)
    arr[:, SIZE // 2:] = 1000.0
    return Image.fromarray(arr, "F")


def _huge(path: Path) -> None:
    """3000 x 2000, split at x = 1500; the 2000 x 2000 central crop keeps x 500..2499."""
    im = halves((250, 150, 0), (0, 80, 160), size=(3000, 2000))
    im.save(path, format="PNG", compress_level=1)


def _big_jpeg(path: Path) -> None:
    """2400 x 1600 JPEG (decoded with draft scaling), top third dark, rest light."""
    im = Image.new("RGB", (2400, 1600), (220, 220, 180))
    im.paste((20, 60, 20), (0, 0, 2400, 800))
    im.save(path, format="JPEG", quality=90)


def _big_jpeg_check(px: np.ndarray) -> None:
    near(px[: SIZE // 2 - 3], (20, 60, 20), 12, "top half:")
    near(px[SIZE // 2 + 3:], (220, 220, 180), 12, "bottom half:")


def _polyglot(path: Path) -> None:
    """A PNG with a zip archive appended after IEND (still a valid PNG)."""
    zbuf = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("payload.txt", "hello")
    path.write_bytes(encode(halves((70, 0, 140), (140, 0, 70)), "PNG") + zbuf.getvalue())


def _nested_zip(path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("inner.png", encode(noise(99), "PNG"))


_NOISE_PNG = encode(noise(7), "PNG")  # 32x32, far from everything else in the corpus


def _png_truncated_idat() -> bytes:
    data = encode(noise(3, 48, 48), "PNG")
    pos, _, body = next(c for c in png_chunks(data) if c[1] == b"IDAT")
    return data[: pos + 8 + len(body) // 2]


def _png_corrupt_idat() -> bytes:
    """IDAT bytes flipped in the middle of the zlib stream (so its CRC is wrong too)."""
    data = bytearray(encode(noise(4, 48, 48), "PNG"))
    pos, _, body = next(c for c in png_chunks(bytes(data)) if c[1] == b"IDAT")
    for i in range(pos + 8 + len(body) // 3, pos + 8 + len(body) // 3 + 16):
        data[i] ^= 0x5A
    return bytes(data)


def _png_bad_ihdr_crc() -> bytes:
    data = bytearray(encode(noise(5), "PNG"))
    data[29:33] = b"\x00\x00\x00\x00"  # IHDR's CRC (8 sig + 4 len + 4 tag + 13 body = 29)
    return bytes(data)


def _png_zero_size() -> bytes:
    return png(0, 0, 8, 0, [])


def _png_header_only() -> bytes:
    return PNG_SIG + ihdr(SIZE, SIZE, 8, 2)  # no IDAT, no IEND


def _png_text_bomb() -> bytes:
    """A valid small PNG with a zTXt chunk that inflates to 64 MB (Pillow caps text)."""
    comp = zlib.compressobj(9)
    blob = b"".join(comp.compress(bytes(1 << 22)) for _ in range(16)) + comp.flush()
    ztxt = chunk(b"zTXt", b"Comment\x00\x00" + blob)
    data = encode(noise(6), "PNG")
    return data[:33] + ztxt + data[33:]


def _png_idat_bomb() -> bytes:
    """A 32x32 gray PNG whose IDAT stream inflates to 32 MB: all but 1 KB is surplus."""
    comp = zlib.compressobj(9)
    rows = b"".join(b"\x00" + bytes([i * 8]) * SIZE for i in range(SIZE))
    blob = comp.compress(rows) + b"".join(comp.compress(bytes(1 << 22)) for _ in range(8))
    return (PNG_SIG + ihdr(SIZE, SIZE, 8, 0) + chunk(b"IDAT", blob + comp.flush())
            + chunk(b"IEND", b""))


def _idat_bomb_check(px: np.ndarray) -> None:
    near(px, (np.arange(SIZE) * 8)[:, None, None], 0, "rows 0, 8, 16, ...:")


def _png_wrong_idat_crc() -> bytes:
    """Intact pixel data under a wrong IDAT CRC (Pillow does not check IDAT CRCs)."""
    data = bytearray(encode(noise(14), "PNG"))
    pos, _, body = next(c for c in png_chunks(bytes(data)) if c[1] == b"IDAT")
    data[pos + 8 + len(body):pos + 12 + len(body)] = b"\xde\xad\xbe\xef"
    return bytes(data)


def _jpeg_truncated_after_header() -> bytes:
    data = encode(noise(8, 48, 48), "JPEG", quality=90)
    sos = data.index(b"\xff\xda")
    (n,) = struct.unpack(">H", data[sos + 2:sos + 4])
    return data[: sos + 2 + n]  # markers and the scan header, no entropy-coded data


def _jpeg_bomb() -> bytes:
    """A tiny JPEG whose frame header (SOF0) claims 65500 x 65500 pixels."""
    data = bytearray(encode(noise(9, 16, 16), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 65500, 65500)
    return bytes(data)


def _gif_bomb() -> bytes:
    """A GIF header claiming a 65535 x 65535 screen and image, with one byte of data."""
    head = b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0x80, 0, 0) + b"\x00" * 6
    desc = b"\x2c" + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0)
    return head + desc + b"\x02\x02\x44\x01\x00\x3b"


_SVG = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="32" '
        b'height="32"><rect width="32" height="32" fill="red"/></svg>\n')
_HTML = (b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>\n<body><h1>"
         b"Forbidden</h1><p>You don't have permission to access this image.</p></body></html>\n")
_EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\n%%EndComments\n"
        b"1 0 0 setrgbcolor 0 0 32 32 rectfill\nshowpage\n%%EOF\n")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _symlink(target: str) -> Callable[[Path], None]:
    return lambda p: os.symlink(target, p)


def _outside_dir_link(path: Path) -> None:
    """A link to a folder outside the corpus that holds a valid image."""
    target = path.parent.parent / f"{path.parent.name}-outside-target"
    target.mkdir(exist_ok=True)
    (target / "secret.png").write_bytes(encode(noise(10), "PNG"))
    os.symlink(target, path, target_is_directory=True)


def _unreadable(path: Path) -> None:
    path.write_bytes(encode(noise(11), "PNG"))
    path.chmod(0)


def _scene_png(path: Path) -> None:
    path.write_bytes(encode(scene(1), "PNG"))


def _scene_jpeg(path: Path) -> None:
    path.write_bytes(encode(scene(1), "JPEG", quality=95))


def _dup_png(path: Path) -> None:
    path.write_bytes(encode(noise(12), "PNG"))


def _dup_bmp(path: Path) -> None:
    path.write_bytes(encode(noise(12), "BMP"))


def _meta_png(path: Path) -> None:
    """noise(13) as PNG, plain."""
    path.write_bytes(encode(noise(13), "PNG", compress_level=9))


def _meta_png_resaved(path: Path) -> None:
    """The same pixels with text chunks, a DPI, a gamma and another compression level."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "re-saved by another program")
    info.add_itxt("Author", "Ünïcode ☕", zip=True)
    path.write_bytes(encode(noise(13), "PNG", pnginfo=info, dpi=(300, 300), compress_level=1))


# --------------------------------------------------------------------------- corpora

NON_UTF8_NAME = os.fsdecode(b"latin1-caf\xe9.png")  # not valid UTF-8 on disk
_NOT_IMG = ("not an image",)
_TRUNC = ("truncated",)

CORPUS: list[Case] = [
    # ---- rejected: not image data at all
    Case("empty.png", raw(b""), "rejected", "empty", words=("empty",)),
    Case("text-as.png", raw(b"just some notes, not a picture\n" * 4), "rejected",
         "not-an-image", words=_NOT_IMG),
    Case("random.bin", raw(lambda: np.random.default_rng(1).bytes(3000)), "rejected",
         "not-an-image", words=_NOT_IMG),
    Case("forbidden-page.jpg", raw(_HTML), "rejected", "not-an-image", words=_NOT_IMG),
    Case("vector.svg", raw(_SVG), "rejected", "unsupported-format", words=("SVG",)),
    Case("nested-archive.zip", _nested_zip, "rejected", "not-an-image", words=_NOT_IMG),
    # ---- rejected: broken image data
    Case("trunc-idat.png", raw(_png_truncated_idat), "rejected", "truncated", words=_TRUNC),
    Case("trunc-after-header.jpg", raw(_jpeg_truncated_after_header), "rejected", "truncated",
         words=_TRUNC),
    Case("corrupt-idat.png", raw(_png_corrupt_idat), "rejected", "truncated",
         words=("corrupt",)),
    Case("text-chunk-bomb.png", raw(_png_text_bomb), "rejected", "corrupt",
         words=("cannot decode", "too large")),
    # ---- rejected before decoding: decompression bombs
    Case("bomb-30000.png", raw(lambda: png_bomb(30000, 30000)), "rejected", "too-large",
         words=("too large",)),
    Case("bomb-9000.png", raw(lambda: png_bomb(9000, 9000)), "rejected", "too-large",
         words=("too large", "9000x9000")),
    Case("bomb-65500.jpg", raw(_jpeg_bomb), "rejected", "too-large", words=("too large",)),
    Case("bomb-65535.gif", raw(_gif_bomb), "rejected", "too-large", words=("too large",)),
    # ---- rejected: not regular files
    Case("pipe.png", _fifo, "rejected", "not-a-file", words=("not a regular file",),
         regular=False, needs="posix"),
    Case("dev-zero.png", _symlink("/dev/zero"), "rejected", "not-a-file",
         words=("not a regular file",), regular=False, needs="posix"),
    Case("dangling.png", _symlink("no-such-file.png"), "rejected", "missing",
         words=("broken symbolic link",), regular=False, needs="posix"),
    Case("loop/", _symlink("."), "rejected", "symlink", words=("symbolic link", "not followed"),
         regular=False, needs="posix"),
    Case("outside/", _outside_dir_link, "rejected", "symlink",
         words=("symbolic link", "not followed"), regular=False, needs="posix"),
    Case("no-permission.png", _unreadable, "rejected", "unreadable", words=("cannot read",),
         regular=False, needs="non-root"),
    # ---- kept, with colour / depth conversions (pixels checked)
    Case("gray16.png", saver(_gray16, "PNG"), "kept", check=_gray16_check,
         check_gray=_gray16_check),
    Case("rgb16.png", _rgb16, "kept", check=uniform((255, 128, 0)),
         check_gray=uniform(luma(255, 128, 0))),
    Case("cmyk.jpg", saver(solid("CMYK", (255, 0, 0, 0)), "JPEG", quality=95), "kept",
         check=uniform((0, 255, 255), 4)),
    Case("palette-transparent.png", saver(_palette_trns, "PNG"), "kept",
         check=left_right((255, 255, 255), (0, 0, 255)),
         check_gray=left_right(255, luma(0, 0, 255))),
    Case("rgba-half-alpha.png", saver(_rgba_half, "PNG"), "kept",
         check=uniform(_RGBA_ON_WHITE, 1), check_gray=uniform(luma(*_RGBA_ON_WHITE), 1)),
    Case("la.png", saver(solid("LA", (0, 128)), "PNG"), "kept", check=uniform((127,) * 3, 1),
         check_gray=uniform(127, 1)),
    Case("one-bit.png", saver(_one_bit, "PNG"), "kept", check=_one_bit_check,
         check_gray=_one_bit_check),
    Case("float01.tif", saver(_float01, "TIFF"), "kept", check=_float01_check,
         check_gray=_float01_check),
    Case("float255.tif", saver(_float255, "TIFF"), "kept",
         check=left_right((200, 200, 200), (255, 255, 255))),
    Case("gray.jpg", saver(lambda: halves(40, 210, "L"), "JPEG", quality=95), "kept",
         check=left_right((40,) * 3, (210,) * 3, 3), check_gray=left_right(40, 210, 3)),
    Case("bitmap.bmp", saver(lambda: halves((10, 20, 30), (200, 100, 50)), "BMP"), "kept",
         check=left_right((10, 20, 30), (200, 100, 50))),
    Case("lossless.webp", saver(lambda: halves((30, 220, 60), (220, 30, 60)), "WEBP",
                                lossless=True), "kept",
         check=left_right((30, 220, 60), (220, 30, 60)), needs="webp"),
    Case("tiny-1x1.png", saver(solid("RGB", (12, 34, 56), (1, 1)), "PNG"), "kept",
         check=uniform((12, 34, 56))),
    Case("huge-3000x2000.png", _huge, "kept",
         check=left_right((250, 150, 0), (0, 80, 160), 2)),
    Case("big-2400x1600.jpg", _big_jpeg, "kept", check=_big_jpeg_check),
    Case("progressive.jpg", saver(lambda: halves((100, 0, 200), (200, 200, 0)), "JPEG",
                                  quality=95, progressive=True), "kept",
         check=left_right((100, 0, 200), (200, 200, 0), 12)),
    Case("exif-rotate-6.jpg", _rotated_jpeg, "kept", check=_rotated_check),
    Case("bad-exif.jpg", _bad_exif_jpeg, "kept",
         check=left_right((90, 40, 10), (10, 40, 90), 12)),
    Case("animated.gif", _animated_gif, "kept", check=left_right((0, 255, 0), (0, 0, 0)),
         note="animated"),
    Case("animated.png", _apng, "kept", check=left_right((255, 255, 0), (0, 0, 128)),
         note="animated"),
    Case("two-pages.tif", _multipage_tiff, "kept", check=left_right((0, 128, 128), (128, 0, 0)),
         note="first of 2"),
    Case("png-named.jpg", raw(_NOISE_PNG), "kept", check=equals(lambda: noise(7))),
    Case("idat-zlib-bomb.png", raw(_png_idat_bomb), "kept", check=_idat_bomb_check),
    Case("wrong-idat-crc.png", raw(_png_wrong_idat_crc), "kept", check=equals(lambda: noise(14))),
    Case("polyglot-png-zip.png", _polyglot, "kept",
         check=left_right((70, 0, 140), (140, 0, 70))),
    # ---- kept: awkward names
    Case(".hidden.png", saver(lambda: halves((1, 100, 1), (100, 1, 100)), "PNG"), "kept",
         check=left_right((1, 100, 1), (100, 1, 100))),
    Case("new\nline.png", saver(lambda: noise(20), "PNG"), "kept",
         check=equals(lambda: noise(20))),
    Case("café ☕ 日本 \u200b.png", saver(lambda: noise(21), "PNG"), "kept",
         check=equals(lambda: noise(21))),
    Case("back\\slash ..\\name.png", saver(lambda: noise(25), "PNG"), "kept",
         check=equals(lambda: noise(25))),
    Case("x" * 200 + ".png", saver(lambda: noise(22), "PNG"), "kept",
         check=equals(lambda: noise(22))),
    Case("sub/deeper/nested.png", saver(lambda: noise(23), "PNG"), "kept",
         check=equals(lambda: noise(23))),
    # ---- duplicates (the first in sorted order is kept)
    Case("dup-a.png", _dup_png, "kept", check=equals(lambda: noise(12))),
    Case("dup-b.png", _dup_png, "duplicate", of="dup-a.png", match="exact"),
    Case("dup-c.bmp", _dup_bmp, "duplicate", of="dup-a.png", match="exact"),
    Case("dup-link.png", _symlink("dup-a.png"), "duplicate", of="dup-a.png", match="exact",
         regular=False, needs="posix"),
    Case("meta-a.png", _meta_png, "kept", check=equals(lambda: noise(13))),
    Case("meta-b-resaved.png", _meta_png_resaved, "duplicate", of="meta-a.png", match="exact"),
    Case("scene-a.png", _scene_png, "kept", check=resembles(lambda: scene(1), 4)),
    Case("scene-b.jpg", _scene_jpeg, "duplicate", of="scene-a.png", match="near"),
]

FILTER_CORPUS: list[Case] = [
    Case("small-15.png", saver(lambda: noise(30, 15, 15), "PNG"), "rejected", "too-small",
         words=("too small", "15x15", "min-size")),
    Case("small-1x1.png", saver(solid("RGB", (5, 6, 7), (1, 1)), "PNG"), "rejected",
         "too-small", words=("too small",)),
    Case("edge-16.png", saver(lambda: noise(31, 16, 16), "PNG"), "kept"),
    Case("wide-100x20.png", saver(lambda: noise(32, 20, 100), "PNG"), "rejected", "aspect",
         words=("aspect ratio", "100x20")),
    Case("tall-20x100.png", saver(lambda: noise(33, 100, 20), "PNG"), "rejected", "aspect",
         words=("aspect ratio",)),
    Case("edge-64x16.png", saver(lambda: noise(34, 16, 64), "PNG"), "kept"),
    Case("bomb-9000.png", raw(lambda: png_bomb(9000, 9000)), "rejected", "too-large",
         words=("too large",)),
]

CLASS_CORPUS: list[Case] = [
    Case("cat/a.png", saver(lambda: noise(40), "PNG"), "kept"),
    Case("cat/deeper/b.png", saver(lambda: noise(41), "PNG"), "kept"),
    Case("dog/c.png", saver(lambda: noise(42), "PNG"), "kept"),
    Case("dog/empty.png", raw(b""), "rejected", "empty", words=("empty",)),
    Case("at-root.png", saver(lambda: noise(43), "PNG"), "rejected", "outside-classes",
         words=("outside the class folders",)),
    Case("README.txt", raw(b"photos of pets\n"), "rejected", "outside-classes",
         words=("outside the class folders",)),
    Case("zz-link/", _symlink("cat"), "rejected", "symlink", words=("symbolic link",),
         regular=False, needs="posix"),
]

# Inputs the importer once got wrong; each is also tested alone (test_former_bug).
FORMER_BUG_CASES: list[Case] = [
    Case("header-only.png", raw(_png_header_only), "rejected", "corrupt", words=_TRUNC,
         extra={"not_words": _NOT_IMG},
         bug="a PNG cut right after its header (signature + IHDR, no data) is reported as "
             "'not an image (cannot identify image file)' instead of truncated"),
    Case("zero-size.png", raw(_png_zero_size), "rejected", "no-pixels", words=(),
         extra={"alt_codes": ("corrupt",), "not_words": _NOT_IMG},
         bug="a PNG whose header says 0x0 was reported as 'not an image'"),
    Case("bad-ihdr-crc.png", raw(_png_bad_ihdr_crc), "rejected", "corrupt", words=(),
         extra={"alt_codes": ("truncated",), "not_words": _NOT_IMG},
         bug="a PNG with a damaged header chunk (IHDR CRC) is reported as 'not an image' "
             "instead of a corrupt PNG"),
    Case("vector.eps", raw(_EPS), "rejected", "unsupported-format", words=("EPS",),
         extra={"alt_codes": ("unsupported", "unsupported-format"),
                "not_words": ("truncated", "ghostscript")},
         bug="an EPS file is handed to Ghostscript (a PostScript interpreter) by Pillow; "
             "without it the reason is 'truncated or corrupt image: Unable to locate "
             "Ghostscript on paths' with code 'truncated'"),
    Case("gray16-dark.png", saver(_gray16_dark, "PNG"), "kept",
         check=left_right((0, 0, 0), (1, 1, 1)),
         bug="16-bit gray whose values are all <= 255 is taken as 8-bit: 255/65535 of full "
             "scale comes out as 255 (white) instead of 1"),
    Case(NON_UTF8_NAME, saver(lambda: noise(24), "PNG"), "kept",
         check=equals(lambda: noise(24)), needs="byte-names",
         bug="a file name that is not valid UTF-8 crashes the import (report line "
             "cannot be encoded)"),
]
