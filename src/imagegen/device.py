"""Devices and numerics: which device a verb runs on, in which precision, compiled or not.

``auto`` picks CUDA when PyTorch sees a GPU (under torchrun, the GPU of the process's local
rank), else the CPU. On CUDA the network runs under bf16 autocast (weights, optimizer state
and the preconditioning's scalings stay fp32) in the channels_last layout that cuDNN's
convolutions prefer; on the CPU it runs in fp32, where bf16 has no fast path on most
processors. ``compile`` wraps the network with ``torch.compile``.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

import torch
from torch import nn

from .errors import ImagegenError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(spec: str = "auto") -> torch.device:
    """The device ``spec`` names: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Under torchrun, ``auto`` and ``cuda`` mean the GPU of the local rank.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    spec = str(spec).strip().lower()
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ImagegenError(f"--device {spec}: this PyTorch sees no CUDA GPU (torch {torch.__version__}, "
                                f"CUDA build: {torch.version.cuda or 'no'}); use --device cpu or --device auto")
        index = local_rank if spec == "cuda" else _cuda_index(spec)
        count = torch.cuda.device_count()
        if not 0 <= index < count:
            raise ImagegenError(f"--device {spec}: GPU {index} does not exist (this machine has {count}: "
                                f"cuda:0..cuda:{count - 1}); pick one of them")
        return torch.device("cuda", index)
    raise ImagegenError(f"--device {spec!r} is not a device; choose one of: {', '.join(DEVICE_CHOICES)}")


def _cuda_index(spec: str) -> int:
    try:
        return int(spec.split(":", 1)[1])
    except ValueError:
        raise ImagegenError(f"--device {spec!r}: write a GPU as cuda:N with N a number, e.g. cuda:0") from None


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32).

    ``auto`` is bf16 on CUDA and fp32 elsewhere.

    Example:
        >>> autocast_dtype("auto", torch.device("cpu")) is None
        True
    """
    if precision not in PRECISIONS:
        raise ImagegenError(f"precision {precision!r} is unknown; choose one of: {', '.join(PRECISIONS)}")
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    return torch.bfloat16 if precision == "bf16" else None


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` to ``dtype`` on ``device``; nothing when ``dtype`` is None."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def prepare_network(model: nn.Module, device: torch.device, *, compile: bool = False) -> nn.Module:
    """Move ``model`` to ``device`` (channels_last on CUDA) and compile its network in place.

    ``model`` is a :class:`~imagegen.models.PreconditionedDenoiser`; compiling in place keeps
    its ``state_dict`` names, so checkpoints do not depend on ``compile``.
    """
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if compile:
        net: Any = getattr(model, "net", model)
        net.compile()
    return model


def module_device(obj: Any) -> torch.device:
    """The device of an ``nn.Module``'s first parameter (the CPU for anything else)."""
    if isinstance(obj, nn.Module):
        for p in obj.parameters():
            return p.device
    return torch.device("cpu")
