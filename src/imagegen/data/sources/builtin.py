"""Importing a built-in data set (``builtin:NAME``, :mod:`imagegen.data.builtins`)."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from imagegen.data.builtins import PREFIX, load_builtin, resolve_builtin
from imagegen.data.sources.base import Entry, Item, Source

__all__ = ["BUILTIN_DEFAULTS", "BuiltinSource"]

# Import defaults for built-ins whose images vary in size or carry alpha.
BUILTIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "sprites": {"size": 32, "channels": 4, "mode": "pad"},
    "emoji": {"size": 64, "channels": 4, "mode": "pad"},
    "emoji-noto": {"size": 128, "channels": 4, "mode": "pad"},
}


class BuiltinSource(Source):
    kind = "builtin"

    def __init__(self, name: str) -> None:
        data = load_builtin(name)
        self.data = data
        n = len(data.images)
        keys = list(getattr(data, "keys", None) or [f"{i:05d}" for i in range(n)])
        labels = data.labels
        names = data.class_names
        entries = [Entry(keys[i], None if labels is None or names is None else names[int(labels[i])])
                   for i in range(n)]
        super().__init__(PREFIX + resolve_builtin(name), entries, names)
        self.info = getattr(data, "info", None)
        self.defaults = dict(BUILTIN_DEFAULTS.get(resolve_builtin(name), {}))

    def items(self, start: int = 0) -> Iterator[Item]:
        masks = getattr(self.data, "masks", None)
        for i in range(start, len(self.entries)):
            yield Item("array", np.asarray(self.data.images[i]),
                       None if masks is None else np.asarray(masks[i]))
