"""FID during training: score the EMA model every few minutes and keep the best checkpoint.

The score is the FID in the data set's evaluator features (see :mod:`imagegen.evaluation`)
of ``fid_samples`` samples (fixed seeds 0..n-1, classes spread evenly, the run's
sampler with ``fid_steps`` steps, no guidance) against the cached reference features that
``imagegen evaluate`` uses (all images of sets up to 10,000, a fixed subset above). With a few hundred samples it is biased upwards compared with the 2,000-sample
FID of ``imagegen evaluate`` (FID's bias falls like 1/n), but it uses the same samples at
every evaluation, so it ranks checkpoints of one run fairly.

Auto mode (``fid_every_seconds = -1``) turns it on for labeled data sets of at most
``AUTO_MAX_IMAGES`` images: the evaluator needs labels, and its reference statistics take
one pass over the data. The evaluator is trained first if the data set has none.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from .atomic import write_json
from .checkpoint import BEST_NAME, best_checkpoint
from .config import RunConfig
from .generate import sample
from .metrics import fid_groups, gaussian_stats

AUTO_INTERVAL_SECONDS = 120.0
AUTO_MAX_IMAGES = 50_000


def fid_interval(config: RunConfig, num_images: int, labeled: bool) -> float:
    """Seconds between training-time FIDs for this run (0: off)."""
    every = config.train.fid_every_seconds
    if every < 0:
        return AUTO_INTERVAL_SECONDS if labeled and num_images <= AUTO_MAX_IMAGES else 0.0
    return float(every)


class FidMonitor:
    """Scores a denoiser with the data set's evaluator; remembers the best checkpoint.

    Example:
        >>> mon = FidMonitor(config, run_dir, progress=False)  # doctest: +SKIP
        >>> mon.score(trainer.ema)  # doctest: +SKIP
        14.2
    """

    def __init__(self, config: RunConfig, run: Path, *, progress: bool = True) -> None:
        from .evaluation import reference_features
        from .features import load_evaluator

        self.config, self.run = config, Path(run)
        self.evaluator = load_evaluator(config.data, train_if_missing=True, progress=progress)
        # the same cached reference as `imagegen evaluate`, so both FIDs use one reference
        ref = reference_features(config.data, self.evaluator, self.evaluator.arch, progress=progress)
        self.mu, self.sigma = gaussian_stats(ref)
        self.n = config.train.fid_samples
        self.sample_config = replace(config.sample, cfg=1.0, steps=config.train.fid_steps)
        best = best_checkpoint(self.run)
        self.best: float = float(best["fid"]) if best else float("inf")

    def score(self, denoiser: Any) -> float:
        """FID of ``denoiser``'s samples against the data set."""
        return self.score_sets(denoiser, 1)[0]

    def score_sets(self, denoiser: Any, sets: int) -> list[float]:
        """FIDs of ``sets`` independent sets of ``fid_samples`` samples each: set k uses seeds
        ``k*n .. (k+1)*n - 1`` (the seeds of ``imagegen evaluate RUN -n n --seeds sets``), so
        the first set is the one :meth:`score` uses."""
        mc, n = self.config.model, self.n
        seeds = list(range(n * sets))
        labels = [i % mc.num_classes for i in range(n)] * sets if mc.num_classes else None
        images = sample(denoiser, seeds, labels, self.sample_config, (mc.channels, mc.resolution, mc.resolution), 128)
        return fid_groups(self.evaluator.features(images, progress=False), self.mu, self.sigma, sets)

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

