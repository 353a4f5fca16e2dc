"""FID during training: score the EMA model every few minutes and keep the best checkpoint.

The score is the FID (Heusel et al. 2017) of ``samples`` images (fixed seeds 0..n-1,
classes spread evenly, no guidance) in the features of a given extractor against given
reference statistics. :func:`imagegen.training.run.fid_monitor_for` hands it the features
``imagegen evaluate --features auto`` uses (:func:`imagegen.evaluation.pipeline.resolve_features`):
the data set's evaluator classifier for a labelled data set, Inception-v3 pool3 for an
unlabeled one (gray repeated to RGB, RGBA composited on white), with the reference features
``imagegen evaluate`` caches (:mod:`imagegen.evaluation.reference`), so the two agree. With a
few hundred samples it is biased upwards compared with the 2,000-sample FID of ``imagegen
evaluate`` (FID's bias falls like 1/n, and more so in Inception's 2,048 dimensions), but it
uses the same samples at every evaluation, so it ranks checkpoints of one run fairly.

For data sets of fewer than ``NEAR_COPY_MAX_IMAGES`` = 5,000 images, where a model can
memorise its training set, each check also reports ``near_copies``: the share of its samples
that are near-copies of a training image by Carlini et al. 2023's test (pixel L2 distance to
the nearest training image below 1/3 of the mean distance to the next 50, against every
training image; :func:`imagegen.evaluation.pipeline.near_copy_ratios`, the test of
``imagegen evaluate``).

Auto mode (``fid_every_seconds = -1``, :func:`fid_interval`):

- labeled data sets (a class-conditional model) of at most ``AUTO_MAX_IMAGES`` images: the
  evaluator every ``AUTO_INTERVAL_SECONDS`` = 120 s with 256 samples (``fid_samples = 0``);
  unconditional models on labeled sets stay off, as before;
- unlabeled data sets: Inception with ``AUTO_INCEPTION_SAMPLES`` = 128 samples
  (``fid_samples = 0``), at an interval chosen so that the checks, the final one included,
  plus the reference pass when ``ref-feats-inception.npz`` is not cached yet, take at most
  ``AUTO_BUDGET_SHARE`` = 10% of the time budget (:func:`inception_interval`); off when that
  leaves no room for a periodic check, and for runs limited by steps alone (no time budget).

The cost model: a check of n samples takes n x (``INCEPTION_SECONDS_PER_IMAGE`` = 0.2 s +
sampling FLOPs / ``CPU_FLOPS_PER_SECOND`` = 10 GFLOP/s) (:func:`sample_flops`: the run's
network, its sampler at ``fid_steps``), the reference pass 0.2 s per image. The constants
come from measurements on this project's 2-core CPU machine, shared with other jobs (load
average in brackets), 3-channel images:

- Inception-v3 (batch 8; every image is resized to 299x299, ~6 GFLOPs, so the resolution
  hardly matters): 1 thread 7.8 img/s at 32x32 and 7.7 at 64x64 [2.5-4.3], 3.8-5.1 [4.6-8.4];
  2 threads 9.6 img/s at 64x64 [3.0] (13 on idle cores, :mod:`imagegen.features.inception`)
  but 1.4-3.6 at both sizes [4-8], where two threads on two busy cores wait for each other;
- sampling 128 images, 10 steps of dpmpp-2m, 2 threads: ``unet-32`` at 32x32 (197 MFLOP per
  network evaluation) 11.2 s [2.9], i.e. 22 GFLOP/s, and 18.8 s [6.2]; ``unet-tiny`` at
  64x64 (469 MFLOP) 62.6 s [5], i.e. 9.6 GFLOP/s, and 150 s [6-8];
- the near-copy test of 128 samples against 4,999 training images: 0.7-1.3 s at 32x32,
  3-8 s at 64x64 (not modelled: a few percent of a check).

So a check of 128 samples is estimated at 51 s for ``unet-32`` at 32x32 and 86 s for
``unet-tiny`` at 64x64. With a cached reference, ``unet-32`` gets no periodic check in a
10-minute budget (10% is 60 s: the final check alone), one every 709 s in 30 minutes and
every 592 s in an hour (6 and the final one); a first run on a 1,000-image set also pays 200 s
for the reference, so an hour gets a check every 1,678 s. On cores shared with other work the
checks take longer than estimated (3.5x measured at load 8 on 2 cores: 177 s and 259 s), on a
GPU far less; each check's wall time is logged as ``fid_seconds`` in ``metrics.jsonl``, so the
share can be verified, and ``--fid-every`` sets the interval by hand. A check's time does not
count against the budget (it pauses the training clock).
"""

from __future__ import annotations

import time
from dataclasses import replace
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
AUTO_EVALUATOR_SAMPLES = 256
AUTO_INCEPTION_SAMPLES = 128
AUTO_BUDGET_SHARE = 0.10
INCEPTION_SECONDS_PER_IMAGE = 0.2  # Inception-v3 on 2 CPU cores: 5 img/s (measured 5-13, module docstring)
CPU_FLOPS_PER_SECOND = 1e10  # the UNets' sampling on 2 CPU cores: 10 GFLOP/s (measured 10-22)
NEAR_COPY_MAX_IMAGES = 5_000  # data sets smaller than this get the near-copy share


def fid_sample_count(config: RunConfig, features: str) -> int:
    """Samples per training-time check: ``fid_samples``, or when it is 0 (auto) 256 for the
    evaluator and ``AUTO_INCEPTION_SAMPLES`` for Inception features."""
    if config.train.fid_samples > 0:
        return int(config.train.fid_samples)
    return AUTO_INCEPTION_SAMPLES if features.startswith("inception") else AUTO_EVALUATOR_SAMPLES


def sample_flops(config: RunConfig) -> float:
    """Network FLOPs of sampling one image for a check: one forward pass of the run's network
    (counted by torch's ``FlopCounterMode`` on a fresh copy, on the CPU) times the sampler's
    network evaluations at ``fid_steps`` steps without guidance."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..generate import network_evaluations, resolve_schedule
    from ..models.registry import build_denoiser

    mc = config.model
    with torch.random.fork_rng(devices=[]):  # a fresh network must not move the run's random state
        net = build_denoiser(mc)
    x = torch.zeros(1, mc.channels, mc.resolution, mc.resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x, torch.ones(1), None)
    sc = resolve_schedule(replace(config.sample, cfg=1.0, steps=config.train.fid_steps), net.precond)
    return float(counter.get_total_flops()) * network_evaluations(sc, False)


def inception_interval(budget_seconds: float, check_seconds: float, reference_seconds: float = 0.0) -> float:
    """Seconds of training between checks that take ``check_seconds`` each, so that all checks
    (the final one included) and a one-time ``reference_seconds`` take at most
    ``AUTO_BUDGET_SHARE`` of ``budget_seconds``; never below ``AUTO_INTERVAL_SECONDS``; 0
    (off) when there is no time budget or no room for one periodic check.

    Example:
        >>> round(inception_interval(3600, 40.0), 1)  # 8 periodic checks and the final one
        450.0
        >>> inception_interval(600, 40.0)  # 10% of 10 minutes holds only the final check
        0.0
    """
    if budget_seconds <= 0:
        return 0.0
    # at most budget / interval periodic checks; the final check and the reference come on top
    room = AUTO_BUDGET_SHARE * budget_seconds - check_seconds - reference_seconds
    if room < check_seconds:
        return 0.0
    return max(AUTO_INTERVAL_SECONDS, budget_seconds * check_seconds / room)


def fid_interval(config: RunConfig, num_images: int, labeled: bool) -> float:
    """Seconds between training-time checks for this run (0: off); see the module docstring.

    ``labeled``: the data set has labels and the model is class-conditional.
    """
    every = config.train.fid_every_seconds
    if every >= 0:
        return float(every)
    if labeled:
        return AUTO_INTERVAL_SECONDS if num_images <= AUTO_MAX_IMAGES else 0.0
    from ..data import load_dataset
    from ..evaluation.reference import REF_MAX, reference_cached
    from ..features.inception import DEFAULT_SHA256

    if load_dataset(config.data).labels is not None:
        return 0.0  # an unconditional model on a labeled set: off in auto mode, as before
    if config.train.budget_seconds <= 0:
        return 0.0  # limited by steps alone: no time budget to take a share of
    samples = fid_sample_count(config, "inception")
    check = samples * (INCEPTION_SECONDS_PER_IMAGE + sample_flops(config) / CPU_FLOPS_PER_SECOND)
    reference = 0 if reference_cached(config.data, "inception", DEFAULT_SHA256) else min(num_images, REF_MAX)
    return inception_interval(config.train.budget_seconds, check, reference * INCEPTION_SECONDS_PER_IMAGE)


class FidMonitor:
    """Scores a denoiser against fixed reference statistics; remembers the best checkpoint.

    ``extractor`` maps uint8 images to features (``extractor.features(images, progress=...)``);
    ``mu``/``sigma`` are the reference mean and covariance in those features, named
    ``features``. With ``train_images`` (uint8 (N, H, W, C)), :meth:`check` also reports the
    share of near-copies among the samples.

    Example:
        >>> mon = FidMonitor(evaluator, mu, sigma, samples=256, sample_config=sc, run=run_dir)  # doctest: +SKIP
        >>> mon.check(trainer.ema)  # doctest: +SKIP
        {'fid': 14.2, 'fid_features': 'mlp', 'fid_samples': 256, 'near_copies': 0.0, 'fid_seconds': 3.1}
    """

    def __init__(self, extractor: Any, mu: np.ndarray, sigma: np.ndarray, *, samples: int,
                 sample_config: SampleConfig, run: Path, precision: str = "auto",
                 features: str = "", train_images: np.ndarray | None = None) -> None:
        self.extractor, self.mu, self.sigma = extractor, mu, sigma
        self.n, self.sample_config, self.run, self.precision = samples, sample_config, Path(run), precision
        self.features = features or str(getattr(extractor, "arch", ""))
        self.train_images = train_images
        best = best_checkpoint(self.run)
        self.best: float = float(best["fid"]) if best else float("inf")

    def _images(self, denoiser: Any, sets: int) -> np.ndarray:
        """uint8 samples of seeds ``0 .. sets*n - 1`` (classes spread over each set)."""
        n = self.n
        labels = spread_labels(n, denoiser.num_classes)
        return sample(denoiser, list(range(n * sets)), None if labels is None else labels * sets,
                      self.sample_config, 128, precision=self.precision)

    def score(self, denoiser: Any) -> float:
        """FID of ``denoiser``'s samples against the reference."""
        return self.score_sets(denoiser, 1)[0]

    def score_sets(self, denoiser: Any, sets: int) -> list[float]:
        """FIDs of ``sets`` independent sets of ``samples`` images each: set k uses seeds
        ``k*n .. (k+1)*n - 1`` (the seeds of ``imagegen evaluate RUN -n n --seeds sets``), so
        the first set is the one :meth:`score` uses."""
        images = self._images(denoiser, sets)
        return fid_groups(self.extractor.features(images, progress=False), self.mu, self.sigma, sets)

    def near_copies(self, images: np.ndarray) -> float | None:
        """Share of ``images`` that are near-copies of a training image (None without them)."""
        if self.train_images is None:
            return None
        from ..evaluation.pipeline import MEMORIZATION_RATIO, near_copy_ratios

        _, ratios = near_copy_ratios(images, self.train_images)
        return float(np.mean(ratios < MEMORIZATION_RATIO))

    def check(self, denoiser: Any) -> dict[str, Any]:
        """One training-time check: ``fid``, ``fid_features``, ``fid_samples``, with training
        images ``near_copies``, and ``fid_seconds`` (its wall time), for ``metrics.jsonl``."""
        t0 = time.perf_counter()
        images = self._images(denoiser, 1)
        fid = fid_groups(self.extractor.features(images, progress=False), self.mu, self.sigma, 1)[0]
        result: dict[str, Any] = {"fid": round(fid, 4), "fid_features": self.features, "fid_samples": self.n}
        share = self.near_copies(images)
        if share is not None:
            result["near_copies"] = round(share, 4)
        result["fid_seconds"] = round(time.perf_counter() - t0, 2)
        return result

    @staticmethod
    def text(result: dict[str, Any]) -> str:
        """The progress-line text of a :meth:`check` result, e.g. ``FID 14.20 near-copies 0.8%``."""
        text = f"FID {result['fid']:.2f}"
        return text + (f" near-copies {result['near_copies']:.1%}" if "near_copies" in result else "")

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
