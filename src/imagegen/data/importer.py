"""Import images into a prepared dataset (see :mod:`imagegen.data.dataset` for the format).

The pipeline, one input at a time and in a fixed order:

1. A source (:mod:`imagegen.data.sources`) lists its inputs and yields them: a folder, a
   zip or tar archive, a Parquet file, a list of URLs, or a built-in.
2. Worker processes decode and clean each input (:mod:`imagegen.data.clean`): size
   limits, colour conversion, EXIF orientation, resize mode, filters.
3. Duplicates are dropped (:mod:`imagegen.data.dedupe`): exact pixel copies and near
   copies by perceptual hash, each recorded as a duplicate of the kept input.
4. Kept images go into shards of bounded size (:mod:`imagegen.data.writer`); every
   input gets a line in ``report.jsonl``: kept, duplicate-of, or rejected with a reason.

Memory stays bounded (one shard buffer, a few chunks in flight, the dedupe index). An
import that is killed resumes when run again with the same arguments and produces the
same bytes as an uninterrupted one.

Defaults: folders, archives, Parquet and URLs are center-cropped to 64x64 and stored with
one channel when every kept image is gray, else RGB. Built-ins keep their native size
(or their own default) and channel count.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import shutil
import sys
from pathlib import Path
from typing import Any, Iterable, TypeVar

import numpy as np
from tqdm import tqdm

from imagegen.data.builtins import PREFIX, resolve_builtin
from imagegen.data.clean import MAX_SIZE, MODES, CleanOptions, Cleaned, Rejected, clean_item
from imagegen.data.dataset import MANIFEST_NAME, REPORT_NAME, SHARD_RE, SHARD_SIZE
from imagegen.data.dedupe import DEFAULT_NEAR_BITS, Deduper
from imagegen.data.sources import Source, fingerprint_parts, open_source
from imagegen.data.workers import default_workers, ordered_map, worker_pool
from imagegen.data.writer import WORK_DIR, ShardWriter, read_state
from imagegen.errors import ImagegenError

DEFAULT_FOLDER_SIZE = 64
PARALLEL_MIN_INPUTS = 128  # smaller imports run in this process

T = TypeVar("T")


def _bar(items: Iterable[T], total: int, initial: int, progress: bool) -> Any:
    return tqdm(items, total=total, initial=initial, desc="import", unit="img", file=sys.stderr,
                disable=not progress, delay=1.0, leave=False, dynamic_ncols=True)


def _note(message: str, progress: bool) -> None:
    if progress:
        tqdm.write(f"imagegen: {message}", file=sys.stderr)


def _check_args(size: int | None, channels: int | None, mode: str, min_size: int,
                max_aspect: float | None, near_bits: int | None) -> None:
    if size is not None and (isinstance(size, bool) or not isinstance(size, numbers.Integral)
                             or not 1 <= size <= MAX_SIZE):
        raise ImagegenError(f"size must be an integer from 1 to {MAX_SIZE}, got {size!r}")
    if channels not in (None, 1, 3, 4):
        raise ImagegenError(f"channels must be 1 (grayscale), 3 (RGB) or 4 (RGBA), "
                            f"got {channels!r}")
    if mode not in MODES:
        raise ImagegenError(f"resize mode must be one of {', '.join(MODES)}, got {mode!r}")
    if isinstance(min_size, bool) or not isinstance(min_size, numbers.Integral) or min_size < 0:
        raise ImagegenError(f"min_size must be an integer >= 0, got {min_size!r}")
    if max_aspect is not None and not (isinstance(max_aspect, numbers.Real) and max_aspect >= 1):
        raise ImagegenError(f"max_aspect must be a number >= 1 (long side / short side), "
                            f"got {max_aspect!r}")
    if near_bits is not None and not (isinstance(near_bits, numbers.Integral)
                                      and 0 <= near_bits <= 32):
        raise ImagegenError(f"near-duplicate threshold must be 0..32 bits, got {near_bits!r}")


def _check_dest(dest: Path, overwrite: bool, fingerprint: str) -> dict | None:
    """Validate DEST; return the state of an unfinished import to resume, or None."""
    if dest.exists() and not dest.is_dir():
        raise ImagegenError(f"destination {dest} is a file; choose a folder path for DEST")
    if not dest.exists() or not any(dest.iterdir()):
        return None
    state = read_state(dest)
    if state is not None and state["fingerprint"] == fingerprint:
        return state
    names = {p.name for p in dest.iterdir()}
    ours = all(SHARD_RE.match(n) or n in (MANIFEST_NAME, REPORT_NAME, WORK_DIR, "features",
                                          "preview.png") for n in names)
    if not ours:
        raise ImagegenError(f"destination {dest} is a non-empty folder that is not a prepared "
                            "dataset; choose a new or empty folder for DEST")
    if not overwrite:
        what = ("a prepared dataset already exists" if MANIFEST_NAME in names else
                "an unfinished import of different inputs or options is")
        raise ImagegenError(f"{what} in {dest}; pass --overwrite (overwrite=True) to replace "
                            "it, or choose another DEST")
    return None


def _resolve_defaults(source: Source, size: int | None, channels: int | None,
                      mode: str | None) -> tuple[int, int | None, str, dict[str, Any]]:
    notes: dict[str, Any] = {}
    defaults = source.defaults
    if source.kind == "builtin":
        data = source.data  # type: ignore[attr-defined]
        shapes = {tuple(np.shape(a)) for a in (data.images[:1] if isinstance(data.images, np.ndarray)
                                              else data.images)}
        native = next(iter(shapes)) if len(shapes) == 1 else None
        if size is None:
            size = defaults.get("size") or (native[0] if native and native[0] == native[1]
                                            else DEFAULT_FOLDER_SIZE)
        if channels is None:
            chans = {s[2] for s in shapes}
            channels = defaults.get("channels") or (chans.pop() if len(chans) == 1 else None)
            channels = 3 if channels == 4 and not defaults.get("channels") else channels
        if native:
            notes["native_size"] = native[0]
    elif size is None:
        size = DEFAULT_FOLDER_SIZE
        notes["default_size"] = True
    return int(size), channels, mode or defaults.get("mode") or "center-crop", notes


def import_images(
    src: str,
    dest: str | Path,
    *,
    size: int | None = None,
    channels: int | None = None,
    mode: str | None = None,
    min_size: int = 0,
    max_aspect: float | None = None,
    dedupe: bool = True,
    near_bits: int | None = DEFAULT_NEAR_BITS,
    labels: str | Path | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    workers: int | None = None,
    download_options: Any = None,
    overwrite: bool = False,
    progress: bool = True,
    shard_size: int = SHARD_SIZE,
) -> dict[str, Any]:
    """Import ``src`` into a prepared dataset in DEST; return the manifest.

    ``src``: a folder, a ``.zip``/``.tar``/``.tar.gz`` archive, a ``.parquet`` file, a
    ``.txt``/``.csv`` list of URLs, or ``builtin:NAME``. Unusable inputs are not fatal:
    every input appears in ``DEST/report.jsonl`` (kept, duplicate or rejected with a
    reason) and rejections also in ``manifest["rejected"]``. ``mode``: center-crop, pad
    or stretch. ``near_bits=None`` or negative (or ``dedupe=False`` for both kinds) keeps near copies.
    ``labels``: ``"auto"`` (sub-folders), ``"none"`` or a CSV of ``path,label``.
    Re-running an interrupted import with the same arguments resumes it.

    Example:
        >>> m = import_images("builtin:digits", "data/digits", size=28)  # doctest: +SKIP
        >>> m["count"], m["resolution"], m["class_counts"]["0"]
        (1797, [28, 28], 178)
    """
    if near_bits is not None and near_bits < 0:  # a negative distance: exact duplicates only
        near_bits = None
    _check_args(size, channels, mode or "center-crop", min_size, max_aspect, near_bits)
    if shard_size < 1:
        raise ImagegenError(f"shard_size must be >= 1, got {shard_size}")
    src = str(src)
    if src.startswith(PREFIX):
        resolve_builtin(src)  # fail on an unknown name before any work
    dest = Path(dest).expanduser()
    source = open_source(src, labels=labels, image_column=image_column,
                         label_column=label_column, download_options=download_options,
                         progress=progress)
    if not source.entries:
        raise ImagegenError(f"input '{src}' holds no files; put images (PNG, JPEG, ...) in "
                            "it, optionally in one sub-folder per class")
    size, channels, mode, notes = _resolve_defaults(source, size, channels, mode)
    if notes.pop("default_size", False):
        _note(f"no size given; images are {mode} to {size}x{size} (pass --size N to choose)",
              progress)
    opts = CleanOptions(size=size, channels=channels, mode=mode, min_size=int(min_size),
                        max_aspect=None if max_aspect is None else float(max_aspect))
    near = near_bits if dedupe else None
    settings = {"size": size, "channels": channels, "mode": mode, "min_size": opts.min_size,
                "max_aspect": opts.max_aspect, "dedupe": dedupe, "near_bits": near,
                "shard_size": shard_size}
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for part in fingerprint_parts(source):
        h.update(part.encode("utf-8", "surrogateescape") + b"\n")
    fingerprint = h.hexdigest()
    if source.kind == "folder":
        root, d = Path(source.description), dest.resolve()
        if d == root or root in d.parents:
            raise ImagegenError(f"DEST {dest} is inside the input folder {src}; choose a "
                                "DEST outside it")
    state = _check_dest(dest, overwrite, fingerprint)
    created = not dest.exists()
    if state is None and dest.exists():  # a fresh start over an old dataset or import
        (dest / MANIFEST_NAME).unlink(missing_ok=True)
        (dest / REPORT_NAME).unlink(missing_ok=True)
        shutil.rmtree(dest / WORK_DIR, ignore_errors=True)

    shape = (size, size, opts.decode_channels)
    writer = ShardWriter(dest, shape, labeled=source.class_names is not None,
                         masked=getattr(source.data, "masks", None) is not None
                         if source.kind == "builtin" else False,
                         shard_size=shard_size, fingerprint=fingerprint)
    deduper = Deduper(writer.pixels, near_bits=near) if dedupe else None
    if state is not None:
        for i, (sha, phash) in enumerate(writer.resume(state)):
            if deduper is not None:
                deduper.add(sha, phash, i)
        _note(f"resuming an unfinished import: {writer.consumed} of {len(source.entries)} "
              "inputs already done", progress)
    _run(source, writer, deduper, opts, workers, progress)
    if writer.kept == 0:
        _discard(dest, created)
        lines = [json.loads(x) for x in writer.pending_lines()[:3]]
        examples = "; ".join(f"{r['input']}: {r.get('reason') or r['status']}" for r in lines)
        raise ImagegenError(f"no usable images in '{src}': all {len(source.entries)} inputs "
                            f"were rejected ({examples}); put PNG/JPEG/... images in it")
    extra = {"preprocessing": {"size": size, "mode": mode, "resample": "lanczos",
                               "alpha": "kept (RGBA)" if opts.decode_channels == 4
                               else "composited on white",
                               "exif_orientation": True, "min_size": opts.min_size,
                               "max_aspect": opts.max_aspect, **notes},
             "dedupe": {"exact": dedupe, "near_bits": near,
                        "pixel_tolerance": deduper.pixel_tolerance if deduper else None}}
    if source.info:
        extra["source_info"] = source.info
    return writer.finish(source=source.description, class_names=source.class_names,
                         channels=channels, extra=extra)


def _discard(dest: Path, created: bool) -> None:
    shutil.rmtree(dest / WORK_DIR, ignore_errors=True)
    if created and dest.exists() and not any(dest.iterdir()):
        dest.rmdir()


def _run(source: Source, writer: ShardWriter, deduper: Deduper | None, opts: CleanOptions,
         workers: int | None, progress: bool) -> None:
    start = writer.consumed
    entries = source.entries
    remaining = len(entries) - start
    n_workers = default_workers() if workers is None else max(0, int(workers))
    if remaining < PARALLEL_MIN_INPUTS:
        n_workers = 0
    stats = {"kept": 0, "dup": 0, "rejected": 0}
    with worker_pool(n_workers) as pool:  # workers first: forked before any thread starts
        jobs = ((item.kind, item.payload, item.mask) for item in source.items(start))
        results = ordered_map(clean_item, jobs, args=(opts,), pool=pool)
        bar = _bar(zip(entries[start:], results), len(entries), start, progress)
        try:
            for n, (entry, result) in enumerate(bar):
                _account(entry, result, source, writer, deduper, stats)
                if progress and n % 256 == 0:
                    bar.set_postfix(stats, refresh=False)
        except KeyboardInterrupt:
            raise ImagegenError(f"import interrupted after {writer.consumed} of {len(entries)} "
                                "inputs; run the same command again to resume") from None
        finally:
            bar.close()


def report_name(key: str) -> str:
    """``key`` as valid UTF-8: bytes that were not (os.fsdecode surrogates) become ``\\xNN``."""
    return key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _account(entry: Any, result: Cleaned | Rejected, source: Source, writer: ShardWriter,
             deduper: Deduper | None, stats: dict[str, int]) -> None:
    """Record one input's fate: kept, duplicate of a kept input, or rejected."""
    line: dict[str, Any] = {"input": report_name(entry.key)}
    if isinstance(result, Rejected):
        line.update(status="rejected", code=result.code, reason=str(result))
        stats["rejected"] += 1
        writer.other(line)
        return
    match = deduper.check(result.sha256, result.phash, result.pixels) if deduper else None
    if match is not None:
        kind, index, distance = match
        line.update(status="duplicate", of=writer.kept_keys[index], match=kind,
                    distance=distance)
        stats["dup"] += 1
        writer.other(line)
        return
    index = writer.kept
    line.update(status="kept", index=index)
    if entry.label is not None:
        line["label"] = entry.label
    if result.note:
        line["note"] = result.note
    if deduper is not None:
        deduper.add(result.sha256, result.phash, index)
    stats["kept"] += 1
    writer.keep(result, source.label_index(entry), line)
