"""Importing a ``.txt`` / ``.csv`` list of image URLs (read and downloaded by
:mod:`imagegen.data.download`); a failed download becomes an error item with its reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from imagegen.data.sources.base import Entry, Item, Source, error_item

__all__ = ["URL_LIST_SUFFIXES", "UrlSource", "is_url_list"]

URL_LIST_SUFFIXES = (".txt", ".csv", ".urls")


def _download_code(reason: str) -> str:
    r = reason.lower()
    for prefix, code in (("http ", "http-error"), ("timed out", "timeout"),
                         ("wrong content type", "content-type"), ("body larger", "too-large"),
                         ("truncated", "truncated"), ("unsupported url", "bad-url"),
                         ("invalid url", "bad-url"), ("connection", "connection"),
                         ("too many redirects", "redirects")):
        if r.startswith(prefix):
            return code
    return "download"


class UrlSource(Source):
    kind = "urls"

    def __init__(self, path: Path, options: Any = None, progress: bool = False) -> None:
        from imagegen.data.download import DownloadOptions, read_url_list

        self.urls = read_url_list(path)
        self.options = options or DownloadOptions()
        self.progress = progress
        labeled = any(u.label for u in self.urls)
        entries = [Entry(u.key, u.label, "", None if u.label or not labeled else
                         ("unlabeled", f"no label on line {u.line}")) for u in self.urls]
        names = sorted({u.label for u in self.urls if u.label}) if labeled else None
        super().__init__(str(path), entries, names)

    def items(self, start: int = 0) -> Iterator[Item]:
        from imagegen.data.download import download

        for item, body, reason in download(self.urls[start:], self.options,
                                           progress=self.progress):
            if reason is not None:
                yield error_item(_download_code(reason), reason)
            else:
                yield Item("bytes", body)


def is_url_list(path: Path) -> bool:
    """True when the file name says ``path`` is a list of URLs (:data:`URL_LIST_SUFFIXES`)."""
    return path.name.lower().endswith(URL_LIST_SUFFIXES)
