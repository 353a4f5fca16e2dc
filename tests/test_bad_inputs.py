"""Broken and hostile inputs: the importer never crashes, accounts for every input once,
rejects with the right code and a readable reason, and converts the rest correctly.

The corpus is generated at test time by :mod:`badinputs` (nothing binary is committed).
Inputs the importer once got wrong are regression tests at the end of this file.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
import struct
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import badinputs as B  # noqa: E402
from badinputs import SIZE, Case  # noqa: E402

from imagegen.data import import_images, load_dataset  # noqa: E402
from imagegen.data import clean  # noqa: E402
from imagegen.errors import ImagegenError  # noqa: E402

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def run_import(src: Path, dest: Path, **kw) -> tuple[dict, list[dict]]:
    """Import in-process; return the manifest and the parsed report lines."""
    kw.setdefault("channels", 3)
    manifest = import_images(str(src), dest, size=SIZE, workers=0, progress=False, **kw)
    text = (dest / "report.jsonl").read_text(encoding="utf-8")
    return manifest, [json.loads(line) for line in text.splitlines()]


def by_key(lines: list[dict]) -> dict[str, dict]:
    keys = [r["input"] for r in lines]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    assert not dupes, f"inputs reported more than once: {dupes}"
    return {r["input"]: r for r in lines}


def listing(folder: Path) -> set[str]:
    """Every input of a folder as the report should name it (links to folders end in /)."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        for d in dirnames:
            if (here / d).is_symlink():
                out.add((here / d).relative_to(folder).as_posix() + "/")
        out.update((here / f).relative_to(folder).as_posix() for f in filenames)
    return out


def check_reason(line: dict, case: Case | None = None) -> None:
    """A rejection reason a user can act on: words, not a traceback or an object repr."""
    reason = line.get("reason")
    assert isinstance(reason, str) and 8 <= len(reason) <= 300, line
    assert "Traceback" not in reason and " object at 0x" not in reason, line
    assert line["code"] != "error", f"unexpected error for {line['input']}: {reason}"
    for word in case.words if case else ():
        assert word.lower() in reason.lower(), f"{line['input']}: {reason!r} lacks {word!r}"
    for word in (case.extra.get("not_words", ()) if case else ()):
        assert word.lower() not in reason.lower(), f"{line['input']}: {reason!r} says {word!r}"


def check_outcome(case: Case, line: dict, images, gray: bool = False) -> None:
    """Assert one report line (and the kept pixels) against the case's expectation."""
    assert line["status"] == case.expect, f"{case.name!r}: {line}"
    if case.expect == "rejected":
        codes = (case.code, *case.extra.get("alt_codes", ()))
        assert line["code"] in codes, f"{case.name!r}: code {line['code']!r}, want {codes}: {line}"
        check_reason(line, case)
    elif case.expect == "duplicate":
        assert (line["of"], line["match"]) == (case.of, case.match), f"{case.name!r}: {line}"
    else:
        if case.note:
            assert case.note in (line.get("note") or ""), f"{case.name!r}: {line}"
        px = np.asarray(images[line["index"]])
        assert px.shape == (SIZE, SIZE, 1 if gray else 3) and px.dtype == np.uint8
        fn = case.check_gray if gray else case.check
        if fn is not None:
            fn(px)


def files_under(root: Path) -> set[Path]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        out.update(Path(dirpath) / n for n in dirnames + filenames)
    return out


# --------------------------------------------------------------------------- the corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Case]]:
    folder = tmp_path_factory.mktemp("corpus") / "in"
    return folder, B.write_corpus(folder)


@pytest.fixture(scope="module")
def imported(corpus, tmp_path_factory):
    folder, cases = corpus
    dest = tmp_path_factory.mktemp("out") / "rgb"
    t0 = time.perf_counter()
    manifest, lines = run_import(folder, dest)
    seconds = time.perf_counter() - t0
    return manifest, lines, load_dataset(dest, verify=True), seconds, dest


def test_corpus_has_enough_kinds() -> None:
    every = B.CORPUS + B.FILTER_CORPUS + B.CLASS_CORPUS + B.FORMER_BUG_CASES
    kinds = {c.name for c in every}
    assert len(B.CORPUS) >= 24 and len(kinds) >= 40
    for corpus in (B.CORPUS, B.FILTER_CORPUS, B.CLASS_CORPUS, B.FORMER_BUG_CASES):
        names = [c.name for c in corpus]
        assert len(names) == len(set(names))
    assert {c.expect for c in B.CORPUS} == {"kept", "duplicate", "rejected"}


def test_every_input_reported_exactly_once(corpus, imported) -> None:
    folder, cases = corpus
    manifest, lines, ds, seconds, dest = imported
    on_disk = listing(folder)
    assert on_disk == set(cases), "the corpus writer and the folder disagree"
    assert len(lines) == len(on_disk)
    assert set(by_key(lines)) == on_disk
    report = manifest["report"]
    assert report["inputs"] == len(lines)
    assert report["kept"] == manifest["count"] == len(ds) == sum(
        r["status"] == "kept" for r in lines)
    assert sum(report["duplicates"].values()) == sum(r["status"] == "duplicate" for r in lines)
    rejected = [r for r in lines if r["status"] == "rejected"]
    assert sum(report["rejected"].values()) == len(rejected) == len(manifest["rejected"])
    assert {r["path"]: r["code"] for r in manifest["rejected"]} == {
        r["input"]: r["code"] for r in rejected}
    assert seconds < 8, f"importing {len(lines)} bad inputs took {seconds:.1f} s"
    # the outside folder behind the "outside/" link was not followed
    assert not any("secret" in r["input"] for r in lines)


@pytest.mark.parametrize("name", [c.name for c in B.CORPUS], ids=repr)
def test_corpus_outcome(name: str, corpus, imported) -> None:
    folder, cases = corpus
    if name not in cases:
        pytest.skip(f"cannot build here ({next(c.needs for c in B.CORPUS if c.name == name)})")
    manifest, lines, ds, seconds, dest = imported
    check_outcome(cases[name], by_key(lines)[name], ds.images)


def test_all_rejection_reasons_are_readable(corpus, imported) -> None:
    folder, cases = corpus
    manifest, lines, ds, seconds, dest = imported
    for line in lines:
        if line["status"] == "rejected":
            check_reason(line)
            assert str(folder) not in line["reason"], line  # no machine-specific paths
    assert all(r["reason"] for r in manifest["rejected"])


def test_corpus_as_grayscale(corpus, imported, tmp_path: Path) -> None:
    """channels=1: the same fates; gray conversions of depth, alpha and palette are right."""
    folder, cases = corpus
    manifest, lines = run_import(folder, tmp_path / "gray", channels=1)
    ds = load_dataset(tmp_path / "gray")
    assert ds.images.shape[1:] == (SIZE, SIZE, 1)
    got = by_key(lines)
    assert set(got) == set(cases)
    for name, case in cases.items():
        check_outcome(case, got[name], ds.images, gray=True)


def test_reimport_is_identical(corpus, imported, tmp_path: Path) -> None:
    folder, cases = corpus
    manifest, lines, ds, seconds, dest = imported
    again = import_images(str(folder), tmp_path / "again", size=SIZE, channels=3, workers=0,
                          progress=False)
    assert again["checksum"] == manifest["checksum"]
    assert (tmp_path / "again" / "report.jsonl").read_bytes() == (
        dest / "report.jsonl").read_bytes()


def test_results_survive_the_trip_to_a_worker(corpus) -> None:
    """Workers send results back pickled: a rejection keeps its code and reason."""
    folder, cases = corpus
    opts = clean.CleanOptions(size=SIZE, channels=3)
    for name, case in cases.items():
        if case.expect != "rejected" or name.endswith("/") or not case.regular:
            continue
        result = clean.clean_item("path", str(folder / name), None, opts)
        back = pickle.loads(pickle.dumps(result))
        assert isinstance(back, clean.Rejected)
        assert (back.code, str(back)) == (result.code, str(result)) and back.code == case.code


def test_bombs_rejected_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 30000x30000 PNG (900 MP) is refused from its header alone, in milliseconds."""
    from PIL import ImageFile

    data = B.png_bomb(30000, 30000)
    assert len(data) < 1_000_000
    opts = clean.CleanOptions(size=SIZE, channels=3)

    def no_decoding(self, *a, **k):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for bomb in (data, B.png_bomb(9000, 9000), B._jpeg_bomb(), B._gif_bomb()):
        t0 = time.perf_counter()
        result = clean.clean_item("bytes", bomb, None, opts)
        assert time.perf_counter() - t0 < 0.5
        assert isinstance(result, clean.Rejected) and result.code == "too-large", result


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_fifo_does_not_block(tmp_path: Path) -> None:
    """Reading a named pipe would block forever: it is refused from its file type."""
    os.mkfifo(tmp_path / "pipe.png")
    t0 = time.perf_counter()
    result = clean.clean_item("path", str(tmp_path / "pipe.png"), None,
                              clean.CleanOptions(size=SIZE))
    assert time.perf_counter() - t0 < 1
    assert isinstance(result, clean.Rejected) and result.code == "not-a-file"


@pytest.mark.skipif(IS_ROOT, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path: Path) -> None:
    case = next(c for c in B.CORPUS if c.name == "no-permission.png")
    B.write_corpus(tmp_path / "src", [case, CONTROL])
    manifest, lines = run_import(tmp_path / "src", tmp_path / "out")
    check_outcome(case, by_key(lines)[case.name], None)


# --------------------------------------------------------------------------- filters, classes


def test_size_and_aspect_filters(tmp_path: Path) -> None:
    cases = B.write_corpus(tmp_path / "src", B.FILTER_CORPUS)
    manifest, lines = run_import(tmp_path / "src", tmp_path / "out",
                                 min_size=B.FILTER_MIN_SIZE, max_aspect=B.FILTER_MAX_ASPECT)
    ds = load_dataset(tmp_path / "out")
    got = by_key(lines)
    assert set(got) == set(cases) == listing(tmp_path / "src")
    for name, case in cases.items():
        check_outcome(case, got[name], ds.images)
    assert manifest["report"]["rejected"] == {"aspect": 2, "too-large": 1, "too-small": 2}


def test_class_folders(tmp_path: Path) -> None:
    cases = B.write_corpus(tmp_path / "src", B.CLASS_CORPUS)
    manifest, lines = run_import(tmp_path / "src", tmp_path / "out")
    ds = load_dataset(tmp_path / "out")
    got = by_key(lines)
    assert set(got) == set(cases) == listing(tmp_path / "src")
    for name, case in cases.items():
        check_outcome(case, got[name], ds.images)
    assert ds.class_names == ["cat", "dog"] and manifest["class_counts"] == {"cat": 2, "dog": 1}
    for name, line in got.items():
        if line["status"] == "kept":
            assert line["label"] == name.split("/")[0]
    assert ds.labels.tolist() == [0, 0, 1]


# --------------------------------------------------------------------------- archives

ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def hostile(name: str, code: str, *words: str) -> Case:
    return Case(name, lambda p: None, "rejected", code, words=words)


def _png(seed: int) -> bytes:
    return B.encode(B.noise(seed), "PNG")


def regular_files(folder: Path, cases: dict[str, Case]) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name, c in sorted(cases.items())
            if c.regular}


UNSAFE = ("unsafe path",)


def _zip_patch(data: bytes, name: str, *, size: int | None = None,
               flags: int | None = None) -> bytes:
    """Rewrite a member's size or flag bits in the zip's central directory (and local
    header, for flags): a header that lies."""
    out = bytearray(data)
    i = out.index(b"PK\x01\x02")
    while True:
        n = struct.unpack("<H", out[i + 28:i + 30])[0]
        if out[i + 46:i + 46 + n] == name.encode():
            if size is not None:
                out[i + 24:i + 28] = struct.pack("<I", size)
            if flags is not None:
                out[i + 8:i + 10] = struct.pack("<H", flags)
                local = struct.unpack("<I", out[i + 42:i + 46])[0]
                out[local + 6:local + 8] = struct.pack("<H", flags)
            return bytes(out)
        i = out.index(b"PK\x01\x02", i + 4)


def build_zip(path: Path, files: dict[str, bytes]) -> dict[str, Case]:
    """The corpus files plus hostile members; returns the expectations of the extras."""
    extras = {
        "../evil.png": hostile("../evil.png", "unsafe-path", *UNSAFE),
        "/etc/x.png": hostile("/etc/x.png", "unsafe-path", *UNSAFE),
        "sub/../../evil.png": hostile("sub/../../evil.png", "unsafe-path", *UNSAFE),
        "..\\evil.png": hostile("..\\evil.png", "unsafe-path", *UNSAFE),
        "C:/evil.png": hostile("C:/evil.png", "unsafe-path", *UNSAFE),
        "link-evil.png": hostile("link-evil.png", "not-a-file", "symbolic link"),
        "encrypted.png": hostile("encrypted.png", "encrypted", "encrypted"),
        "size-lies-small.png": hostile("size-lies-small.png", "corrupt-archive",
                                       "cannot read archive member"),
        "size-lies-huge.png": hostile("size-lies-huge.png", "too-large", "too large"),
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("sub/", ZIP_TIME), b"")  # a folder: not an input
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, ZIP_TIME), data)
        for k, name in enumerate(extras):
            info = zipfile.ZipInfo(name, ZIP_TIME)
            if name == "link-evil.png":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, "../../evil.png")
            else:
                zf.writestr(info, _png(100 + k))
    data = path.read_bytes()
    data = _zip_patch(data, "encrypted.png", flags=0x1)
    data = _zip_patch(data, "size-lies-small.png", size=100)
    data = _zip_patch(data, "size-lies-huge.png", size=1 << 30)
    path.write_bytes(data)
    return extras


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes = b"", **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 1_577_836_800
    for k, v in attrs.items():
        setattr(info, k, v)
    tf.addfile(info, io.BytesIO(data) if info.isfile() else None)


def build_tar(path: Path, files: dict[str, bytes]) -> dict[str, Case]:
    extras = {
        "../evil.png": hostile("../evil.png", "unsafe-path", *UNSAFE),
        "/etc/x.png": hostile("/etc/x.png", "unsafe-path", *UNSAFE),
        "sub/../../evil.png": hostile("sub/../../evil.png", "unsafe-path", *UNSAFE),
        "sym-evil.png": hostile("sym-evil.png", "not-a-file", "symbolic link"),
        "sym-abs.png": hostile("sym-abs.png", "not-a-file", "symbolic link"),
        "hard.png": hostile("hard.png", "not-a-file", "hard link"),
        "fifo.png": hostile("fifo.png", "not-a-file", "not a regular file"),
        "zero-device.png": hostile("zero-device.png", "not-a-file", "not a regular file"),
    }
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        _tar_add(tf, "sub", type=tarfile.DIRTYPE)  # a folder: not an input
        for name, data in files.items():
            _tar_add(tf, name, data)
        _tar_add(tf, "../evil.png", _png(100))
        _tar_add(tf, "/etc/x.png", _png(101))
        _tar_add(tf, "sub/../../evil.png", _png(102))
        _tar_add(tf, "sym-evil.png", type=tarfile.SYMTYPE, linkname="../../evil.png")
        _tar_add(tf, "sym-abs.png", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        _tar_add(tf, "hard.png", type=tarfile.LNKTYPE, linkname="dup-a.png")
        _tar_add(tf, "fifo.png", type=tarfile.FIFOTYPE)
        _tar_add(tf, "zero-device.png", type=tarfile.CHRTYPE, devmajor=1, devminor=5)
    return extras


def assert_nothing_escaped(tmp_path: Path, before: set[Path], dest: Path,
                           etc_before: bool) -> None:
    new = files_under(tmp_path) - before
    outside = sorted(p for p in new if p != dest and dest not in p.parents)
    assert not outside, outside
    assert not [p for p in files_under(tmp_path) if p.name == "evil.png"]
    assert not (tmp_path.parent / "evil.png").exists()
    assert not (Path.cwd().parent / "evil.png").exists()
    assert Path("/etc/x.png").exists() == etc_before


def import_contained(archive: Path, tmp_path: Path):
    """Import ``archive`` into tmp_path/out and check nothing was written outside DEST."""
    before, etc_before = files_under(tmp_path), Path("/etc/x.png").exists()
    dest = tmp_path / "out"
    manifest, lines = run_import(archive, dest)
    assert_nothing_escaped(tmp_path, before, dest, etc_before)
    return manifest, lines, load_dataset(dest), by_key(lines)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archive_of_the_corpus(kind: str, corpus, imported, tmp_path: Path) -> None:
    folder, cases = corpus
    files = regular_files(folder, cases)
    archive = tmp_path / f"corpus.{kind}"
    extras = (build_zip if kind == "zip" else build_tar)(archive, files)
    expected = {**{n: cases[n] for n in files}, **extras}
    manifest, lines, ds, got = import_contained(archive, tmp_path)
    assert set(got) == set(expected) and len(lines) == len(expected)
    for name, case in expected.items():
        check_outcome(case, got[name], ds.images)
    assert manifest["report"]["kept"] == sum(c.expect == "kept" for c in expected.values())
    # a member is kept with the same pixels as the same file imported from the folder
    _, folder_lines, folder_ds, _, _ = imported
    folder_index = {r["input"]: r.get("index") for r in folder_lines}
    for name in files:
        if got[name]["status"] == "kept":
            np.testing.assert_array_equal(ds.images[got[name]["index"]],
                                          folder_ds.images[folder_index[name]], err_msg=name)


def test_truncated_targz_does_not_crash(corpus, tmp_path: Path) -> None:
    """Cut a tar.gz in the middle: the members before the cut are imported as usual,
    nothing crashes, nothing is reported twice, nothing escapes DEST."""
    folder, cases = corpus
    files = regular_files(folder, cases)
    full = tmp_path / "full.tar.gz"
    extras = build_tar(full, files)
    data = full.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    order = list(files)
    readable = []
    with tarfile.open(cut, "r:gz") as tf:  # what Python's tarfile can still list and read
        try:
            for m in tf:
                f = tf.extractfile(m) if m.isfile() else None
                if f is not None:
                    f.read()
                    readable.append(m.name)
        except (tarfile.TarError, EOFError, OSError):
            pass
    assert 5 < len(readable) < len(order)
    manifest, lines, ds, got = import_contained(cut, tmp_path)
    for name in readable:  # every fully readable member: its usual fate
        check_outcome(cases[name], got[name], ds.images)
    strays = {k for k in got if k not in files and k not in extras
              and not k.startswith(f"{cut.name}: after member ")}
    assert not strays
    lost = [r for r in lines if r["input"] not in readable]
    assert lost and all(r["status"] == "rejected" and r["code"] == "corrupt-archive"
                        for r in lost), lost
    for line in lost:
        check_reason(line)
        assert any(w in line["reason"] for w in ("truncated", "corrupt", "cannot read")), line


def test_truncated_zip_is_a_clear_error(corpus, tmp_path: Path) -> None:
    """A zip cut short loses its central directory: a clear error, nothing written."""
    folder, cases = corpus
    archive = tmp_path / "cut.zip"
    build_zip(archive, regular_files(folder, cases))
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(ImagegenError, match="zip archive.*complete"):
        run_import(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- known bugs

CONTROL = Case("control.png", lambda p: p.write_bytes(_png(200)), "kept")


def run_alone(case: Case, tmp_path: Path) -> tuple[dict, Iterable]:
    """Import ``case`` next to one good image; return its report line and the images."""
    B.write_corpus(tmp_path / "src", [case, CONTROL])
    manifest, lines = run_import(tmp_path / "src", tmp_path / "out")
    assert len(lines) == 2
    (line,) = [r for r in lines if r["input"] != CONTROL.name]
    return line, load_dataset(tmp_path / "out").images


@pytest.mark.parametrize("case", [pytest.param(c, id=repr(c.name)) for c in B.FORMER_BUG_CASES])
def test_former_bug(case: Case, tmp_path: Path) -> None:
    if not B.available(case):
        pytest.skip(f"cannot build here ({case.needs})")
    line, images = run_alone(case, tmp_path)
    check_outcome(case, line, images)


def test_tar_member_with_non_utf8_name(tmp_path: Path) -> None:
    archive = tmp_path / "names.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        _tar_add(tf, "ok.png", _png(1))
        _tar_add(tf, B.NON_UTF8_NAME, _png(2))
    manifest, lines = run_import(archive, tmp_path / "out")
    assert len(lines) == 2 and manifest["count"] == 2


def test_zip_members_with_the_same_name(tmp_path: Path) -> None:
    archive = tmp_path / "same-names.zip"
    first, second = B.noise(1), B.noise(2)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(zipfile.ZipInfo("a.png", ZIP_TIME), B.encode(first, "PNG"))
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr(zipfile.ZipInfo("a.png", ZIP_TIME), B.encode(second, "PNG"))
    manifest, lines = run_import(archive, tmp_path / "out")
    images = load_dataset(tmp_path / "out").images
    assert len(lines) == 2
    assert not [r for r in lines if r.get("of") == r["input"]], "a duplicate of itself"
    for line, member in zip(lines, (first, second)):  # kept pixels come from that member
        if line["status"] == "kept":
            np.testing.assert_array_equal(images[line["index"]], np.asarray(member))


def _truncated_tar(tmp_path: Path) -> tuple[Path, list[str]]:
    names = [f"m{i}.png" for i in range(6)]
    archive = tmp_path / "cut.tar.gz"
    with tarfile.open(tmp_path / "full.tar.gz", "w:gz") as tf:
        for i, name in enumerate(names):
            _tar_add(tf, name, B.encode(B.noise(i, 64, 64), "PNG"))
    data = (tmp_path / "full.tar.gz").read_bytes()
    archive.write_bytes(data[: len(data) // 2])  # cuts inside m2's data
    return archive, names


def test_truncated_tar_keeps_members_before_the_cut(tmp_path: Path) -> None:
    archive, names = _truncated_tar(tmp_path)
    manifest, lines = run_import(archive, tmp_path / "out")
    assert [r["input"] for r in lines[:2]] == names[:2]
    assert [r["status"] for r in lines[:2]] == ["kept", "kept"]
    assert lines[-1]["status"] == "rejected" and lines[-1]["code"] == "corrupt-archive"


def test_truncated_tar_accounts_for_the_rest(tmp_path: Path) -> None:
    from imagegen.data.sources import open_source

    archive, names = _truncated_tar(tmp_path)
    listed = [e.key for e in open_source(str(archive)).entries]
    manifest, lines = run_import(archive, tmp_path / "out")
    assert [r["input"] for r in lines] == listed
    assert manifest["report"]["inputs"] == len(listed)
    assert any(k.startswith(f"{archive.name}: after member") for k in listed)


@pytest.mark.parametrize("delta", [+5000, -3000], ids=["size-too-big", "size-too-small"])
def test_tar_member_with_a_lying_size(delta: int, tmp_path: Path) -> None:
    names = [f"m{i}.png" for i in range(6)]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for i, name in enumerate(names):
            _tar_add(tf, name, B.encode(B.noise(i, 64, 64), "PNG"))
    data = bytearray(buf.getvalue())
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tf:
        m = tf.getmember("m2.png")
    o = m.offset
    data[o + 124:o + 136] = b"%011o\0" % (m.size + delta)
    data[o + 148:o + 156] = b" " * 8
    data[o + 148:o + 156] = b"%06o\0 " % sum(data[o:o + 512])
    archive = tmp_path / "lies.tar"
    archive.write_bytes(bytes(data))
    manifest, lines = run_import(archive, tmp_path / "out")
    # m0, m1 kept; m2 may be kept or rejected; the rest must be accounted for somehow
    assert [r["input"] for r in lines[:2]] == names[:2]
    assert len(lines) >= 4 and lines[-1]["status"] == "rejected", lines
    assert lines[-1]["code"] == "corrupt-archive"
