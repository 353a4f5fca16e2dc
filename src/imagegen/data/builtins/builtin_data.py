"""The in-memory form of a built-in data set: what every loader of
:mod:`imagegen.data.builtins` returns."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["BuiltinData"]


class BuiltinData(NamedTuple):
    """A built-in data set in memory."""

    images: np.ndarray | list[np.ndarray]  # uint8 (N, H, W, C) or a list of uint8 (H, W, C);
    #                                        C is 1 (gray), 3 (RGB) or 4 (RGBA, straight alpha)
    labels: np.ndarray | None  # int64 (N,)
    class_names: list[str] | None
    keys: list[str] | None = None  # stable per-image names; None means f"{i:05d}"
    masks: np.ndarray | None = None  # uint8 (N, H, W) per-pixel masks (shapes only)
    info: dict[str, str] | None = None  # {"source": ..., "license": ..., "citation": ...},
    #                                     optionally "skipped": what the loader left out
