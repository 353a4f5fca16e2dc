"""imagegen: collect images, train a generator, generate, evaluate — on the machine you have.

Example:
    >>> import imagegen
    >>> imagegen.import_images("builtin:mnist5k", "data/mnist5k")
    >>> imagegen.train("data/mnist5k", "runs/mnist", budget="10m")
    >>> images = imagegen.load("runs/mnist").generate(n=16, seed=0)
    >>> report = imagegen.evaluate("runs/mnist", "data/mnist5k", n=2000)

Names are imported lazily, so ``imagegen --help`` answers without loading torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ImagegenError

__version__ = "0.1.0"

_API = {
    "import_images": "data",
    "load_dataset": "data",
    "train": "training",
    "load": "generate",
    "evaluate": "evaluation",
}
__all__ = [*_API, "ImagegenError", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'imagegen' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
