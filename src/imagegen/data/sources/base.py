"""The interface every import source implements: :class:`Source`, :class:`Entry`, :class:`Item`.

A source first lists its inputs as :class:`Entry` records (a report name, a class name, a
stamp for resuming), cheaply and in a fixed order. It then yields one :class:`Item` per
entry, in the same order, from any starting position (so an interrupted import resumes
where it stopped). Whatever goes wrong with one input becomes an ``"error"`` item with a
reason, never an exception, so the importer accounts for every input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

__all__ = ["Entry", "Item", "Source", "error_item"]


@dataclass(frozen=True)
class Entry:
    """One input as listed: report name, class name (or None), and a change stamp."""

    key: str
    label: str | None = None
    stamp: str = ""
    error: tuple[str, str] | None = None  # (code, reason) when listing already failed


@dataclass
class Item:
    """One input ready for a worker: ``kind`` is path, bytes, array or error."""

    kind: str
    payload: Any
    mask: np.ndarray | None = None


def error_item(code: str, reason: str) -> Item:
    """The item of an input that cannot be used: ``code`` for the report, ``reason`` for people."""
    return Item("error", (code, reason))


class Source:
    """Base class: ``description``, ``entries``, ``class_names`` and :meth:`items`."""

    kind = "source"

    def __init__(self, description: str, entries: list[Entry],
                 class_names: list[str] | None = None) -> None:
        self.description = description
        self.entries = entries
        self.class_names = class_names
        self.defaults: dict[str, Any] = {}
        self.info: dict[str, str] | None = None

    def items(self, start: int = 0) -> Iterator[Item]:
        """One item per entry from ``start`` on, in order."""
        raise NotImplementedError

    def label_index(self, entry: Entry) -> int | None:
        """The class index of ``entry`` (None when the source is unlabeled)."""
        if self.class_names is None or entry.label is None:
            return None
        if getattr(self, "_label_map", None) is None:
            self._label_map = {n: i for i, n in enumerate(self.class_names)}
        return self._label_map[entry.label]
