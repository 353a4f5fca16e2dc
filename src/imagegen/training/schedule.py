"""The training clock: durations as users write them and the learning-rate schedule.

The learning rate warms up linearly, then follows a cosine down to ``final_lr_fraction``
(Loshchilov & Hutter 2017, "SGDR"); its clock is the fraction of the run used (time for a
budget, steps for a step count), so a 2-minute run and a 10-minute run both end annealed.
"""

from __future__ import annotations

import math

from ..config import TrainConfig
from ..errors import ImagegenError


def parse_duration(text: str | float | int) -> float:
    """``"10m"`` -> 600.0; accepts s, m, h suffixes or a plain number of seconds.

    Example:
        >>> parse_duration("1.5h")
        5400.0
    """
    if isinstance(text, (int, float)):
        return float(text)
    t = str(text).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if t and t[-1] in units:
            return float(t[:-1]) * units[t[-1]]
        return float(t)
    except ValueError:
        raise ImagegenError(f"cannot read duration {text!r}; write it like 90s, 10m or 1.5h") from None


def lr_at(tc: TrainConfig, frac: float) -> float:
    """Learning rate at training progress ``frac`` in [0, 1]: linear warm-up, then cosine."""
    frac = min(max(frac, 0.0), 1.0)
    if tc.warmup_fraction > 0 and frac < tc.warmup_fraction:
        return tc.lr * frac / tc.warmup_fraction
    t = (frac - tc.warmup_fraction) / max(1e-12, 1.0 - tc.warmup_fraction)
    lo = tc.lr * tc.final_lr_fraction
    return lo + (tc.lr - lo) * 0.5 * (1.0 + math.cos(math.pi * t))
