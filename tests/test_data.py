"""Tests for imagegen.data: built-in import, folder import with bad files, format, errors."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagegen.data import BUILTINS, PreparedDataset, describe, import_images, load_dataset
from imagegen.data import clean, importer
from imagegen.data.builtins import mnist5k_path
from imagegen.errors import ImagegenError


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("digits") / "ds"
    import_images("builtin:digits", dest, progress=False)
    return dest


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("mnist") / "ds"
    import_images("builtin:mnist5k", dest, progress=False)
    return dest


def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _save(path: Path, im: Image.Image, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kw)


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    """Two classes of good images of assorted modes, plus every kind of bad file."""
    src = tmp_path / "photos"
    rng = np.random.default_rng(0)
    _save(src / "cat" / "a.png", Image.new("RGB", (40, 30), (200, 30, 30)))
    _save(src / "cat" / "b.jpg", Image.new("RGB", (50, 50), (30, 200, 30)), quality=95)
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:, 10:] = (0, 0, 255, 255)  # left half fully transparent, right half opaque blue
    _save(src / "cat" / "rgba.png", Image.fromarray(rgba, "RGBA"))
    pal = Image.new("RGB", (24, 24), (10, 20, 250)).convert("P", palette=Image.Palette.ADAPTIVE)
    _save(src / "dog" / "p.png", pal)
    _save(src / "dog" / "g.png", Image.new("L", (16, 16), 77))
    _save(src / "dog" / "sub" / "deep.png", Image.new("RGB", (16, 16), (5, 5, 5)))
    # bad files
    (src / "dog" / "corrupt.png").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB")
    full = _png_bytes(noise)
    (src / "dog" / "trunc.png").write_bytes(full[: len(full) // 2])
    (src / "cat" / "empty.png").write_bytes(b"")
    (src / "cat" / "notes.txt").write_text("not an image\n")
    (src / "cat" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 40)
    return src


# --------------------------------------------------------------------------- built-ins


def test_builtins_listed() -> None:
    assert set(BUILTINS) >= {"builtin:mnist5k", "builtin:digits"}
    assert all(isinstance(d, str) and d for d in BUILTINS.values())


def test_digits_round_trip(digits_dir: Path) -> None:
    from sklearn.datasets import load_digits

    ds = load_dataset(digits_dir, verify=True)
    assert isinstance(ds, PreparedDataset)
    assert len(ds) == 1797 and ds.images.shape == (1797, 8, 8, 1) and ds.images.dtype == np.uint8
    assert ds.labels is not None and ds.labels.dtype == np.int64 and ds.labels.shape == (1797,)
    assert sorted(set(ds.labels.tolist())) == list(range(10))
    assert ds.num_classes == 10 and ds.class_names == [str(i) for i in range(10)]
    assert ds.resolution == 8 and ds.channels == 1
    m = ds.manifest
    assert m["format"] == "imagegen-dataset" and m["version"] == 1
    assert m["source"] == "builtin:digits" and m["count"] == 1797
    assert m["resolution"] == [8, 8] and m["channels"] == 1
    assert sum(m["class_counts"].values()) == 1797
    assert m["class_counts"]["0"] == int((ds.labels == 0).sum())
    assert m["rejected"] == [] and len(ds.checksum) == 64
    d = load_digits()
    expected = np.rint(d.images * 255.0 / 16.0).astype(np.uint8)
    np.testing.assert_array_equal(ds.images[..., 0], expected)
    np.testing.assert_array_equal(ds.labels, d.target)


def test_digits_resized_and_rgb(tmp_path: Path) -> None:
    m = import_images("builtin:digits", tmp_path / "d28", size=28, channels=3, progress=False)
    ds = load_dataset(tmp_path / "d28")
    # one pair of UCI digits differs by a few levels in 8 pixels: a near duplicate at 28 px
    assert m["report"]["duplicates"] == {"near": 1} and m["report"]["inputs"] == 1797
    assert m["resolution"] == [28, 28] and ds.images.shape == (1796, 28, 28, 3)
    assert ds.resolution == 28 and ds.channels == 3
    np.testing.assert_array_equal(ds.images[..., 0], ds.images[..., 2])  # gray replicated
    assert np.asarray(ds.images).max() > 200  # strokes survive the resize


def test_mnist5k(mnist_dir: Path) -> None:
    ds = load_dataset(mnist_dir)
    assert ds.images.shape == (5000, 28, 28, 1) and ds.images.dtype == np.uint8
    assert np.bincount(ds.labels).tolist() == [500] * 10
    assert ds.manifest["class_counts"] == {str(i): 500 for i in range(10)}
    table = np.loadtxt(mnist5k_path(), delimiter=",", dtype=np.int64)
    np.testing.assert_array_equal(np.asarray(ds.images).reshape(5000, -1), table[:, :-1])
    np.testing.assert_array_equal(ds.labels, table[:, -1])


def test_multiple_shards_concatenate(tmp_path: Path, digits_dir: Path) -> None:
    m = import_images("builtin:digits", tmp_path / "s", progress=False, shard_size=500)
    assert [s["count"] for s in m["shards"]] == [500, 500, 500, 297]
    ds = load_dataset(tmp_path / "s", verify=True)
    ref = load_dataset(digits_dir)
    np.testing.assert_array_equal(ds.images, ref.images)
    np.testing.assert_array_equal(ds.labels, ref.labels)


# --------------------------------------------------------------------------- folders


def test_folder_import_keeps_good_and_reports_bad(image_folder: Path, tmp_path: Path) -> None:
    files_seen = sum(len(f) for _, _, f in os.walk(image_folder))
    m = import_images(str(image_folder), tmp_path / "out", size=16, progress=False)
    ds = load_dataset(tmp_path / "out", verify=True)
    assert m["count"] == len(ds) == 6
    assert m["count"] + len(m["rejected"]) == files_seen
    assert ds.class_names == ["cat", "dog"] and m["class_counts"] == {"cat": 3, "dog": 3}
    # kept images in sorted path order: cat/a, cat/b, cat/rgba, dog/g, dog/p, dog/sub/deep
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.images.shape == (6, 16, 16, 3)  # colour images present -> RGB
    assert tuple(ds.images[0, 8, 8]) == (200, 30, 30)
    rgba = ds.images[2].astype(int)
    assert (rgba[:, :6] >= 250).all()  # transparent half composited on white
    assert rgba[:, 12:, 2].min() > 240 and rgba[:, 12:, 0].max() < 15  # opaque blue half
    assert abs(int(ds.images[3, 8, 8, 0]) - 77) <= 1  # grayscale kept
    assert ds.images[4, 8, 8, 2] > 200  # palette expanded to its colours

    reasons = {r["path"]: r["reason"] for r in m["rejected"]}
    assert set(reasons) == {"cat/empty.png", "cat/notes.txt", "cat/.DS_Store",
                            "dog/corrupt.png", "dog/trunc.png"}
    assert "empty" in reasons["cat/empty.png"]
    assert "not an image" in reasons["cat/notes.txt"]
    assert "not an image" in reasons["dog/corrupt.png"]
    assert "truncated" in reasons["dog/trunc.png"]
    assert "rejected: 5" in describe(ds)


def test_folder_grayscale_unlabeled_default_size(tmp_path: Path) -> None:
    src = tmp_path / "gray"
    for i in range(3):
        _save(src / f"{i}.png", Image.new("L", (30 + i, 20), 40 * i))
    _save(src / "more" / "x.png", Image.new("L", (10, 10), 9))  # not every image in a sub-folder
    m = import_images(str(src), tmp_path / "out", progress=False)
    ds = load_dataset(tmp_path / "out")
    assert ds.images.shape == (4, importer.DEFAULT_FOLDER_SIZE, importer.DEFAULT_FOLDER_SIZE, 1)
    assert ds.labels is None and ds.class_names is None and ds.num_classes == 0
    assert m["class_counts"] is None and all(s["labels"] is None for s in m["shards"])
    assert "unlabeled" in describe(ds)


def test_exif_orientation_applied(tmp_path: Path) -> None:
    arr = np.full((20, 40), 255, np.uint8)  # stored 40 wide x 20 high
    arr[:10] = 0  # top half black
    im = Image.fromarray(arr, "L")
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: black ends up on the right
    _save(tmp_path / "src" / "r.jpg", im, quality=95, exif=exif.tobytes())
    import_images(str(tmp_path / "src"), tmp_path / "out", size=20, progress=False)
    img = load_dataset(tmp_path / "out").images[0, :, :, 0].astype(int)
    assert img[:, :8].mean() > 200 and img[:, 12:].mean() < 50


def test_oversized_image_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clean, "MAX_PIXELS", 500)
    _save(tmp_path / "src" / "big.png", Image.new("L", (30, 30)))
    _save(tmp_path / "src" / "small.png", Image.new("L", (10, 10)))
    m = import_images(str(tmp_path / "src"), tmp_path / "out", size=8, progress=False)
    assert m["count"] == 1
    assert m["rejected"][0]["path"] == "big.png" and "too large" in m["rejected"][0]["reason"]


# --------------------------------------------------------------------------- integrity


def test_tampered_shard_fails_verify(tmp_path: Path) -> None:
    dest = tmp_path / "ds"
    import_images("builtin:digits", dest, progress=False)
    shard = dest / "images-00000.npy"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF
    shard.write_bytes(bytes(data))
    load_dataset(dest)  # shapes still fine without verify
    with pytest.raises(ImagegenError, match="sha256"):
        load_dataset(dest, verify=True)
    shard.write_bytes(bytes(data[: len(data) // 2]))  # truncated: caught without verify
    with pytest.raises(ImagegenError, match="images-00000.npy"):
        load_dataset(dest)


def test_shard_shape_mismatch(tmp_path: Path) -> None:
    dest = tmp_path / "ds"
    import_images("builtin:digits", dest, progress=False)
    mpath = dest / "manifest.json"
    m = json.loads(mpath.read_text())
    m["resolution"] = [28, 28]
    mpath.write_text(json.dumps(m))
    with pytest.raises(ImagegenError, match="manifest says"):
        load_dataset(dest)
    mpath.write_text("{not json")
    with pytest.raises(ImagegenError, match="unreadable"):
        load_dataset(dest)


def test_no_temp_files_left(digits_dir: Path, image_folder: Path, tmp_path: Path) -> None:
    assert sorted(p.name for p in digits_dir.iterdir()) == [
        "images-00000.npy", "labels-00000.npy", "manifest.json", "report.jsonl"]
    import_images(str(image_folder), tmp_path / "out", size=8, progress=False)
    assert not [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_overwrite_replaces_and_cleans_stale_shards(tmp_path: Path) -> None:
    dest = tmp_path / "ds"
    import_images("builtin:digits", dest, progress=False, shard_size=600)
    assert (dest / "images-00002.npy").exists()
    with pytest.raises(ImagegenError, match="already exists.*--overwrite"):
        import_images("builtin:digits", dest, progress=False)
    m = import_images("builtin:digits", dest, size=16, overwrite=True, progress=False)
    assert len(m["shards"]) == 1 and not (dest / "images-00002.npy").exists()
    assert load_dataset(dest, verify=True).resolution == 16


# --------------------------------------------------------------------------- errors


def test_error_messages(tmp_path: Path) -> None:
    with pytest.raises(ImagegenError, match="does not exist") as e:
        import_images(str(tmp_path / "nope"), tmp_path / "out", progress=False)
    assert "builtin:mnist5k" in str(e.value)
    with pytest.raises(ImagegenError, match="unknown built-in") as e:
        import_images("builtin:cifar", tmp_path / "out", progress=False)
    assert "builtin:digits" in str(e.value)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("hi")
    with pytest.raises(ImagegenError, match="no manifest.json") as e:
        load_dataset(tmp_path / "plain")
    assert "imagegen data import" in str(e.value)
    with pytest.raises(ImagegenError, match="does not exist"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(ImagegenError, match="not a prepared dataset"):
        import_images("builtin:digits", tmp_path / "plain", overwrite=True, progress=False)
    with pytest.raises(ImagegenError, match="no usable images"):
        import_images(str(tmp_path / "plain"), tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImagegenError, match="holds no files"):
        import_images(str(tmp_path / "empty"), tmp_path / "out", progress=False)
    with pytest.raises(ImagegenError, match="channels"):
        import_images("builtin:digits", tmp_path / "out", channels=2, progress=False)
    with pytest.raises(ImagegenError, match="inside"):
        import_images(str(tmp_path / "plain"), tmp_path / "plain" / "ds", progress=False)
    assert not (tmp_path / "out").exists()  # nothing written on failure


def test_preview_grid_has_one_row_per_class(tmp_path):
    from PIL import Image

    from imagegen.cli import main
    from imagegen.data import import_images, load_dataset

    import_images("builtin:digits", tmp_path / "d", progress=False)
    assert main(["data", "preview", str(tmp_path / "d"), "--per-row", "4"]) == 0
    grid = np.asarray(Image.open(tmp_path / "d" / "preview.png"))
    pad, h = 2, 8
    assert grid.shape == (10 * (h + pad) + pad, 4 * (h + pad) + pad)
    ds = load_dataset(tmp_path / "d")
    # every tile of row c is an image of class c from the data set
    for c in (0, 7):
        tile = grid[pad + c * (h + pad): pad + c * (h + pad) + h, pad: pad + h]
        same = np.all(ds.images[..., 0] == tile, axis=(1, 2))
        assert same.any() and set(ds.labels[same].tolist()) == {c}
