"""Prepared datasets: the on-disk format, its writer and its memory-mapped loader.

A prepared dataset is a folder (format ``imagegen-dataset``, version 1)::

    DATA/
      images-00000.npy   uint8 (n, H, W, C); at most SHARD_SIZE images per shard
      labels-00000.npy   int64 (n,); only when the dataset is labeled
      images-00001.npy   ...
      manifest.json      written last: a folder without it is an incomplete dataset

Shards are plain ``.npy`` files, so they memory-map and load without unpickling
(``allow_pickle=False``). Every file is written through :mod:`imagegen.atomic` (temporary
name in the same folder, then ``os.replace``). The manifest records shapes, class names
and counts, the sha256 of every shard file, the report of rejected inputs, and the
dataset ``checksum``: the sha256 of the lines ``"<images_sha256> <labels_sha256 or ->\\n"``,
one per shard in order. It identifies the pixel and label content; caches derived from a
dataset (reference statistics, latents) key on it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from imagegen.atomic import atomic_path, write_json
from imagegen.errors import ImagegenError

FORMAT = "imagegen-dataset"
VERSION = 1
MANIFEST_NAME = "manifest.json"
SHARD_SIZE = 10_000
_SHARD_RE = re.compile(r"^(images|labels)-\d{5}\.npy$")
_CREATE_HINT = "create it with `imagegen data import builtin:mnist5k {path}`"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Return the hex sha256 of a file's bytes.

    Example:
        >>> sha256_file("data/mnist/images-00000.npy")  # doctest: +SKIP
        '3f1c...'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def dataset_checksum(shards: Sequence[dict[str, Any]]) -> str:
    """The dataset identity: sha256 over the per-shard hashes, in shard order."""
    text = "".join(f"{s['images_sha256']} {s.get('labels_sha256') or '-'}\n" for s in shards)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# --------------------------------------------------------------------------- writing


def check_destination(dest: str | Path, overwrite: bool) -> Path:
    """Validate DEST before any work is done; return it as a Path.

    DEST may be missing, an empty folder, or (with ``overwrite``) an existing or
    incomplete prepared dataset. Any other non-empty folder is refused so user files are
    never mixed with or clobbered by a dataset.
    """
    dest = Path(dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise ImagegenError(f"destination {dest} is a file; choose a folder path for DEST")
    if not dest.exists() or not any(dest.iterdir()):
        return dest
    if (dest / MANIFEST_NAME).exists():
        if not overwrite:
            raise ImagegenError(
                f"a prepared dataset already exists in {dest}; pass --overwrite "
                "(overwrite=True) to replace it, or choose another DEST"
            )
        return dest
    if any(_SHARD_RE.match(p.name) for p in dest.iterdir()):
        if not overwrite:
            raise ImagegenError(
                f"{dest} holds an incomplete dataset (shards but no {MANIFEST_NAME}; an "
                "import was interrupted); pass --overwrite to replace it, or choose another DEST"
            )
        return dest
    raise ImagegenError(
        f"destination {dest} is a non-empty folder that is not a prepared dataset; "
        "choose a new or empty folder for DEST"
    )


def _save_npy(path: Path, array: np.ndarray) -> str:
    """Atomically save ``array`` as ``.npy`` at ``path``; return the file's sha256."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file handle: np.save would append .npy to a name
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        digest = sha256_file(tmp)
    return digest


class DatasetWriter:
    """Stream images (and labels) into shards, then write the manifest last.

    Nothing is written until the first shard is full or :meth:`finish` is called; at that
    point an old ``manifest.json`` in DEST is removed first (the folder is then an
    incomplete dataset until the new manifest lands). Stale shards of a replaced dataset
    are deleted after the new manifest is written.

    Example:
        >>> w = DatasetWriter("data/x", resolution=(8, 8), channels=1, labeled=False)
        >>> w.add(np.zeros((8, 8, 1), np.uint8))
        >>> manifest = w.finish(source="test", class_names=None, rejected=[])
    """

    def __init__(
        self,
        dest: str | Path,
        *,
        resolution: tuple[int, int],
        channels: int,
        labeled: bool,
        shard_size: int = SHARD_SIZE,
    ) -> None:
        if shard_size < 1:
            raise ImagegenError(f"shard_size must be >= 1, got {shard_size}")
        self.dest = Path(dest)
        self.shape = (int(resolution[0]), int(resolution[1]), int(channels))
        self.labeled = labeled
        self.shard_size = shard_size
        self.count = 0
        self.shards: list[dict[str, Any]] = []
        self._images: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._buffered = 0
        self._all_labels: list[np.ndarray] = []
        self._started = False

    def __len__(self) -> int:
        """Images added so far (written or buffered)."""
        return self.count + self._buffered

    def add(self, image: np.ndarray, label: int | None = None) -> None:
        """Append one uint8 image of shape (H, W, C) (and its label when labeled)."""
        self.add_batch(image[None], None if label is None else np.array([label], np.int64))

    def add_batch(self, images: np.ndarray, labels: np.ndarray | None = None) -> None:
        """Append uint8 images of shape (n, H, W, C) (and int labels (n,) when labeled)."""
        if images.dtype != np.uint8 or images.shape[1:] != self.shape:
            raise ValueError(f"expected uint8 (n, {self.shape}), got {images.dtype} {images.shape}")
        if self.labeled != (labels is not None):
            raise ValueError("labels must be given exactly when the dataset is labeled")
        start = 0
        while start < len(images):
            take = min(self.shard_size - self._buffered, len(images) - start)
            self._images.append(images[start : start + take])
            if labels is not None:
                self._labels.append(np.asarray(labels[start : start + take], np.int64))
            self._buffered += take
            start += take
            if self._buffered == self.shard_size:
                self._flush()

    def _flush(self) -> None:
        if self._buffered == 0:
            return
        if not self._started:
            self.dest.mkdir(parents=True, exist_ok=True)
            (self.dest / MANIFEST_NAME).unlink(missing_ok=True)
            self._started = True
        index = len(self.shards)
        images = np.concatenate(self._images) if len(self._images) > 1 else self._images[0]
        entry: dict[str, Any] = {"images": f"images-{index:05d}.npy", "labels": None,
                                 "count": int(len(images))}
        entry["images_sha256"] = _save_npy(self.dest / entry["images"], images)
        entry["labels_sha256"] = None
        if self.labeled:
            labels = np.concatenate(self._labels)
            entry["labels"] = f"labels-{index:05d}.npy"
            entry["labels_sha256"] = _save_npy(self.dest / entry["labels"], labels)
            self._all_labels.append(labels)
        self.shards.append(entry)
        self.count += entry["count"]
        self._images, self._labels, self._buffered = [], [], 0

    def finish(
        self,
        *,
        source: str,
        class_names: list[str] | None,
        rejected: list[dict[str, str]],
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Flush the last shard, write ``manifest.json`` and return the manifest."""
        self._flush()
        if self.count == 0:
            raise ImagegenError(f"no images to write to {self.dest}")
        class_counts = None
        if self.labeled:
            if not class_names:
                raise ValueError("a labeled dataset needs class_names")
            counts = np.bincount(np.concatenate(self._all_labels), minlength=len(class_names))
            if len(counts) != len(class_names):
                raise ValueError("a label is out of range of class_names")
            class_counts = {name: int(c) for name, c in zip(class_names, counts)}
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "source": source,
            "count": self.count,
            "resolution": [self.shape[0], self.shape[1]],
            "channels": self.shape[2],
            "class_names": list(class_names) if self.labeled else None,
            "class_counts": class_counts,
            "shards": self.shards,
            "checksum": dataset_checksum(self.shards),
            "rejected": rejected,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if extra:
            manifest.update(extra)
        write_json(self.dest / MANIFEST_NAME, manifest)
        keep = {s["images"] for s in self.shards} | {s["labels"] for s in self.shards}
        for p in self.dest.iterdir():
            if _SHARD_RE.match(p.name) and p.name not in keep:
                p.unlink(missing_ok=True)  # stale shard of a replaced dataset
        return manifest


# --------------------------------------------------------------------------- loading


@dataclass
class PreparedDataset:
    """A prepared dataset in memory: uint8 images (N, H, W, C), optional int64 labels.

    ``images`` is a read-only memory map when the dataset has one shard, else an
    in-memory concatenation of the shards.
    """

    path: Path
    images: np.ndarray = field(repr=False)
    labels: np.ndarray | None = field(repr=False)
    class_names: list[str] | None
    manifest: dict[str, Any] = field(repr=False)

    @property
    def num_classes(self) -> int:
        """Number of classes; 0 when the dataset is unlabeled."""
        return len(self.class_names) if self.class_names else 0

    @property
    def resolution(self) -> int:
        """Image height in pixels (images are square when made by the importer)."""
        return int(self.images.shape[1])

    @property
    def channels(self) -> int:
        """1 (grayscale) or 3 (RGB)."""
        return int(self.images.shape[3])

    @property
    def checksum(self) -> str:
        """The dataset identity from the manifest (sha256 over the shard hashes)."""
        return str(self.manifest["checksum"])

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _fail(path: Path, problem: str, fix: str | None = None) -> ImagegenError:
    fix = fix or _CREATE_HINT.format(path=path)
    return ImagegenError(f"dataset {path}: {problem}; {fix}")


def _read_manifest(path: Path) -> dict[str, Any]:
    mpath = path / MANIFEST_NAME
    if not mpath.exists():
        if any(_SHARD_RE.match(p.name) for p in path.iterdir()):
            raise _fail(path, f"incomplete (shards but no {MANIFEST_NAME}; the import was "
                        "interrupted)", "re-run `imagegen data import SRC DATA --overwrite`")
        raise _fail(path, f"not a prepared dataset (no {MANIFEST_NAME})")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(path, f"{MANIFEST_NAME} is unreadable ({e})",
                    "re-create the dataset with `imagegen data import SRC DATA --overwrite`") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _fail(path, f"{MANIFEST_NAME} is not an {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise _fail(path, f"unsupported dataset version {manifest.get('version')!r} "
                    f"(this imagegen reads version {VERSION})",
                    "re-import it with this version of imagegen")
    required = ("count", "resolution", "channels", "class_names", "shards", "checksum")
    missing = [k for k in required if k not in manifest]
    if missing or not isinstance(manifest["shards"], list) or not manifest["shards"]:
        raise _fail(path, f"{MANIFEST_NAME} is missing or has empty fields: "
                    f"{', '.join(missing) or 'shards'}",
                    "re-create the dataset with `imagegen data import SRC DATA --overwrite`")
    return manifest


def _shard_file(path: Path, name: Any) -> Path:
    if not isinstance(name, str) or not _SHARD_RE.match(name):
        raise _fail(path, f"manifest names an invalid shard file {name!r}")
    return path / name


def _load_npy(path: Path, file: Path, mmap: bool) -> np.ndarray:
    try:
        return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError as e:
        raise _fail(path, f"shard {file.name} is missing",
                    "re-create the dataset with `imagegen data import SRC DATA --overwrite`") from e
    except (OSError, ValueError) as e:
        raise _fail(path, f"shard {file.name} is unreadable ({e})",
                    "re-create the dataset with `imagegen data import SRC DATA --overwrite`") from e


def load_dataset(path: str | Path, *, verify: bool = False) -> PreparedDataset:
    """Open a prepared dataset folder (shards are memory-mapped, never unpickled).

    With ``verify=True`` every shard file is re-hashed and compared with the manifest.

    Example:
        >>> ds = load_dataset("data/mnist")  # doctest: +SKIP
        >>> ds.images.shape, ds.num_classes
        ((5000, 28, 28, 1), 10)
    """
    path = Path(path).expanduser()
    if path.is_file() and path.name == MANIFEST_NAME:
        path = path.parent
    if not path.exists():
        raise _fail(path, "folder does not exist")
    if not path.is_dir():
        raise _fail(path, "is a file, not a dataset folder")
    manifest = _read_manifest(path)
    resolution, channels = manifest["resolution"], manifest["channels"]
    class_names = manifest["class_names"]
    rebuild = "re-create the dataset with `imagegen data import SRC DATA --overwrite`"
    shape = (*[int(r) for r in resolution], int(channels))
    images_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    for shard in manifest["shards"]:
        ifile = _shard_file(path, shard.get("images"))
        images = _load_npy(path, ifile, mmap=True)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != shape \
                or images.shape[0] != shard.get("count"):
            raise _fail(path, f"shard {ifile.name} holds {images.dtype} {images.shape}, the "
                        f"manifest says uint8 ({shard.get('count')}, {shape[0]}, {shape[1]}, "
                        f"{shape[2]})", rebuild)
        if verify and sha256_file(ifile) != shard.get("images_sha256"):
            raise _fail(path, f"shard {ifile.name} does not match its sha256 in the manifest "
                        "(modified or corrupted)", rebuild)
        images_parts.append(images)
        if class_names is not None:
            lfile = _shard_file(path, shard.get("labels"))
            labels = _load_npy(path, lfile, mmap=False)
            if labels.dtype != np.int64 or labels.shape != (images.shape[0],):
                raise _fail(path, f"shard {lfile.name} holds {labels.dtype} {labels.shape}, "
                            f"expected int64 ({images.shape[0]},)", rebuild)
            if verify and sha256_file(lfile) != shard.get("labels_sha256"):
                raise _fail(path, f"shard {lfile.name} does not match its sha256 in the "
                            "manifest (modified or corrupted)", rebuild)
            label_parts.append(labels)
    if verify and dataset_checksum(manifest["shards"]) != manifest["checksum"]:
        raise _fail(path, "manifest checksum does not match its shard hashes", rebuild)
    all_images = images_parts[0] if len(images_parts) == 1 else np.concatenate(images_parts)
    if len(all_images) != manifest["count"]:
        raise _fail(path, f"shards hold {len(all_images)} images, the manifest says "
                    f"{manifest['count']}", rebuild)
    labels_all = None
    if class_names is not None:
        labels_all = np.concatenate(label_parts)
        if len(labels_all) and (labels_all.min() < 0 or labels_all.max() >= len(class_names)):
            raise _fail(path, f"labels outside 0..{len(class_names) - 1}", rebuild)
    return PreparedDataset(path=path, images=all_images, labels=labels_all,
                           class_names=list(class_names) if class_names is not None else None,
                           manifest=manifest)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def describe(ds: PreparedDataset | str | Path, max_rejected: int = 5) -> str:
    """A short text summary of a prepared dataset (for ``imagegen data info``).

    Example:
        >>> print(describe(load_dataset("data/digits")))  # doctest: +SKIP
        dataset data/digits (checksum 1f3a5c7e9b2d)
          source:   builtin:digits
          images:   1797 x 8x8x1 uint8 in 1 shard (113.4 KB)
          classes:  10: 0=178 1=182 2=177 ...
          rejected: 0 inputs
    """
    if not isinstance(ds, PreparedDataset):
        ds = load_dataset(ds)
    m = ds.manifest
    size = sum((ds.path / s["images"]).stat().st_size for s in m["shards"])
    n_shards = len(m["shards"])
    lines = [
        f"dataset {ds.path} (checksum {ds.checksum[:12]})",
        f"  source:   {m.get('source')}",
        f"  images:   {len(ds)} x {ds.images.shape[1]}x{ds.images.shape[2]}x{ds.channels} uint8 "
        f"in {n_shards} shard{'s' if n_shards != 1 else ''} ({_human_bytes(size)})",
    ]
    if ds.class_names:
        counts = m.get("class_counts") or {}
        per = " ".join(f"{name}={counts.get(name, '?')}" for name in ds.class_names)
        lines.append(f"  classes:  {ds.num_classes}: {per}")
    else:
        lines.append("  classes:  none (unlabeled)")
    rejected = m.get("rejected") or []
    lines.append(f"  rejected: {len(rejected)} input{'s' if len(rejected) != 1 else ''}")
    for r in rejected[:max_rejected]:
        lines.append(f"    {r.get('path')}: {r.get('reason')}")
    if len(rejected) > max_rejected:
        lines.append(f"    ... and {len(rejected) - max_rejected} more (see manifest.json)")
    if m.get("created"):
        lines.append(f"  created:  {m['created']}")
    return "\n".join(lines)
