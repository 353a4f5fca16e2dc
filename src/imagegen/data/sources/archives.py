"""Importing ``.zip`` and ``.tar`` archives (``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``).

Archives are read in place: nothing is extracted, so a member named ``../x`` cannot escape
DEST; such members, links, devices, encrypted and oversized members are rejected by name.
A tar archive that is truncated or corrupt part-way yields its readable members, then one
error entry for the rest. Labels come from :mod:`imagegen.data.sources.labels`.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Iterator

from imagegen.data.clean import MAX_FILE_BYTES
from imagegen.data.sources.base import Entry, Item, Source, error_item
from imagegen.data.sources.labels import assign_labels
from imagegen.errors import ImagegenError

__all__ = ["ARCHIVE_SUFFIXES", "TarSource", "ZipSource"]

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


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
                    yield error_item(*e.error)
                    continue
                try:
                    with zf.open(info) as f:  # by entry: member names may repeat
                        data = f.read(MAX_FILE_BYTES + 1)
                except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError,
                        NotImplementedError) as err:
                    yield error_item("corrupt-archive", f"cannot read archive member ({err})")
                    continue
                if len(data) > MAX_FILE_BYTES:
                    yield error_item("too-large", "archive member too large (more bytes than its "
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
                        yield error_item(*e.error)
                        continue
                    try:
                        f = tf.extractfile(m)
                        data = f.read() if f else b""
                    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
                        yield error_item("corrupt-archive", f"archive is truncated inside this "
                                     f"member ({err})")
                        break
                    yield Item("bytes", data)
        except (tarfile.TarError, OSError, EOFError, zlib.error):
            pass
        for e in self.entries[max(done, start):]:
            yield error_item(*(e.error or ("corrupt-archive", "archive ended before this member")))


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
