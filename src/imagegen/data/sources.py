"""Where imported images come from: every source lists its inputs, then yields them.

A source first lists its inputs as :class:`Entry` records (a report name, a class name,
a stamp for resuming), cheaply and in a fixed order. It then yields one :class:`Item` per
entry, in the same order, from any starting position (so an interrupted import resumes
where it stopped). Whatever goes wrong with one input becomes an ``"error"`` item with a
reason, never an exception, so the importer accounts for every input.

Sources (:func:`open_source` picks one from the SRC argument):

- ``builtin:NAME``: :mod:`imagegen.data.builtins`.
- A folder, scanned recursively in sorted order (symlinked folders are not followed).
- ``.zip`` and ``.tar`` (``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``) archives,
  read in place: nothing is extracted, so a member named ``../x`` cannot escape DEST;
  such members, links, devices, encrypted and oversized members are rejected by name.
- ``.parquet``: the Hugging Face ``datasets`` layout, an ``image`` column of structs
  ``{bytes, path}`` (or any binary column) and an optional ``label`` column; class names
  come from the ``ClassLabel`` feature in the file's metadata when present. Read with
  pyarrow in record batches.
- ``.txt`` / ``.csv``: a list of image URLs, downloaded by :mod:`imagegen.data.download`.

Labels for folders and archives follow the torchvision ``ImageFolder`` convention: when
at least two sub-folders hold files, the first path component is the class name (class
index = position in the sorted names) and files outside the class folders are rejected;
otherwise the set is unlabeled. ``labels="none"`` turns labels off; a CSV file with
``path`` and ``label`` columns assigns them explicitly (files it does not list are
rejected).
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Sequence

import numpy as np

from imagegen.data.builtins import PREFIX, BUILTINS, load_builtin, resolve_builtin
from imagegen.data.clean import MAX_FILE_BYTES
from imagegen.errors import ImagegenError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
URL_LIST_SUFFIXES = (".txt", ".csv", ".urls")
SOURCE_HELP = ("a folder of images, a .zip/.tar/.tar.gz archive, a .parquet file, a .txt/.csv "
               f"list of image URLs, or a built-in ({', '.join(BUILTINS)})")


# Import defaults for built-ins whose images vary in size or carry alpha.
BUILTIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "sprites": {"size": 32, "channels": 4, "mode": "pad"},
}


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


def _error(code: str, reason: str) -> Item:
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


# --------------------------------------------------------------------------- labels


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


# --------------------------------------------------------------------------- folder


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
            yield _error(*e.error) if e.error else Item("path", str(self.root / e.key))


# --------------------------------------------------------------------------- archives


def _unsafe_name(name: str) -> bool:
    p = PurePosixPath(name.replace("\\", "/"))
    return p.is_absolute() or ".." in p.parts or (len(name) > 1 and name[1] == ":")


def _member_error(name: str, size: int, kind: str | None) -> tuple[str, str] | None:
    if _unsafe_name(name):
        return "unsafe-path", "unsafe path in archive (absolute or '..'; never extracted)"
    if kind is not None:
        return "not-a-file", f"not a regular file ({kind} in archive)"
    if size > MAX_FILE_BYTES:
        return "too-large", f"archive member too large ({size} bytes > {MAX_FILE_BYTES})"
    return None


class ZipSource(Source):
    kind = "zip"

    def __init__(self, path: Path, labels: str | Path | None) -> None:
        self.path = path
        try:
            with zipfile.ZipFile(path) as zf:
                infos = [i for i in zf.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise ImagegenError(f"cannot open zip archive '{path}' ({e}); check the file is "
                                "complete (re-download it) or unzip it and import the folder") from e
        self._infos = infos
        entries = []
        for i in infos:
            mode = (i.external_attr >> 16) & 0o170000
            kind = "symbolic link" if mode == stat.S_IFLNK else None
            err = _member_error(i.filename, i.file_size, kind)
            if err is None and i.flag_bits & 0x1:
                err = ("encrypted", "encrypted archive member")
            entries.append(Entry(i.filename, stamp=f"{i.CRC}:{i.file_size}", error=err))
        entries, class_names = assign_labels(entries, labels)
        super().__init__(str(path), entries, class_names)

    def items(self, start: int = 0) -> Iterator[Item]:
        with zipfile.ZipFile(self.path) as zf:
            for e, info in zip(self.entries[start:], self._infos[start:]):
                if e.error:
                    yield _error(*e.error)
                    continue
                try:
                    with zf.open(info) as f:  # by entry: member names may repeat
                        data = f.read(MAX_FILE_BYTES + 1)
                except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError,
                        NotImplementedError) as err:
                    yield _error("corrupt-archive", f"cannot read archive member ({err})")
                    continue
                if len(data) > MAX_FILE_BYTES:
                    yield _error("too-large", "archive member too large (more bytes than its "
                                 "header says)")
                else:
                    yield Item("bytes", data)


def _tar_kind(m: tarfile.TarInfo) -> str | None:
    if m.isfile():
        return None
    if m.issym():
        return "symbolic link"
    if m.islnk():
        return "hard link"
    return "device or special file"


class TarSource(Source):
    kind = "tar"

    def __init__(self, path: Path, labels: str | Path | None) -> None:
        self.path = path
        entries: list[Entry] = []
        tail: Entry | None = None
        try:
            with tarfile.open(path, "r:*") as tf:
                try:
                    for m in tf:
                        if not m.isdir():
                            entries.append(Entry(m.name, stamp=f"{m.size}:{m.mtime}",
                                                 error=_member_error(m.name, m.size, _tar_kind(m))))
                    if _garbage_after(tf):
                        raise tarfile.ReadError("a member header is corrupt")
                except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
                    tail = Entry(f"{path.name}: after member {len(entries)}", error=(
                        "corrupt-archive", f"archive is truncated or corrupt here ({e}); the "
                        "members after this point could not be read"))
        except (tarfile.TarError, OSError, EOFError) as e:
            raise ImagegenError(f"cannot open tar archive '{path}' ({e}); check the file is "
                                "complete (re-download it)") from e
        self._members = len(entries)
        entries, class_names = assign_labels(entries, labels)
        if tail is not None:
            entries.append(tail)
        super().__init__(str(path), entries, class_names)

    def items(self, start: int = 0) -> Iterator[Item]:
        """One item per listed member, then the listing's own error entry, if any."""
        done = 0  # members yielded or skipped so far
        try:
            with tarfile.open(self.path, "r:*") as tf:
                for m in tf:
                    if m.isdir():
                        continue
                    if done >= self._members:
                        break
                    e = self.entries[done]
                    done += 1
                    if done <= start:
                        continue
                    if e.error:
                        yield _error(*e.error)
                        continue
                    try:
                        f = tf.extractfile(m)
                        data = f.read() if f else b""
                    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
                        yield _error("corrupt-archive", f"archive is truncated inside this "
                                     f"member ({err})")
                        break
                    yield Item("bytes", data)
        except (tarfile.TarError, OSError, EOFError, zlib.error):
            pass
        for e in self.entries[max(done, start):]:
            yield _error(*(e.error or ("corrupt-archive", "archive ended before this member")))


def _garbage_after(tf: tarfile.TarFile) -> bool:
    """True when data follows the point where tarfile stopped (a corrupt member header).

    ``tarfile`` treats an unreadable header after the first as the end of the archive;
    a real end is zero blocks (or nothing) from there on. Reads forward from where
    tarfile stopped (just after that header), so a compressed stream is not rewound.
    """
    try:
        rest = tf.fileobj.read(64 * tarfile.BLOCKSIZE)
    except (OSError, EOFError, tarfile.TarError):
        return True
    return any(rest)


# --------------------------------------------------------------------------- parquet


def _pick_columns(schema: Any, image_column: str | None,
                  label_column: str | None) -> tuple[str, str | None]:
    import pyarrow as pa

    names = list(schema.names)
    if image_column is None:
        def usable(field: Any) -> bool:
            t = field.type
            if pa.types.is_binary(t) or pa.types.is_large_binary(t):
                return True
            return pa.types.is_struct(t) and any(t.field(i).name == "bytes"
                                                 for i in range(t.num_fields))
        preferred = [n for n in ("image", "img", "png", "jpg", "bytes") if n in names]
        candidates = [n for n in preferred + names if usable(schema.field(n))]
        if not candidates:
            raise ImagegenError(f"no image column found (columns: {', '.join(names)}); pass "
                                "--image-column NAME (binary bytes, or a struct with 'bytes')")
        image_column = candidates[0]
    elif image_column not in names:
        raise ImagegenError(f"no column '{image_column}' (columns: {', '.join(names)})")
    if label_column is None:
        label_column = next((n for n in ("label", "labels", "class") if n in names), None)
    elif label_column not in names:
        raise ImagegenError(f"no column '{label_column}' (columns: {', '.join(names)})")
    return image_column, label_column


def _hf_class_names(metadata: dict[bytes, bytes] | None, column: str) -> list[str] | None:
    try:
        info = json.loads((metadata or {}).get(b"huggingface", b"{}"))
        feature = info["info"]["features"][column]
        return [str(n) for n in feature["names"]] if feature.get("_type") == "ClassLabel" else None
    except (KeyError, TypeError, ValueError):
        return None


class ParquetSource(Source):
    kind = "parquet"

    def __init__(self, path: Path, image_column: str | None = None,
                 label_column: str | None = None) -> None:
        try:
            import pyarrow.parquet as pq
        except ImportError as e:
            raise ImagegenError("importing Parquet needs pyarrow; install it with "
                                "`pip install pyarrow`") from e
        self.path = path
        try:
            pf = pq.ParquetFile(path)
        except Exception as e:
            raise ImagegenError(f"cannot read Parquet file '{path}' ({e}); check that the file "
                                "is complete") from e
        self.image_column, label_col = _pick_columns(pf.schema_arrow, image_column, label_column)
        n = pf.metadata.num_rows
        labels: list[str | None] = [None] * n
        class_names = None
        if label_col is not None:
            values = pf.read(columns=[label_col]).column(0).to_pylist()
            names = _hf_class_names(pf.schema_arrow.metadata, label_col)
            ints = all(isinstance(v, int) or v is None for v in values)
            if names is None:
                uniq = sorted({v for v in values if v is not None})
                names = [str(v) for v in uniq]
            elif not ints:
                names = None
            labels = [None if v is None else (names[v] if ints and names and 0 <= v < len(names)
                                              else str(v)) for v in values]
            class_names = names
        stamp = f"{path.stat().st_size}:{path.stat().st_mtime_ns}"
        entries = [Entry(f"{path.name}#{i}", labels[i], stamp if i == 0 else "",
                         None if label_col is None or labels[i] is not None else
                         ("unlabeled", f"no value in label column '{label_col}'"))
                   for i in range(n)]
        super().__init__(str(path), entries, class_names)

    def items(self, start: int = 0) -> Iterator[Item]:
        import pyarrow.parquet as pq

        row = 0
        pf = pq.ParquetFile(self.path)
        for batch in pf.iter_batches(batch_size=256, columns=[self.image_column]):
            if row + batch.num_rows <= start:
                row += batch.num_rows
                continue
            for value in batch.column(0).to_pylist():
                row += 1
                if row <= start:
                    continue
                e = self.entries[row - 1]
                data = value.get("bytes") if isinstance(value, dict) else value
                if e.error:
                    yield _error(*e.error)
                elif not data:
                    yield _error("empty", f"no image bytes in column '{self.image_column}'")
                else:
                    yield Item("bytes", bytes(data))


# --------------------------------------------------------------------------- URLs


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
                yield _error(_download_code(reason), reason)
            else:
                yield Item("bytes", body)


# --------------------------------------------------------------------------- built-ins


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


# --------------------------------------------------------------------------- dispatch


def _is_url_list(path: Path) -> bool:
    return path.name.lower().endswith(URL_LIST_SUFFIXES)


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
    if _is_url_list(path):
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
