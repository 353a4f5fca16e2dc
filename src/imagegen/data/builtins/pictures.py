"""Built-in sets of pictures shipped in pip packages: game sprites, icon fonts, photo textures.

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
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from imagegen.data.builtins.builtin_data import BuiltinData
from imagegen.data.builtins.packages import package_path, reinstall_hint
from imagegen.errors import ImagegenError

__all__ = ["load_icons", "load_sprites", "load_textures", "render_icon_font"]


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
    root = package_path("arcade", _SPRITES_DIR)
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
        raise ImagegenError(f"no sprites found under {root}; {reinstall_hint('arcade')}")
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
    ttf = package_path("qtawesome", f"fonts/{stem}-{version}.ttf")
    charmap = package_path("qtawesome", f"fonts/{stem}-charmap-{version}.json")
    try:
        font = ImageFont.truetype(str(ttf), 48)
        codes = json.loads(charmap.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise ImagegenError(f"cannot read {ttf} or {charmap} ({e}); "
                            f"{reinstall_hint('qtawesome')}") from e
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
        path = package_path("skimage", f"data/{name}.png")
        try:
            photo = np.asarray(Image.open(path).convert("L"))
        except (OSError, ValueError) as e:
            raise ImagegenError(f"cannot read {path} ({e}); {reinstall_hint('skimage')}") from e
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
