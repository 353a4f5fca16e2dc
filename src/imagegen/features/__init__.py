"""Feature networks computed from a prepared data set and stored next to it in ``DATA/features/``.

- :mod:`imagegen.features.evaluator`: the evaluator classifier whose penultimate activations
  are FID's features on small data sets (Heusel et al. 2017 use Inception-v3; that extractor
  is added later behind the same ``features(images)`` / ``sha256`` interface).

Example:
    >>> from imagegen.features import load_evaluator
    >>> ev = load_evaluator("data/mnist", train_if_missing=True)
    >>> ev.features(images).shape
    (N, 128)
"""

from .evaluator import (
    ARCHITECTURES,
    Evaluator,
    evaluator_path,
    load_evaluator,
    train_evaluator,
    train_evaluator_for,
)

__all__ = [
    "ARCHITECTURES",
    "Evaluator",
    "evaluator_path",
    "load_evaluator",
    "train_evaluator",
    "train_evaluator_for",
]
