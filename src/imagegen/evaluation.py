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
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from .atomic import atomic_path, write_json
from .errors import ImagegenError
from .features import Evaluator, FeatureExtractor, load_evaluator
from .metrics import class_accuracy, confident_fraction, frechet_distance, gaussian_stats

__all__ = [
    "evaluate",
    "ref_stats_path",
    "reference_stats",
    "evaluate_images",
    "evaluate_folder",
    "load_image_folder",
    "format_report",
    "write_report",
]

CONFIDENCE_THRESHOLD = 0.9
_STATS_VERSION = 1
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def ref_stats_path(data_dir: str | Path, arch: str = "mlp") -> Path:
    """Where the cached reference statistics live: ``DATA/features/ref-stats-{arch}.npz``."""
    return Path(data_dir) / "features" / f"ref-stats-{arch}.npz"


def _read_stats(path: Path, data_checksum: str, evaluator_sha: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached (mu, sigma) if ``path`` holds statistics for this data set and evaluator."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if (int(z["version"]) != _STATS_VERSION or str(z["data_checksum"]) != data_checksum
                    or str(z["evaluator_sha256"]) != evaluator_sha):
                return None
            return np.array(z["mu"], dtype=np.float64), np.array(z["sigma"], dtype=np.float64)
    except (OSError, ValueError, KeyError):
        return None  # unreadable or from another version: recompute


def reference_stats(
    data_dir: str | Path,
    evaluator: FeatureExtractor,
    arch: str | None = None,
    *,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the evaluator features of every image in the data set (cached).

    ``evaluator`` is any :class:`~imagegen.features.FeatureExtractor`; ``arch`` (default
    ``evaluator.arch``) names the cache file.

    The cache ``DATA/features/ref-stats-{arch}.npz`` stores the data set checksum and the
    evaluator's sha256; it is used only when both match, else recomputed and rewritten.

    Example:
        >>> mu, sigma = reference_stats("data/mnist", evaluator)  # doctest: +SKIP
        >>> mu.shape, sigma.shape  # doctest: +SKIP
        ((128,), (128, 128))
    """
    from .data import load_dataset

    arch = arch or evaluator.arch
    ds = load_dataset(data_dir)
    path = ref_stats_path(data_dir, arch)
    cached = _read_stats(path, ds.checksum, evaluator.sha256)
    if cached is not None:
        return cached
    feats = evaluator.features(np.asarray(ds.images), progress=progress)
    mu, sigma = gaussian_stats(feats)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:  # a file handle: np.savez would append .npz to a name
            np.savez(f, mu=mu, sigma=sigma, n=np.int64(len(feats)), version=np.int64(_STATS_VERSION),
                     data_checksum=np.str_(ds.checksum), evaluator_sha256=np.str_(evaluator.sha256),
                     arch=np.str_(arch))
    return mu, sigma


def evaluate_images(
    images: np.ndarray,
    data_dir: str | Path,
    *,
    labels: np.ndarray | None = None,
    arch: str = "mlp",
    train_if_missing: bool = True,
    evaluator: Evaluator | str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score uint8 ``images`` (N, H, W, C) against the prepared data set in ``data_dir``.

    Returns ``{"n", "fid", "confident_fraction", "class_accuracy" (only with labels),
    "evaluator": {"arch", "held_out_accuracy", "held_out_confident_fraction", "sha256"},
    "data", "data_checksum"}``; the evaluator's held-out figures are the real-data reference
    points for ``class_accuracy`` and ``confident_fraction``.
    ``evaluator`` overrides the data set's own (an :class:`Evaluator` or a weights path);
    without it the data set's evaluator is loaded (and trained first if missing and
    ``train_if_missing``).

    Example:
        >>> report = evaluate_images(samples, "data/mnist", labels=classes)  # doctest: +SKIP
        >>> report["fid"], report["class_accuracy"]  # doctest: +SKIP
        (4.21, 0.97)
    """
    from .data import load_dataset

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
    if len(images) < 2:
        raise ImagegenError(f"FID needs at least 2 images, got {len(images)}")
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        if len(labels) != len(images):
            raise ImagegenError(f"{len(images)} images but {len(labels)} class labels")

    if evaluator is None:
        evaluator = load_evaluator(data_dir, arch, train_if_missing=train_if_missing, progress=progress)
    elif not isinstance(evaluator, Evaluator):
        evaluator = Evaluator.load(evaluator)
    if tuple(evaluator.input_shape) != expected:
        raise ImagegenError(f"the evaluator expects {evaluator.input_shape} images but dataset "
                            f"{data_dir} has {expected}; retrain it with "
                            f"`imagegen features train-evaluator {data_dir}`")
    if labels is not None and len(labels) and (labels.min() < 0 or labels.max() >= evaluator.num_classes):
        raise ImagegenError(f"class labels must lie in 0..{evaluator.num_classes - 1}, "
                            f"got {labels.min()}..{labels.max()}")

    mu_ref, sigma_ref = reference_stats(data_dir, evaluator, evaluator.arch, progress=progress)
    feats = evaluator.features(images, progress=progress)
    probs = evaluator.probs(images, progress=progress)
    mu, sigma = gaussian_stats(feats)
    report: dict[str, Any] = {
        "n": int(len(images)),
        "fid": frechet_distance(mu, sigma, mu_ref, sigma_ref),
        "confident_fraction": confident_fraction(probs, CONFIDENCE_THRESHOLD),
    }
    if labels is not None:
        report["class_accuracy"] = class_accuracy(probs, labels)
    report.update({
        "evaluator": {"arch": evaluator.arch, "held_out_accuracy": evaluator.held_out_accuracy,
                      "held_out_confident_fraction": evaluator.extra.get("held_out_confident_fraction"),
                      "sha256": evaluator.sha256},
        "data": str(data_dir),
        "data_checksum": ds.checksum,
    })
    return report


def load_image_folder(
    folder: str | Path,
    *,
    channels: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[Path]]:
    """Read the ``*.png`` images of a folder (sorted by name; ``grid.png`` is skipped).

    Returns uint8 images (N, H, W, C), the int64 class labels from each PNG's text chunk
    ``class`` (``None`` unless every image has one) and the paths. ``channels`` (1, 3 or 4)
    converts every image to that many channels; without it the images must already agree.

    Example:
        >>> images, labels, paths = load_image_folder("out/samples", channels=1)  # doctest: +SKIP
        >>> images.shape, labels[:3]  # doctest: +SKIP
        ((64, 28, 28, 1), array([0, 1, 2]))
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImagegenError(f"image folder {folder} does not exist or is not a folder")
    if channels is not None and channels not in _MODES:
        raise ImagegenError(f"channels must be one of {sorted(_MODES)}, got {channels}")
    paths = sorted(p for p in folder.glob("*.png") if p.name != "grid.png")
    if not paths:
        raise ImagegenError(f"no PNG images in {folder} (grid.png is ignored); generate some with "
                            "`imagegen generate RUN --out DIR`")
    arrays: list[np.ndarray] = []
    classes: list[int | None] = []
    for p in paths:
        try:
            with Image.open(p) as im:
                im.load()
                text = dict(getattr(im, "text", None) or {})
                if channels is not None:
                    mode = _MODES[channels]
                else:
                    mode = im.mode if im.mode in ("L", "RGB", "RGBA") else (
                        "RGBA" if "transparency" in im.info or im.mode in ("LA", "PA") else "RGB")
                    if im.mode in ("1", "I", "I;16", "F"):
                        mode = "L"
                arr = np.asarray(im.convert(mode) if im.mode != mode else im, dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            raise ImagegenError(f"cannot read image {p}: {exc}") from exc
        if arr.ndim == 2:
            arr = arr[..., None]
        if arrays and arr.shape != arrays[0].shape:
            raise ImagegenError(f"image {p} is {arr.shape[1]}x{arr.shape[0]}x{arr.shape[2]} but "
                                f"{paths[0].name} is {arrays[0].shape[1]}x{arrays[0].shape[0]}x"
                                f"{arrays[0].shape[2]}; all images must share one size and mode")
        arrays.append(arr)
        raw = text.get("class")
        if raw is None:
            classes.append(None)
        else:
            try:
                classes.append(int(str(raw).strip()))
            except ValueError as exc:
                raise ImagegenError(f"image {p} has a non-integer 'class' text chunk: {raw!r}") from exc
    labels = None
    if all(c is not None for c in classes):
        labels = np.asarray(classes, dtype=np.int64)
    return np.stack(arrays), labels, paths


def evaluate_folder(
    folder: str | Path,
    data_dir: str | Path,
    *,
    n: int | None = None,
    arch: str = "mlp",
    train_if_missing: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate the PNGs of ``folder`` (the first ``n`` by name) against a data set.

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
    report = evaluate_images(images, data_dir, labels=labels, arch=arch,
                             train_if_missing=train_if_missing, progress=progress)
    report["source"] = str(folder)
    return report


def _is_run(source: Path) -> bool:
    return source.is_file() or (source / "checkpoints").is_dir() or (source / "config.toml").is_file()


def evaluate(
    source: str | Path,
    data_dir: str | Path,
    *,
    n: int = 2000,
    seed: int = 0,
    arch: str = "mlp",
    train_if_missing: bool = True,
    progress: bool = True,
    **sample_overrides: Any,
) -> dict[str, Any]:
    """Evaluate a run (``n`` images generated in memory) or a folder of PNGs against a data set.

    A run is a folder with ``checkpoints/`` or ``config.toml`` (or a checkpoint file): images
    ``seed .. seed+n-1`` are generated with the run's sampling defaults and ``sample_overrides``
    (``sampler``, ``steps``, ``cfg``; None values are ignored), classes spread evenly when the
    model is conditional. Anything else is read as a folder of PNGs (first ``n`` by name).
    The evaluator is loaded (or trained) before generating, so a bad ``--data`` fails fast.

    Example:
        >>> report = evaluate("runs/mnist", "data/mnist", n=2000)  # doctest: +SKIP
        >>> report["fid"] < 10  # doctest: +SKIP
        True
    """
    source = Path(source)
    if not source.exists():
        raise ImagegenError(f"{source} does not exist; pass a run folder or a folder of PNGs")
    if not _is_run(source):
        return evaluate_folder(source, data_dir, n=n, arch=arch, train_if_missing=train_if_missing,
                               progress=progress)
    from .data import load_dataset
    from .generate import load

    ds = load_dataset(data_dir)
    evaluator = load_evaluator(data_dir, arch, train_if_missing=train_if_missing, progress=progress)
    model = load(source)
    mc = model.config.model
    if (mc.resolution, mc.channels) != (ds.resolution, ds.channels):
        raise ImagegenError(f"run {source} generates {mc.resolution}x{mc.resolution} images with "
                            f"{mc.channels} channel(s) but dataset {data_dir} has {ds.resolution}x"
                            f"{ds.resolution} with {ds.channels}; evaluate against the data set it "
                            "was trained on")
    if n < 2:
        raise ImagegenError(f"n must be at least 2, got {n}")
    labels = model.labels_for(n, None)
    with tqdm(total=n, desc="generating", unit="img", disable=not progress, file=sys.stderr) as bar:
        images = model.generate(n, seed, progress=bar.update, **sample_overrides)
    report = evaluate_images(images, data_dir, labels=None if labels is None else np.asarray(labels),
                             evaluator=evaluator, progress=progress)
    sc = model.sample_config(**sample_overrides)
    report["source"] = str(source)
    report["generation"] = {"checkpoint": str(model.checkpoint.path), "seed": seed,
                            **{k: v for k, v in dataclasses.asdict(sc).items()
                               if isinstance(v, (int, float, str, bool)) or v is None}}
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
    rows.append((f"FID ({arch} features)" if arch else "FID", report.get("fid")))
    rows.append(("confident (>0.9)", report.get("confident_fraction")))
    if "class_accuracy" in report:
        rows.append(("class accuracy", report["class_accuracy"]))
    gen = report.get("generation") or {}
    if gen:
        rows.append(("generated with", f"{Path(str(gen.get('checkpoint'))).name}, {gen.get('sampler')} "
                                       f"{gen.get('steps')} steps, cfg {gen.get('cfg')}, seed {gen.get('seed')}"))
    if ev.get("held_out_accuracy") is not None:
        rows.append(("evaluator held-out acc", ev["held_out_accuracy"]))
    if ev.get("held_out_confident_fraction") is not None:
        rows.append(("real held-out confident", ev["held_out_confident_fraction"]))
    known = {"source", "n", "data", "data_checksum", "fid", "confident_fraction", "class_accuracy",
             "evaluator", "generation"}
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
