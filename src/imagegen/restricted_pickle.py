"""Unpickling that resolves globals only through an explicit allow-list.

A pickle names the callables that rebuild its objects as globals (``GLOBAL`` /
``STACK_GLOBAL`` opcodes) and calls them (``REDUCE``), so loading an untrusted pickle with
:func:`pickle.load` can run any importable function (``os.system``, ``builtins.eval``, ...).
The Python documentation's remedy ("Restricting Globals", :mod:`pickle`) is to override
:meth:`pickle.Unpickler.find_class`: :class:`RestrictedUnpickler` does that with an allow-list
that maps ``(module, name)`` to the object the global stands for, and refuses every other
global with :class:`pickle.UnpicklingError`. Persistent ids (``PERSID`` / ``BINPERSID``) are
refused too unless the caller passes a ``persistent_load`` callback.

Two loaders are built on it:

- :func:`load_numpy_array`: plain numpy arrays. ``ndarray.__reduce__`` pickles an array as
  ``numpy.core.multiarray._reconstruct`` (``numpy._core.multiarray`` since numpy 2.0) applied to
  ``numpy.ndarray``, with its ``numpy.dtype`` and raw bytes as state: those four globals are
  admitted, nothing else.
- :func:`load_torchscript_pickle`: the ``data.pkl`` of a TorchScript archive
  (``torch.jit.save``'s zip format). Its module records are classes of the ``__torch__``
  namespace; the caller lists the other globals it admits and reads tensor storages with
  ``persistent_load`` (see :mod:`imagegen.features.torchscript_weights`).

Example:
    >>> import io, pickle
    >>> RestrictedUnpickler(io.BytesIO(pickle.dumps(len)), {}).load()
    Traceback (most recent call last):
    ...
    _pickle.UnpicklingError: refusing to load 'builtins.len'
"""

from __future__ import annotations

import io
import pickle
from typing import IO, Any, Callable, Mapping

import numpy as np

__all__ = [
    "NUMPY_ARRAY_GLOBALS",
    "TORCHSCRIPT_NAMESPACE",
    "RestrictedUnpickler",
    "load_numpy_array",
    "load_torchscript_pickle",
]

_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's array-rebuilding function

#: The globals a pickled plain numpy array refers to.
NUMPY_ARRAY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}

#: The module namespace of the classes TorchScript archives record (``__torch__.pkg.Net``).
TORCHSCRIPT_NAMESPACE = "__torch__"


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that admits only the globals it is given.

    ``allowed`` maps ``(module, name)`` to the object that global resolves to (a checked
    re-implementation may stand in for the real function). ``namespaces`` maps a module name to
    a factory: every ``name`` in that module or a submodule resolves to ``factory(name)``.
    Any other global raises :class:`pickle.UnpicklingError` with the message
    ``refusal.format(module=module, name=name)``. ``persistent_load`` resolves persistent ids;
    without it a persistent id raises :class:`pickle.UnpicklingError`.

    Example:
        >>> import io, pickle
        >>> allowed = {("builtins", "len"): len}
        >>> RestrictedUnpickler(io.BytesIO(pickle.dumps(len)), allowed).load() is len
        True
    """

    def __init__(self, file: IO[bytes], allowed: Mapping[tuple[str, str], Any], *,
                 refusal: str = "refusing to load '{module}.{name}'",
                 namespaces: Mapping[str, Callable[[str], Any]] | None = None,
                 persistent_load: Callable[[Any], Any] | None = None) -> None:
        super().__init__(file)
        self._allowed = dict(allowed)
        self._namespaces = dict(namespaces or {})
        self._refusal = refusal
        self._persistent_load = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        for namespace, factory in self._namespaces.items():
            if module == namespace or module.startswith(namespace + "."):
                return factory(name)
        raise pickle.UnpicklingError(self._refusal.format(module=module, name=name))

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent_load is None:
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return self._persistent_load(pid)


def load_numpy_array(file: IO[bytes]) -> Any:
    """Unpickle ``file``, admitting only the globals of plain numpy arrays.

    The result is whatever the pickle built from those (an array, or containers of arrays and
    plain values); callers check its type and dtype.

    Example:
        >>> import io, pickle
        >>> load_numpy_array(io.BytesIO(pickle.dumps(np.arange(3)))).tolist()
        [0, 1, 2]
    """
    return RestrictedUnpickler(
        file, NUMPY_ARRAY_GLOBALS,
        refusal="refusing to load '{module}.{name}': only numpy arrays are allowed").load()


def load_torchscript_pickle(data: bytes, allowed: Mapping[tuple[str, str], Any],
                            record_type: type, persistent_load: Callable[[Any], Any]) -> Any:
    """Unpickle a TorchScript archive's ``data.pkl`` (the bytes ``data``).

    Every class of the :data:`TORCHSCRIPT_NAMESPACE` (the archive's module records) becomes a
    new subclass of ``record_type`` with that class's name; ``allowed`` lists every other global
    admitted, and ``persistent_load`` resolves the storage ids. Anything else is refused with
    ``"refusing MODULE.NAME in a weights file"``.
    """
    return RestrictedUnpickler(
        io.BytesIO(data), allowed, refusal="refusing {module}.{name} in a weights file",
        namespaces={TORCHSCRIPT_NAMESPACE: lambda name: type(name, (record_type,), {})},
        persistent_load=persistent_load).load()
