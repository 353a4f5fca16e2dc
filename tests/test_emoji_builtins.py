"""Tests for the colour emoji built-ins (``emoji``, ``emoji-noto``) and the npm package locator.

The tests on the real sets use the npm package emoji-datasource-twitter 16.0.0 and Debian's
Noto Color Emoji font, and are skipped (saying what to install) only where those are missing;
``make setup`` and ``.ci/run`` install both. The rest builds a fake npm package in a
temporary folder and always runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagegen.data import import_images, load_dataset
from imagegen.data.builtins import BUILTINS, BuiltinData, emoji_noto, load_builtin
from imagegen.data.builtins.emoji import EMOJI_PACKAGE, emoji_list, load_emoji
from imagegen.data.builtins.emoji_noto import EmojiRenderer, load_emoji_noto, noto_font_path
from imagegen.data.builtins.npm_packages import (NPM_DIR_ENV, npm_package_dir,
                                                 npm_search_dirs)
from imagegen.data.sources.builtin import BUILTIN_DEFAULTS
from imagegen.errors import ImagegenError

FIX = "npm install --prefix ~/.cache/imagegen/npm emoji-datasource-twitter@16.0.0"
CATEGORIES = ["Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink",
              "Travel & Places", "Activities", "Objects", "Symbols", "Flags"]


# -- a fake npm package, and a world where the real one cannot be found ---------------------

@pytest.fixture
def isolated(tmp_path: Path, monkeypatch) -> Path:
    """No IMAGEGEN_NPM_DIR, an empty current folder and an empty home: nothing installed."""
    for name in ("cwd", "home"):
        (tmp_path / name).mkdir()
    monkeypatch.delenv(NPM_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def _png(path: Path, colour: tuple[int, int, int], box: tuple[int, int, int, int]) -> None:
    """A 64x64 RGBA PNG: transparent, with an opaque rectangle and a half-transparent pixel."""
    rgba = np.zeros((64, 64, 4), np.uint8)
    x0, y0, x1, y1 = box
    rgba[y0:y1, x0:x1] = (*colour, 255)
    rgba[y1, x0] = (*colour, 128)
    Image.fromarray(rgba, "RGBA").save(path)


def _fake_package(root: Path, version: str = "16.0.0") -> Path:
    """node_modules/emoji-datasource-twitter under ``root``: 4 emoji.json entries (a face, a
    hand with one skin-tone variant, a Component swatch), 4 PNGs listed there and 1 not."""
    package = root / "node_modules" / EMOJI_PACKAGE
    images = package / "img" / "twitter" / "64"
    images.mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": EMOJI_PACKAGE, "version": version}))
    emoji = [  # listed out of sort_order: the loader sorts
        {"unified": "1F44B", "image": "1f44b.png", "category": "People & Body", "sort_order": 2,
         "skin_variations": {"1F3FB": {"unified": "1F44B-1F3FB", "image": "1f44b-1f3fb.png"}}},
        {"unified": "1F600", "image": "1f600.png", "category": "Smileys & Emotion",
         "sort_order": 1},
        {"unified": "1F3FB", "image": "1f3fb.png", "category": "Component", "sort_order": 3},
    ]
    (package / "emoji.json").write_text(json.dumps(emoji))
    _png(images / "1f600.png", (250, 200, 0), (10, 10, 50, 50))
    _png(images / "1f44b.png", (250, 200, 0), (20, 5, 40, 60))
    _png(images / "1f44b-1f3fb.png", (240, 210, 190), (20, 5, 40, 60))
    _png(images / "1f3fb.png", (240, 210, 190), (0, 0, 63, 63))
    _png(images / "extra.png", (0, 0, 255), (0, 0, 8, 8))  # not in emoji.json: skipped
    return package


def test_locator_finds_a_package_through_the_env_variable(isolated: Path, monkeypatch) -> None:
    package = _fake_package(isolated / "npm")
    monkeypatch.setenv(NPM_DIR_ENV, str(isolated / "npm"))
    assert npm_package_dir(EMOJI_PACKAGE) == package
    assert npm_search_dirs() == [isolated / "npm" / "node_modules",
                                 isolated / "cwd" / "node_modules",
                                 isolated / "home" / ".cache" / "imagegen" / "npm" / "node_modules"]
    d = load_emoji()
    # sort_order, each emoji followed by its variants; Component and the unlisted PNG left out
    assert d.keys == ["1f600.png", "1f44b.png", "1f44b-1f3fb.png"]
    assert d.class_names == ["Smileys & Emotion", "People & Body"]
    assert d.labels.tolist() == [0, 1, 1] and d.labels.dtype == np.int64
    assert d.images.shape == (3, 64, 64, 4) and d.images.dtype == np.uint8
    np.testing.assert_array_equal(d.images[0], np.asarray(Image.open(package / "img/twitter/64/"
                                                                     "1f600.png")))
    assert d.images[0, 10, 10].tolist() == [250, 200, 0, 255]
    assert d.images[0, 50, 10].tolist() == [250, 200, 0, 128]  # straight alpha, as stored
    assert "1 PNGs not in emoji.json" in d.info["skipped"]
    assert "1 Component" in d.info["skipped"]


def test_locator_search_order_and_wrong_versions(isolated: Path, monkeypatch) -> None:
    cache = _fake_package(isolated / "home" / ".cache" / "imagegen" / "npm")
    assert npm_package_dir(EMOJI_PACKAGE) == cache  # the default place
    local = _fake_package(isolated / "cwd")
    assert npm_package_dir(EMOJI_PACKAGE) == local  # ./node_modules comes first
    _fake_package(isolated / "npm", version="15.1.2")
    monkeypatch.setenv(NPM_DIR_ENV, str(isolated / "npm"))
    assert npm_package_dir(EMOJI_PACKAGE) == local  # another version is passed over


def test_locator_rejects_a_wrong_version_naming_the_fix(isolated: Path, monkeypatch) -> None:
    _fake_package(isolated / "npm", version="15.1.2")
    monkeypatch.setenv(NPM_DIR_ENV, str(isolated / "npm"))
    with pytest.raises(ImagegenError) as e:
        load_emoji()
    msg = str(e.value)
    assert "15.1.2" in msg and FIX in msg and "\n" not in msg


def test_missing_package_names_the_npm_command(isolated: Path) -> None:
    for load in (load_emoji, load_emoji_noto, lambda: load_builtin("builtin:emoji")):
        with pytest.raises(ImagegenError) as e:
            load()
        msg = str(e.value)
        assert FIX in msg and "not found in" in msg and "\n" not in msg


def test_broken_emoji_list_names_the_fix(isolated: Path, monkeypatch) -> None:
    package = _fake_package(isolated / "npm")
    monkeypatch.setenv(NPM_DIR_ENV, str(isolated / "npm"))
    (package / "emoji.json").write_text('[{"unified": "1F600"}]')  # no image, no category
    with pytest.raises(ImagegenError, match="cannot read the emoji list") as e:
        emoji_list()
    assert FIX in str(e.value)
    (package / "emoji.json").unlink()
    with pytest.raises(ImagegenError, match="emoji.json is missing") as e:
        emoji_list()
    assert FIX in str(e.value)


def test_registry_and_import_defaults() -> None:
    assert "Twemoji" in BUILTINS["builtin:emoji"] and "Noto" in BUILTINS["builtin:emoji-noto"]
    assert BUILTIN_DEFAULTS["emoji"] == {"size": 64, "channels": 4, "mode": "pad"}
    assert BUILTIN_DEFAULTS["emoji-noto"] == {"size": 128, "channels": 4, "mode": "pad"}
    assert BUILTIN_DEFAULTS["sprites"]["channels"] == 4


def test_import_of_the_fake_package_keeps_rgba(isolated: Path, monkeypatch) -> None:
    _fake_package(isolated / "npm")
    monkeypatch.setenv(NPM_DIR_ENV, str(isolated / "npm"))
    manifest = import_images("builtin:emoji", isolated / "data", workers=0, progress=False)
    ds = load_dataset(isolated / "data", verify=True)
    assert ds.images.shape == (3, 64, 64, 4) and ds.class_names == ["Smileys & Emotion",
                                                                    "People & Body"]
    np.testing.assert_array_equal(np.asarray(ds.images), load_emoji().images)
    assert manifest["source_info"]["license"].startswith("Twemoji graphics CC BY 4.0")


# -- the font: always-run checks ---------------------------------------------------------------

def test_missing_font_names_the_fix(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(emoji_noto.NOTO_FONT_ENV, raising=False)
    monkeypatch.setattr(emoji_noto, "NOTO_FONT_PATH", str(tmp_path / "NotoColorEmoji.ttf"))
    with pytest.raises(ImagegenError) as e:
        noto_font_path()
    msg = str(e.value)
    assert "apt-get install fonts-noto-color-emoji" in msg and "IMAGEGEN_NOTO_EMOJI_FONT" in msg
    monkeypatch.setenv(emoji_noto.NOTO_FONT_ENV, str(tmp_path / "elsewhere.ttf"))
    with pytest.raises(ImagegenError, match=r"IMAGEGEN_NOTO_EMOJI_FONT=\S+elsewhere\.ttf is not"):
        noto_font_path()
    (tmp_path / "elsewhere.ttf").write_bytes(b"not a font")
    assert noto_font_path() == tmp_path / "elsewhere.ttf"
    with pytest.raises(ImagegenError, match="cannot open .* as a 109 px colour font"):
        EmojiRenderer(tmp_path / "elsewhere.ttf")


def test_unpremultiply_and_fit() -> None:
    straight = np.array([[[200, 100, 50, 255], [200, 100, 50, 128], [9, 9, 9, 0]]], np.uint8)
    premultiplied = straight.copy()
    premultiplied[..., :3] = np.rint(straight[..., :3] * (straight[..., 3:] / 255.0))
    out = emoji_noto._unpremultiply(premultiplied)
    assert out[0, 0].tolist() == [200, 100, 50, 255] and out[0, 2].tolist() == [0, 0, 0, 0]
    assert np.abs(out[0, 1].astype(int) - [200, 100, 50, 128]).max() <= 1
    small = np.full((20, 30, 4), 255, np.uint8)
    fitted = emoji_noto._fit(small, 128)  # centred at its own size
    assert fitted.shape == (128, 128, 4) and fitted[..., 3].sum() == 20 * 30 * 255
    ys, xs = np.nonzero(fitted[..., 3])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (54, 73, 49, 78)
    big = emoji_noto._fit(np.full((100, 256, 4), 255, np.uint8), 128)  # shrunk to 50x128
    ys, xs = np.nonzero(big[..., 3] > 127)
    assert xs.min() == 0 and xs.max() == 127 and ys.max() - ys.min() + 1 == 50


# -- the real sets -----------------------------------------------------------------------------

def _needs_package() -> None:
    try:
        npm_package_dir(EMOJI_PACKAGE)
    except ImagegenError as e:
        pytest.skip(str(e))


def _needs_font() -> Path:
    try:
        return noto_font_path()
    except ImagegenError as e:
        pytest.skip(str(e))


def _check_rgba_set(d: BuiltinData, side: int) -> None:
    """What both emoji sets promise: RGBA pictures with real transparency, valid labels."""
    n = len(d.images)
    assert n >= 2000 and d.images.shape == (n, side, side, 4) and d.images.dtype == np.uint8
    assert d.labels.shape == (n,) and d.labels.dtype == np.int64
    assert d.class_names == CATEGORIES and "Component" not in d.class_names
    assert d.labels.min() >= 0 and d.labels.max() < len(d.class_names)
    assert (np.bincount(d.labels, minlength=len(d.class_names)) >= 80).all()
    assert len(d.keys) == n and len(set(d.keys)) == n
    alpha = d.images[..., 3]
    assert (alpha == 0).mean() > 0.2 and (alpha == 255).mean() > 0.2
    assert (alpha.reshape(n, -1).max(axis=1) == 255).all()  # no picture is fully transparent
    assert ((alpha > 0) & (alpha < 255)).any()  # antialiased edges
    corners = alpha[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 0).mean() > 0.7  # pictures on a transparent background
    sample = d.images[::10, ..., :3].astype(np.int16)  # every 10th picture, to save memory
    assert (np.ptp(sample, axis=-1) > 60).mean() > 0.1  # colour, not gray
    assert {"source", "license", "citation"} <= set(d.info)


@pytest.fixture(scope="module")
def twemoji() -> BuiltinData:
    _needs_package()
    return load_builtin("builtin:emoji")


@pytest.fixture(scope="module")
def noto() -> BuiltinData:
    _needs_package()
    _needs_font()
    return load_builtin("builtin:emoji-noto")


def test_emoji(twemoji: BuiltinData) -> None:
    d = twemoji
    _check_rgba_set(d, 64)
    assert len(d.images) == 3781  # 1,911 emoji + 1,875 skin tones - 5 Component swatches
    assert np.bincount(d.labels).tolist() == [169, 2261, 159, 131, 218, 85, 264, 224, 270]
    assert all(k.endswith(".png") for k in d.keys) and d.keys[0] == "1f600.png"
    assert d.class_names[d.labels[d.keys.index("1f44b-1f3fb.png")]] == "People & Body"
    assert d.class_names[d.labels[d.keys.index("1f1eb-1f1f7.png")]] == "Flags"
    assert "1f3fb.png" not in d.keys  # a Component swatch
    folder = npm_package_dir(EMOJI_PACKAGE) / "img" / "twitter" / "64"
    i = d.keys.index("1f436.png")  # dog face: the PNG's own pixels
    np.testing.assert_array_equal(d.images[i],
                                  np.asarray(Image.open(folder / "1f436.png").convert("RGBA")))
    assert "CC BY 4.0" in d.info["license"]


def test_emoji_noto(noto: BuiltinData, twemoji: BuiltinData) -> None:
    d = noto
    _check_rgba_set(d, 128)
    lowered = {k[:-len(".png")] for k in twemoji.keys}
    assert set(d.keys) <= lowered  # the same emoji list, minus what the font lacks
    skipped = len(lowered) - len(d.keys)
    assert skipped < 50 and str(skipped) in d.info["skipped"]
    for key in ("1f600", "1f44b-1f3fb", "1f1e6-1f1fa", "0023-fe0f-20e3",
                "1f468-200d-1f469-200d-1f467"):  # single, skin tone, flag, keycap, ZWJ
        assert key in d.keys
        assert d.labels[d.keys.index(key)] == twemoji.labels[twemoji.keys.index(key + ".png")]
    alpha = d.images[..., 3] > 0
    rows, cols = alpha.any(axis=2), alpha.any(axis=1)  # ink is centred and nearly fills 128
    for occupied in (rows, cols):
        first, last = occupied.argmax(axis=1), 127 - occupied[:, ::-1].argmax(axis=1)
        assert (np.abs(first - (127 - last)) <= 1).all()
        assert np.median(last - first + 1) > 100
    # the skin-tone variants differ from their base emoji in colour
    a, b = d.images[d.keys.index("1f44b")], d.images[d.keys.index("1f44b-1f3ff")]
    assert np.abs(a[..., :3].astype(int) - b[..., :3]).mean() > 20
    assert "OFL 1.1" in d.info["license"]


def test_noto_skips_what_the_font_cannot_draw() -> None:
    renderer = EmojiRenderer(_needs_font())
    assert renderer.render("1F600").shape == (128, 128, 4)
    assert renderer.render("10FFFD") == "not in the font"  # no glyph
    assert renderer.render("1F1FD-1F1FD") == "not in the font"  # the "unknown flag" (XX)
    assert renderer.render("1F600-200D-1F600") == "not one glyph"  # no such ZWJ sequence
    again = EmojiRenderer(_needs_font()).render("1F600")
    np.testing.assert_array_equal(renderer.render("1F600"), again)  # deterministic
