"""Prepared datasets: the on-disk format and its memory-mapped, streaming loader.

A prepared dataset is a folder (format ``imagegen-dataset``, version 1)::

    DATA/
      images-00000.npy   uint8 (n, H, W, C); shards of bounded size (SHARD_SIZE images,
                         at most ~128 MB each)
      labels-00000.npy   int64 (n,); only when the dataset is labeled
      masks-00000.npy    uint8 (n, H, W); only for sets with per-pixel masks
      images-00001.npy   ...
      report.jsonl       one line per input: kept, duplicate (of which input) or rejected
      manifest.json      written last: a folder without it is an incomplete dataset

Shards are plain ``.npy`` files, so they memory-map and load without unpickling
(``allow_pickle=False``). The writer is :mod:`imagegen.data.writer`; every file is
written atomically. The manifest records shapes, class names and counts, the sha256 of
every shard file and of the report, a summary of the report (counts per status and per
rejection reason), the rejected inputs, and the dataset ``checksum``: the sha256 of the
lines ``"<images_sha256> <labels_sha256 or ->\\n"``, one per shard in order. It
identifies the pixel and label content; caches derived from a dataset (reference
statistics, latents) key on it. Nothing in it depends on the time of the import, so the
same inputs and options give a byte-identical dataset.

:func:`load_dataset` never reads all shards into memory: ``images`` is a
:class:`ShardedImages` view that reads only the rows it is indexed with, so a dataset
larger than RAM can be trained on.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from imagegen.atomic import atomic_path
from imagegen.errors import ImagegenError

FORMAT = "imagegen-dataset"
VERSION = 1
MANIFEST_NAME = "manifest.json"
SHARD_SIZE = 10_000
SHARD_RE = re.compile(r"^(images|labels|masks)-\d{5}\.npy$")
REPORT_NAME = "report.jsonl"
_REBUILD = "re-create the dataset with `imagegen data import SRC DATA --overwrite`"
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


def save_npy(path: Path, array: np.ndarray) -> str:
    """Atomically save ``array`` as ``.npy`` at ``path``; return the file's sha256."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file handle: np.save would append .npy to a name
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        digest = sha256_file(tmp)
    return digest


# --------------------------------------------------------------------------- loading


class ShardedImages:
    """A read-only uint8 (N, ...) array over memory-mapped shards, read row by row.

    Indexing with an int, a slice or an integer array reads just those rows, in the
    order asked for; ``np.asarray(view)`` loads everything (only for small sets).

    Example:
        >>> view = load_dataset("data/big").images  # doctest: +SKIP
        >>> view[np.array([5, 70_000, 3])].shape  # doctest: +SKIP
        (3, 64, 64, 3)
    """

    def __init__(self, parts: Sequence[np.ndarray]) -> None:
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])
        first = self.parts[0]
        self.shape = (int(self.offsets[-1]), *first.shape[1:])
        self.dtype = first.dtype
        self.ndim = first.ndim
        self.nbytes = int(np.prod(self.shape)) * first.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):  # rows first, then the rest on what was read
            if not key or key[0] is Ellipsis:
                return np.asarray(self)[key]
            rows = self[key[0]]
            rest = key[1:] if isinstance(key[0], (int, np.integer)) else (slice(None), *key[1:])
            return rows[rest]
        if key is Ellipsis:
            return np.asarray(self)
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self.shape[0] if key < 0 else 0)
            if not 0 <= i < self.shape[0]:
                raise IndexError(f"index {key} out of range for {self.shape[0]} images")
            s = int(np.searchsorted(self.offsets, i, side="right")) - 1
            return np.asarray(self.parts[s][i - self.offsets[s]])
        if isinstance(key, slice):
            key = np.arange(*key.indices(self.shape[0]))
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.nonzero(idx)[0]
        idx = idx.astype(np.int64).reshape(-1)
        idx = np.where(idx < 0, idx + self.shape[0], idx)
        if idx.size and (idx.min() < 0 or idx.max() >= self.shape[0]):
            raise IndexError(f"index out of range for {self.shape[0]} images")
        out = np.empty((len(idx), *self.shape[1:]), self.dtype)
        shard = np.searchsorted(self.offsets, idx, side="right") - 1
        for s in np.unique(shard):
            rows = np.nonzero(shard == s)[0]
            local = idx[rows] - self.offsets[s]
            order = np.argsort(local, kind="stable")  # read each shard front to back
            out[rows[order]] = self.parts[s][local[order]]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = np.concatenate(self.parts) if len(self.parts) > 1 else np.array(self.parts[0])
        return whole if dtype is None else whole.astype(dtype)


@dataclass
class PreparedDataset:
    """A prepared dataset: uint8 images (N, H, W, C), optional int64 labels and masks.

    ``images`` (and ``masks``) are :class:`ShardedImages` views over memory-mapped
    shards; index them to read rows, ``np.asarray`` them to load all.
    """

    path: Path
    images: ShardedImages = field(repr=False)
    labels: np.ndarray | None = field(repr=False)
    class_names: list[str] | None
    manifest: dict[str, Any] = field(repr=False)
    masks: ShardedImages | None = field(default=None, repr=False)

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
        if any(SHARD_RE.match(p.name) for p in path.iterdir()):
            raise _fail(path, f"incomplete (shards but no {MANIFEST_NAME}; the import was "
                        "interrupted)", "re-run `imagegen data import SRC DATA --overwrite`")
        raise _fail(path, f"not a prepared dataset (no {MANIFEST_NAME})")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(path, f"{MANIFEST_NAME} is unreadable ({e})",
                    _REBUILD) from e
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
                    _REBUILD)
    return manifest


def _shard_file(path: Path, name: Any) -> Path:
    if not isinstance(name, str) or not SHARD_RE.match(name):
        raise _fail(path, f"manifest names an invalid shard file {name!r}")
    return path / name


def _load_npy(path: Path, file: Path, mmap: bool) -> np.ndarray:
    try:
        return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError as e:
        raise _fail(path, f"shard {file.name} is missing",
                    _REBUILD) from e
    except (OSError, ValueError) as e:
        raise _fail(path, f"shard {file.name} is unreadable ({e})",
                    _REBUILD) from e


def _load_part(path: Path, shard: dict[str, Any], kind: str, dtype: Any,
               shape: tuple[Any, ...], *, mmap: bool, verify: bool) -> np.ndarray:
    """Load one shard file (images, labels or masks), checking shape, dtype and sha256."""
    file = _shard_file(path, shard.get(kind))
    arr = _load_npy(path, file, mmap=mmap)
    if arr.dtype != dtype or arr.shape != shape:
        raise _fail(path, f"shard {file.name} holds {arr.dtype} {arr.shape}, the manifest "
                    f"says {np.dtype(dtype)} {shape}", _REBUILD)
    if verify and sha256_file(file) != shard.get(f"{kind}_sha256"):
        raise _fail(path, f"shard {file.name} does not match its sha256 in the manifest "
                    "(modified or corrupted)", _REBUILD)
    return arr


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
    shape = (*[int(r) for r in resolution], int(channels))
    images_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    mask_parts: list[np.ndarray] = []
    for shard in manifest["shards"]:
        count = shard.get("count")
        images_parts.append(_load_part(path, shard, "images", np.uint8, (count, *shape),
                                       mmap=True, verify=verify))
        if class_names is not None:
            label_parts.append(_load_part(path, shard, "labels", np.int64, (count,),
                                          mmap=False, verify=verify))
        if manifest.get("masks"):
            mask_parts.append(_load_part(path, shard, "masks", np.uint8, (count, *shape[:2]),
                                         mmap=True, verify=verify))
    if verify and dataset_checksum(manifest["shards"]) != manifest["checksum"]:
        raise _fail(path, "manifest checksum does not match its shard hashes", _REBUILD)
    all_images = ShardedImages(images_parts)
    if len(all_images) != manifest["count"]:
        raise _fail(path, f"shards hold {len(all_images)} images, the manifest says "
                    f"{manifest['count']}", _REBUILD)
    labels_all = None
    if class_names is not None:
        labels_all = np.concatenate(label_parts)
        if len(labels_all) and (labels_all.min() < 0 or labels_all.max() >= len(class_names)):
            raise _fail(path, f"labels outside 0..{len(class_names) - 1}", _REBUILD)
    return PreparedDataset(path=path, images=all_images, labels=labels_all,
                           class_names=list(class_names) if class_names is not None else None,
                           manifest=manifest,
                           masks=ShardedImages(mask_parts) if mask_parts else None)


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
        width = max(len(n) for n in ds.class_names)
        lines.append(f"  classes:  {ds.num_classes}")
        for name in ds.class_names:
            lines.append(f"    {name:<{width}}  {counts.get(name, '?')}")
    else:
        lines.append("  classes:  none (unlabeled)")
    if ds.masks is not None:
        lines.append("  masks:    per-pixel uint8 masks (masks-*.npy)")
    report = m.get("report") or {}
    rejected = m.get("rejected") or []
    if report:
        dups = report.get("duplicates") or {}
        lines.append(f"  inputs:   {report.get('inputs')}: {report.get('kept')} kept, "
                     f"{sum(dups.values())} duplicates"
                     + (f" ({', '.join(f'{v} {k}' for k, v in dups.items())})" if dups else "")
                     + f", {len(rejected)} rejected (every input in {REPORT_NAME})")
    lines.append(f"  rejected: {len(rejected)} input{'s' if len(rejected) != 1 else ''}")
    for code, count in sorted((report.get("rejected") or {}).items(), key=lambda kv: -kv[1]):
        example = next((r for r in rejected if r.get("code") == code), {})
        lines.append(f"    {count:>6}  {code:<16} e.g. {example.get('path')}: {example.get('reason')}")
    if not report.get("rejected"):
        for r in rejected[:max_rejected]:
            lines.append(f"    {r.get('path')}: {r.get('reason')}")
    return "\n".join(lines)
