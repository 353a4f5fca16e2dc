"""Evaluation of generated images against a prepared data set (``imagegen evaluate``).

A report holds FID (Heusel et al. 2017), computed on the features of the data set's evaluator
classifier or on Inception-v3 pool3 features (``--features auto``, the default, takes the
evaluator for a labelled data set and Inception for an unlabeled one), with the numbers of
generated and reference images, KID (Binkowski et al. 2018) with its std over subsets,
precision/recall (Kynkäänniemi et al. 2019) and the memorised fraction (Carlini et al. 2023),
and, with the evaluator, the confident fraction, class accuracy and CAS. RGBA images are
composited on white for Inception and the memorisation test (:mod:`imagegen.colour`).

- :mod:`.reference`: the cached reference features of a data set;
- :mod:`.pipeline`: :func:`evaluate_images`, the metrics of uint8 images;
- :mod:`.sources`: :func:`evaluate` (a run or a folder of PNGs) and :func:`evaluate_folder`;
- :mod:`.report`: :func:`format_report`, :func:`write_report` and the figure.

Example:
    >>> images, labels, _ = load_image_folder("out/samples", channels=1)  # doctest: +SKIP
    >>> report = evaluate_images(images, "data/mnist", labels=labels)  # doctest: +SKIP
    >>> print(format_report(report))  # doctest: +SKIP
"""

from __future__ import annotations

from ..images import load_image_folder
from .pipeline import evaluate_images
from .reference import ref_features_path, reference_features
from .report import format_report, report_paths, write_report
from .sources import evaluate, evaluate_folder

__all__ = [
    "evaluate",
    "evaluate_images",
    "evaluate_folder",
    "load_image_folder",
    "reference_features",
    "ref_features_path",
    "format_report",
    "report_paths",
    "write_report",
]
