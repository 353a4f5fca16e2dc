"""``imagegen data preview``: a grid PNG of a prepared data set, one row per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imagegen.data.dataset import PreparedDataset, load_dataset
from imagegen.errors import ImagegenError
from imagegen.images import make_grid, save_png


def preview(data: str | Path | PreparedDataset, out: str | Path | None = None, per_row: int = 10, seed: int = 0) -> Path:
    """Write a grid of randomly chosen images (seeded): one row per class, or 10 rows if unlabeled.

    Returns the PNG's path (default ``DATA/preview.png``).

    Example:
        >>> preview("data/mnist5k")  # doctest: +SKIP
        PosixPath('data/mnist5k/preview.png')
    """
    ds = data if isinstance(data, PreparedDataset) else load_dataset(data)
    if per_row < 1:
        raise ImagegenError(f"per_row must be >= 1, got {per_row}")
    if len(ds) == 0:
        raise ImagegenError(f"{ds.path} holds no images; nothing to preview")
    rng = np.random.default_rng(seed)
    if ds.labels is not None and ds.num_classes:
        rows = []
        for c in range(ds.num_classes):
            idx = np.flatnonzero(ds.labels == c)
            pick = rng.choice(idx, size=min(per_row, len(idx)), replace=False) if len(idx) else idx
            row = np.full((per_row, *ds.images.shape[1:]), 255, np.uint8)
            row[: len(pick)] = ds.images[np.sort(pick)]
            rows.append(row)
        images = np.concatenate(rows)
    else:
        k = min(len(ds), per_row * 10)
        images = ds.images[np.sort(rng.choice(len(ds), size=k, replace=False))]
    path = Path(out) if out is not None else ds.path / "preview.png"
    save_png(path, make_grid(np.asarray(images), per_row))
    return path
