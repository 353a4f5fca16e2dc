"""Features of a data set's reference images, cached next to the data set.

FID (Heusel et al. 2017), KID and precision/recall compare generated images with the features
of the data set's own images. :func:`reference_features` computes them once per data set and
feature extractor and caches them in ``DATA/features/ref-feats-{name}.npz``:

- ``features``: float32 ``(n, D)``, one row per reference image;
- ``data_checksum``: the data set checksum (:attr:`imagegen.data.PreparedDataset.checksum`,
  the sha256 over its shard hashes);
- ``extractor_sha256``: the sha256 of the extractor's weights;
- ``name``: the extractor's name (``mlp`` or ``cnn`` for the data set's evaluator,
  ``inception``, or ``evaluator-``/``inception-`` and the first 12 hex digits of the sha256
  of a weights file given to ``--features``).

The file is used only when the checksum, the sha256 and the number of rows all match;
otherwise (also when it is missing or unreadable) the features are recomputed and the file
rewritten atomically. The reference images are the whole data set when it holds at most
``REF_MAX`` images, else ``REF_MAX`` indices drawn without replacement by
``numpy.random.default_rng(0)``, sorted, so every evaluation of a data set uses the same
subset. :class:`imagegen.training.fid_monitor.FidMonitor` reads the same cache for the training-time FID
(the evaluator's for a labelled data set, ``ref-feats-inception.npz`` for an unlabeled one).

Example:
    >>> ref = reference_features("data/mnist", evaluator, "mlp")  # doctest: +SKIP
    >>> ref_features_path("data/mnist", "mlp")  # doctest: +SKIP
    PosixPath('data/mnist/features/ref-feats-mlp.npz')
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..features import FeatureExtractor

__all__ = ["REF_MAX", "ref_features_path", "reference_cached", "reference_features"]

REF_MAX = 10_000  # reference images for KID / precision / recall (all of smaller data sets)


def ref_features_path(data_dir: str | Path, name: str) -> Path:
    """Where cached reference features live: ``DATA/features/ref-feats-{name}.npz``."""
    return Path(data_dir) / "features" / f"ref-feats-{name}.npz"


def _reference_indices(n: int, max_images: int) -> np.ndarray:
    """The data set rows the reference uses: all, or a fixed seeded subset of ``max_images``."""
    return np.arange(n) if n <= max_images else \
        np.sort(np.random.default_rng(0).choice(n, max_images, replace=False))


def _read_cache(path: Path, checksum: str, sha256: str, rows: int) -> np.ndarray | None:
    """The cached features at ``path`` if its checksum, sha256 and row count match, else None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if (str(z["data_checksum"]) == checksum and str(z["extractor_sha256"]) == sha256
                    and len(z["features"]) == rows):
                return np.array(z["features"], dtype=np.float32)
    except (OSError, ValueError, KeyError):
        pass  # missing, unreadable or stale
    return None


def reference_cached(data_dir: str | Path, name: str, sha256: str, *, max_images: int = REF_MAX) -> bool:
    """Whether :func:`reference_features` would read ``DATA/features/ref-feats-{name}.npz`` for an
    extractor with weights ``sha256`` instead of computing the features.

    Example:
        >>> reference_cached("data/flowers", "inception", InceptionFeatures.load().sha256)  # doctest: +SKIP
        True
    """
    from ..data import load_dataset

    ds = load_dataset(data_dir)
    rows = len(_reference_indices(len(ds), max_images))
    return _read_cache(ref_features_path(data_dir, name), ds.checksum, sha256, rows) is not None


def reference_features(
    data_dir: str | Path,
    extractor: FeatureExtractor,
    name: str,
    *,
    max_images: int = REF_MAX,
    progress: bool = True,
) -> np.ndarray:
    """Features (float32, (n, D)) of the data set's images, cached with the data set.

    Data sets larger than ``max_images`` use a fixed seeded subset. The cache
    ``DATA/features/ref-feats-{name}.npz`` (:func:`ref_features_path`) is keyed by the data
    set checksum and the extractor's sha256 (and the number of rows), and recomputed when
    either changes or the file cannot be read. Features are computed 1,000 images at a time,
    so a data set larger than RAM works.

    Example:
        >>> ref = reference_features("data/mnist", evaluator, "mlp")  # doctest: +SKIP
        >>> ref.shape  # doctest: +SKIP
        (5000, 128)
    """
    from ..data import load_dataset

    ds = load_dataset(data_dir)
    path = ref_features_path(data_dir, name)
    idx = _reference_indices(len(ds), max_images)
    cached = _read_cache(path, ds.checksum, extractor.sha256, len(idx))
    if cached is not None:
        return cached
    chunks = []
    with tqdm(total=len(idx), desc=f"reference features ({name})", unit="img", disable=not progress,
              file=sys.stderr, delay=1.0, leave=False) as bar:
        for start in range(0, len(idx), 1000):
            part = ds.images[idx[start:start + 1000]]
            chunks.append(np.asarray(extractor.features(part, progress=False), np.float32))
            bar.update(len(part))
    feats = np.concatenate(chunks)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, features=feats, data_checksum=np.str_(ds.checksum),
                     extractor_sha256=np.str_(extractor.sha256), name=np.str_(name))
    return feats
