"""The latent cache: a data set encoded once by its autoencoder, for latent diffusion.

Latent diffusion (Rombach et al. 2022) trains the diffusion model on ``z = E(x)``; encoding
every image once and reading the latents back is cheaper than encoding each batch again
(the encoder would cost about as much as the small denoisers trained here on a CPU).
The latents are the deterministic :meth:`~imagegen.features.autoencoder.Autoencoder.encode`
(posterior mean, shifted and scaled to unit variance over the data set), float32.

Files, next to the data set::

    DATA/features/latents-{data checksum[:12]}-{autoencoder sha256[:12]}.npy    float32 (N, Cz, h, w)
    DATA/features/latents-{...}.json    the full data set checksum and autoencoder sha256, the
                                        shape and the sha256 of the .npy file

Both are written atomically, the ``.json`` last. A cache is used only when its ``.json`` names
this data set's checksum and this autoencoder's sha256 in full and the ``.npy`` matches its
recorded shape and sha256; otherwise the latents are encoded again and the cache replaced. An
autoencoder trained on another data set (or another version of it) is refused. ``.npy`` files
are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..atomic import atomic_path, write_json
from ..errors import ImagegenError
from .autoencoder import Autoencoder, _load_dataset, check_trained_for, load_autoencoder

__all__ = ["cached_latents", "latents_path"]

FORMAT = "imagegen-latents-v1"


def latents_path(data: str | Path, dataset_checksum: str, autoencoder_sha256: str) -> Path:
    """``DATA/features/latents-{checksum[:12]}-{sha256[:12]}.npy``."""
    return Path(data) / "features" / f"latents-{dataset_checksum[:12]}-{autoencoder_sha256[:12]}.npy"


def _sha256_file(path: Path) -> str:
    from ..data.dataset import sha256_file

    return sha256_file(path)


def _valid(path: Path, expect: dict[str, Any]) -> bool:
    """Whether the cache at ``path`` is complete and made by this autoencoder from this data set."""
    try:
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in expect.items()):
        return False
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return list(arr.shape) == expect["shape"] and arr.dtype == np.float32 and _sha256_file(path) == meta.get("sha256")


def cached_latents(data: str | Path, autoencoder: Autoencoder | str | Path, *, batch_size: int = 64,
                   progress: bool = True) -> np.ndarray:
    """The latents of every image of a prepared data set, float32 (N, Cz, h, w), cached.

    ``autoencoder`` is an :class:`Autoencoder` or a path for :func:`load_autoencoder`. It
    must have been trained on this data set (same checksum), else an :class:`ImagegenError`
    says which data set it was trained for and how to train one for this. The first call
    encodes (on the autoencoder's device) and writes the cache; later calls with the same
    data set and autoencoder read it back (memory-mapped, read-only).

    Example:
        >>> ae = load_autoencoder("data/emoji64")  # doctest: +SKIP
        >>> z = cached_latents("data/emoji64", ae)  # doctest: +SKIP
        >>> z.shape, float(z.std())  # doctest: +SKIP
        ((3690, 4, 16, 16), 1.0)
    """
    data = Path(data)
    ae = autoencoder if isinstance(autoencoder, Autoencoder) else load_autoencoder(autoencoder)
    ds = _load_dataset(data)
    check_trained_for(ae, data, ds.checksum, "this autoencoder", "its latents would be meaningless: train one "
                      f"with `imagegen features train-autoencoder {data}`")
    c, h, w = ae.image_shape
    if tuple(ds.images.shape[1:]) != (h, w, c):
        raise ImagegenError(f"{data} holds {ds.images.shape[1:]} images, the autoencoder expects {(h, w, c)}; "
                            f"train one with `imagegen features train-autoencoder {data}`")
    path = latents_path(data, ds.checksum, ae.sha256)
    expect = {"format": FORMAT, "dataset_checksum": ds.checksum, "autoencoder_sha256": ae.sha256,
              "shape": [len(ds), *ae.latent_shape]}
    if not _valid(path, expect):
        _encode_to(path, ds.images, ae, batch_size, progress)
        write_json(path.with_suffix(".json"), {**expect, "sha256": _sha256_file(path), "dtype": "float32",
                                               "dataset": str(data)})
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _encode_to(path: Path, images: Any, ae: Autoencoder, batch_size: int, progress: bool) -> None:
    """Encode ``images`` batch by batch straight into a ``.npy`` file written atomically."""
    n = len(images)
    path.with_suffix(".json").unlink(missing_ok=True)  # the old cache is no longer valid
    was_training = ae.training
    ae.eval()
    try:
        with atomic_path(path, suffix=".npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, *ae.latent_shape))
            with torch.inference_mode(), tqdm(total=n, desc="encode latents", unit="img", file=sys.stderr,
                                              disable=not progress or n <= 4 * batch_size, leave=False) as bar:
                for s in range(0, n, batch_size):
                    out[s:s + batch_size] = ae.encode_images(images[s:s + batch_size], batch_size)
                    bar.update(min(batch_size, n - s))
            out.flush()
            del out
    finally:
        ae.train(was_training)
