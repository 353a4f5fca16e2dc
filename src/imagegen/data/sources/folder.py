"""Importing a folder of images, scanned recursively in sorted order.

Symlinked folders are not followed (each is rejected by name); unreadable folders are
reported as entries. Labels come from :mod:`imagegen.data.sources.labels`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from imagegen.data.sources.base import Entry, Item, Source, error_item
from imagegen.data.sources.labels import assign_labels

__all__ = ["FolderSource"]


class FolderSource(Source):
    kind = "folder"

    def __init__(self, root: Path, labels: str | Path | None) -> None:
        self.root = root
        entries: list[Entry] = []

        def on_error(e: OSError) -> None:
            rel = Path(e.filename).relative_to(root).as_posix() if e.filename else "?"
            entries.append(Entry(rel + "/", error=("unreadable",
                                                   f"cannot read folder ({e.strerror or e})")))

        for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=False):
            here = Path(dirpath)
            for d in list(dirnames):
                if (here / d).is_symlink():
                    dirnames.remove(d)
                    entries.append(Entry((here / d).relative_to(root).as_posix() + "/", error=(
                        "symlink", "symbolic link to a folder (not followed)")))
            dirnames.sort()
            for f in sorted(filenames):
                p = here / f
                try:
                    st = p.lstat()
                    stamp = f"{st.st_size}:{st.st_mtime_ns}"
                except OSError:
                    stamp = "?"
                entries.append(Entry(p.relative_to(root).as_posix(), stamp=stamp))
        entries.sort(key=lambda e: e.key)
        entries, class_names = assign_labels(entries, labels)
        super().__init__(str(root), entries, class_names)

    def items(self, start: int = 0) -> Iterator[Item]:
        for e in self.entries[start:]:
            yield error_item(*e.error) if e.error else Item("path", str(self.root / e.key))
