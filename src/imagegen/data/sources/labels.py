"""Class labels of folder and archive entries: sub-folder names, or a labels CSV file.

Labels follow the torchvision ``ImageFolder`` convention: when at least two sub-folders hold
files, the first path component is the class name (class index = position in the sorted
names) and files outside the class folders are rejected; otherwise the set is unlabeled.
``labels="none"`` turns labels off; a CSV file with ``path`` and ``label`` columns assigns
them explicitly (files it does not list are rejected).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path, PurePosixPath

from imagegen.data.sources.base import Entry
from imagegen.errors import ImagegenError

__all__ = ["assign_labels"]


def _read_label_csv(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as e:
        raise ImagegenError(f"labels file '{path}' does not exist") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ImagegenError(f"cannot read labels file '{path}' ({e}); save it as UTF-8 CSV") from e
    reader = csv.DictReader(io.StringIO(text))
    fields = {f.strip().lower(): f for f in reader.fieldnames or []}
    key = fields.get("path") or fields.get("file") or fields.get("filename")
    if key is None or "label" not in fields:
        raise ImagegenError(f"labels file '{path}' needs a header with 'path' and 'label' "
                            f"columns; found {reader.fieldnames}")
    out: dict[str, str] = {}
    for row in reader:
        p, lab = (row.get(key) or "").strip(), (row.get(fields["label"]) or "").strip()
        if p and lab:
            out[PurePosixPath(p).as_posix()] = lab
    if not out:
        raise ImagegenError(f"labels file '{path}' lists no (path, label) rows")
    return out


def assign_labels(entries: list[Entry], labels: str | Path | None) -> tuple[list[Entry], list[str] | None]:
    """Give folder/archive entries class names (see the module docstring)."""
    if labels == "none":
        return entries, None
    if labels not in (None, "auto"):
        table = _read_label_csv(Path(labels))
        out = []
        for e in entries:
            lab = table.get(e.key)
            err = e.error or (None if lab else ("unlabeled", "not listed in the labels file"))
            out.append(Entry(e.key, lab, e.stamp, err))
        return out, sorted({e.label for e in out if e.label and not e.error})
    folders = {e.key.split("/")[0] for e in entries if "/" in e.key and not e.error}
    if len(folders) < 2:
        return entries, None
    out = []
    for e in entries:
        if "/" in e.key:
            out.append(Entry(e.key, e.key.split("/")[0], e.stamp, e.error))
        else:
            out.append(Entry(e.key, None, e.stamp, e.error or (
                "outside-classes", "outside the class folders (labels come from sub-folders)")))
    return out, sorted(folders)
