"""Scoring uint8 images against a prepared data set: the metrics of ``imagegen evaluate``.

:func:`evaluate_images` reports, from the features of one extractor (``--features``):

- FID (Heusel et al. 2017) against the data set's reference features
  (:mod:`imagegen.evaluation.reference`), as the mean and spread over sample-seed groups
  (:func:`imagegen.metrics.fid_groups`) and pooled over all images;
- KID (Binkowski et al. 2018) and improved precision and recall with k = 3 (Kynkäänniemi et
  al. 2019);

and from the images themselves:

- the memorised fraction (Carlini et al. 2023): images whose pixel-L2 distance to the nearest
  training image is below ``MEMORIZATION_RATIO`` = 1/3 of the mean distance to the next 50,
  searched among at most ``MEMORIZATION_MAX_TRAIN`` training images;
- with the data set's evaluator classifier (labelled data sets): the fraction classified with
  confidence > ``CONFIDENCE_THRESHOLD`` = 0.9 and, for class labels, the class accuracy;
- with class labels and a labelled data set: CAS (Ravuri & Vinyals 2019), a classifier trained
  on the generated images and tested on the data set's real held-out split.

The features are those of the data set's evaluator classifier by default
(:mod:`imagegen.features.evaluator`; ``--features evaluator``), or of Inception-v3 pool3, the
standard FID features (``--features inception``, :mod:`imagegen.features.inception`), or of a
weights file (a ``.safetensors`` file is read as an evaluator, anything else as Inception).

Example:
    >>> report = evaluate_images(samples, "data/mnist", labels=classes)  # doctest: +SKIP
    >>> report["fid"], report["precision"], report["memorization"]  # doctest: +SKIP
    (4.21, 0.81, 0.0)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImagegenError
from ..features import Evaluator, FeatureExtractor, load_evaluator
from ..metrics import (
    cas,
    class_accuracy,
    confident_fraction,
    fid_groups,
    frechet_distance,
    gaussian_stats,
    kid,
    memorization_ratios,
    precision_recall,
)
from .reference import reference_features

__all__ = ["CONFIDENCE_THRESHOLD", "MEMORIZATION_RATIO", "MEMORIZATION_MAX_TRAIN", "evaluate_images"]

CONFIDENCE_THRESHOLD = 0.9
MEMORIZATION_RATIO = 1 / 3  # Carlini et al. 2023
MEMORIZATION_MAX_TRAIN = 50_000  # training images searched for nearest neighbours


def _feature_extractor(features: str, evaluator: Evaluator | None) -> tuple[FeatureExtractor, str]:
    """The extractor named by ``--features`` (evaluator, inception or a weights path)."""
    if features == "evaluator":
        if evaluator is None:
            raise ImagegenError("this data set has no labels, so it has no evaluator; use "
                                "--features inception")
        return evaluator, evaluator.arch
    from ..features.inception import InceptionFeatures

    if features == "inception":
        return InceptionFeatures.load(), "inception"
    path = Path(features)
    if not path.is_file():
        raise ImagegenError(f"--features must be 'evaluator', 'inception' or a weights file; "
                            f"{features} is none of these")
    if path.suffix == ".safetensors":
        ev = Evaluator.load(path)
        return ev, f"evaluator-{ev.sha256[:12]}"
    extractor = InceptionFeatures.load(path)
    return extractor, f"inception-{extractor.sha256[:12]}"


def evaluate_images(
    images: np.ndarray,
    data_dir: str | Path,
    *,
    labels: np.ndarray | None = None,
    features: str = "evaluator",
    arch: str = "mlp",
    seeds: int = 1,
    train_if_missing: bool = True,
    evaluator: Evaluator | str | Path | None = None,
    progress: bool = True,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score uint8 ``images`` (N, H, W, C) against the prepared data set in ``data_dir``.

    Returns a report with ``fid`` (mean over ``seeds`` contiguous equal groups of the
    images, one per sample seed, with ``fid_std`` and ``fid_seeds``; ``fid_pooled`` is the
    FID of all of them), ``kid``/``kid_std``, ``precision``/``recall`` (k=3, against as
    many reference images), ``memorization`` (Carlini et al. 2023, pixel L2 against the
    training images), ``confident_fraction``, and with ``labels`` ``class_accuracy`` and
    ``cas`` (a classifier trained on the labelled images, tested on the data set's real
    held-out split). ``features``: ``evaluator`` (the data set's classifier, ``arch``),
    ``inception`` (standard FID Inception-v3) or a weights path. ``details``, if given,
    receives the nearest training index and memorisation ratio of every image.

    Example:
        >>> report = evaluate_images(samples, "data/mnist", labels=classes)  # doctest: +SKIP
        >>> report["fid"], report["precision"], report["memorization"]  # doctest: +SKIP
        (4.21, 0.81, 0.0)
    """
    from ..data import load_dataset
    from ..features.evaluator import fixed_split

    ds = load_dataset(data_dir)
    images = np.asarray(images)
    if images.ndim == 3 and ds.channels == 1:
        images = images[..., None]
    expected = (ds.images.shape[1], ds.images.shape[2], ds.channels)
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        got = f"{images.shape[1]}x{images.shape[2]} with {images.shape[3]} channel(s)" \
            if images.ndim == 4 else f"an array of shape {images.shape}"
        raise ImagegenError(
            f"dataset {data_dir} has {expected[0]}x{expected[1]} images with {expected[2]} "
            f"channel(s); the images to evaluate are {got}. Generate them at the data set's "
            "resolution, or evaluate against a data set of matching resolution"
        )
    if images.dtype != np.uint8:
        raise ImagegenError(f"images to evaluate must be uint8 (0-255), got {images.dtype}")
    if seeds < 1 or len(images) < 2 * seeds:
        raise ImagegenError(f"FID needs at least 2 images per seed group; got {len(images)} "
                            f"images for {seeds} seed(s)")
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        if len(labels) != len(images):
            raise ImagegenError(f"{len(images)} images but {len(labels)} class labels")

    if evaluator is None and ds.labels is not None:
        evaluator = load_evaluator(data_dir, arch, train_if_missing=train_if_missing, progress=progress)
    elif evaluator is not None and not isinstance(evaluator, Evaluator):
        evaluator = Evaluator.load(evaluator)
    if evaluator is not None:
        if tuple(evaluator.input_shape) != expected:
            raise ImagegenError(f"the evaluator expects {evaluator.input_shape} images but dataset "
                                f"{data_dir} has {expected}; retrain it with "
                                f"`imagegen features train-evaluator {data_dir}`")
        if labels is not None and len(labels) and (labels.min() < 0 or labels.max() >= evaluator.num_classes):
            raise ImagegenError(f"class labels must lie in 0..{evaluator.num_classes - 1}, "
                                f"got {labels.min()}..{labels.max()}")
    extractor, name = _feature_extractor(features, evaluator)

    ref = reference_features(data_dir, extractor, name, progress=progress)
    mu_ref, sigma_ref = gaussian_stats(ref)
    feats = np.asarray(extractor.features(images, progress=progress), np.float64)
    fids = fid_groups(feats, mu_ref, sigma_ref, seeds)
    kid_mean, kid_std = kid(feats, ref, subsets=100, subset_size=min(1000, len(feats), len(ref)))
    m = min(len(ref), len(feats))
    pick = np.sort(np.random.default_rng(0).choice(len(ref), m, replace=False))
    precision, recall = precision_recall(ref[pick], feats[:m], k=3)
    train_idx = np.arange(len(ds)) if len(ds) <= MEMORIZATION_MAX_TRAIN else \
        np.sort(np.random.default_rng(0).choice(len(ds), MEMORIZATION_MAX_TRAIN, replace=False))
    nearest, ratios = memorization_ratios(images, ds.images[train_idx])
    report: dict[str, Any] = {
        "n": int(len(images)),
        "seeds": int(seeds),
        "fid": float(np.mean(fids)),
        "fid_std": float(np.std(fids, ddof=1)) if seeds > 1 else None,
        "fid_seeds": [round(f, 4) for f in fids],
        "fid_pooled": frechet_distance(*gaussian_stats(feats), mu_ref, sigma_ref),
        "kid": kid_mean,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "memorization": float(np.mean(ratios < MEMORIZATION_RATIO)),
    }
    if evaluator is not None:
        probs = evaluator.probs(images, progress=progress)
        report["confident_fraction"] = confident_fraction(probs, CONFIDENCE_THRESHOLD)
        if labels is not None:
            report["class_accuracy"] = class_accuracy(probs, labels)
    if labels is not None and ds.labels is not None:
        _, held = fixed_split(len(ds))
        report["cas"] = cas(images, labels, ds.images[held], ds.labels[held],
                            num_classes=ds.num_classes)
    report.update({
        "features": {"name": name, "sha256": extractor.sha256, "dim": int(feats.shape[1]),
                     "reference_images": int(len(ref))},
        "evaluator": None if evaluator is None else {
            "arch": evaluator.arch, "held_out_accuracy": evaluator.held_out_accuracy,
            "held_out_confident_fraction": evaluator.extra.get("held_out_confident_fraction"),
            "sha256": evaluator.sha256},
        "data": str(data_dir),
        "data_checksum": ds.checksum,
    })
    if details is not None:
        details.update(nearest=train_idx[nearest], ratios=ratios)
    return report
