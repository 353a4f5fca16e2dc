"""URL lists: the file behind ``imagegen data import urls.txt`` / ``urls.csv``.

- ``.csv`` files need a header row with a ``url`` column (any case) and may have a
  ``label`` column; other columns are ignored, as are rows with an empty url cell.
- Any other file is plain text: one URL per line; blank lines and lines starting with
  ``#`` are skipped; surrounding whitespace is stripped.
- The file must be UTF-8 (a byte-order mark is fine) and hold at least one URL.
  Malformed URLs are *not* an error for the whole file:
  :func:`imagegen.data.download.download` returns them as failures ("invalid URL ...",
  "unsupported URL scheme 'ftp' ...") so the report lists them.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from imagegen.errors import ImagegenError


@dataclass(frozen=True)
class UrlItem:
    """One line of a URL list.

    Example:
        >>> UrlItem(key="https://example.com/a.png", url="https://example.com/a.png",
        ...         label="cat", line=2).label
        'cat'
    """

    key: str  # the report name: the URL as written
    url: str
    label: str | None  # from a CSV 'label' column, else None
    line: int  # 1-based line number in the list file


def read_url_list(path: str | Path) -> list[UrlItem]:
    """Read a ``.txt`` (one URL per line) or ``.csv`` (``url`` and optional ``label``) list.

    Raises :class:`ImagegenError` when the file is missing or unreadable, not UTF-8, a CSV
    without a ``url`` column, or holds no URLs. Individual bad URLs are kept:
    :func:`imagegen.data.download.download` reports them.

    Example:
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "urls.txt")
        >>> _ = open(f, "w").write("# cats\\nhttps://example.com/a.png\\n\\n  https://example.com/b.jpg \\n")
        >>> [(i.url, i.line) for i in read_url_list(f)]
        [('https://example.com/a.png', 2), ('https://example.com/b.jpg', 4)]
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImagegenError(f"URL list '{path}' does not exist; pass a text file with one image "
                            "URL per line, or a CSV file with a 'url' column") from None
    except IsADirectoryError:
        raise ImagegenError(f"URL list '{path}' is a folder; pass a text file with one image URL "
                            "per line, or a CSV file with a 'url' column") from None
    except OSError as e:
        raise ImagegenError(f"cannot read URL list '{path}': {e.strerror or e}; check the path "
                            "and its permissions") from None
    try:
        text = codecs.decode(data, "utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ImagegenError(f"URL list '{path}' is not UTF-8 text (bad byte at line {line}); "
                            "save it as UTF-8 and try again") from None
    items = _read_csv(path, text) if path.suffix.lower() == ".csv" else _read_txt(text)
    if not items:
        what = ("rows with a value in the 'url' column" if path.suffix.lower() == ".csv"
                else "URLs (one per line; lines starting with # are comments)")
        raise ImagegenError(f"URL list '{path}' holds no URLs; add {what}")
    return items


def _read_txt(text: str) -> list[UrlItem]:
    items = []
    for number, line in enumerate(text.split("\n"), start=1):
        url = line.strip()
        if url and not url.startswith("#"):
            items.append(UrlItem(key=url, url=url, label=None, line=number))
    return items


def _read_csv(path: Path, text: str) -> list[UrlItem]:
    reader = csv.reader(io.StringIO(text, newline=""))
    items: list[UrlItem] = []
    url_col = label_col = -1
    start = 1
    try:
        for row in reader:
            line, start = start, reader.line_num + 1
            if url_col < 0:  # the header row
                names = [c.strip().lower() for c in row]
                if "url" not in names:
                    shown = ", ".join(repr(c) for c in row[:6]) or "nothing"
                    raise ImagegenError(
                        f"URL list '{path}' has no 'url' column (line {line} has {shown}); make the "
                        "first row a header naming the URL column 'url' (and optionally a 'label' "
                        "column), or use a .txt file with one URL per line")
                url_col = names.index("url")
                label_col = names.index("label") if "label" in names else -1
                continue
            url = row[url_col].strip() if url_col < len(row) else ""
            if not url:
                continue
            label = row[label_col].strip() if 0 <= label_col < len(row) else ""
            items.append(UrlItem(key=url, url=url, label=label or None, line=line))
    except csv.Error as e:
        raise ImagegenError(f"URL list '{path}' line {reader.line_num}: malformed CSV ({e}); fix "
                            "the quoting on that line") from None
    if url_col < 0:
        raise ImagegenError(f"URL list '{path}' is empty; a CSV list needs a header row with a "
                            "'url' column, then one URL per row")
    return items
