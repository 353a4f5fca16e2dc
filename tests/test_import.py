"""The import pipeline: sources, cleaning modes, filters, dedupe, resume, workers, streaming."""

from __future__ import annotations

import http.server
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagegen.data import describe, import_images, load_dataset
from imagegen.data import importer
from imagegen.data.dataset import ShardedImages
from imagegen.data.download import DownloadOptions
from imagegen.errors import ImagegenError


def _png(arr: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def _pattern(seed: int, size: int = 32, channels: int = 3) -> np.ndarray:
    """A distinct smooth image per seed (dedupe must not merge two different seeds)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    planes = [np.sin(2 * np.pi * (rng.uniform(0.5, 3) * x + rng.uniform(0.5, 3) * y + rng.uniform()))
              for _ in range(channels)]
    arr = (np.stack(planes, -1) * 100 + 128 + rng.normal(0, 20, (size, size, channels)))
    arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr[..., 0] if channels == 1 else arr


def _report(dest: Path) -> list[dict]:
    return [json.loads(line) for line in (dest / "report.jsonl").read_text().splitlines()]


def _files(dest: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(dest.iterdir()) if p.is_file()}


def _class_folder(root: Path, n_per_class: int = 6, classes=("cat", "dog")) -> Path:
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            (root / name / f"{i:03d}.png").write_bytes(_png(_pattern(100 * c + i)))
    return root


# --------------------------------------------------------------------------- loader


def test_sharded_images_index_like_one_array() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 255, (n, 4, 4, 3), dtype=np.uint8) for n in (5, 1, 7)]
    whole = np.concatenate(parts)
    view = ShardedImages(parts)
    assert view.shape == whole.shape and len(view) == 13
    idx = np.array([12, 0, 5, 5, 6, 3, 11])
    np.testing.assert_array_equal(view[idx], whole[idx])
    np.testing.assert_array_equal(view[-1], whole[-1])
    np.testing.assert_array_equal(view[2:11:3], whole[2:11:3])
    np.testing.assert_array_equal(view[idx, :, :, 0], whole[idx, :, :, 0])
    np.testing.assert_array_equal(view[..., 1], whole[..., 1])
    np.testing.assert_array_equal(np.asarray(view), whole)
    with pytest.raises(IndexError):
        view[np.array([13])]


def test_streaming_training_equals_in_memory(tmp_path: Path, monkeypatch) -> None:
    from conftest import tiny_config
    from imagegen import training

    data = tmp_path / "digits"
    import_images("builtin:digits", data, shard_size=500, progress=False, workers=0)
    ds = load_dataset(data)
    assert len(ds.manifest["shards"]) == 4 and isinstance(ds.images, ShardedImages)
    cfg = tiny_config(data, steps=4)
    runs = {}
    for name, limit in (("memory", 2**40), ("stream", 0)):
        monkeypatch.setattr(training.batches, "IN_MEMORY_BYTES", limit)
        losses: list[float] = []
        training.train(data, tmp_path / name, config=cfg, progress=False,
                       on_step=lambda s, l: losses.append(l))
        runs[name] = losses
    assert len(runs["memory"]) == 4 and runs["memory"] == runs["stream"]
    batches = training.ImageBatches(ds.images, in_memory_bytes=0)
    assert batches.streaming and batches.images is ds.images


# --------------------------------------------------------------------------- cleaning


def _bands() -> np.ndarray:
    """40x20 RGB: red columns 0-9, green 10-29, blue 30-39."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :10, 0] = 255
    arr[:, 10:30, 1] = 255
    arr[:, 30:, 2] = 255
    return arr


@pytest.mark.parametrize("mode", ["center-crop", "pad", "stretch"])
def test_resize_modes_geometry(tmp_path: Path, mode: str) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "bands.png").write_bytes(_png(_bands()))
    import_images(str(src), tmp_path / "out", size=20, mode=mode, progress=False)
    img = load_dataset(tmp_path / "out").images[0].astype(int)
    assert img.shape == (20, 20, 3)
    if mode == "center-crop":  # the central 20 columns are all green
        assert (img[:, :, 1] > 200).all() and (img[:, :, 0] < 60).all()
    elif mode == "pad":  # 20x10 content centred, white bars above and below
        assert (img[:4] == 255).all() and (img[-4:] == 255).all()
        assert img[10, 1, 0] > 200 and img[10, 1, 1] < 60 and img[10, 18, 2] > 200
    else:  # squeezed: red in the left quarter, blue in the right quarter, full height
        assert (img[:, 1, 0] > 200).all() and (img[:, 18, 2] > 200).all()
        assert (img[:, 10, 1] > 200).all()


def test_filters_and_channels(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "small.png").write_bytes(_png(_pattern(1, size=12)))
    (src / "wide.png").write_bytes(_png(np.full((10, 50, 3), 90, np.uint8)))
    (src / "ok.png").write_bytes(_png(_pattern(2, size=40)))
    m = import_images(str(src), tmp_path / "out", size=16, min_size=16, max_aspect=3,
                      progress=False)
    codes = {r["path"]: r["code"] for r in m["rejected"]}
    assert m["count"] == 1 and codes == {"small.png": "too-small", "wide.png": "too-small"}
    m = import_images(str(src), tmp_path / "out2", size=16, max_aspect=3, progress=False)
    assert {r["path"]: r["code"] for r in m["rejected"]} == {"wide.png": "aspect"}
    # gray content stored as one channel; RGBA kept with --channels 4
    gray = tmp_path / "gray"
    gray.mkdir()
    for i in range(3):  # RGB files whose pixels are gray count as gray
        g = _pattern(i, channels=1)
        (gray / f"{i}.png").write_bytes(_png(np.stack([g] * 3, -1) if i else g))
    assert import_images(str(gray), tmp_path / "g", size=16, progress=False)["channels"] == 1
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0], rgba[:8, :, 3], rgba[8:, :, 3] = 200, 255, 0
    alpha = tmp_path / "alpha"
    alpha.mkdir()
    (alpha / "a.png").write_bytes(_png(rgba))
    m = import_images(str(alpha), tmp_path / "a4", size=16, channels=4, progress=False)
    px = load_dataset(tmp_path / "a4").images[0]
    assert m["channels"] == 4 and (px[:8, :, 3] == 255).all() and (px[8:, :, 3] == 0).all()
    px3 = import_images(str(alpha), tmp_path / "a3", size=16, progress=False)
    composited = load_dataset(tmp_path / "a3").images[0]
    assert px3["channels"] == 3 and (composited[8:] == 255).all()  # on white
    assert (composited[:8, :, 0] == 200).all() and (composited[:8, :, 1] == 0).all()


# --------------------------------------------------------------------------- dedupe


def test_exact_and_near_duplicates_are_reported(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    base = _pattern(7, size=48)
    (src / "a.png").write_bytes(_png(base))
    (src / "b_copy.bmp").write_bytes(_png(base, "BMP"))  # same pixels, other format
    (src / "c_jpeg.jpg").write_bytes(_png(base, "JPEG", quality=90))  # near copy
    (src / "d_other.png").write_bytes(_png(_pattern(8, size=48)))
    m = import_images(str(src), tmp_path / "out", size=32, progress=False)
    rep = {r["input"]: r for r in _report(tmp_path / "out")}
    assert m["count"] == 2 and m["report"]["duplicates"] == {"exact": 1, "near": 1}
    assert rep["b_copy.bmp"]["status"] == "duplicate" and rep["b_copy.bmp"]["of"] == "a.png"
    assert rep["b_copy.bmp"]["match"] == "exact"
    assert rep["c_jpeg.jpg"]["match"] == "near" and rep["c_jpeg.jpg"]["of"] == "a.png"
    assert rep["d_other.png"]["status"] == "kept"
    m = import_images(str(src), tmp_path / "all", size=32, dedupe=False, progress=False)
    assert m["count"] == 4
    m = import_images(str(src), tmp_path / "exact", size=32, near_bits=None, progress=False)
    assert m["count"] == 3 and m["report"]["duplicates"] == {"exact": 1}


def test_same_phash_but_different_digits_are_both_kept(tmp_path: Path) -> None:
    """MNIST images 646 and 790 are two different '1's with near-identical phash."""
    from imagegen.data.builtins import load_mnist5k
    from imagegen.data.clean import perceptual_hash
    from imagegen.data.dedupe import hamming

    images = load_mnist5k().images
    a, b = images[646], images[790]
    assert hamming(perceptual_hash(a), perceptual_hash(b)) <= 4  # a phash candidate pair
    src = tmp_path / "in"
    src.mkdir()
    (src / "646.png").write_bytes(_png(a[..., 0]))
    (src / "790.png").write_bytes(_png(b[..., 0]))
    m = import_images(str(src), tmp_path / "out", size=28, progress=False)
    assert m["count"] == 2  # the pixel check tells them apart


# --------------------------------------------------------------------------- sources


def test_zip_and_tar_archives_read_in_place(tmp_path: Path) -> None:
    folder = _class_folder(tmp_path / "photos")
    (folder / "cat" / "notes.txt").write_text("not an image")
    ref = import_images(str(folder), tmp_path / "ref", size=16, progress=False)
    zpath, tpath = tmp_path / "photos.zip", tmp_path / "photos.tar.gz"
    with zipfile.ZipFile(zpath, "w") as zf, tarfile.open(tpath, "w:gz") as tf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
                tf.add(p, p.relative_to(folder).as_posix())
    for archive in (zpath, tpath):
        dest = tmp_path / archive.name.replace(".", "_")
        m = import_images(str(archive), dest, size=16, progress=False)
        assert m["class_names"] == ["cat", "dog"] and m["count"] == ref["count"] == 12
        assert [r["path"] for r in m["rejected"]] == ["cat/notes.txt"]
        assert m["checksum"] == ref["checksum"]  # same pixels and labels as the folder


def _parquet(path: Path, rows: list[tuple[bytes | None, int]], names: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    images = pa.array([None if b is None else {"bytes": b, "path": f"{i}.png"}
                       for i, (b, _) in enumerate(rows)], image_type)
    labels = pa.array([lab for _, lab in rows], pa.int64())
    hf = {"info": {"features": {"image": {"_type": "Image"},
                                "label": {"_type": "ClassLabel", "names": names}}}}
    table = pa.table({"image": images, "label": labels}).replace_schema_metadata(
        {"huggingface": json.dumps(hf)})
    pq.write_table(table, path, row_group_size=3)


def test_parquet_hugging_face_layout(tmp_path: Path) -> None:
    rows = [(_png(_pattern(i)), i % 3) for i in range(8)]
    rows[4] = (None, 1)
    rows[6] = (b"garbage", 0)
    _parquet(tmp_path / "train.parquet", rows, ["apple", "banana", "cherry"])
    m = import_images(str(tmp_path / "train.parquet"), tmp_path / "out", size=16, progress=False)
    ds = load_dataset(tmp_path / "out")
    assert m["class_names"] == ["apple", "banana", "cherry"] and m["count"] == 6
    assert ds.labels.tolist() == [0, 1, 2, 0, 2, 1]  # rows 0,1,2,3,5,7
    assert {r["path"]: r["code"] for r in m["rejected"]} == {
        "train.parquet#4": "empty", "train.parquet#6": "not-an-image"}
    with pytest.raises(ImagegenError, match="no column 'pixels'"):
        import_images(str(tmp_path / "train.parquet"), tmp_path / "x", image_column="pixels",
                      progress=False)


class _Images(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_url_list_with_labels(tmp_path: Path) -> None:
    _Images.files = {f"/{i}.png": _png(_pattern(i)) for i in range(4)}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        lines = ["url,label"] + [f"{base}/{i}.png,{'ab'[i % 2]}" for i in range(4)]
        lines += [f"{base}/missing.png,a", "ftp://example.invalid/x.png,b"]
        (tmp_path / "urls.csv").write_text("\n".join(lines) + "\n")
        opts = DownloadOptions(timeout=5, retries=0, workers=4)
        m = import_images(str(tmp_path / "urls.csv"), tmp_path / "out", size=16,
                          download_options=opts, progress=False)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert m["count"] == 4 and m["class_counts"] == {"a": 2, "b": 2}
    codes = {r["path"].rsplit("/", 1)[-1]: r["code"] for r in m["rejected"]}
    assert codes == {"missing.png": "http-error", "x.png": "bad-url"}
    assert len(_report(tmp_path / "out")) == 6


def test_labels_csv_and_none(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        (src / f"{i}.png").write_bytes(_png(_pattern(i)))
    (tmp_path / "labels.csv").write_text("path,label\n0.png,x\n1.png,y\n2.png,x\n")
    m = import_images(str(src), tmp_path / "out", size=16, labels=tmp_path / "labels.csv",
                      progress=False)
    assert m["class_counts"] == {"x": 2, "y": 1}
    assert m["rejected"] == [{"path": "3.png", "reason": "not listed in the labels file",
                              "code": "unlabeled"}]
    folder = _class_folder(tmp_path / "classes", 2)
    assert import_images(str(folder), tmp_path / "n", size=16, labels="none",
                         progress=False)["class_names"] is None


# --------------------------------------------------------------------------- scale


def test_workers_give_the_same_bytes(tmp_path: Path, monkeypatch) -> None:
    folder = _class_folder(tmp_path / "photos", 30)
    monkeypatch.setattr(importer, "PARALLEL_MIN_INPUTS", 0)
    import_images(str(folder), tmp_path / "serial", size=16, workers=0, shard_size=7,
                  progress=False)
    import_images(str(folder), tmp_path / "parallel", size=16, workers=2, shard_size=7,
                  progress=False)
    a, b = _files(tmp_path / "serial"), _files(tmp_path / "parallel")
    assert len([n for n in a if n.startswith("images-")]) == 9 and a == b


def test_killed_import_resumes_to_identical_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1500):  # noisy 64 px images: slow enough to kill part-way
        (folder / f"{i:05d}.png").write_bytes(_png(rng.integers(0, 255, (64, 64), np.uint8)))
    args = dict(size=32, shard_size=100, workers=0, progress=False)
    import_images(str(folder), tmp_path / "ref", **args)
    dest = tmp_path / "killed"
    code = (f"from imagegen.data import import_images; import_images({str(folder)!r}, "
            f"{str(dest)!r}, **{args!r})")
    proc = subprocess.Popen([sys.executable, "-c", code])
    state = dest / ".import" / "state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["consumed"] >= 300:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL, "the import finished before it could be killed"
    assert not (dest / "manifest.json").exists()
    with pytest.raises(ImagegenError, match="incomplete"):
        load_dataset(dest)
    with pytest.raises(ImagegenError, match="unfinished import"):  # other options: refuse
        import_images(str(folder), dest, **{**args, "size": 16})
    m = import_images(str(folder), dest, **args)
    assert m["count"] == 1500 and not (dest / ".import").exists()
    assert _files(dest) == _files(tmp_path / "ref")


def test_info_counts_per_class_and_reason(tmp_path: Path) -> None:
    folder = _class_folder(tmp_path / "photos", 3)
    (folder / "dog" / "empty.png").write_bytes(b"")
    (folder / "dog" / "copy.png").write_bytes((folder / "dog" / "000.png").read_bytes())
    import_images(str(folder), tmp_path / "out", size=16, progress=False)
    text = describe(tmp_path / "out")
    assert "cat  3" in text and "dog  3" in text
    assert "8: 6 kept, 1 duplicates (1 exact), 1 rejected" in text
    assert "empty" in text and "dog/empty.png" in text
