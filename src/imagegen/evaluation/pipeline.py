"""Scoring uint8 images against a prepared data set: the metrics of ``imagegen evaluate``.

:func:`evaluate_images` reports, from the features of one extractor (``--features``):

- FID (Heusel et al. 2017) against the data set's reference features
  (:mod:`imagegen.evaluation.reference`), as the mean and spread over sample-seed groups
  (:func:`imagegen.metrics.fid_groups`) and pooled over all images;
- KID (Binkowski et al. 2018): the mean and std of the unbiased MMD^2 over ``KID_SUBSETS``
  random subsets of ``min(1000, n, n_reference)`` rows per side (:func:`imagegen.metrics.kid`);
- improved precision and recall with k = 3 (Kynkäänniemi et al. 2019), the generated images
  against as many reference images (a fixed seeded subset when there are more);

and from the images themselves:

- the memorised fraction (Carlini et al. 2023): images whose pixel-L2 distance to the nearest
  training image is below ``MEMORIZATION_RATIO`` = 1/3 of the mean distance to the next 50
  (all others in a data set of at most 50 images), searched among at most
  ``MEMORIZATION_MAX_TRAIN`` training images (:func:`near_copy_ratios`: RGBA images and
  training images are first composited on white, as for Inception);
- with the data set's evaluator classifier (labelled data sets): the fraction classified with
  confidence > ``CONFIDENCE_THRESHOLD`` = 0.9 and, for class labels, the class accuracy;
- with class labels and a labelled data set: CAS (Ravuri & Vinyals 2019), a classifier trained
  on the generated images and tested on the data set's real held-out split.

The features (``--features``, :func:`resolve_features`): ``auto`` (the default) takes the data
set's evaluator classifier (:mod:`imagegen.features.evaluator`) when the data set has labels
and Inception-v3 pool3, the standard FID features (:mod:`imagegen.features.inception`; gray
repeated to RGB, RGBA composited on white, :mod:`imagegen.colour`), when it has none;
``evaluator`` and ``inception`` ask for one of them, and a weights path for a file (a
``.safetensors`` file is read as an evaluator, anything else as Inception). The report's
``features`` entry names the features used and the ``--features`` value asked for.

Example:
    >>> report = evaluate_images(samples, "data/mnist", labels=classes)  # doctest: +SKIP
    >>> report["fid"], report["precision"], report["memorization"]  # doctest: +SKIP
    (4.21, 0.81, 0.0)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..colour import ALPHA_BACKGROUND, composite_alpha
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

__all__ = ["CONFIDENCE_THRESHOLD", "KID_SUBSETS", "MEMORIZATION_RATIO", "MEMORIZATION_MAX_TRAIN",
           "MEMORIZATION_NEIGHBOURS", "PR_K", "evaluate_images", "near_copy_ratios", "resolve_features"]

CONFIDENCE_THRESHOLD = 0.9
MEMORIZATION_RATIO = 1 / 3  # Carlini et al. 2023
MEMORIZATION_MAX_TRAIN = 50_000  # training images searched for nearest neighbours
MEMORIZATION_NEIGHBOURS = 50  # the ratio's denominator: mean distance to the next 50 (Carlini et al.)
KID_SUBSETS = 100  # subsets KID averages over (Binkowski et al. 2018)
PR_K = 3  # neighbours of improved precision/recall (Kynkäänniemi et al. 2019)


def resolve_features(features: str, labelled: bool) -> str:
    """``--features auto`` as the features it stands for: ``evaluator`` for a data set with
    labels, ``inception`` for one without; any other value is returned unchanged.

    Example:
        >>> resolve_features("auto", False), resolve_features("auto", True)
        ('inception', 'evaluator')
    """
    if features == "auto":
        return "evaluator" if labelled else "inception"
    return features


def near_copy_ratios(images: np.ndarray, train_images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: (index of the nearest training image, Carlini et al. 2023's distance ratio),
    :func:`imagegen.metrics.memorization_ratios` on pixels, with RGBA composited on white
    (:func:`imagegen.colour.composite_alpha`) on both sides; a ratio below
    ``MEMORIZATION_RATIO`` marks a near-copy. The ratio's denominator is the mean distance to
    the next ``MEMORIZATION_NEIGHBOURS`` = 50 training images, or to all other training
    images in a set of at most 50 (at least 2 are needed).

    Example:
        >>> train = np.random.default_rng(0).integers(0, 256, (60, 4, 4, 4), dtype=np.uint8)
        >>> idx, ratio = near_copy_ratios(train[:2], train)
        >>> idx.tolist(), ratio.tolist()
        ([0, 1], [0.0, 0.0])
    """
    if len(train_images) < 2:
        raise ImagegenError(f"the memorisation test needs at least 2 training images, the data set "
                            f"has {len(train_images)}; import more images")
    neighbours = min(MEMORIZATION_NEIGHBOURS, len(train_images) - 1)
    return memorization_ratios(composite_alpha(images), composite_alpha(train_images), neighbours=neighbours)


def _feature_extractor(features: str, evaluator: Evaluator | None) -> tuple[FeatureExtractor, str]:
    """The extractor named by ``--features`` (evaluator, inception or a weights path; not auto)."""
    if features == "evaluator":
        if evaluator is None:
            raise ImagegenError("this data set has no labels, so it has no evaluator; use "
                                "--features auto or --features inception")
        return evaluator, evaluator.arch
    from ..features.inception import InceptionFeatures

    if features == "inception":
        return InceptionFeatures.load(), "inception"
    path = Path(features)
    if not path.is_file():
        raise ImagegenError(f"--features must be 'auto', 'evaluator', 'inception' or a weights "
                            f"file; {features} is none of these")
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
    features: str = "auto",
    arch: str = "mlp",
    seeds: int = 1,
    train_if_missing: bool = True,
    evaluator: Evaluator | str | Path | None = None,
    progress: bool = True,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score uint8 ``images`` (N, H, W, C) against the prepared data set in ``data_dir``.

    Returns a report with ``n`` (images scored) and ``n_reference`` (reference images),
    ``fid`` (mean over ``seeds`` contiguous equal groups of the images, one per sample
    seed, with ``fid_std`` and ``fid_seeds``; ``fid_pooled`` is the FID of all of them),
    ``kid``/``kid_std`` (over ``kid_subsets`` subsets of ``kid_subset_size`` rows),
    ``precision``/``recall`` (k = ``pr_k`` = 3, ``pr_n`` images per side),
    ``memorization`` (Carlini et al. 2023, pixel L2 against ``memorization_train_images``
    training images), ``alpha_background`` (RGBA data sets: the colour Inception and the
    memorisation test composite transparency on, white), ``features`` (``name``: the features used,
    ``requested``: the ``features`` argument), and with the data set's evaluator
    ``confident_fraction``, and with ``labels`` ``class_accuracy`` and ``cas`` (a
    classifier trained on the labelled images, tested on the data set's real held-out
    split). ``features``: ``auto`` (the evaluator for a labelled data set, else
    Inception), ``evaluator`` (the data set's classifier, ``arch``), ``inception``
    (standard FID Inception-v3) or a weights path. ``details``, if given, receives the
    nearest training index and memorisation ratio of every image.

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
    extractor, name = _feature_extractor(resolve_features(features, ds.labels is not None), evaluator)

    ref = reference_features(data_dir, extractor, name, progress=progress)
    mu_ref, sigma_ref = gaussian_stats(ref)
    feats = np.asarray(extractor.features(images, progress=progress), np.float64)
    fids = fid_groups(feats, mu_ref, sigma_ref, seeds)
    kid_size = min(1000, len(feats), len(ref))
    kid_mean, kid_std = kid(feats, ref, subsets=KID_SUBSETS, subset_size=kid_size)
    m = min(len(ref), len(feats))
    pick = np.sort(np.random.default_rng(0).choice(len(ref), m, replace=False))
    precision, recall = precision_recall(ref[pick], feats[:m], k=PR_K)
    train_idx = np.arange(len(ds)) if len(ds) <= MEMORIZATION_MAX_TRAIN else \
        np.sort(np.random.default_rng(0).choice(len(ds), MEMORIZATION_MAX_TRAIN, replace=False))
    nearest, ratios = near_copy_ratios(images, ds.images[train_idx])
    report: dict[str, Any] = {
        "n": int(len(images)),
        "n_reference": int(len(ref)),
        "seeds": int(seeds),
        "fid": float(np.mean(fids)),
        "fid_std": float(np.std(fids, ddof=1)) if seeds > 1 else None,
        "fid_seeds": [round(f, 4) for f in fids],
        "fid_pooled": frechet_distance(*gaussian_stats(feats), mu_ref, sigma_ref),
        "kid": kid_mean,
        "kid_std": kid_std,
        "kid_subsets": KID_SUBSETS,
        "kid_subset_size": int(kid_size),
        "precision": precision,
        "recall": recall,
        "pr_k": PR_K,
        "pr_n": int(m),
        "memorization": float(np.mean(ratios < MEMORIZATION_RATIO)),
        "memorization_train_images": int(len(train_idx)),
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
        "features": {"name": name, "requested": str(features), "sha256": extractor.sha256,
                     "dim": int(feats.shape[1]), "reference_images": int(len(ref))},
        # RGBA: the background Inception and the memorisation test composite on (the
        # evaluator classifier sees the 4 channels)
        "alpha_background": list(ALPHA_BACKGROUND) if ds.channels == 4 else None,
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
