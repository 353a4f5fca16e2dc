"""The PNG figure of ``imagegen evaluate``: training curves and a nearest-neighbour panel.

- Left (runs only): the run's ``metrics.jsonl`` over training time: loss (left axis) and
  the training-time FID (right axis, see :mod:`imagegen.fid_monitor`).
- Right: generated samples (top row) above their nearest training images in pixel L2
  (bottom row), the samples closest to a training image first, each labelled with the
  memorisation ratio of Carlini et al. 2023 (nearest distance / mean distance to the next
  50; below 1/3 counts as memorised).

Drawn with matplotlib's Agg backend (no display needed) and written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path

# PNG text chunk that marks our figures, so a folder of samples that holds one still loads
FIGURE_KEY, FIGURE_VALUE = "imagegen", "evaluation figure"


def read_log(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(loss records, FID records) of a run's ``metrics.jsonl``; empty when missing."""
    losses: list[dict[str, Any]] = []
    fids: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return losses, fids
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash: skip it
        if "fid" in rec:
            fids.append(rec)
        elif "loss" in rec:
            losses.append(rec)
    return losses, fids


def _show(ax: Any, image: np.ndarray) -> None:
    if image.shape[2] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])


def write_figure(path: str | Path, *, log: Path | None = None, samples: np.ndarray | None = None,
                 neighbours: np.ndarray | None = None, ratios: np.ndarray | None = None,
                 title: str = "", columns: int = 8) -> Path:
    """Write the figure to ``path``; return it.

    ``samples`` and ``neighbours`` are uint8 (N, H, W, C) pairs, ``ratios`` (N,) their
    memorisation ratios; the ``columns`` lowest ratios are shown.

    Example:
        >>> write_figure("out/eval.png", log=Path("runs/mnist/metrics.jsonl"),  # doctest: +SKIP
        ...              samples=s, neighbours=nn, ratios=r)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses, fids = read_log(log) if log is not None else ([], [])
    has_curves = bool(losses or fids)
    has_panel = samples is not None and neighbours is not None and len(samples) > 0
    width = (5.0 if has_curves else 0) + (0.9 * columns if has_panel else 0)
    fig = plt.figure(figsize=(max(width, 4.0), 2.5), dpi=100)
    grid = fig.add_gridspec(2, (columns + 6) if has_curves else columns, wspace=0.08, hspace=0.12)
    if has_curves:
        ax = fig.add_subplot(grid[:, :5])
        if losses:
            ax.plot([r["elapsed"] / 60 for r in losses], [r["loss"] for r in losses],
                    color="tab:blue", lw=1, label="loss")
            ax.set_ylabel("loss", color="tab:blue")
        ax.set_xlabel("training time (min)")
        if fids:
            ax2 = ax.twinx()
            ax2.plot([r["elapsed"] / 60 for r in fids], [r["fid"] for r in fids], "o-",
                     color="tab:red", lw=1, ms=3)
            ax2.set_ylabel("FID (training-time samples)", color="tab:red")
        ax.set_title("training", fontsize=9)
    if has_panel:
        order = np.argsort(ratios)[:columns] if ratios is not None else np.arange(min(columns, len(samples)))
        offset = 6 if has_curves else 0
        for j, i in enumerate(order):
            top = fig.add_subplot(grid[0, offset + j])
            _show(top, samples[i])
            if ratios is not None:
                top.set_title(f"{ratios[i]:.2f}", fontsize=7)
            _show(fig.add_subplot(grid[1, offset + j]), neighbours[i])
        fig.text(0.99 if not has_curves else 0.99, 0.02, "top: samples (memorisation ratio); "
                 "bottom: nearest training image", ha="right", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", metadata={FIGURE_KEY: FIGURE_VALUE})
    plt.close(fig)
    return path
