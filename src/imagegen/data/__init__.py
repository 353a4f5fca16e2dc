"""The data step: import images into prepared datasets and load them.

A prepared dataset is a folder of memory-mappable uint8 ``.npy`` shards (N, H, W, C),
int64 label shards and a ``manifest.json`` (see :mod:`imagegen.data.dataset`).

Example:
    >>> from imagegen.data import import_images, load_dataset, describe
    >>> manifest = import_images("builtin:digits", "data/digits")  # doctest: +SKIP
    >>> ds = load_dataset("data/digits")  # doctest: +SKIP
    >>> print(describe(ds))  # doctest: +SKIP
"""

from imagegen.data.builtins import BUILTINS
from imagegen.data.dataset import PreparedDataset, describe, load_dataset
from imagegen.data.importer import import_images
from imagegen.data.preview import preview

__all__ = ["BUILTINS", "PreparedDataset", "describe", "import_images", "load_dataset", "preview"]
