"""Processes: rank, world size and collectives that also work without torchrun.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT``)
for each process it starts; :func:`init` joins the process group (gloo for the CPU, NCCL
for CUDA). A plain ``imagegen ...`` has none of these and is a world of one, where every
collective here is the identity. The convention follows EDM's ``torch_utils/distributed.py``:
rank 0 writes files and prints, every rank computes.

``IMAGEGEN_DIST_TIMEOUT`` (seconds, default 1800) bounds every collective, so a process
whose peer died fails instead of hanging.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .errors import ImagegenError


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one job."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on the process that writes files and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ImagegenError(f"environment variable {name}={value!r} is not a number; unset it or run under torchrun") from None


def world() -> World:
    """The world described by the environment (torchrun's variables; one process without them)."""
    size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if size < 1 or not 0 <= rank < size:
        raise ImagegenError(f"RANK={rank} and WORLD_SIZE={size} do not describe a process group; "
                            "start several processes with torchrun")
    return World(rank=rank, size=size, local_rank=_env_int("LOCAL_RANK", 0))


def init(device: torch.device) -> World:
    """Join the process group when started by torchrun (idempotent); return this :class:`World`."""
    w = world()
    if w.distributed and not dist.is_initialized():
        timeout = datetime.timedelta(seconds=float(os.environ.get("IMAGEGEN_DIST_TIMEOUT", "1800")))
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, timeout=timeout)
    return w


def shutdown() -> None:
    """Leave the process group (if any), together: every rank first waits for the others, so
    no rank tears down its connections while rank 0 still writes (a rank that left early
    could abort in gloo's teardown)."""
    if dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_initialized() and dist.get_world_size() > 1


def broadcast_floats(values: list[float], device: torch.device) -> list[float]:
    """Rank 0's ``values`` on every rank (the input itself in a world of one)."""
    if not _active():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return t.tolist()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in a world of one)."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait for every rank (nothing in a world of one)."""
    if _active():
        dist.barrier()


def rank_share(items: list[Any], w: World) -> list[Any]:
    """This rank's share of ``items``: every ``w.size``-th item from position ``w.rank``."""
    return items[w.rank :: w.size]


def merge_shares(shares: list[list[Any]]) -> list[Any]:
    """Undo :func:`rank_share`: interleave the ranks' shares back into the original order."""
    out: list[Any] = []
    for i in range(max((len(s) for s in shares), default=0)):
        out.extend(s[i] for s in shares if i < len(s))
    return out
