"""The evaluator: a small classifier trained on the data set, used as FID's feature extractor.

On data sets such as MNIST the Inception-v3 features of Heusel et al. 2017 are a poor fit
(natural-image features of 28x28 grey digits), so, following common practice for small data sets
(e.g. the MNIST classifiers used to score GANs and diffusion models), we train a classifier on
the data set itself and use its penultimate activations as features:

- ``"mlp"`` (default): flatten H*W*C -> 128 -> classes with ReLU; features = the 128-d hidden
  ReLU activations.
- ``"cnn"``: conv32 -> pool -> conv64 -> pool -> 128 -> classes; features = the 128-d
  penultimate layer.

Inputs are uint8 images (N, H, W, C), scaled to [0, 1] inside. Training uses a FIXED split
(a permutation seeded with 0: 80 % train, 20 % held out) so held-out accuracies are comparable.
Weights are stored as safetensors with a JSON metadata block (arch, input shape, classes,
held-out accuracy, data set checksum); never pickle. Where the files live next to a data set
(``DATA/features/``) is the concern of :mod:`imagegen.features`.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..checkpoint import read_tagged_weights, weights_sha256
from ..errors import ImagegenError

__all__ = [
    "ARCHITECTURES", "DEFAULT_EPOCHS", "DEFAULT_LR", "DEFAULT_STEPS", "FEATURE_DIM", "Evaluator",
    "default_epochs", "fixed_split", "torch_threads", "train_evaluator",
]

FEATURE_DIM = 128
SPLIT_SEED = 0
HELD_OUT_FRACTION = 0.2
FORMAT = "imagegen-evaluator-v1"


class MLPClassifier(nn.Module):
    """Flatten -> Linear(H*W*C, 128) -> ReLU -> Linear(128, classes)."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        h, w, c = input_shape
        self.hidden = nn.Linear(h * w * c, FEATURE_DIM)
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: float (N, H, W, C) in [0, 1] -> (N, 128)."""
        return torch.relu(self.hidden(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class CNNClassifier(nn.Module):
    """conv3x3(32) -> pool -> conv3x3(64) -> pool -> adaptive 4x4 -> 128 -> classes."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        _, _, c = input_shape
        self.conv = nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.AdaptiveAvgPool2d(4),
        )
        self.hidden = nn.Linear(64 * 4 * 4, FEATURE_DIM)
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: float (N, H, W, C) in [0, 1] -> (N, 128)."""
        return torch.relu(self.hidden(self.conv(x.permute(0, 3, 1, 2)).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


#: name -> constructor(input_shape (H, W, C), num_classes) -> module with .features() and forward().
ARCHITECTURES: dict[str, Callable[[tuple[int, int, int], int], nn.Module]] = {
    "mlp": MLPClassifier,
    "cnn": CNNClassifier,
}
#: Default training length: at least ``DEFAULT_EPOCHS`` passes and about ``DEFAULT_STEPS``
#: optimiser steps (small data sets need more passes to become confident), at most 100 passes.
DEFAULT_EPOCHS: dict[str, int] = {"mlp": 15, "cnn": 6}
DEFAULT_STEPS: dict[str, int] = {"mlp": 1500, "cnn": 400}
DEFAULT_LR: dict[str, float] = {"mlp": 1e-3, "cnn": 2e-3}


def default_epochs(arch: str, n_train: int, batch_size: int = 64) -> int:
    """Passes over ``n_train`` images: ``DEFAULT_STEPS[arch]`` steps, within [DEFAULT_EPOCHS, 100].

    Example:
        >>> default_epochs("mlp", 4000), default_epochs("mlp", 1438)
        (24, 66)
    """
    steps_per_epoch = max(1, -(-n_train // batch_size))
    return int(min(100, max(DEFAULT_EPOCHS[arch], -(-DEFAULT_STEPS[arch] // steps_per_epoch))))


def _check_arch(arch: str) -> None:
    if arch not in ARCHITECTURES:
        raise ImagegenError(f"unknown evaluator architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the previous setting.

    The evaluator networks are so small that one thread is fastest; more threads only add
    synchronisation, and on a busy 2-core machine OpenMP spin-waiting made training 40-90x
    slower with 2 threads than with 1 (measured). ``None`` leaves the setting alone.
    """
    previous = torch.get_num_threads()
    if n is None or n == previous:
        yield
        return
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    # np.array copies: dataset memmaps are read-only, which torch.from_numpy warns about
    return torch.from_numpy(np.array(images, dtype=np.float32)).div_(255.0)


@dataclass
class Evaluator:
    """A trained evaluator classifier: features for FID, class probabilities for accuracy.

    Example:
        >>> ev, report = train_evaluator(images, labels, 10)  # doctest: +SKIP
        >>> ev.features(images[:5]).shape  # doctest: +SKIP
        (5, 128)
    """

    arch: str
    input_shape: tuple[int, int, int]
    num_classes: int
    module: nn.Module
    held_out_accuracy: float | None = None
    dataset_checksum: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    #: torch threads for inference (see :func:`torch_threads`); None: leave torch's setting
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        self.module.eval()
        self._sha256: str | None = None

    # -- inference ---------------------------------------------------------------------------
    def _check_images(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim == 3 and self.input_shape[2] == 1:
            images = images[..., None]
        if images.ndim != 4 or tuple(images.shape[1:]) != tuple(self.input_shape):
            h, w, c = self.input_shape
            raise ImagegenError(
                f"the {self.arch} evaluator expects images of shape (N, {h}, {w}, {c}) "
                f"(resolution {h}x{w}, {c} channel(s)), got {tuple(images.shape)}"
            )
        if images.dtype != np.uint8:
            raise ImagegenError(f"the evaluator expects uint8 images (0-255), got dtype {images.dtype}")
        return images

    def _run(self, images: np.ndarray, fn: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
             progress: bool, desc: str) -> np.ndarray:
        images = self._check_images(images)
        outs = []
        starts = range(0, len(images), batch_size)
        show = progress and len(images) > 20 * batch_size
        with torch.inference_mode(), torch_threads(self.num_threads):
            for s in tqdm(starts, desc=desc, disable=not show, file=sys.stderr, leave=False):
                outs.append(fn(_to_tensor(images[s:s + batch_size])).double().numpy())
        if not outs:
            return np.zeros((0, FEATURE_DIM), dtype=np.float64)
        return np.concatenate(outs, axis=0)

    def features(self, images: np.ndarray, batch_size: int = 500, progress: bool = True) -> np.ndarray:
        """Penultimate 128-d activations for uint8 ``images`` (N, H, W, C), float64 (N, 128).

        Example:
            >>> evaluator.features(images).shape  # doctest: +SKIP
            (1797, 128)
        """
        return self._run(images, self.module.features, batch_size, progress, "features")

    def probs(self, images: np.ndarray, batch_size: int = 500, progress: bool = True) -> np.ndarray:
        """Class probabilities (softmax) for uint8 ``images``, float64 (N, num_classes).

        Example:
            >>> evaluator.probs(images).argmax(axis=1)[:3]  # doctest: +SKIP
            array([0, 1, 2])
        """
        fn = lambda x: torch.softmax(self.module(x), dim=1)  # noqa: E731
        return self._run(images, fn, batch_size, progress, "classify")

    # -- identity and storage ----------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """The JSON metadata stored in the safetensors header."""
        return {
            "format": FORMAT,
            "arch": self.arch,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "feature_dim": FEATURE_DIM,
            "held_out_accuracy": self.held_out_accuracy,
            "dataset_checksum": self.dataset_checksum,
            **self.extra,
        }

    @property
    def sha256(self) -> str:
        """sha256 of the architecture, input shape and weights: a cache key for derived statistics.

        Independent of the file format and of metadata such as the accuracy, so the same
        weights always give the same key whether trained in memory or loaded from disk.
        Computed once; an evaluator's weights are not meant to change after training.
        """
        if self._sha256 is None:
            self._sha256 = weights_sha256(json.dumps([self.arch, list(self.input_shape), self.num_classes]).encode(),
                                          self.module.state_dict())
        return self._sha256

    def save(self, path: str | Path) -> Path:
        """Atomically write the weights and metadata to a safetensors file; returns the path.

        Example:
            >>> evaluator.save("DATA/features/evaluator-mlp.safetensors")  # doctest: +SKIP
        """
        path = Path(path)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.module.state_dict().items()}
        meta = {"imagegen": json.dumps(self.metadata(), sort_keys=True)}
        with atomic_path(path, suffix=".safetensors") as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Evaluator":
        """Load an evaluator written by :meth:`save`.

        Example:
            >>> ev = Evaluator.load("DATA/features/evaluator-mlp.safetensors")  # doctest: +SKIP
        """
        path = Path(path)
        tensors, raw = read_tagged_weights(path, "evaluator")
        if raw is None:
            raise ImagegenError(f"{path} is not an imagegen evaluator (no 'imagegen' metadata)")
        meta = json.loads(raw)
        arch = meta.get("arch")
        _check_arch(arch)
        input_shape = tuple(int(v) for v in meta["input_shape"])
        num_classes = int(meta["num_classes"])
        module = ARCHITECTURES[arch](input_shape, num_classes)
        try:
            module.load_state_dict(tensors)
        except RuntimeError as exc:
            raise ImagegenError(
                f"evaluator weights {path} do not match the {arch} architecture: {exc}") from exc
        known = {"format", "arch", "input_shape", "num_classes", "feature_dim", "held_out_accuracy",
                 "dataset_checksum"}
        return cls(arch=arch, input_shape=input_shape, num_classes=num_classes, module=module,
                   held_out_accuracy=meta.get("held_out_accuracy"),
                   dataset_checksum=meta.get("dataset_checksum"),
                   extra={k: v for k, v in meta.items() if k not in known})


def fixed_split(n: int, fraction: float = HELD_OUT_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """The fixed train / held-out index split: a permutation seeded with 0; 20 % held out.

    Example:
        >>> train_idx, held_idx = fixed_split(1000)
        >>> len(train_idx), len(held_idx)
        (800, 200)
    """
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_held = int(round(n * fraction))
    return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def _fit(module: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int,
         lr: float, seed: int, desc: str, progress: bool) -> float:
    """Adam + cross-entropy over shuffled mini-batches; returns the last batch loss."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    steps_per_epoch = (len(x) + batch_size - 1) // batch_size
    module.train()
    loss_value = float("nan")
    with tqdm(total=epochs * steps_per_epoch, desc=desc, disable=not progress, file=sys.stderr,
              leave=False) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=gen)
            for s in range(0, len(order), batch_size):
                idx = order[s:s + batch_size]
                loss = loss_fn(module(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_value = float(loss.detach())
                bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
    module.eval()
    return loss_value


def train_evaluator(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    arch: str = "mlp",
    seed: int = 0,
    epochs: int | None = None,
    batch_size: int = 64,
    lr: float | None = None,
    dataset_checksum: str | None = None,
    num_threads: int | None = 1,
    progress: bool = True,
) -> tuple[Evaluator, dict[str, Any]]:
    """Train an evaluator classifier on uint8 ``images`` (N, H, W, C) with int ``labels`` (N,).

    The held-out 20 % comes from :func:`fixed_split` (independent of ``seed``, which only sets
    the initialisation and the batch order). Adam, cross-entropy, ``epochs`` passes
    (default: :func:`default_epochs`, learning rate ``DEFAULT_LR[arch]``).
    Does not touch torch's global random state; runs on ``num_threads`` torch threads (one is
    fastest for these small networks; see :func:`torch_threads`).

    Example:
        >>> from sklearn.datasets import load_digits
        >>> d = load_digits()
        >>> imgs = (d.images * 255 / 16).astype(np.uint8)[..., None]
        >>> ev, report = train_evaluator(imgs, d.target, 10, progress=False)
        >>> report["held_out_accuracy"] > 0.9
        True
    """
    _check_arch(arch)
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ImagegenError(f"training images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
    if len(images) != len(labels):
        raise ImagegenError(f"{len(images)} images but {len(labels)} labels")
    if num_classes < 2:
        raise ImagegenError(f"an evaluator needs at least 2 classes, got {num_classes}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ImagegenError(
            f"labels must lie in [0, {num_classes - 1}], got [{labels.min()}, {labels.max()}]")
    if len(images) < 10:
        raise ImagegenError(f"too few images to train an evaluator: {len(images)}")
    lr = DEFAULT_LR[arch] if lr is None else float(lr)
    input_shape = tuple(int(v) for v in images.shape[1:])

    train_idx, held_idx = fixed_split(len(images))
    epochs = default_epochs(arch, len(train_idx), batch_size) if epochs is None else int(epochs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = ARCHITECTURES[arch](input_shape, num_classes)
    t0 = time.perf_counter()
    with torch_threads(num_threads):
        loss_value = _fit(module, _to_tensor(images[train_idx]), torch.from_numpy(labels[train_idx]),
                          epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                          desc=f"train evaluator ({arch})", progress=progress)

    evaluator = Evaluator(arch=arch, input_shape=input_shape, num_classes=num_classes, module=module,
                          dataset_checksum=dataset_checksum)
    held_probs = evaluator.probs(images[held_idx], progress=False)
    acc = float(np.mean(held_probs.argmax(axis=1) == labels[held_idx]))
    evaluator.held_out_accuracy = acc
    # the share of real held-out images classified with confidence > 0.9: a reference point
    # for the confident fraction of generated images
    confident = float(np.mean(held_probs.max(axis=1) > 0.9))
    evaluator.extra["held_out_confident_fraction"] = confident
    report = {
        "arch": arch,
        "held_out_accuracy": acc,
        "held_out_confident_fraction": confident,
        "train_count": int(len(train_idx)),
        "held_out_count": int(len(held_idx)),
        "epochs": epochs,
        "lr": lr,
        "seed": seed,
        "final_train_loss": loss_value,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return evaluator, report


def __getattr__(name: str) -> Any:
    """The directory-level API lives in :mod:`imagegen.features`; re-exported here on access."""
    if name in ("train_evaluator_for", "load_evaluator", "evaluator_path"):
        from .. import features

        return getattr(features, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
