"""Built-in ``emoji``: Twemoji's 64x64 RGBA pictures, labelled by emoji category.

Both emoji sets take their list of emoji and labels from ``emoji.json`` of the npm package
``emoji-datasource-twitter`` 16.0.0 (located by :mod:`~imagegen.data.builtins.npm_packages`):
1,911 emoji, each with an ``image`` file name (its ``unified`` code points, lower case, hyphen
separated, plus ``.png``) and a ``category``; 323 of them, all in "People & Body", list
``skin_variations`` with their own ``unified`` and ``image`` (310 with 5 tones, 13 two-person
emoji with 25), 1,875 variants in all. The "Component" category holds only the 5 skin-tone
swatches (U+1F3FB-1F3FF, flat squares of one colour), which are left out. Base emoji alone
would be 1,906 pictures, under 2,000, so the skin-tone variants are included (near copies of
their base emoji in other skin colours; they make "People & Body" 60% of the set).

Order: emoji.json's ``sort_order`` (Unicode's order), each emoji followed by its variants.
Classes, in the order they first appear: Smileys & Emotion, People & Body, Animals & Nature,
Food & Drink, Travel & Places, Activities, Objects, Symbols, Flags.

``emoji``: the package's ``img/twitter/64/`` holds 3,786 PNGs (3,609 RGBA, 177 palette),
all 64x64, one per image named in emoji.json; none is without an entry (files without one
would be skipped) and none is fully transparent. Loaded as RGBA uint8, straight alpha (as
PNG stores it): 3,781 images, 9 classes (169, 2,261, 159, 131, 218, 85, 264, 224, 270);
keys are the file names (``"1f600.png"``). 11 groups of files have identical pixels (34
extra copies: flags that share a design such as FR/MF/CP, family emoji drawn alike), which
the importer's deduplication drops. Loading takes about 1 s of CPU time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from imagegen.data.builtins.builtin_data import BuiltinData
from imagegen.data.builtins.npm_packages import (NPM_PINNED, npm_install_command,
                                                 npm_package_path)
from imagegen.errors import ImagegenError

__all__ = ["EMOJI_PACKAGE", "EmojiEntry", "EmojiList", "emoji_list", "load_emoji"]

EMOJI_PACKAGE = "emoji-datasource-twitter"
_SKIPPED_CATEGORIES = ("Component",)  # the skin-tone swatches
_TWEMOJI_DIR, _TWEMOJI_SIZE = "img/twitter/64", 64


class EmojiEntry(NamedTuple):
    """One picture named by emoji.json: a base emoji or one of its skin-tone variants."""

    image: str  # the Twemoji file name, e.g. "1f44b-1f3fb.png"
    unified: str  # its code points, e.g. "1F44B-1F3FB"
    category: str  # the base emoji's category, e.g. "People & Body"


class EmojiList(NamedTuple):
    """What :func:`emoji_list` reads from emoji.json."""

    entries: list[EmojiEntry]  # in sort_order, each emoji followed by its skin-tone variants
    categories: list[str]  # the class names, in the order they first appear in ``entries``
    left_out: list[EmojiEntry]  # the entries of the skipped categories (Component)


def emoji_list() -> EmojiList:
    """emoji.json's pictures (Component left out) in ``sort_order``, and the categories.

    Example:
        >>> entries, categories, left_out = emoji_list()
        >>> len(entries), entries[0].image, categories[0], len(left_out)
        (3781, '1f600.png', 'Smileys & Emotion', 5)
    """
    path = npm_package_path(EMOJI_PACKAGE, "emoji.json")
    try:
        emoji = json.loads(path.read_text("utf-8"))
        rows = sorted(emoji, key=lambda e: e["sort_order"])
        entries, left_out = [], []
        for e in rows:
            variants = (e.get("skin_variations") or {}).values()
            (left_out if e["category"] in _SKIPPED_CATEGORIES else entries).extend(
                EmojiEntry(v["image"], v["unified"], e["category"]) for v in [e, *variants])
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        raise ImagegenError(f"cannot read the emoji list {path} ({type(err).__name__}: {err}); "
                            f"reinstall it with `{npm_install_command(EMOJI_PACKAGE)}`") from err
    return EmojiList(entries, list(dict.fromkeys(e.category for e in entries)), left_out)


def _read_png(path: Path) -> np.ndarray:
    """A 64x64 PNG as RGBA uint8 (64, 64, 4); anything else is an error."""
    try:
        with Image.open(path) as im:
            rgba = np.asarray(im.convert("RGBA"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImagegenError(f"cannot read {path} ({e}); reinstall it with "
                            f"`{npm_install_command(EMOJI_PACKAGE)}`") from e
    if rgba.shape != (_TWEMOJI_SIZE, _TWEMOJI_SIZE, 4):
        raise ImagegenError(f"{path} is {rgba.shape[1]}x{rgba.shape[0]}, expected "
                            f"{_TWEMOJI_SIZE}x{_TWEMOJI_SIZE}; reinstall it with "
                            f"`{npm_install_command(EMOJI_PACKAGE)}`")
    return rgba


def load_emoji() -> BuiltinData:
    """Twemoji 64x64x4 RGBA (straight alpha); label = the emoji's category.

    Example:
        >>> d = load_emoji()
        >>> d.images.shape, d.keys[0], d.class_names[d.labels[0]]
        ((3781, 64, 64, 4), '1f600.png', 'Smileys & Emotion')
    """
    entries, categories, left_out = emoji_list()
    folder = npm_package_path(EMOJI_PACKAGE, _TWEMOJI_DIR)
    files = {p.name: p for p in folder.glob("*.png")}
    kept = [e for e in entries if e.image in files]
    if not kept:
        raise ImagegenError(f"no Twemoji PNGs found in {folder}; reinstall it with "
                            f"`{npm_install_command(EMOJI_PACKAGE)}`")
    unlisted = len(files.keys() - {e.image for e in entries + left_out})
    missing = len(entries) - len(kept)
    index = {name: i for i, name in enumerate(categories)}
    version = NPM_PINNED[EMOJI_PACKAGE]
    info = {"source": f"{EMOJI_PACKAGE} {version} (npm) {_TWEMOJI_DIR}/*.png, categories "
                      "from emoji.json",
            "license": "Twemoji graphics CC BY 4.0 (Twitter, Inc and other contributors); "
                       "emoji-datasource MIT (Cal Henderson)",
            "citation": "Twemoji (github.com/jdecked/twemoji), packaged by emoji-data "
                        "(github.com/iamcal/emoji-data).",
            "skipped": f"{missing} listed without a PNG, {unlisted} PNGs not in emoji.json, "
                       f"{len(left_out)} Component skin-tone swatches"}
    return BuiltinData(np.stack([_read_png(files[e.image]) for e in kept]),
                       np.array([index[e.category] for e in kept], np.int64), categories,
                       keys=[e.image for e in kept], info=info)
