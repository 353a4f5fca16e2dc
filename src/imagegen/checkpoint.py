"""Checkpoints: model and EMA weights in safetensors, optimizer state beside them.

``RUN/checkpoints/ckpt-00001234.safetensors`` holds tensors ``model.*`` (raw weights) and
``ema.*`` (the exponential moving average used for sampling), with metadata: the full run
config (TOML), step, images seen and elapsed seconds. The optimizer state goes to
``ckpt-00001234.optim.pt`` (``torch.save``; loaded only with ``weights_only=True`` and only
because this program wrote it). Both are written atomically, optimizer first, so a
checkpoint whose ``.safetensors`` exists is complete.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .atomic import atomic_path
from .config import RunConfig
from .data.dataset import sha256_file
from .errors import ImagegenError

FORMAT = "imagegen-checkpoint"
_NAME = re.compile(r"^ckpt-(\d{8})\.safetensors$")


@dataclass
class Checkpoint:
    """A loaded checkpoint: weights, EMA weights, config and training position."""

    path: Path
    config: RunConfig
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    step: int
    nimg: int
    elapsed: float

    @property
    def optim_path(self) -> Path:
        return self.path.with_suffix(".optim.pt")

    def sha256(self) -> str:
        return sha256_file(self.path)


def checkpoint_path(run: str | Path, step: int) -> Path:
    return Path(run) / "checkpoints" / f"ckpt-{step:08d}.safetensors"


def save_checkpoint(
    run: str | Path,
    config: RunConfig,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    position: dict[str, Any],
) -> Path:
    """Write ``ckpt-{step}.safetensors`` (+ ``.optim.pt``) atomically; return its path.

    ``position`` holds ``step``, ``nimg`` and ``elapsed``.
    """
    path = checkpoint_path(run, int(position["step"]))
    if optimizer is not None:
        with atomic_path(path.with_suffix(".optim.pt")) as tmp:
            torch.save(optimizer.state_dict(), tmp)
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().cpu().contiguous().clone() for k, v in ema.state_dict().items()})
    meta = {
        "format": FORMAT,
        "version": "1",
        "config": config.to_toml(),
        "position": json.dumps({k: position[k] for k in ("step", "nimg", "elapsed")}),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def weights_sha256(ident: bytes, state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 of ``ident`` (what the weights are for, e.g. their JSON config) followed by each
    tensor's name, shape and float32 bytes in name order: equal for equal weights whether held
    in memory or loaded from disk, on any device and in any dtype that rounds to the same float32."""
    h = hashlib.sha256()
    h.update(ident)
    for name, t in sorted(state_dict.items()):
        t = t.detach().to(torch.float32).contiguous().cpu()
        h.update(f"{name}:{list(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def read_tagged_weights(path: Path, what: str, fix: str = "") -> tuple[dict[str, torch.Tensor], str | None]:
    """The tensors of a safetensors file and its ``imagegen`` metadata entry (None if absent);
    a missing or unreadable file is an :class:`ImagegenError` naming ``what`` it should be."""
    if not path.is_file():
        raise ImagegenError(f"{what} weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("imagegen")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise ImagegenError(f"cannot read {what} weights {path}: {exc}{fix}") from exc
    return tensors, raw


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint file written by :func:`save_checkpoint`."""
    path = Path(path)
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise ImagegenError(f"{path}: not a readable checkpoint ({e}); delete it to fall back to an earlier one") from None
    if meta.get("format") != FORMAT:
        raise ImagegenError(f"{path}: not an imagegen checkpoint (no '{FORMAT}' metadata)")
    config = RunConfig.from_toml(meta["config"], f"{path} (embedded config)")
    pos = json.loads(meta["position"])
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
    return Checkpoint(path, config, model, ema, int(pos["step"]), int(pos["nimg"]), float(pos["elapsed"]))


def list_checkpoints(run: str | Path) -> list[Path]:
    """All checkpoints of a run, oldest first."""
    folder = Path(run) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))


def latest_checkpoint(run: str | Path) -> Path | None:
    found = list_checkpoints(run)
    return found[-1] if found else None


BEST_NAME = "best.json"


def best_checkpoint(run: str | Path) -> dict | None:
    """``RUN/best.json`` (the best-FID checkpoint seen during training), or None."""
    try:
        best = json.loads((Path(run) / BEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return best if isinstance(best, dict) and "checkpoint" in best else None


def prune_checkpoints(run: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (and their optimizer files).

    The best-FID checkpoint named in ``RUN/best.json`` is never deleted.
    """
    best = best_checkpoint(run)
    protected = Path(run) / "checkpoints" / best["checkpoint"] if best else None
    for p in list_checkpoints(run)[:-keep] if keep > 0 else []:
        if p == protected:
            continue
        p.with_suffix(".optim.pt").unlink(missing_ok=True)
        p.unlink(missing_ok=True)
