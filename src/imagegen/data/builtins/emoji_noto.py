"""Built-in ``emoji-noto``: Google's Noto Color Emoji font rendered to 128x128 RGBA.

The emoji and their labels are those of ``builtin:emoji`` (emoji.json of the npm package
``emoji-datasource-twitter`` 16.0.0; see :mod:`~imagegen.data.builtins.emoji`): 3,781 code
point sequences (the ``unified`` field), skin-tone variants included, in 9 categories.

The font is ``NotoColorEmoji.ttf`` from Debian's ``fonts-noto-color-emoji`` (measured with
2.042, Unicode 15.1; font licence OFL 1.1, artwork Apache-2.0), at
``/usr/share/fonts/truetype/noto/`` or wherever ``$IMAGEGEN_NOTO_EMOJI_FONT`` points. Its
colour bitmaps (CBDT) have one strike, 109 px (136x128 per glyph). Each sequence is shaped
with libraqm (so flags, keycaps, skin tones and ZWJ sequences become one glyph; Pillow
without raqm is refused), drawn with ``embedded_color`` on a transparent canvas, cropped to
its ink (alpha > 0; measured up to 126x121), shrunk with Lanczos only if a side exceeds 128
(never with 2.042) and centred in 128x128. Pillow blends the glyph into the canvas, which
leaves colour premultiplied by alpha; it is divided back out, so the output is straight alpha
(measured on 5 glyphs against Pillow's unblended glyph: alpha identical, colour at most 1
level off, and only where alpha < 255).

Skipped, with 2.042: 7 sequences the font lacks (the single code points new in Emoji 16.0:
U+1FA89, 1FA8F, 1FABE, 1FAC6, 1FADC, 1FADF, 1FAE9), which draw as its empty missing glyph,
and 1 flag (Sark, U+1F1E8 1F1F6) that draws as the font's "unknown flag" (a white flag with
a question mark). Both are found by comparing with what a code point the font cannot have
(U+10FFFD) and a pair of regional indicators that is no country (ZZ) draw; a sequence that
shapes to more than one glyph (advance over 1.5 emoji widths) would be skipped too (none
with 2.042). Kept: 3,773 images, 9 classes (168, 2,260, 158, 130, 218, 85, 262, 223, 269);
keys are the lower-case sequences (``"1f600"``, ``"1f44b-1f3fb"``). Loading takes about
5 s of CPU time (10 s wall on a busy 2-core machine).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from imagegen.data.builtins.builtin_data import BuiltinData
from imagegen.data.builtins.emoji import EMOJI_PACKAGE, emoji_list
from imagegen.data.builtins.npm_packages import NPM_PINNED
from imagegen.errors import ImagegenError

__all__ = ["NOTO_FONT_ENV", "NOTO_FONT_PATH", "EmojiRenderer", "load_emoji_noto",
           "noto_font_path"]

NOTO_FONT_ENV = "IMAGEGEN_NOTO_EMOJI_FONT"
NOTO_FONT_PATH = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"  # Debian and Ubuntu
_STRIKE, _SIDE = 109, 128  # the font's only bitmap size; the output side
_NO_GLYPH = chr(0x10FFFD)  # a private-use code point no emoji font maps
_NO_FLAG = "\U0001F1FF\U0001F1FF"  # regional indicators Z Z: no country's flag


def noto_font_path() -> Path:
    """``$IMAGEGEN_NOTO_EMOJI_FONT`` if set, else Debian's NotoColorEmoji.ttf; checked to exist."""
    if os.environ.get(NOTO_FONT_ENV):
        path = Path(os.environ[NOTO_FONT_ENV]).expanduser()
        if not path.is_file():
            raise ImagegenError(f"{NOTO_FONT_ENV}={path} is not a file; point it at a copy of "
                                "NotoColorEmoji.ttf, or unset it to use the one that "
                                "`apt-get install fonts-noto-color-emoji` installs")
        return path
    path = Path(NOTO_FONT_PATH)
    if not path.is_file():
        raise ImagegenError(f"the Noto Color Emoji font is not installed ({path} is missing); "
                            "install it with `apt-get install fonts-noto-color-emoji`, or set "
                            f"{NOTO_FONT_ENV} to a copy of NotoColorEmoji.ttf")
    return path


def _sequence(unified: str) -> str:
    """``"1F44B-1F3FB"`` -> the string of those code points."""
    return "".join(chr(int(code, 16)) for code in unified.split("-"))


def _unpremultiply(rgba: np.ndarray) -> np.ndarray:
    """Colour divided by alpha (straight alpha); fully transparent pixels become 0, 0, 0, 0."""
    alpha = rgba[..., 3:].astype(np.float32)
    rgb = rgba[..., :3].astype(np.float32) * 255.0 / np.maximum(alpha, 1.0)
    rgb = np.where(alpha > 0, np.clip(np.rint(rgb), 0, 255), 0).astype(np.uint8)
    return np.concatenate([rgb, rgba[..., 3:]], axis=-1)


def _fit(rgba: np.ndarray, side: int) -> np.ndarray:
    """``rgba`` shrunk (Lanczos) to fit ``side`` if larger, centred on a transparent square."""
    h, w = rgba.shape[:2]
    if max(h, w) > side:
        scale = side / max(h, w)
        im = Image.fromarray(rgba, "RGBA")  # Pillow resizes RGBA premultiplied
        rgba = np.asarray(im.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                    Image.Resampling.LANCZOS))
        h, w = rgba.shape[:2]
    out = np.zeros((side, side, 4), np.uint8)
    y, x = (side - h) // 2, (side - w) // 2
    out[y:y + h, x:x + w] = rgba
    return out


class EmojiRenderer:
    """Draws emoji sequences with a colour font; :meth:`render` says why one is skipped."""

    def __init__(self, path: Path, side: int = _SIDE) -> None:
        if not features.check("raqm"):
            raise ImagegenError("Pillow's text layout library libraqm is unavailable (it loads "
                                "FriBiDi at run time), so emoji sequences cannot be shaped; "
                                "install it with `apt-get install libfribidi0`")
        try:
            self.font = ImageFont.truetype(str(path), _STRIKE,
                                           layout_engine=ImageFont.Layout.RAQM)
        except OSError as e:
            raise ImagegenError(f"cannot open {path} as a {_STRIKE} px colour font ({e}); "
                                "reinstall it with `apt-get install --reinstall "
                                f"fonts-noto-color-emoji` or point {NOTO_FONT_ENV} at a copy "
                                "of NotoColorEmoji.ttf") from e
        self.side = side
        self.width = self.font.getlength("\U0001F600")  # one emoji's advance
        if self._ink(_sequence("1F600")) is None:
            raise ImagegenError(f"{path} draws no U+1F600 (grinning face): not a colour emoji "
                                f"font; point {NOTO_FONT_ENV} at a copy of NotoColorEmoji.ttf")
        self.missing = [ink for ink in (self._ink(_NO_GLYPH), self._ink(_NO_FLAG))
                        if ink is not None]

    def _ink(self, text: str) -> np.ndarray | None:
        """``text`` drawn, straight alpha, cropped to alpha > 0; None if it draws nothing."""
        left, top, right, bottom = self.font.getbbox(text)
        if right <= left or bottom <= top:
            return None
        canvas = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text((-left, -top), text, font=self.font, embedded_color=True)
        rgba = np.asarray(canvas)
        rows, cols = np.flatnonzero(rgba[..., 3].any(1)), np.flatnonzero(rgba[..., 3].any(0))
        if rows.size == 0:
            return None
        return _unpremultiply(rgba[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])

    def render(self, unified: str) -> np.ndarray | str:
        """The sequence ``unified`` as (side, side, 4) uint8, or why it is skipped."""
        text = _sequence(unified)
        if self.font.getlength(text) > 1.5 * self.width:
            return "not one glyph"
        ink = self._ink(text)
        if ink is None or any(np.array_equal(ink, m) for m in self.missing):
            return "not in the font"
        return _fit(ink, self.side)


def load_emoji_noto() -> BuiltinData:
    """Noto Color Emoji rendered 128x128x4 RGBA (straight alpha); label = the category.

    Example:
        >>> d = load_emoji_noto()
        >>> d.images.shape, d.keys[0], d.class_names[d.labels[0]]
        ((3773, 128, 128, 4), '1f600', 'Smileys & Emotion')
    """
    entries, categories, _ = emoji_list()
    path = noto_font_path()
    renderer = EmojiRenderer(path)
    images, labels, keys, skipped = [], [], [], {}
    index = {name: i for i, name in enumerate(categories)}
    for e in entries:
        out = renderer.render(e.unified)
        if isinstance(out, str):
            skipped.setdefault(out, []).append(e.unified.lower())
            continue
        images.append(out)
        labels.append(index[e.category])
        keys.append(e.unified.lower())
    if not images:
        raise ImagegenError(f"{path} draws none of the emoji; point {NOTO_FONT_ENV} at a copy "
                            "of NotoColorEmoji.ttf")
    info = {"source": f"Noto Color Emoji ({path}) rendered with Pillow at {_STRIKE} px; "
                      f"emoji and categories from {EMOJI_PACKAGE} {NPM_PINNED[EMOJI_PACKAGE]} "
                      "(npm) emoji.json",
            "license": "Noto Color Emoji: font OFL 1.1, artwork Apache-2.0 (Google)",
            "citation": "Noto Emoji (github.com/googlefonts/noto-emoji), Google; emoji list "
                        "from emoji-data (github.com/iamcal/emoji-data).",
            "skipped": "; ".join(f"{len(v)} {why}: {' '.join(v)}" for why, v in skipped.items())
                       or "none"}
    used = sorted(set(labels))
    if used != list(range(len(categories))):  # a category the font draws none of
        remap = {old: new for new, old in enumerate(used)}
        labels, categories = [remap[label] for label in labels], [categories[i] for i in used]
    return BuiltinData(np.stack(images), np.array(labels, np.int64), categories, keys=keys,
                       info=info)
