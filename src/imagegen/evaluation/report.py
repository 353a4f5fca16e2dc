"""An evaluation report as text, as JSON and as a figure.

:func:`format_report` prints a report of :func:`imagegen.evaluation.evaluate` as an aligned
two-column table (known keys in a fixed order with readable labels, other scalar keys after
them, ``None`` values left out); :func:`write_report` writes it as indented JSON, atomically
(:func:`imagegen.atomic.write_json`); ``_figure`` draws the report's figure with
:func:`imagegen.report_figure.write_figure` (training curves of the run's ``metrics.jsonl``
and the samples above their nearest training images).

Example:
    >>> print(format_report(report))  # doctest: +SKIP
    >>> write_report(report, "out/eval.json")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_json

__all__ = ["format_report", "write_report"]


def _figure(path: str | Path, report: dict[str, Any], images: np.ndarray, ds: Any,
            details: dict[str, Any], log: Path | None) -> Path:
    """Write the figure of ``report`` to ``path``: the curves of ``log`` (when it exists) and
    ``images`` above their nearest training images (``details`` of ``evaluate_images``)."""
    from ..report_figure import write_figure

    nearest = ds.images[details["nearest"]]
    title = (f"FID {report['fid']:.2f}" + (f" +- {report['fid_std']:.2f}" if report.get("fid_std") else "")
             + f", precision {report['precision']:.2f}, recall {report['recall']:.2f}, "
             f"memorised {report['memorization']:.1%}")
    return write_figure(path, log=log if log is not None and log.is_file() else None, samples=images,
                        neighbours=nearest, ratios=details["ratios"], title=title)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def format_report(report: dict[str, Any]) -> str:
    """A small aligned table of an evaluation report, for printing.

    The FID row names the features and the number of generated and reference images, the KID
    row its std over subsets, the precision/recall rows their k and images per side.

    Example:
        >>> print(format_report({"n": 2000, "fid": 3.21, "confident_fraction": 0.95}))
        images            2000
        FID               3.2100
        confident (>0.9)  0.9500
        >>> print(format_report({"n": 20, "n_reference": 12, "fid": 250.0, "kid": 0.1, "kid_std": 0.01,
        ...                      "kid_subsets": 100, "kid_subset_size": 12, "precision": 0.5, "pr_k": 3,
        ...                      "pr_n": 12, "features": {"name": "inception", "requested": "auto"}}))
        images                               20
        features                             inception (auto)
        FID (inception features)             250.0000 (20 generated vs 12 reference images)
        KID (100 subsets of 12, +- std)      0.10000 +- 0.01000
        precision (k=3, 12 images per side)  0.5000
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
    used = report.get("features") or {}
    feats = used.get("name") or arch
    if used.get("name"):
        rows.append(("features", used["name"] + (" (auto)" if used.get("requested") == "auto" else "")))
    if report.get("alpha_background") is not None:
        rows.append(("alpha", f"composited on {tuple(report['alpha_background'])} for Inception and "
                              "memorisation"))
    fid = report.get("fid")
    if isinstance(fid, float):
        fid = _fmt(fid)
        if report.get("fid_std") is not None:
            fid += f" +- {report['fid_std']:.4f} (over {report.get('seeds')} sample seeds)"
        if report.get("n_reference") is not None:
            fid += f" ({report.get('n')} generated vs {report['n_reference']} reference images)"
    rows.append((f"FID ({feats} features)" if feats else "FID", fid))
    if report.get("kid") is not None:
        label = f"KID ({report['kid_subsets']} subsets of {report['kid_subset_size']}, +- std)" \
            if report.get("kid_subsets") else "KID"
        rows.append((label, f"{report['kid']:.5f} +- {report.get('kid_std', 0):.5f}"))
    pr = f" (k={report.get('pr_k', 3)}" + (f", {report['pr_n']} images per side)" if report.get("pr_n") else ")")
    rows.append(("precision" + pr, report.get("precision")))
    rows.append(("recall" + pr, report.get("recall")))
    train = report.get("memorization_train_images")
    rows.append((f"memorized (Carlini, {train} training images)" if train else "memorized (Carlini)",
                 report.get("memorization")))
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
             "memorization", "cas", "features", "seeds", "fid_pooled", "n_reference", "kid_subsets",
             "kid_subset_size", "pr_k", "pr_n", "memorization_train_images", "alpha_background"}
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


def report_paths(source: str | Path, json_path: str | Path | None = None,
                 figure: str | Path | None = None) -> tuple[Path, Path]:
    """Where ``imagegen evaluate`` writes its JSON report and figure: by default
    ``SOURCE/evaluation.json`` and the JSON path with ``.png``.

    Example:
        >>> report_paths("out/mnist")
        (PosixPath('out/mnist/evaluation.json'), PosixPath('out/mnist/evaluation.png'))
    """
    json_out = Path(json_path) if json_path else Path(source) / "evaluation.json"
    return json_out, Path(figure) if figure else json_out.with_suffix(".png")
