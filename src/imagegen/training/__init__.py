"""Training: ``imagegen.train(DATA, RUN, ...)`` and the pieces it is made of.

- :mod:`.run`: the API: a run's config (defaults, a file, or a resumed checkpoint, with
  overrides), device and processes, then the loop.
- :mod:`.trainer`: a run's model, EMA, optimizer and data, and one training step.
- :mod:`.loop`: steps until the budget, with logs, progress grids, FID checks, checkpoints.
- :mod:`.batches`: the shared shuffled order and each process's part of a batch.
- :mod:`.schedule`: durations and the learning-rate schedule.
- :mod:`.fid_monitor`: FID during training and the best checkpoint.
"""

from .batches import ImageBatches, batch_indices, rank_positions
from .run import apply_overrides, make_config, train, with_limits
from .schedule import lr_at, parse_duration
from .trainer import Trainer, auto_shards, ema_step

__all__ = ["train", "make_config", "apply_overrides", "with_limits", "Trainer", "auto_shards", "ema_step",
           "ImageBatches", "batch_indices", "rank_positions", "lr_at", "parse_duration"]
