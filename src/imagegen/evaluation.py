"""Evaluate generated images against a prepared data set: the glue behind ``imagegen evaluate``.

FID (Heusel et al. 2017) is computed on the features of the data set's evaluator classifier
(:mod:`imagegen.features.evaluator`) rather than Inception-v3, plus two recognisability scores
from the same classifier: the fraction of images it classifies with confidence > 0.9, and, for
class-conditional images (the class is in the PNG text chunk ``class``), how often it
recognises the requested class.

The reference statistics (mean and covariance of the data set's features) are cached in
``DATA/features/ref-stats-{arch}.npz`` together with the data set checksum and the evaluator's
sha256; the cache is recomputed automatically when either changes.

Example:
    >>> images, labels, _ = load_image_folder("out/samples", channels=1)  # doctest: +SKIP
    >>> report = evaluate_images(images, "data/mnist", labels=labels)  # doctest: +SKIP
    >>> print(format_report(report))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .atomic import atomic_path, write_json
from .errors import ImagegenError
from .features import Evaluator, FeatureExtractor, load_evaluator
from .images import load_image_folder
from .metrics import (
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

__all__ = [
    "evaluate",
    "evaluate_images",
    "evaluate_folder",
    "load_image_folder",
    "ref_features_path",
    "reference_features",
    "format_report",
    "write_report",
]

CONFIDENCE_THRESHOLD = 0.9
MEMORIZATION_RATIO = 1 / 3  # Carlini et al. 2023
REF_MAX = 10_000  # reference images for KID / precision / recall (all of smaller data sets)
MEMORIZATION_MAX_TRAIN = 50_000  # training images searched for nearest neighbours


def ref_features_path(data_dir: str | Path, name: str) -> Path:
    """Where cached reference features live: ``DATA/features/ref-feats-{name}.npz``."""
    return Path(data_dir) / "features" / f"ref-feats-{name}.npz"


def reference_features(
    data_dir: str | Path,
    extractor: FeatureExtractor,
    name: str,
    *,
    max_images: int = REF_MAX,
    progress: bool = True,
) -> np.ndarray:
    """Features (float32, (n, D)) of the data set's images, cached with the data set.

    Data sets larger than ``max_images`` use a fixed seeded subset. The cache is keyed by
    the data set checksum and the extractor's sha256, and recomputed when either changes.
    Features are computed a chunk at a time, so a data set larger than RAM works.

    Example:
        >>> ref = reference_features("data/mnist", evaluator, "mlp")  # doctest: +SKIP
        >>> ref.shape  # doctest: +SKIP
        (5000, 128)
    """
    from .data import load_dataset

    ds = load_dataset(data_dir)
    path = ref_features_path(data_dir, name)
    idx = np.arange(len(ds)) if len(ds) <= max_images else \
        np.sort(np.random.default_rng(0).choice(len(ds), max_images, replace=False))
    try:
        with np.load(path, allow_pickle=False) as z:
            if (str(z["data_checksum"]) == ds.checksum and str(z["extractor_sha256"]) == extractor.sha256
                    and len(z["features"]) == len(idx)):
                return np.array(z["features"], dtype=np.float32)
    except (OSError, ValueError, KeyError):
        pass  # missing, unreadable or stale: recompute
    chunks = []
    with tqdm(total=len(idx), desc=f"reference features ({name})", unit="img", disable=not progress,
              file=sys.stderr, delay=1.0, leave=False) as bar:
        for start in range(0, len(idx), 1000):
            part = ds.images[idx[start:start + 1000]]
            chunks.append(np.asarray(extractor.features(part, progress=False), np.float32))
            bar.update(len(part))
    feats = np.concatenate(chunks)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, features=feats, data_checksum=np.str_(ds.checksum),
                     extractor_sha256=np.str_(extractor.sha256), name=np.str_(name))
    return feats


def _feature_extractor(features: str, evaluator: Evaluator | None) -> tuple[FeatureExtractor, str]:
    """The extractor named by ``--features`` (evaluator, inception or a weights path)."""
    if features == "evaluator":
        if evaluator is None:
            raise ImagegenError("this data set has no labels, so it has no evaluator; use "
                                "--features inception")
        return evaluator, evaluator.arch
    from .features.inception import InceptionFeatures

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
    from .data import load_dataset
    from .features.evaluator import fixed_split

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


def evaluate_folder(
    folder: str | Path,
    data_dir: str | Path,
    *,
    n: int | None = None,
    seeds: int = 3,
    features: str = "evaluator",
    arch: str = "mlp",
    train_if_missing: bool = True,
    figure: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate the PNGs of ``folder`` (the first ``n`` by name) against a data set.

    The images are split into ``seeds`` contiguous groups by name (``imagegen generate``
    names them by seed) for ``fid`` +- ``fid_std``; each group is n/seeds images.

    Example:
        >>> report = evaluate_folder("out/samples", "data/mnist", n=2000)  # doctest: +SKIP
    """
    from .data import load_dataset

    ds = load_dataset(data_dir)
    images, labels, paths = load_image_folder(folder, channels=ds.channels)
    if n is not None:
        if n < 2:
            raise ImagegenError(f"n must be at least 2, got {n}")
        if len(images) < n:
            print(f"note: {folder} holds {len(images)} images, fewer than n={n}; using all of them",
                  file=sys.stderr)
        images, paths = images[:n], paths[:n]
        labels = None if labels is None else labels[:n]
    seeds = max(1, min(seeds, len(images) // 2))
    details: dict[str, Any] = {}
    report = evaluate_images(images, data_dir, labels=labels, features=features, arch=arch, seeds=seeds,
                             train_if_missing=train_if_missing, progress=progress, details=details)
    report["source"] = str(folder)
    if figure is not None:
        run = _png_text(paths[0]).get("run")
        report["figure"] = str(_figure(figure, report, images, ds, details,
                                       Path(run) / "metrics.jsonl" if run else None))
    return report


def _png_text(path: Path) -> dict[str, str]:
    try:
        with Image.open(path) as im:
            return dict(getattr(im, "text", None) or {})
    except (OSError, ValueError):
        return {}


def _figure(path: str | Path, report: dict[str, Any], images: np.ndarray, ds: Any,
            details: dict[str, Any], log: Path | None) -> Path:
    from .report_figure import write_figure

    nearest = ds.images[details["nearest"]]
    title = (f"FID {report['fid']:.2f}" + (f" +- {report['fid_std']:.2f}" if report.get("fid_std") else "")
             + f", precision {report['precision']:.2f}, recall {report['recall']:.2f}, "
             f"memorised {report['memorization']:.1%}")
    return write_figure(path, log=log if log is not None and log.is_file() else None, samples=images,
                        neighbours=nearest, ratios=details["ratios"], title=title)


def _is_run(source: Path) -> bool:
    return source.is_file() or (source / "checkpoints").is_dir() or (source / "config.toml").is_file()


def evaluate(
    source: str | Path,
    data_dir: str | Path,
    *,
    n: int = 2000,
    seed: int = 0,
    seeds: int = 3,
    features: str = "evaluator",
    arch: str = "mlp",
    train_if_missing: bool = True,
    figure: str | Path | None = None,
    progress: bool = True,
    **sample_overrides: Any,
) -> dict[str, Any]:
    """Evaluate a run (``seeds`` x ``n`` images generated in memory) or a folder of PNGs.

    A run is a folder with ``checkpoints/`` or ``config.toml`` (or a checkpoint file): for
    each of ``seeds`` sample seeds k, images ``seed + k*n .. seed + (k+1)*n - 1`` are
    generated with the run's sampling defaults and ``sample_overrides`` (``sampler``,
    ``steps``, ``cfg``; None values are ignored), classes spread evenly when the model is
    conditional; ``fid`` is the mean over the seeds, ``fid_std`` their spread. Anything else
    is read as a folder of PNGs (see :func:`evaluate_folder`). ``figure``: where to write
    the PNG figure (training curves and nearest training images). The evaluator is loaded
    (or trained) before generating, so a bad ``--data`` fails fast.

    Example:
        >>> report = evaluate("runs/mnist", "data/mnist", n=2000)  # doctest: +SKIP
        >>> report["fid"], report["fid_std"]  # doctest: +SKIP
        (2.6, 0.1)
    """
    source = Path(source)
    if not source.exists():
        raise ImagegenError(f"{source} does not exist; pass a run folder or a folder of PNGs")
    if not _is_run(source):
        return evaluate_folder(source, data_dir, n=n, seeds=seeds, features=features, arch=arch,
                               train_if_missing=train_if_missing, figure=figure, progress=progress)
    from .data import load_dataset
    from .generate import load

    ds = load_dataset(data_dir)
    evaluator = load_evaluator(data_dir, arch, train_if_missing=train_if_missing, progress=progress) \
        if ds.labels is not None else None
    model = load(source)
    mc = model.config.model
    if (mc.resolution, mc.channels) != (ds.resolution, ds.channels):
        raise ImagegenError(f"run {source} generates {mc.resolution}x{mc.resolution} images with "
                            f"{mc.channels} channel(s) but dataset {data_dir} has {ds.resolution}x"
                            f"{ds.resolution} with {ds.channels}; evaluate against the data set it "
                            "was trained on")
    if n < 2 or seeds < 1:
        raise ImagegenError(f"n must be at least 2 and seeds at least 1, got n={n}, seeds={seeds}")
    labels = model.labels_for(n, None)
    parts = []
    with tqdm(total=n * seeds, desc="generating", unit="img", disable=not progress, file=sys.stderr) as bar:
        for k in range(seeds):
            parts.append(model.generate(n, seed + k * n, progress=bar.update, **sample_overrides))
    images = np.concatenate(parts)
    all_labels = None if labels is None else np.tile(np.asarray(labels), seeds)
    details: dict[str, Any] = {}
    report = evaluate_images(images, data_dir, labels=all_labels, features=features, seeds=seeds,
                             evaluator=evaluator, progress=progress, details=details)
    sc = model.sample_config(**sample_overrides)
    report["source"] = str(source)
    report["generation"] = {"checkpoint": str(model.checkpoint.path), "seed": seed, "n_per_seed": n,
                            **{k: v for k, v in dataclasses.asdict(sc).items()
                               if isinstance(v, (int, float, str, bool)) or v is None}}
    if figure is not None:
        run = source if source.is_dir() else source.parent.parent
        report["figure"] = str(_figure(figure, report, images, ds, details, run / "metrics.jsonl"))
    return report


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def format_report(report: dict[str, Any]) -> str:
    """A small aligned table of an evaluation report, for printing.

    Example:
        >>> print(format_report({"n": 2000, "fid": 3.21, "confident_fraction": 0.95}))
        images            2000
        FID               3.2100
        confident (>0.9)  0.9500
    """
    ev = report.get("evaluator") or {}
    arch = ev.get("arch")
    rows: list[tuple[str, Any]] = []
    if "source" in report:
        rows.append(("images from", report["source"]))
    rows.append(("images", report.get("n")))
    if "data" in report:
        checksum = str(report.get("data_checksum") or "")[:12]
        rows.append(("reference data", f"{report['data']}" + (f" ({checksum})" if checksum else "")))
    feats = (report.get("features") or {}).get("name") or arch
    fid = report.get("fid")
    if isinstance(fid, float) and report.get("fid_std") is not None:
        fid = f"{fid:.4f} +- {report['fid_std']:.4f} (over {report.get('seeds')} sample seeds)"
    rows.append((f"FID ({feats} features)" if feats else "FID", fid))
    if report.get("kid") is not None:
        rows.append(("KID", f"{report['kid']:.5f} +- {report.get('kid_std', 0):.5f}"))
    rows.append(("precision (k=3)", report.get("precision")))
    rows.append(("recall (k=3)", report.get("recall")))
    rows.append(("memorized (Carlini)", report.get("memorization")))
    rows.append(("confident (>0.9)", report.get("confident_fraction")))
    if "class_accuracy" in report:
        rows.append(("class accuracy", report["class_accuracy"]))
    if "cas" in report:
        rows.append(("CAS (real held-out)", report["cas"]))
    gen = report.get("generation") or {}
    if gen:
        rows.append(("generated with", f"{Path(str(gen.get('checkpoint'))).name}, {gen.get('sampler')} "
                                       f"{gen.get('steps')} steps ({gen.get('schedule')}), cfg {gen.get('cfg')}, seed {gen.get('seed')}"))
    if ev.get("held_out_accuracy") is not None:
        rows.append(("evaluator held-out acc", ev["held_out_accuracy"]))
    if ev.get("held_out_confident_fraction") is not None:
        rows.append(("real held-out confident", ev["held_out_confident_fraction"]))
    known = {"source", "n", "data", "data_checksum", "fid", "confident_fraction", "class_accuracy",
             "evaluator", "generation", "fid_std", "kid", "kid_std", "precision", "recall",
             "memorization", "cas", "features", "seeds", "fid_pooled"}
    rows += [(k, v) for k, v in report.items() if k not in known and not isinstance(v, (dict, list))]
    rows = [(k, v) for k, v in rows if v is not None]
    width = max(len(k) for k, _ in rows) + 2
    return "\n".join(f"{k:<{width}}{_fmt(v)}" for k, v in rows)


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    """Atomically write ``report`` as indented JSON to ``path``; returns the path.

    Example:
        >>> write_report(report, "out/eval.json")  # doctest: +SKIP
    """
    path = Path(path)
    write_json(path, report)
    return path
