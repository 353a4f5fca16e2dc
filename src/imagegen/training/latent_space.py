"""Training and generating in the latent space of the data set's own autoencoder.

``imagegen train DATA --space latent`` (Rombach et al. 2022, "latent diffusion") trains the
same Denoiser on the latents of the autoencoder that ``imagegen features train-autoencoder
DATA`` made (:mod:`imagegen.features.autoencoder`), encoded once and cached next to the data
set (:func:`imagegen.features.latents.cached_latents`). The run folder keeps a copy of the
autoencoder (``autoencoder.safetensors``), so generation decodes without the data set; the
run's config records its sha256, and a copy that does not match is refused.

A new run on pictures of :data:`~imagegen.models.presets.LATENT_FROM_SIDE` pixels or more
trains in latent space by default (:func:`~imagegen.models.presets.space_for`); when the data
set has no up-to-date default autoencoder yet, :func:`default_autoencoder` trains it first
for :data:`AUTOENCODER_BUDGET_SHARE` of the run's time budget, so the budget covers both.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import ModelConfig
from ..errors import ImagegenError
from ..models.presets import MIN_SIDE, noise_shift_for, preset_for

AUTOENCODER_FILE = "autoencoder.safetensors"  # the run's copy of its autoencoder
# The share of a run's time budget its autoencoder trains for when the data set has none
# (at 64 px, 4 of 10 minutes beat pixel space at equal total time: benchmarks/RESULTS.md).
AUTOENCODER_BUDGET_SHARE = 0.4


def has_default_autoencoder(data: str | Path) -> bool:
    """Whether ``data`` holds its default (f4c4) autoencoder, trained on this version of it."""
    from ..data import load_dataset
    from ..features.autoencoder import Autoencoder, autoencoder_path

    path = autoencoder_path(data)
    return path.is_file() and Autoencoder.load(path).dataset_checksum == load_dataset(data).checksum


def default_autoencoder(data: str | Path, budget_seconds: float, *, threads: int | None = None,
                        progress: bool = True) -> float:
    """Give ``data`` its default autoencoder for a new latent-space run and cache its latents;
    returns the seconds spent (0 when both were there already).

    A missing or out-of-date autoencoder is trained for ``AUTOENCODER_BUDGET_SHARE`` of
    ``budget_seconds`` (:data:`~imagegen.features.autoencoder.DEFAULT_MINUTES` when the run
    has no time budget); under torchrun it must be trained beforehand, once, by one process.
    """
    from ..features.autoencoder import DEFAULT_MINUTES, load_autoencoder
    from ..features.autoencoder_train import train_autoencoder
    from ..features.latents import cached_latents

    t0 = time.perf_counter()
    if not has_default_autoencoder(data):
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ImagegenError(f"{data} has no autoencoder yet and latent space is the default at this size; "
                                f"train it once before torchrun (`imagegen features train-autoencoder {data}`), "
                                "or pass --space pixel")
        minutes = AUTOENCODER_BUDGET_SHARE * budget_seconds / 60.0 if budget_seconds > 0 else DEFAULT_MINUTES
        if progress:
            print(f"imagegen: {data} has no autoencoder yet; training one for {minutes:.1f} of the run's minutes "
                  "(pictures this large train in latent space by default; --space pixel trains on pixels)",
                  file=sys.stderr, flush=True)
        train_autoencoder(data, minutes=minutes, threads=threads, progress=progress)
    cached_latents(data, load_autoencoder(data, factor=4, latent_channels=4), progress=progress)
    return time.perf_counter() - t0


def to_space(mc: ModelConfig, data: str | Path, space: str) -> ModelConfig:
    """``mc`` moved to ``space`` ("pixel" or "latent"), with the default preset and noise shift
    for the tensors the network then sees; latent space needs the data set's autoencoder."""
    if space == "pixel":
        return replace(mc, space="pixel", latent_channels=0, latent_factor=0, autoencoder_sha256="",
                       preset=preset_for(mc.resolution, mc.channels), noise_shift=noise_shift_for(mc.resolution))
    if space != "latent":
        raise ImagegenError(f"unknown space {space!r}; choose pixel or latent")
    from ..features.autoencoder import load_autoencoder

    ae = load_autoencoder(data)
    cz, side, _ = ae.latent_shape
    # latents smaller than the family's smallest size (8x8 from 32 px) take its smallest network
    return replace(mc, space="latent", latent_channels=cz, latent_factor=ae.factor, autoencoder_sha256=ae.sha256,
                   preset=preset_for(max(side, MIN_SIDE), cz), noise_shift=noise_shift_for(side))


def training_autoencoder(mc: ModelConfig, data: str | Path) -> Any:
    """The autoencoder a latent run trains with: the data set's, checked against the run's
    config."""
    from ..features.autoencoder import load_autoencoder

    ae = load_autoencoder(data, factor=mc.latent_factor, latent_channels=mc.latent_channels)
    if ae.sha256 != mc.autoencoder_sha256:
        raise ImagegenError(
            f"the autoencoder of {data} ({ae.sha256[:12]}) is not the one this run was trained with "
            f"({mc.autoencoder_sha256[:12]}): it was retrained since; start a new run with another --out")
    return ae


def save_run_autoencoder(ae: Any, out: Path) -> None:
    """Write the run's copy of its autoencoder, unless it is there already."""
    if not (out / AUTOENCODER_FILE).exists():
        ae.save(out / AUTOENCODER_FILE)


def run_autoencoder(mc: ModelConfig, run: str | Path) -> Any:
    """The autoencoder a latent run generates with: its copy in the run folder, verified."""
    from ..features.autoencoder import Autoencoder

    path = Path(run) / AUTOENCODER_FILE
    if not path.is_file():
        raise ImagegenError(f"{run} is a latent-space run but has no {AUTOENCODER_FILE}; copy the data set's "
                            "autoencoder (DATA/features/autoencoder-*.safetensors) there under that name")
    ae = Autoencoder.load(path)
    if ae.sha256 != mc.autoencoder_sha256:
        raise ImagegenError(f"{path} ({ae.sha256[:12]}) is not the autoencoder this run was trained with "
                            f"({mc.autoencoder_sha256[:12]}); restore the run's own copy")
    return ae
