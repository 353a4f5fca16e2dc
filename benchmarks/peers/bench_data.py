"""The peer benchmark's data set: importing it when missing (`imagegen data import`), its
description from manifest.json, the defaults that follow from it, and the real pictures that
give the floor of the scores ("real vs real")."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from children import BIN, ROOT, checked, log, run_child
from peer_configs import UnsupportedShape, check_shape

DEFAULT_DATA = ROOT / "data" / "mnist5k"
DEFAULT_SOURCE = "builtin:mnist5k"  # imported into DEFAULT_DATA when it is missing


class BenchError(RuntimeError):
    """A problem with the benchmark's inputs, said in one line."""


def import_source(data: Path, source: str | None) -> str:
    """What to import into ``data`` when it holds no data set: ``--import``, or builtin:mnist5k for
    the default data folder."""
    if source:
        return source
    if data == DEFAULT_DATA.resolve():
        return DEFAULT_SOURCE
    raise BenchError(f"{data} is not a prepared imagegen data set (no manifest.json); pass --import SRC to "
                     "import one there (e.g. --import builtin:emoji --size 32), or prepare it with "
                     "`imagegen data import SRC DIR`")


def describe_data(data: Path, size: int | None = None) -> dict[str, Any]:
    """Size, channels, count and classes of a prepared data set from its manifest.json; a
    BenchError when ``size`` is given and the images are not ``size`` x ``size``."""
    m = json.loads((data / "manifest.json").read_text())
    h, w = m["resolution"]
    if size and (h, w) != (size, size):
        raise BenchError(f"{data} holds {h}x{w} images, not --size {size}; remove it to import again at "
                         f"{size} px, or choose another --data folder")
    if h != w:
        raise BenchError(f"{data} holds {h}x{w} images; the benchmark needs square ones")
    return {"path": str(data), "name": data.name, "source": m.get("source"), "count": m["count"], "resolution": h,
            "channels": m["channels"], "classes": len(m.get("class_names") or [])}


def ensure_data(data: Path, source: str | None, size: int | None, env: dict[str, str], threads: int) -> dict[str, Any]:
    """The data set's description (:func:`describe_data`), after importing it when ``data``
    holds none (an interrupted import resumes: `imagegen data import` picks it up)."""
    if (data / "manifest.json").exists():
        log(f"data set {data} is there" + (f" (--import {source} not needed)" if source else ""))
        return describe_data(data, size)
    src = import_source(data, source)
    log(f"importing {src} into {data}" + (f" at {size} px" if size else ""))
    checked(run_child([BIN / "imagegen", "data", "import", src, data, "--workers", str(threads)]
                      + (["--size", str(size)] if size else []), env), "imagegen data import")
    return describe_data(data, size)


def resolve_defaults(a: argparse.Namespace, dataset: dict[str, Any]) -> None:
    """Defaults that depend on the data set: -n (2,000 for one channel, as mnist5k always had;
    1,000 for colour), --metrics auto (the data set's evaluator when it has labels, else
    Inception) and --draws (3 sets per imagegen mode with the evaluator, 1 with Inception)."""
    if a.n is None:
        a.n = 2000 if dataset["channels"] == 1 else 1000
    a.features = a.metrics if a.metrics != "auto" else ("evaluator" if dataset["classes"] else "inception")
    if a.features == "evaluator" and not dataset["classes"]:
        raise BenchError(f"{dataset['path']} has no labels, so it has no evaluator; use --metrics inception")
    if a.draws is None:
        a.draws = 3 if a.features == "evaluator" else 1


def peer_shape_error(dataset: dict[str, Any]) -> str | None:
    """Why the peers cannot run on this data set, or None."""
    try:
        check_shape(dataset["resolution"], dataset["channels"])
    except UnsupportedShape as e:
        return str(e)
    return None


def write_real_sample(data: Path, folder: Path, n: int, seed: int = 0) -> int:
    """Write ``n`` pictures drawn at random (without replacement, numpy ``seed``) from the data
    set as PNGs (with their class in a ``class`` text chunk when labelled); returns how many
    (all of them when the set holds fewer than ``n``)."""
    import numpy as np
    from PIL import Image, PngImagePlugin

    from imagegen.data import load_dataset

    ds = load_dataset(data)
    k = min(n, len(ds))
    idx = np.sort(np.random.default_rng(seed).choice(len(ds), k, replace=False))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for j, i in enumerate(idx):
        img = ds.images[i]
        info = None
        if ds.labels is not None:
            info = PngImagePlugin.PngInfo()
            info.add_text("class", str(int(ds.labels[i])))
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(folder / f"{j:06d}.png", pnginfo=info)
    return k
