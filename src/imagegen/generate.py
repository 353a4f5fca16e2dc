"""Generation: seeded sampling, classifier-free guidance, PNGs with their parameters.

Seeds follow one rule (:mod:`imagegen.noise`): image ``i`` of a request with seed ``s`` draws
its noise from its own generator seeded with ``s + i``, so an image never changes with ``n``,
the batch size, the batch it lands in, the device or the number of processes. Under
torchrun every rank generates its share of the seeds and the shares are gathered. Classifier-free guidance (Ho & Salimans 2022) mixes the conditional and
unconditional denoiser outputs: ``D = D_u + w (D_c - D_u)``; ``w = 1`` is plain conditional.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .checkpoint import Checkpoint, latest_checkpoint, load_checkpoint
from .config import RunConfig, SampleConfig
from .device import autocast, autocast_dtype, module_device, prepare_network, resolve_device
from .distributed import World, all_gather_objects, init, merge_shares, rank_share, world
from .errors import ImagegenError
from .images import make_grid, save_png, to_pil  # noqa: F401  (re-exported)
from .labels import null_labels, spread_labels
from .models.denoiser import Denoiser, sample_shape
from .models.precond import Preconditioning
from .models.registry import build_denoiser
from .noise import ImageNoise
from .samplers import SAMPLERS, SCHEDULES, STOCHASTIC_SAMPLERS, evaluation_sigmas, schedule_sigmas


def guided(
    denoiser: Denoiser, labels: torch.Tensor | None, cfg: float, interval: tuple[float, float] = (0.0, float("inf"))
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Return ``D(x, sigma)`` for fixed labels, with classifier-free guidance weight ``cfg``.

    Guidance applies where ``interval[0] < sigma <= interval[1]`` (Kynkaanniemi et al. 2024);
    elsewhere the plain conditional denoiser is used (one evaluation instead of two).
    """
    if labels is None or cfg == 1.0:
        return lambda x, sigma: denoiser(x, sigma, labels)
    null = null_labels(len(labels), denoiser.num_classes, labels.device)
    lo, hi = interval

    def d(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if not lo < float(sigma.max()) <= hi:
            return denoiser(x, sigma, labels)
        both = denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([labels, null]))
        cond, uncond = both.chunk(2)
        return uncond + cfg * (cond - uncond)

    return d


def resolve_schedule(sc: SampleConfig, precond: Preconditioning) -> SampleConfig:
    """``sc`` with ``schedule = "auto"`` made concrete by the formulation, and its sampler checked.

    ``auto`` takes ``precond.default_schedule``: karras for both formulations
    (measured: benchmarks/RESULTS.md, issue 16).
    """
    if sc.sampler not in SAMPLERS:
        raise ImagegenError(f"unknown sampler {sc.sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    if sc.churn < 0:
        raise ImagegenError(f"churn must be >= 0, got {sc.churn}")
    if sc.churn > 0 and sc.sampler not in STOCHASTIC_SAMPLERS:
        raise ImagegenError(f"churn (stochastic sampling) works with the samplers {', '.join(STOCHASTIC_SAMPLERS)}; "
                            f"{sc.sampler!r} is deterministic: pick one of those or drop --churn")
    if sc.schedule == "auto":
        return replace(sc, schedule=precond.default_schedule)
    if sc.schedule not in SCHEDULES:
        raise ImagegenError(f"unknown schedule {sc.schedule!r}; choose one of: auto, {', '.join(SCHEDULES)}")
    return sc


def sampling_sigmas(sc: SampleConfig, shift: float = 1.0) -> torch.Tensor:
    """The noise levels ``sc`` samples over (its schedule must be concrete: see resolve_schedule),
    multiplied by the model's noise ``shift`` (:func:`imagegen.models.presets.noise_shift_for`)."""
    if sc.schedule == "auto":
        raise ValueError("schedule 'auto' depends on the model: resolve it first with resolve_schedule(sc, precond)")
    return schedule_sigmas(sc.schedule, sc.steps, sc.sigma_min, sc.sigma_max, sc.rho) * shift


def network_evaluations(sc: SampleConfig, conditional: bool, shift: float = 1.0) -> int:
    """Network evaluations per image: the sampler's NFE, with guided ones counted twice."""
    sigmas = sampling_sigmas(sc, shift).tolist()
    at = evaluation_sigmas(sc.sampler, sigmas)
    if not conditional or sc.cfg == 1.0:
        return len(at)
    return sum(2 if sc.cfg_sigma_lo < s <= sc.cfg_sigma_hi else 1 for s in at)


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    seeds: list[int],
    labels: list[int] | None,
    sample_config: SampleConfig,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
    *,
    precision: str = "auto",
) -> np.ndarray:
    """Sample one image per seed on the denoiser's device; returns uint8 ``(N, H, W, C)``
    (a latent-space denoiser's samples are decoded by its ``decoder``).

    Each image's noise comes from its own seed (:class:`~imagegen.noise.ImageNoise`), drawn
    on the CPU and moved, so a seed gives the same image on any device up to float rounding.

    Example:
        >>> imgs = sample(D, seeds=[0, 1], labels=[3, 3], sample_config=SampleConfig())  # doctest: +SKIP
    """
    sc = resolve_schedule(sample_config, denoiser.precond)
    sigmas = sampling_sigmas(sc, denoiser.precond.shift)
    fn = SAMPLERS[sc.sampler]
    shape = sample_shape(denoiser)
    device = module_device(denoiser)
    dtype = autocast_dtype(precision, device)
    out = []
    for start in range(0, len(seeds), batch_size):
        chunk = seeds[start : start + batch_size]
        noise = ImageNoise(chunk, shape, device)
        x = noise() * sigmas[0].to(device)
        stochastic = {"churn": sc.churn, "noise_fn": noise} if sc.churn > 0 else {}
        lab = None
        if labels is not None:
            lab = torch.tensor(labels[start : start + batch_size], dtype=torch.long, device=device)
        guide = guided(denoiser, lab, sc.cfg, (sc.cfg_sigma_lo, sc.cfg_sigma_hi))
        with autocast(device, dtype):
            x = fn(guide, x, sigmas.to(device), **stochastic)
        decoder = getattr(denoiser, "decoder", None)  # a latent model decodes its samples
        if decoder is not None:
            x = decoder(x.float())
        out.append(to_uint8(x.float().cpu()))
        if progress is not None:
            progress(len(chunk))
    return np.concatenate(out) if out else np.zeros((0, shape[1], shape[2], shape[0]), np.uint8)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``[-1, 1]`` float NCHW -> uint8 NHWC (round to nearest)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


class GeneratorModel:
    """A trained run loaded for generation: ``imagegen.load(RUN).generate(...)``.

    Example:
        >>> model = imagegen.load("runs/mnist", device="auto")
        >>> images = model.generate(n=16, seed=0)  # uint8 (16, 28, 28, 1)
    """

    def __init__(self, checkpoint: Checkpoint, run: Path | None = None, *, device: str = "auto",
                 precision: str = "auto", compile: bool = False) -> None:
        self.checkpoint = checkpoint
        self.run = run
        self.config: RunConfig = checkpoint.config
        self.device = resolve_device(device)
        init(self.device)  # under torchrun: join the process group that shares the seeds
        self.precision = precision
        autocast_dtype(precision, self.device)  # an unknown precision fails here, not mid-way
        denoiser = build_denoiser(self.config.model)
        denoiser.load_state_dict(checkpoint.ema)
        self.denoiser = prepare_network(denoiser.eval().requires_grad_(False), self.device, compile=compile)
        if self.config.model.space == "latent":  # decode with the run's own copy of its autoencoder
            from .training.latent_space import run_autoencoder

            ae = run_autoencoder(self.config.model, run or checkpoint.path.parent.parent)
            self.denoiser.attach_decoder(ae.to(self.device).decode)
        self._sha256: str | None = None

    @property
    def num_classes(self) -> int:
        return self.config.model.num_classes

    @property
    def checkpoint_sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = self.checkpoint.sha256()
        return self._sha256

    def sample_config(self, **overrides: Any) -> SampleConfig:
        """The run's sampling defaults with ``overrides`` (None values ignored) applied."""
        sc = replace(self.config.sample, **{k: v for k, v in overrides.items() if v is not None})
        return resolve_schedule(sc, self.denoiser.precond)

    def labels_for(self, n: int, class_: int | None) -> list[int] | None:
        """Class of each image: ``class_`` for all, or spread evenly (image i gets i mod C)."""
        if not self.num_classes:
            if class_ is not None:
                raise ImagegenError("this model is unconditional: it was trained without labels; drop --class")
            return None
        if class_ is not None:
            if not 0 <= class_ < self.num_classes:
                raise ImagegenError(f"--class {class_} is out of range: this model has classes 0..{self.num_classes - 1}")
            return [class_] * n
        return spread_labels(n, self.num_classes)

    def generate(
        self,
        n: int = 16,
        seed: int = 0,
        class_: int | None = None,
        *,
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
        **sample_overrides: Any,
    ) -> np.ndarray:
        """Generate ``n`` images; returns uint8 ``(n, H, W, C)`` (on every rank under torchrun).

        ``sample_overrides`` are SampleConfig fields: ``sampler``, ``steps``, ``cfg``, ``churn``, ...
        """
        if n < 0:
            raise ImagegenError(f"n must be >= 0, got {n}")
        sc = self.sample_config(**sample_overrides)
        seeds = [seed + i for i in range(n)]
        labels = self.labels_for(n, class_)
        w = world()
        if not w.distributed:
            return self.sample_seeds(seeds, labels, sc, batch_size, progress)
        mine = rank_share(list(range(n)), w)
        images = self.sample_seeds([seeds[i] for i in mine], None if labels is None else [labels[i] for i in mine],
                                   sc, batch_size, progress)
        gathered = merge_shares([list(part) for part in all_gather_objects(images)])
        return np.stack(gathered) if gathered else images

    def sample_seeds(self, seeds: list[int], labels: list[int] | None, sc: SampleConfig,
                     batch_size: int = 64, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """One image per seed (and label) in this process, uint8 ``(len(seeds), H, W, C)``."""
        return sample(self.denoiser, seeds, labels, sc, batch_size, progress, precision=self.precision)

    def png_text(self, seed: int, label: int | None, sc: SampleConfig) -> dict[str, Any]:
        """The parameters stored in each PNG's text chunks."""
        text = {
            "run": str(self.run) if self.run else "",
            "checkpoint": self.checkpoint.path.name,
            "checkpoint_sha256": self.checkpoint_sha256,
            "seed": seed,
            "sampler": sc.sampler,
            "schedule": sc.schedule,
            "steps": sc.steps,
            "nfe": network_evaluations(sc, label is not None, self.denoiser.precond.shift),
            "cfg": sc.cfg,
        }
        if sc.churn > 0:
            text["churn"] = sc.churn
        if label is not None:
            text["class"] = label
        text["parameters"] = json.dumps(text | {"sigma_min": sc.sigma_min, "sigma_max": sc.sigma_max, "rho": sc.rho})
        return text


def load(run: str | Path, checkpoint: str | Path | None = None, *, device: str = "auto",
         precision: str = "auto", compile: bool = False) -> GeneratorModel:
    """Load a trained run (or a checkpoint file) for generation on ``device``.

    Example:
        >>> images = imagegen.load("runs/mnist", device="cpu").generate(n=16, seed=0)
    """
    run = Path(run)
    if run.is_file():
        ck, run = load_checkpoint(run), run.parent.parent
    else:
        if not run.exists():
            raise ImagegenError(f"{run}: no such run folder; train one with `imagegen train DATA --out {run}`")
        path = Path(checkpoint) if checkpoint else latest_checkpoint(run)
        if path is None:
            raise ImagegenError(f"{run}: no checkpoints in {run / 'checkpoints'}; train first with "
                                f"`imagegen train DATA --out {run}`")
        ck = load_checkpoint(path)
    return GeneratorModel(ck, run, device=device, precision=precision, compile=compile)


GENERATE_BATCH = 64  # images per sampling batch when writing a folder
GRID_IMAGES = 100  # images shown in grid.png


def images_on_this_rank(n: int, w: World | None = None) -> int:
    """How many of ``n`` images this process generates (all of them without torchrun)."""
    w = w or world()
    batches = rank_share(list(range(0, n, GENERATE_BATCH)), w)
    return sum(min(GENERATE_BATCH, n - b) for b in batches)


def generate_to_folder(
    model: GeneratorModel,
    out: str | Path,
    n: int,
    seed: int = 0,
    class_: int | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    **sample_overrides: Any,
) -> dict[str, Any]:
    """Generate ``n`` PNGs (``{seed:06d}.png``) plus ``grid.png`` into ``out``, streamed batch by batch.

    Under torchrun each rank writes its share of the batches; rank 0 writes the grid. The
    files are the same as one process writes. Returns a summary with the paths, NFE and
    seconds taken.
    """
    if n < 0:
        raise ImagegenError(f"n must be >= 0, got {n}")
    out = Path(out)
    w = world()
    out.mkdir(parents=True, exist_ok=True)
    sc = model.sample_config(**sample_overrides)
    labels = model.labels_for(n, class_)
    t0 = time.perf_counter()
    grid_part: dict[int, np.ndarray] = {}
    for start in rank_share(list(range(0, n, GENERATE_BATCH)), w):
        seeds = [seed + i for i in range(start, min(n, start + GENERATE_BATCH))]
        labs = labels[start : start + len(seeds)] if labels is not None else None
        imgs = model.sample_seeds(seeds, labs, sc, GENERATE_BATCH, progress)
        for j, img in enumerate(imgs):
            lab = labs[j] if labs is not None else None
            save_png(out / f"{seeds[j]:06d}.png", img, model.png_text(seeds[j], lab, sc))
            if start + j < GRID_IMAGES:
                grid_part[start + j] = img
    grid: dict[int, np.ndarray] = {}
    for part in all_gather_objects(grid_part):
        grid.update(part)
    grid_path = out / "grid.png"
    if grid and w.main:
        imgs = np.stack([grid[i] for i in sorted(grid)])
        cols = model.num_classes if model.num_classes and class_ is None and len(imgs) >= model.num_classes else None
        save_png(grid_path, make_grid(imgs, cols))
    per_image = network_evaluations(sc, labels is not None, model.denoiser.precond.shift)
    return {"out": str(out), "n": n, "grid": str(grid_path), "nfe_per_image": per_image,
            "seconds": time.perf_counter() - t0, "processes": w.size}
