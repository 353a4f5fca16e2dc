"""Write a prepared dataset shard by shard, so an interrupted import resumes exactly.

While an import runs, DEST holds finished shards and a work folder ``DEST/.import/``:

- ``state.json``: the import's fingerprint (source listing + options), how many inputs
  are consumed, the committed shards' image counts, and whether every kept image so
  far is gray. It is replaced atomically *after* a shard's files, so it never points at
  a missing or half-written file.
- ``report-00000.jsonl``: one line per input consumed while shard 0 filled (kept,
  duplicate-of or rejected), and so on per shard.
- ``hashes-00000.npy``: uint8 (n, 40) per kept image: pixel sha256 (32 bytes) and
  perceptual hash (8 bytes, big-endian), to rebuild the dedupe index on resume.

Committed work is never redone: a re-run with the same fingerprint skips the consumed
inputs and continues. Because inputs are processed in a fixed order and shards are cut
at fixed counts, an interrupted and resumed import writes the same bytes as an
uninterrupted one. :meth:`ShardWriter.finish` then converts all-gray RGB shards to one
channel (``channels=None``), concatenates the report into ``report.jsonl``, writes
``manifest.json`` last and removes the work folder. Every file goes through
:mod:`imagegen.atomic`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from imagegen.atomic import atomic_path, write_json
from imagegen.data.clean import Cleaned
from imagegen.data.dataset import (
    FORMAT, MANIFEST_NAME, REPORT_NAME, SHARD_RE, VERSION, dataset_checksum, save_npy,
    sha256_file,
)
from imagegen.errors import ImagegenError

WORK_DIR = ".import"
STATE_NAME = "state.json"
SHARD_BYTES = 128 * 2**20  # a shard holds at most this many pixel bytes


def read_state(dest: Path) -> dict[str, Any] | None:
    """The state of an unfinished import in ``dest``, or None."""
    try:
        state = json.loads((dest / WORK_DIR / STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and "fingerprint" in state else None


class ShardWriter:
    """Collect kept images and report lines; commit a shard whenever one fills.

    Example:
        >>> w = ShardWriter(dest, (28, 28, 3), labeled=True, masked=False,  # doctest: +SKIP
        ...                 shard_size=10_000, fingerprint="...")
        >>> w.keep(cleaned, label=3, line={"input": "a.png", "status": "kept"})  # doctest: +SKIP
        >>> manifest = w.finish(source="photos", class_names=[...], channels=None)  # doctest: +SKIP
    """

    def __init__(self, dest: Path, shape: tuple[int, int, int], *, labeled: bool, masked: bool,
                 shard_size: int, fingerprint: str) -> None:
        self.dest = Path(dest)
        self.work = self.dest / WORK_DIR
        self.shape = shape
        self.labeled, self.masked = labeled, masked
        self.capacity = max(1, min(shard_size, SHARD_BYTES // int(np.prod(shape))))
        self.fingerprint = fingerprint
        self.shards: list[int] = []  # image count per committed shard
        self.parts = 0  # committed report parts
        self.consumed = 0  # committed inputs
        self.all_gray = True
        self.kept_keys: list[str] = []
        self._files: dict[int, tuple[Any, int, tuple[int, ...]]] = {}
        self._reset()

    def _reset(self) -> None:
        self._images = np.empty((self.capacity, *self.shape), np.uint8)
        self._labels = np.empty(self.capacity, np.int64)
        self._masks = np.empty((self.capacity, *self.shape[:2]), np.uint8) if self.masked else None
        self._hashes = np.empty((self.capacity, 40), np.uint8)
        self._n = 0
        self._lines: list[str] = []

    # ------------------------------------------------------------------ resuming

    def resume(self, state: dict[str, Any]) -> Iterator[tuple[bytes, int]]:
        """Adopt a committed state; yield (sha256, phash) of every kept image, in order."""
        self.shards = [int(c) for c in state["shards"]]
        self.parts = int(state["parts"])
        self.consumed = int(state["consumed"])
        self.all_gray = bool(state["all_gray"])
        for k in range(self.parts):
            for line in (self.work / f"report-{k:05d}.jsonl").read_text("utf-8").splitlines():
                rec = json.loads(line)
                if rec["status"] == "kept":
                    self.kept_keys.append(rec["input"])
        for k in range(len(self.shards)):
            hashes = np.load(self.work / f"hashes-{k:05d}.npy", allow_pickle=False)
            for row in hashes:
                yield row[:32].tobytes(), int.from_bytes(row[32:].tobytes(), "big")
        if len(self.kept_keys) != sum(self.shards):
            raise ImagegenError(f"the unfinished import in {self.dest} is inconsistent; pass "
                                "--overwrite to start it again")

    # ------------------------------------------------------------------ adding

    @property
    def kept(self) -> int:
        """Images kept so far (committed and buffered)."""
        return sum(self.shards) + self._n

    def pixels(self, index: int) -> np.ndarray:
        """Kept image ``index``, from the buffer or read from its shard file.

        Committed rows are read with ``os.pread`` rather than a memory map, so checking
        near-duplicate candidates does not pile file pages into this process's memory.
        """
        base = sum(self.shards)
        if index >= base:
            return self._images[index - base]
        for k, count in enumerate(self.shards):
            if index < count:
                if k not in self._files:
                    f = open(self.dest / f"images-{k:05d}.npy", "rb")
                    version = np.lib.format.read_magic(f)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, _ = read_header(f)
                    self._files[k] = (f, f.tell(), shape[1:])
                f, offset, shape = self._files[k]
                row = int(np.prod(shape))
                data = os.pread(f.fileno(), row, offset + index * row)
                return np.frombuffer(data, np.uint8).reshape(shape)
            index -= count
        raise IndexError(index)

    def close(self) -> None:
        """Close the shard files opened by :meth:`pixels`."""
        for f, _, _ in self._files.values():
            f.close()
        self._files.clear()

    def keep(self, item: Cleaned, label: int | None, line: dict[str, Any]) -> None:
        """Add one kept image with its report line; commits when the shard is full."""
        i = self._n
        self._images[i] = item.pixels
        if self.labeled:
            self._labels[i] = label
        if self._masks is not None:
            self._masks[i] = item.mask if item.mask is not None else 0
        self._hashes[i, :32] = np.frombuffer(item.sha256, np.uint8)
        self._hashes[i, 32:] = np.frombuffer(item.phash.to_bytes(8, "big"), np.uint8)
        self.all_gray &= item.gray
        self.kept_keys.append(line["input"])
        self._n += 1
        self.other(line)
        if self._n == self.capacity:
            self.commit()

    def other(self, line: dict[str, Any]) -> None:
        """Add the report line of an input that was not kept (or of a kept one)."""
        self._lines.append(json.dumps(line, ensure_ascii=False, separators=(",", ":")))

    def pending_lines(self) -> list[str]:
        """Report lines not yet committed (JSON text)."""
        return list(self._lines)

    def commit(self) -> None:
        """Write the buffered shard and report part, then the state (atomically)."""
        if not self._lines:
            return
        self.work.mkdir(parents=True, exist_ok=True)
        n, k = self._n, len(self.shards)
        if n:
            save_npy(self.dest / f"images-{k:05d}.npy", self._images[:n])
            if self.labeled:
                save_npy(self.dest / f"labels-{k:05d}.npy", self._labels[:n])
            if self._masks is not None:
                save_npy(self.dest / f"masks-{k:05d}.npy", self._masks[:n])
            save_npy(self.work / f"hashes-{k:05d}.npy", self._hashes[:n])
        with atomic_path(self.work / f"report-{self.parts:05d}.jsonl") as tmp:
            tmp.write_text("".join(line + "\n" for line in self._lines), encoding="utf-8")
        if n:
            self.shards.append(n)
        self.parts += 1
        self.consumed += len(self._lines)
        write_json(self.work / STATE_NAME, {
            "fingerprint": self.fingerprint, "consumed": self.consumed, "parts": self.parts,
            "shards": self.shards, "all_gray": self.all_gray})
        self._n = 0
        self._lines = []

    # ------------------------------------------------------------------ finishing

    def _report(self) -> tuple[dict[str, Any], list[dict[str, str]]]:
        """Concatenate the report parts into report.jsonl; return its summary."""
        status: Counter[str] = Counter()
        codes: Counter[str] = Counter()
        matches: Counter[str] = Counter()
        rejected: list[dict[str, str]] = []
        with atomic_path(self.dest / REPORT_NAME) as tmp:
            with open(tmp, "w", encoding="utf-8") as out:
                for k in range(self.parts):
                    text = (self.work / f"report-{k:05d}.jsonl").read_text("utf-8")
                    out.write(text)
                    for line in text.splitlines():
                        rec = json.loads(line)
                        status[rec["status"]] += 1
                        if rec["status"] == "rejected":
                            codes[rec["code"]] += 1
                            rejected.append({"path": rec["input"], "reason": rec["reason"],
                                             "code": rec["code"]})
                        elif rec["status"] == "duplicate":
                            matches[rec["match"]] += 1
        summary = {"file": REPORT_NAME, "sha256": sha256_file(self.dest / REPORT_NAME),
                   "inputs": sum(status.values()), "kept": status["kept"],
                   "duplicates": dict(sorted(matches.items())),
                   "rejected": dict(sorted(codes.items()))}
        return summary, rejected

    def _to_gray(self) -> None:
        """Store every shard with one channel (called when all kept images are gray)."""
        for k in range(len(self.shards)):
            path = self.dest / f"images-{k:05d}.npy"
            images = np.load(path, mmap_mode="r")
            if images.shape[3] == 3:
                save_npy(path, np.ascontiguousarray(images[..., :1]))
                del images

    def finish(self, *, source: str, class_names: list[str] | None, channels: int | None,
               extra: dict[str, Any]) -> dict[str, Any]:
        """Commit the rest, then write report.jsonl and manifest.json; return the manifest."""
        self.commit()
        if not self.shards:
            raise ImagegenError("no usable images")
        self.close()
        out_channels = self.shape[2]
        if channels is None and self.all_gray and self.shape[2] == 3:
            self._to_gray()
            out_channels = 1
        shards: list[dict[str, Any]] = []
        all_labels = []
        for k, count in enumerate(self.shards):
            entry: dict[str, Any] = {"images": f"images-{k:05d}.npy", "count": count}
            entry["images_sha256"] = sha256_file(self.dest / entry["images"])
            entry["labels"] = f"labels-{k:05d}.npy" if self.labeled else None
            entry["labels_sha256"] = sha256_file(self.dest / entry["labels"]) if self.labeled else None
            if self.labeled:
                all_labels.append(np.load(self.dest / entry["labels"], allow_pickle=False))
            if self.masked:
                entry["masks"] = f"masks-{k:05d}.npy"
                entry["masks_sha256"] = sha256_file(self.dest / entry["masks"])
            shards.append(entry)
        class_counts = None
        if self.labeled and class_names:
            counts = np.bincount(np.concatenate(all_labels), minlength=len(class_names))
            class_counts = {name: int(c) for name, c in zip(class_names, counts)}
        report, rejected = self._report()
        manifest: dict[str, Any] = {
            "format": FORMAT, "version": VERSION, "source": source,
            "count": sum(self.shards), "resolution": [self.shape[0], self.shape[1]],
            "channels": out_channels,
            "class_names": list(class_names) if self.labeled and class_names else None,
            "class_counts": class_counts, "masks": self.masked, "shards": shards,
            "checksum": dataset_checksum(shards), "report": report, "rejected": rejected,
            **extra,
        }
        write_json(self.dest / MANIFEST_NAME, manifest)
        keep = {s[key] for s in shards for key in ("images", "labels", "masks") if s.get(key)}
        for p in self.dest.iterdir():
            if SHARD_RE.match(p.name) and p.name not in keep:
                p.unlink(missing_ok=True)  # stale shard of a replaced dataset
        shutil.rmtree(self.work, ignore_errors=True)
        return manifest
