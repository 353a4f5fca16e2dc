"""imagegen: collect images, train a generator, generate, evaluate — on the machine you have.

Example:
    >>> import imagegen
    >>> imagegen.import_images("builtin:mnist5k", "data/mnist5k")
    >>> imagegen.train("data/mnist5k", "runs/mnist", budget="10m")
    >>> images = imagegen.load("runs/mnist").generate(n=16, seed=0)
"""

from .data import import_images, load_dataset
from .errors import ImagegenError
from .generate import load
from .training import train

__version__ = "0.1.0"
__all__ = ["import_images", "load_dataset", "load", "train", "ImagegenError", "__version__"]
