"""FID during training: score the EMA model every few minutes and keep the best checkpoint.

The score is the FID (Heusel et al. 2017) of ``samples`` images (fixed seeds 0..n-1,
classes spread evenly, no guidance) in the features of a given extractor against given
reference statistics; :func:`imagegen.training.run.fid_monitor_for` hands it the data set's
evaluator and the cached reference features that ``imagegen evaluate`` uses. With a few
hundred samples it is biased upwards compared with the 2,000-sample FID of ``imagegen
evaluate`` (FID's bias falls like 1/n), but it uses the same samples at every evaluation,
so it ranks checkpoints of one run fairly.

Auto mode (``fid_every_seconds = -1``) turns it on for labeled data sets of at most
``AUTO_MAX_IMAGES`` images: the evaluator needs labels, and its reference statistics take
one pass over the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_json
from ..checkpoint import BEST_NAME, best_checkpoint
from ..config import RunConfig, SampleConfig
from ..generate import sample
from ..labels import spread_labels
from ..metrics import fid_groups

AUTO_INTERVAL_SECONDS = 120.0
AUTO_MAX_IMAGES = 50_000


def fid_interval(config: RunConfig, num_images: int, labeled: bool) -> float:
    """Seconds between training-time FIDs for this run (0: off)."""
    every = config.train.fid_every_seconds
    if every < 0:
        return AUTO_INTERVAL_SECONDS if labeled and num_images <= AUTO_MAX_IMAGES else 0.0
    return float(every)


class FidMonitor:
    """Scores a denoiser against fixed reference statistics; remembers the best checkpoint.

    ``extractor`` maps uint8 images to features (``extractor.features(images, progress=...)``);
    ``mu``/``sigma`` are the reference mean and covariance in those features.

    Example:
        >>> mon = FidMonitor(evaluator, mu, sigma, samples=256, sample_config=sc, run=run_dir)  # doctest: +SKIP
        >>> mon.score(trainer.ema)  # doctest: +SKIP
        14.2
    """

    def __init__(self, extractor: Any, mu: np.ndarray, sigma: np.ndarray, *, samples: int,
                 sample_config: SampleConfig, run: Path, precision: str = "auto") -> None:
        self.extractor, self.mu, self.sigma = extractor, mu, sigma
        self.n, self.sample_config, self.run, self.precision = samples, sample_config, Path(run), precision
        best = best_checkpoint(self.run)
        self.best: float = float(best["fid"]) if best else float("inf")

    def score(self, denoiser: Any) -> float:
        """FID of ``denoiser``'s samples against the reference."""
        return self.score_sets(denoiser, 1)[0]

    def score_sets(self, denoiser: Any, sets: int) -> list[float]:
        """FIDs of ``sets`` independent sets of ``samples`` images each: set k uses seeds
        ``k*n .. (k+1)*n - 1`` (the seeds of ``imagegen evaluate RUN -n n --seeds sets``), so
        the first set is the one :meth:`score` uses."""
        n = self.n
        labels = spread_labels(n, denoiser.num_classes)
        images = sample(denoiser, list(range(n * sets)), None if labels is None else labels * sets,
                        self.sample_config, 128, precision=self.precision)
        return fid_groups(self.extractor.features(images, progress=False), self.mu, self.sigma, sets)

    def is_best(self, fid: float) -> bool:
        """True (and remembered) when ``fid`` beats every earlier score of this run."""
        if fid < self.best:
            self.best = fid
            return True
        return False

    def mark_best(self, checkpoint: Path, step: int, fid: float) -> None:
        """Record ``checkpoint`` as the best in ``RUN/best.json`` (pruning keeps it)."""
        write_json(self.run / BEST_NAME, {"checkpoint": checkpoint.name, "step": step,
                                          "fid": round(fid, 4), "fid_samples": self.n,
                                          "fid_steps": self.sample_config.steps})
