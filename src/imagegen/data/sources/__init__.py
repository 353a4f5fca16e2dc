"""Where imported images come from: every source lists its inputs, then yields them.

Each source lists its inputs as :class:`Entry` records, then yields one :class:`Item` per entry
(:mod:`imagegen.data.sources.base` states the contract). :func:`open_source` picks one from
the SRC argument:

- ``builtin:NAME``: :mod:`imagegen.data.sources.builtin` (data in :mod:`imagegen.data.builtins`).
- A folder: :mod:`imagegen.data.sources.folder`.
- ``.zip`` and ``.tar`` (``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``) archives, read in
  place: :mod:`imagegen.data.sources.archives`. A file without an archive suffix is read as
  a zip archive when its bytes are one, and as a tar archive when no other rule applies and
  its bytes are one.
- ``.parquet`` in the Hugging Face ``datasets`` layout: :mod:`imagegen.data.sources.parquet`.
- ``.txt`` / ``.csv`` lists of image URLs: :mod:`imagegen.data.sources.urls`.

Folders and archives take their class labels from sub-folders (the torchvision
``ImageFolder`` convention) or a labels CSV file: :mod:`imagegen.data.sources.labels`.
"""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path
from typing import Any, Sequence

from imagegen.data.builtins import BUILTINS, PREFIX
from imagegen.data.sources.archives import ARCHIVE_SUFFIXES, TarSource, ZipSource
from imagegen.data.sources.base import Entry, Item, Source
from imagegen.data.sources.builtin import BUILTIN_DEFAULTS, BuiltinSource
from imagegen.data.sources.folder import FolderSource
from imagegen.data.sources.labels import assign_labels
from imagegen.data.sources.parquet import ParquetSource
from imagegen.data.sources.urls import URL_LIST_SUFFIXES, UrlSource, is_url_list
from imagegen.errors import ImagegenError

__all__ = [
    "ARCHIVE_SUFFIXES",
    "BUILTIN_DEFAULTS",
    "SOURCE_HELP",
    "URL_LIST_SUFFIXES",
    "BuiltinSource",
    "Entry",
    "FolderSource",
    "Item",
    "ParquetSource",
    "Source",
    "TarSource",
    "UrlSource",
    "ZipSource",
    "assign_labels",
    "fingerprint_parts",
    "open_source",
]

SOURCE_HELP = ("a folder of images, a .zip/.tar/.tar.gz archive, a .parquet file, a .txt/.csv "
               f"list of image URLs, or a built-in ({', '.join(BUILTINS)})")


def open_source(src: str, *, labels: str | Path | None = None, image_column: str | None = None,
                label_column: str | None = None, download_options: Any = None,
                progress: bool = False) -> Source:
    """Pick and open the source for ``src`` (see the module docstring)."""
    if src.startswith(PREFIX):
        return BuiltinSource(src)
    path = Path(src).expanduser()
    if not path.exists():
        raise ImagegenError(f"input '{src}' does not exist; pass {SOURCE_HELP}")
    if path.is_dir():
        return FolderSource(path.resolve(), labels)
    name = path.name.lower()
    if name.endswith(".zip") or (not name.endswith(ARCHIVE_SUFFIXES) and zipfile.is_zipfile(path)):
        return ZipSource(path.resolve(), labels)
    if name.endswith(ARCHIVE_SUFFIXES[1:]):
        return TarSource(path.resolve(), labels)
    if name.endswith(".parquet"):
        return ParquetSource(path.resolve(), image_column, label_column)
    if is_url_list(path):
        return UrlSource(path.resolve(), download_options, progress)
    try:
        if tarfile.is_tarfile(path):
            return TarSource(path.resolve(), labels)
    except OSError:
        pass
    raise ImagegenError(f"don't know how to import the file '{src}'; pass {SOURCE_HELP}")


def fingerprint_parts(source: Source) -> Sequence[str]:
    """Lines that identify a source's inputs (for resuming an interrupted import)."""
    return [source.kind, source.description,
            *(f"{e.key}\t{e.label or ''}\t{e.stamp}\t{e.error or ''}" for e in source.entries)]
